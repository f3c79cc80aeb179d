"""One Patroni leader with a synchronous standby in the DC; the DR standby cluster streams."""

from __future__ import annotations

import time

import psycopg
import pytest

from .conftest import ADDR, CA, DC_DB, DR_DB, patroni_members, secret, wait_for

pytestmark = pytest.mark.lab


def test_dc_has_exactly_one_leader(hosts):
    members = patroni_members(hosts("dc-db1"))
    assert [m["Role"] for m in members].count("Leader") == 1, members


def test_dc_has_a_synchronous_standby(hosts):
    members = patroni_members(hosts("dc-db1"))
    assert any(m["Role"] == "Sync Standby" for m in members), members


@pytest.mark.parametrize("member", DC_DB)
def test_dc_member_is_running(hosts, member):
    members = {m["Member"]: m for m in patroni_members(hosts("dc-db1"))}
    assert members[member]["State"] in ("running", "streaming"), members


@pytest.mark.parametrize("member", DC_DB + DR_DB)
def test_parallel_workers_have_room_in_shared_memory(hosts, member):
    # A parallel VACUUM of the national data set asked for 296 MB of dynamic shared memory
    # (/dev/shm); a container's default 64 MB failed it where a Debian host has half its memory.
    size = int(hosts(member).check_output("df --output=size -B1 /dev/shm | tail -n 1").strip())
    assert size >= 1 << 30, f"{member}: /dev/shm holds {size / 2**20:.0f} MiB"


def test_dr_has_a_standby_leader(hosts):
    members = patroni_members(hosts("dr-db1"))
    assert [m["Role"] for m in members].count("Standby Leader") == 1, members


@pytest.mark.parametrize("member", DR_DB)
def test_dr_member_is_running(hosts, member):
    members = {m["Member"]: m for m in patroni_members(hosts("dr-db1"))}
    assert members[member]["State"] in ("running", "streaming"), members


@pytest.mark.parametrize("member", DR_DB)
def test_dr_member_receives_wal_by_streaming(hosts, member):
    out = hosts(member).check_output("sudo -u postgres psql -XAtc 'select status from pg_stat_wal_receiver'")
    assert out.strip() == "streaming"


@pytest.mark.parametrize("member", DC_DB + DR_DB)
def test_the_follow_guard_reports_every_member_streaming_or_leading(hosts, member):
    """kntc-follow-guard runs on its timer and writes its metrics; on a healthy cluster none waits."""
    prom = hosts(member).file("/var/lib/prometheus/node-exporter/kntc_follow_guard.prom")
    assert prom.exists, f"{member}: the follow guard has not written its metrics"
    text = prom.content_string
    assert f'kntc_follow_guard_not_streaming_seconds{{member="{member}"}} 0' in text, text


def test_dr_standby_leader_streams_from_the_dc_balancers(hosts):
    leader = next(m["Member"] for m in patroni_members(hosts("dr-db1")) if m["Role"] == "Standby Leader")
    out = hosts(leader).check_output("sudo -u postgres psql -XAtc 'select sender_host, sender_port from pg_stat_wal_receiver'")
    host, port = out.strip().split("|")
    assert host in (ADDR["dc-app1"], ADDR["dc-app2"]) and port == "5002"


@pytest.mark.parametrize("balancer", ["dc-app1", "dc-app2"])
def test_the_standby_sites_path_is_never_held_open_by_its_balancer(hosts, balancer):
    # The app's listeners shut a member's sessions when it is marked down; the standby site's must
    # not: HAProxy 3.0 leaves the client side of a connection it was still making open for ever,
    # and the WAL receiver waits on it without limit (reproduced on Debian 13's 3.0.11).
    cfg = hosts(balancer).file("/etc/haproxy/haproxy.cfg").content_string
    # Each listener ends at the blank line before the next section (the last one is followed by
    # the web frontend, whose lines must not count as the replication listener's).
    listeners = {block.split("\n", 1)[0].strip(): block.split("\n\n", 1)[0] for block in cfg.split("\nlisten ")[1:]}
    replication = [line.strip() for line in listeners["replication"].splitlines() if not line.strip().startswith("#")]
    assert "bind *:5002" in replication and "option httpchk OPTIONS /primary" in replication
    assert not [line for line in replication if "shutdown-sessions" in line], replication
    assert all("on-marked-down shutdown-sessions" in listeners[name] for name in ("primary", "replicas"))


@pytest.mark.parametrize("member", [m for m in DC_DB])
def test_dc_replica_streams_or_is_the_leader(hosts, member):
    out = hosts(member).check_output(
        "sudo -u postgres psql -XAtc \"select case when pg_is_in_recovery() then "
        "(select status from pg_stat_wal_receiver) else 'primary' end\"")
    assert out.strip() in ("streaming", "primary")


@pytest.mark.parametrize("member", DC_DB + DR_DB)
def test_patroni_is_never_refused_by_its_own_postgres(hosts, member):
    # A replica's rewind check reads the local timeline over a replication connection from
    # 127.0.0.1; without a pg_hba line for it Patroni retries many times a second, for ever. The
    # DC's failover tests run before this module, so every member has been through a leader change.
    log = hosts(member).check_output("journalctl -u patroni -b --no-pager | grep -cF 'no pg_hba.conf entry for "
                                     "replication connection from host \"127.0.0.1\"' || true")
    assert log.strip() == "0", f"{member}: PostgreSQL refused Patroni's own connections {log.strip()} times"


@pytest.mark.parametrize("member", DR_DB)
@pytest.mark.parametrize("balancer", ["dc-app1", "dc-app2"])
def test_dr_can_rewind_from_the_dc_primary(hosts, member, balancer):
    # After an unplanned DC failover the DR may hold WAL the new DC primary never received (it
    # streamed from the old one). Patroni then checks the primary and runs pg_rewind against it,
    # through the DC's balancers, as the rewind role; refused, the DR stops following for good.
    # Through a balancer the role needs its client certificate too, which database hosts hold.
    dsn = (f"host={ADDR[balancer]} port=5002 dbname=postgres user=rewinder sslmode=verify-ca "
           "sslrootcert=/etc/kntc/tls/ca.crt sslcert=/etc/kntc/tls/postgres-rewinder.crt "
           "sslkey=/etc/kntc/tls/postgres-rewinder.key connect_timeout=5")
    query = ("select pg_is_in_recovery(), (select count(*) > 0 from pg_ls_dir('global', true, false)), "
             "length(pg_read_binary_file('global/pg_control', 0, 8, true)), "
             "(select rolsuper from pg_roles where rolname = current_user)")
    out = hosts(member).check_output(f"PGPASSWORD={secret('pg_rewinder')} psql -XAt '{dsn}' -c \"{query}\"")
    assert out.strip() == "f|t|8|f"


def test_dr_has_no_primary(hosts):
    members = patroni_members(hosts("dr-db1"))
    assert "Leader" not in [m["Role"] for m in members], members


def test_data_checksums_are_on(hosts):
    out = hosts("dc-db1").check_output("sudo -u postgres psql -XAtc 'show data_checksums'")
    assert out.strip() == "on"


def test_passwords_are_scram(hosts):
    out = hosts("dc-db1").check_output(
        "sudo -u postgres psql -XAtc \"select count(*) from pg_authid where rolcanlogin "
        "and rolpassword is not null and rolpassword not like 'SCRAM-SHA-256%'\"")
    assert out.strip() == "0"


@pytest.mark.parametrize("role", ["kntc_owner", "kntc_app", "kntc_readonly", "kntc_backup", "kntc_monitor"])
def test_login_role_exists(hosts, role):
    out = hosts("dc-db1").check_output(
        f"sudo -u postgres psql -XAtc \"select rolcanlogin from pg_roles where rolname = '{role}'\"")
    assert out.strip() == "t"


def test_database_is_owned_by_kntc_owner(hosts):
    out = hosts("dc-db1").check_output(
        "sudo -u postgres psql -XAtc \"select pg_get_userbyid(datdba) from pg_database where datname='kntc'\"")
    assert out.strip() == "kntc_owner"


def test_row_written_in_dc_reaches_dr_after_10_seconds(lab):
    dsn = (f"host={ADDR['dc-app1']} port=5000 dbname=kntc user=kntc_owner password={secret('pg_kntc_owner')} "
           f"sslmode=verify-ca sslrootcert={CA} connect_timeout=5")
    marker = f"probe-{time.time_ns()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table if not exists lab_replication_probe (marker text primary key)")
        conn.execute("insert into lab_replication_probe values (%s)", (marker,))
    dr = (f"host={ADDR['dr-app1']} port=5001 dbname=kntc user=kntc_owner password={secret('pg_kntc_owner')} "
          f"sslmode=verify-ca sslrootcert={CA} connect_timeout=5")

    def seen() -> bool:
        with psycopg.connect(dr, autocommit=True) as conn:
            return conn.execute("select 1 from lab_replication_probe where marker = %s", (marker,)).fetchone()

    wait_for(seen, 10, f"row {marker} visible through DR HAProxy (dr-app1:5001)")
