"""Each lab host runs exactly the services of its tiers, enabled at boot."""

from __future__ import annotations

import pytest

from .conftest import ALL_HOSTS, DC_APP, DC_DB, DR_APP, DR_DB, ETCD

pytestmark = pytest.mark.lab

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


@pytest.mark.parametrize(("host_name", "service"), CASES)
def test_service_is_running(hosts, host_name, service):
    assert hosts(host_name).service(service).is_running


@pytest.mark.parametrize(("host_name", "service"), CASES)
def test_service_is_enabled(hosts, host_name, service):
    assert hosts(host_name).service(service).is_enabled


@pytest.mark.parametrize(("host_name", "service"), ABSENT)
def test_service_of_another_tier_is_not_running(hosts, host_name, service):
    assert not hosts(host_name).service(service).is_running
