"""A site as the site commands and the drills see it: its leader and role, how far its members
have replayed, its read-write endpoints, and where its case service reads and writes.

Production operations (runbooks/dr-site-*.md through `kntc-dr site`) and the drills both use these;
nothing here writes test data or judges a drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dr.errors import NotInTime
from dr.lab import Host, Inventory, Lab

RW_PORT = 5000
# The balancers' port for the other site's standby cluster (haproxy_replication_port).
REPLICATION_PORT = 5002
# A member that serves: `patronictl list` says "streaming" of a replica, and Patroni 4 (Debian 13)
# of a standby leader too, where Patroni 3 said "running".
UP_STATES = ("running", "streaming")

APP_ENV = "/etc/kntc/app.env"

PGBOUNCER_INI = "/etc/pgbouncer/pgbouncer.ini"


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Keep checking until the deadline; fail naming what was awaited and for how long."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() >= end:
            raise NotInTime(f"{what}: chưa đạt sau {timeout:.0f} giây / not true after {timeout:.0f} seconds "
                              f"(last: {str(last)[:300]})")
        time.sleep(interval)


# ------------------------------------------------------------------ endpoints
@dataclass(frozen=True)
class Endpoint:
    name: str  # e.g. "dr-app1:5000"
    site: str
    conninfo: str


def rw_endpoints(inv: Inventory, site: str) -> list[Endpoint]:
    """The site's HAProxy read-write ports, as the drill's own role (kntc_drill: it may create its
    schema and nothing else; the owner role logs in only from the migrating host)."""
    import psycopg  # only the commands that talk SQL pay for the import (CLI start-up time)

    pw = inv.secret("pg_kntc_drill")
    return [Endpoint(f"{b.name}:{RW_PORT}", site,
                     psycopg.conninfo.make_conninfo(
                         host=b.address, port=RW_PORT, dbname="kntc", user="kntc_drill", password=pw,
                         sslmode="verify-ca", sslrootcert=str(inv.ca_file), connect_timeout=2,
                         # a cut link drops packets: give up on an unanswered commit after 3 s
                         tcp_user_timeout=3000, keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                         application_name="kntc-drill"))
            for b in inv.balancers(site)]


def try_write(ep: Endpoint) -> bool:
    """True when a write transaction commits through the endpoint (needs no table: it assigns a
    transaction id, which a standby or a fenced site refuses)."""
    import psycopg

    try:
        with psycopg.connect(ep.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_current_xact_id()")
        return True
    except psycopg.Error:
        return False


# ------------------------------------------------------------------ members and roles
def standby_cluster_settings(inv: Inventory, follow_site: str) -> list[str]:
    """edit-config settings that make a cluster follow `follow_site` through its balancers' replication
    port (the same shape as the patroni role's patroni_standby_cluster)."""
    hosts = ",".join(b.address for b in inv.balancers(follow_site))
    return [f"standby_cluster.host={hosts}", f"standby_cluster.port={REPLICATION_PORT}",
            "standby_cluster.create_replica_methods=[basebackup]"]


def leader(lab: Lab, site: str) -> dict[str, Any] | None:
    return next((m for m in lab.patroni_members(site) if m.get("Role") in ("Leader", "Standby Leader")), None)


def site_role(lab: Lab, site: str) -> str:
    """'primary' (a Leader), 'standby' (a Standby Leader) or 'none'."""
    m = leader(lab, site)
    if m is None or m.get("State") not in UP_STATES:
        return "none"
    return "primary" if m["Role"] == "Leader" else "standby"


def replay_lsn(lab: Lab, host: str) -> int:
    return lsn_int(lab.sql(host, "SELECT pg_last_wal_replay_lsn()"))


def final_lsn(lab: Lab, host: str) -> int:
    """The end of a demoted primary's WAL: its last checkpoint (the shutdown checkpoint) or replay point."""
    row = lab.sql(host, "SELECT checkpoint_lsn, pg_last_wal_replay_lsn() FROM pg_control_checkpoint()")
    return max(lsn_int(x) for x in row.split("|") if x)


def lsn_int(text: str) -> int:
    text = text.strip()
    if not text or "/" not in text:
        return 0
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def streaming_from_remote(lab: Lab, host: str) -> bool:
    return lab.sql(host, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == "1"


# ------------------------------------------------------------------ the case service
def point_app(lab: Lab, inv: Inventory, site: str, port: int) -> None:
    """Point the site's case service at its HAProxy rw (5000) or ro (5001) port: through PgBouncer
    (role pgbouncer) its server side moves and reconnects while the service runs on; straight to
    HAProxy the service's own DSN changes and it restarts.

    The inventory still says which site is primary (kntc_primary_site): the next provisioning
    run of the app and pgbouncer roles puts the ports back, which is what the switchback expects."""
    for app in inv.select(site, "app"):
        lab.run(app, f"if [ -f {PGBOUNCER_INI} ]; then "
                     f"sed -i -E 's#( port=)500[01] #\\1{port} #' {PGBOUNCER_INI} && kntc-pgbouncer reconnect; "
                     f"else sed -i -E 's#(@[^:/@]+):500[01]/#\\1:{port}/#' {APP_ENV} && systemctl restart kntc; fi")


def app_database(lab: Lab, app: Host) -> str:
    """What the site's case service says about its database: 'primary', 'standby' or 'down'."""
    rc, out, _ = lab.run(app, "curl -sk --max-time 3 https://127.0.0.1/healthz", check=False)
    if rc != 0 or '"status":"ok"' not in out.replace(" ", ""):
        return "down"
    return "primary" if '"database":"primary"' in out.replace(" ", "") else "standby"


def stamp() -> str:
    """Now, for names of reports and of data set aside (UTC, sortable)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
