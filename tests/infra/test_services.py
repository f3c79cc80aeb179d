"""Each lab host runs exactly the services of its tiers, enabled at boot."""

from __future__ import annotations

import pytest

from .conftest import ALL_HOSTS, DC_APP, DC_DB, DR_APP, DR_DB, ETCD

pytestmark = [pytest.mark.lab, pytest.mark.readonly]

BACKUP = ["dc-backup1", "dr-backup1"]
CASES = (
    [(h, s) for h in ALL_HOSTS for s in ("ssh", "chrony", "nftables")]
    + [(h, "etcd") for h in ETCD]
    + [(h, s) for h in DC_DB + DR_DB for s in ("patroni", "kntc-follow-guard.timer")]
    + [(h, s) for h in DC_APP + DR_APP for s in ("haproxy", "kntc", "nginx")]
    + [(h, "pgbackrest-server") for h in DC_DB + DR_DB + BACKUP]
)
ABSENT = (
    [(h, s) for h in DC_APP + DR_APP + BACKUP for s in ("patroni",)]
    + [(h, s) for h in DC_DB + DR_DB for s in ("haproxy", "nginx", "kntc")]
    + [(h, s) for h in ETCD if h not in DR_DB + BACKUP for s in ("patroni", "postgresql@15-main")]
    + [(h, "etcd") for h in ALL_HOSTS if h not in ETCD]
)


@pytest.fixture(scope="module")
def units(hosts):
    """host -> unit -> (what `systemctl is-active` says, whether `systemctl is-enabled` succeeds), asked
    of each host in one command for every unit this module checks there, not a few commands a unit."""
    asked: dict[str, set[str]] = {}
    for host, unit in CASES + ABSENT:
        asked.setdefault(host, set()).add(unit)
    cache: dict[str, dict[str, tuple[str, bool]]] = {}

    def state(host: str, unit: str) -> tuple[str, bool]:
        if host not in cache:
            script = "; ".join(f"echo {u} $(systemctl is-active {u}) $(systemctl is-enabled --quiet {u} && echo yes || echo no)"
                               for u in sorted(asked[host]))
            lines = hosts(host).check_output(script).splitlines()
            cache[host] = {u: (active, enabled == "yes") for u, active, enabled in (ln.split() for ln in lines)}
        return cache[host][unit]

    return state


@pytest.mark.parametrize(("host_name", "service"), CASES)
def test_service_is_running(units, host_name, service):
    assert units(host_name, service)[0] == "active"


@pytest.mark.parametrize(("host_name", "service"), CASES)
def test_service_is_enabled(units, host_name, service):
    assert units(host_name, service)[1]


@pytest.mark.parametrize(("host_name", "service"), ABSENT)
def test_service_of_another_tier_is_not_running(units, host_name, service):
    assert units(host_name, service)[0] != "active"
