"""The major upgrade, PostgreSQL 15 (Debian 12) → 17 (Debian 13), by logical replication (`kntc-dr
upgrade`, runbooks/upgrade-postgres.md), rehearsed with the case service running behind a real
PgBouncer: officers keep recording petitions while the pool is paused, the primary role moves to 17
and back again, and every petition acknowledged is on the cluster that holds the primary role at
the end. The 17 is Debian 13's own package, run from a Debian 13 root on this host.

Threat rows (runbooks/security.md): T108.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from core_app.localdb import LocalCluster
from dr import runbook, upgrade
from dr.errors import DrError
from dr.sites.state import wait_until
from dr.sql import table_digests
from loadtests.stack import with_database
from tests.conftest import BIN, ROOT, TEST_PASSWORD, Officer, free_port, petition_body, running_server
from tests.figures import record
from tests.pgbouncer_support import Bouncer, pgbouncer, users_of
from tests.upgrade_support import NewerPostgres

DATABASE = "kntc_upgrade"
# `make major-upgrade-rehearsal` runs the move and the way back this many times (one in `make test`).
TRIALS = int(os.environ.get("KNTC_UPGRADE_TRIALS", "1"))
BOOK = ROOT / "runbooks" / "upgrade-postgres.md"
UNIT = "X00004"


SUPERUSER_PASSWORD = "upgrade-" + os.urandom(12).hex()


@dataclass
class Source:
    cluster: LocalCluster
    env: dict[str, str]  # the case service's DSNs on DATABASE

    def superuser(self, database: str = DATABASE) -> str:
        """Over TCP with a password, as the new site's host reaches the old primary."""
        return (f"host=127.0.0.1 port={self.cluster.port} user=postgres password={SUPERUSER_PASSWORD} "
                f"dbname={database}")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A PostgreSQL 15 cluster of its own (wal_level = logical takes a restart the session's cluster
    must not take), with one province of the national test data in DATABASE."""
    port = free_port()
    cluster = LocalCluster(root=ROOT / ".data" / f"upgrade-{port}", port=port, database=DATABASE)
    try:
        env = cluster.ensure()
        cluster.superuser_psql("ALTER SYSTEM SET wal_level = logical", "postgres")
        cluster.superuser_psql("ALTER SYSTEM SET log_statement = 'all'", "postgres")  # see test_no_password_…
        cluster.superuser_psql(f"ALTER ROLE postgres PASSWORD '{SUPERUSER_PASSWORD}'", "postgres")
        cluster.stop()
        env = cluster.ensure()
        res = subprocess.run([sys.executable, "-m", "loadtests.national", "--cases", "600", "--accounts", "300",
                              "--province", "T01", "--database", DATABASE, "--pg-root", str(cluster.root),
                              "--pg-port", str(port), "--state", str(tmp_path_factory.mktemp("national"))],
                             capture_output=True, text=True, timeout=900, cwd=ROOT)
        assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
        yield Source(cluster, with_database({k: v for k, v in env.items() if not k.startswith("_")}, DATABASE))
    finally:
        cluster.stop()
        shutil.rmtree(cluster.server, ignore_errors=True)
        shutil.rmtree(cluster.root, ignore_errors=True)


def provision(target: NewerPostgres, source: Source) -> None:
    """What the new site's provisioning does before the upgrade: the roles (here with the old
    cluster's passwords, so that the service's settings serve both) and an empty database owned as
    the old one is."""
    roles = target.run("pg_dumpall", ["--roles-only", "-d", source.superuser("postgres")], timeout=60)
    assert roles.returncode == 0, roles.stderr
    script = "\n".join(ln for ln in roles.stdout.splitlines() if "ROLE postgres" not in ln)
    with psycopg.connect(target.superuser("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        for role in ("kntc_owner", "kntc_app", "kntc_readonly", "kntc_auth", upgrade.ROLE):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    loaded = target.run("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target.superuser("postgres")],
                        stdin=script, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    with psycopg.connect(target.superuser("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER kntc_owner TEMPLATE template0 ENCODING UTF8 '
                     "LOCALE 'C.UTF-8'")


@pytest.fixture(scope="module")
def target(newer_postgres: NewerPostgres, source: Source) -> NewerPostgres:
    provision(newer_postgres, source)
    with psycopg.connect(newer_postgres.superuser(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")  # see test_no_password_…
        conn.execute("SELECT pg_reload_conf()")
    return newer_postgres


@pytest.fixture(scope="module")
def book_env(source: Source, target: NewerPostgres, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the operator exports before the runbook's steps; 17's pg_dump and psql are the Debian 13
    root's, through scripts that stand where a Debian 13 host has them."""
    pg_bin = target.cluster.programs(tmp_path_factory.mktemp("pg17-bin"), ["pg_dump", "psql"])
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "KNTC_UPGRADE_SOURCE": source.superuser(), "KNTC_UPGRADE_TARGET": target.superuser(DATABASE),
            "KNTC_UPGRADE_PG_BIN": str(pg_bin)}


def step(name: str, env: dict[str, str], exit_code: int | None = None) -> dict[str, Any]:
    """Run a step of runbooks/upgrade-postgres.md as written; its JSON line, or {"error": …} when it
    was expected to refuse."""
    res = runbook.run(BOOK, name, env, timeout=900)
    out = res.stdout + res.stderr
    assert SUPERUSER_PASSWORD not in out and env["KNTC_UPGRADE_TARGET"].split("password=")[1].split()[0] not in out
    if exit_code is not None:
        assert res.returncode == exit_code and len(res.stderr.strip().splitlines()) == 1, res.explain()
        return {"error": res.stderr.strip()}
    assert res.ok, res.explain()
    return json.loads(res.stdout.strip().splitlines()[-1])


@dataclass(eq=False)  # a thread is hashed by identity
class Recorder(threading.Thread):
    """An officer recording petitions one after another through the service, every answer kept."""

    officer: Officer
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)  # start, end, status, code

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = self.officer.post("/api/cases", json=petition_body(subject="Khiếu nại khi nâng cấp"))
                status, code = r.status_code, (r.json().get("code", "") if r.status_code < 300 else r.text[:200])
            except Exception as exc:  # a transport error is a finding, kept as such
                status, code = 0, repr(exc)[:200]
            self.answers.append((t0, time.monotonic(), status, code))

    def acknowledged(self) -> set[str]:
        return {code for _, _, status, code in self.answers if status in (200, 201)}

    def failed(self) -> list[tuple[float, float, int, str]]:
        return [a for a in self.answers if a[2] not in (200, 201)]

    def longest_wait(self, since: float) -> float:
        return max((end - start for start, end, _, _ in self.answers if start >= since), default=0.0)


def codes(conninfo: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        return {r[0] for r in conn.execute("SELECT code FROM kntc.case_file")}


def tables(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute(
            "SELECT format('%s.%s', schemaname, tablename) FROM pg_tables t JOIN pg_class c "
            "ON c.oid = format('%I.%I', schemaname, tablename)::regclass "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
            "AND c.relpersistence = 'p' ORDER BY 1")]


@pytest.fixture(scope="module")
def service(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Bouncer]]:
    """The case service through PgBouncer, pointed at the old cluster."""
    from core_app.waits import APP_WAITS
    from tests.integration.test_pgbouncer import WAITS, through

    waits = "; ".join(f"SET {name} = {WAITS[name]}" for name in APP_WAITS)
    with pgbouncer(source.cluster.server, source.cluster.port, DATABASE, users_of(source.env), waits) as bouncer, \
            running_server(through(bouncer, source.env), tmp_path_factory.mktemp("upgrade") / "server.log") as url:
        yield url, bouncer


def on_port(dsn: str, port: int) -> str:
    """A DSN of the service's (postgresql://…@127.0.0.1:P/db) pointed at the cluster on `port`."""
    return re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", dsn, count=1)


def an_officer(admin_dsn: str, url: str) -> Officer:
    """An officer made in the primary cluster (as the owner role), logged in through the service."""
    from core_app.security import hash_password

    username = "upgrade." + os.urandom(4).hex()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash, "
                     "factor_due_at) SELECT %s, %s, id, %s, 0, %s, now() + interval '1 day' FROM kntc.unit "
                     "WHERE code = %s", (username, "Cán bộ " + username, ["reception", "handling"],
                                          hash_password(TEST_PASSWORD), UNIT))
    return Officer(url, username, TEST_PASSWORD)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_the_service_moves_to_17_and_back_with_no_error_and_no_petition_lost(
        trial: int, source: Source, target: NewerPostgres, service: tuple[str, Bouncer],
        book_env: dict[str, str]) -> None:
    url, bouncer = service
    provision(target, source)  # each trial from an empty database, as the new site's provisioning leaves it
    checked = step("upgrade-check", book_env)["facts"]
    assert checked["source_version"] // 10000 == 15 and checked["target_version"] // 10000 == 17
    recorder = Recorder(an_officer(source.env["KNTC_ADMIN_DATABASE_URL"], url))
    recorder.start()
    try:
        prepared = step("upgrade-prepare", book_env)
        ready = step("upgrade-wait", book_env)
        copied = time.monotonic() - recorder.answers[0][0] if recorder.answers else 0.0
        assert ready["tables"] == len(tables(source.superuser())), ready
        time.sleep(1)

        bouncer.console(f"PAUSE {DATABASE}")
        paused = time.monotonic()
        acknowledged_before = recorder.acknowledged()
        cut = step("upgrade-cutover", book_env)
        bouncer.point_at(target.port)
        bouncer.console(f"RESUME {DATABASE}")
        cut_window = time.monotonic() - paused
        time.sleep(3)
        on_17 = recorder.acknowledged() - acknowledged_before
        # What officers recorded on 17 reaches 15 by the way back.
        wait_until(lambda: recorder.acknowledged() <= codes(source.superuser()), 30,
                   "the way back carries 17's petitions", interval=0.2)
        audit = subprocess.run([str(BIN / "kntc"), "audit", "verify"], capture_output=True, text=True, timeout=300,
                               env={**os.environ, **{k: on_port(v, target.port) for k, v in source.env.items()
                                                     if k.endswith("DATABASE_URL")}})
        assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]

        bouncer.console(f"PAUSE {DATABASE}")
        paused = time.monotonic()
        back = step("upgrade-rollback", book_env)
        bouncer.point_at(source.cluster.port)
        bouncer.console(f"RESUME {DATABASE}")
        back_window = time.monotonic() - paused
        time.sleep(2)
    finally:
        recorder.stop.set()
        recorder.join(60)
    assert not recorder.failed(), recorder.failed()[:5]
    assert recorder.acknowledged() <= codes(source.superuser()), "a petition acknowledged is missing on the primary"
    assert on_17, "no petition was recorded while 17 held the primary role"
    record("major upgrade 15 -> 17: every table copied and following (s)", copied)
    record("major upgrade 15 -> 17: cut-over behind the pool's pause (s)", cut_window)
    record("major upgrade 15 -> 17: way back behind the pool's pause (s)", back_window)
    record("major upgrade 15 -> 17: longest officer wait (s)", recorder.longest_wait(0))
    record("major upgrade 15 -> 17: failed officer requests", len(recorder.failed()), "requests")
    print(f"\nmajor upgrade 15 -> 17: schema copied and subscribed in {prepared['seconds']:.1f} s, "
          f"{ready['tables']} tables copied and following within {copied:.1f} s; "
          f"cut-over behind the pool's pause {cut_window:.2f} s (fence to following {cut['seconds']:.2f} s, "
          f"catch-up {cut['facts']['catch_up_s']:.2f} s), way back {back_window:.2f} s "
          f"(fence to done {back['seconds']:.2f} s); "
          f"{len(recorder.answers)} petitions, 0 errors, longest wait {recorder.longest_wait(0):.2f} s")


def database_level(conninfo: str) -> dict[str, Any]:
    """The database's settings (but a cut-over's fence) and its grants, by role name."""
    with psycopg.connect(conninfo) as conn:
        settings = sorted((role or "", item) for role, config in conn.execute(
            "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())")
            for item in config if not item.startswith("default_transaction_read_only="))
        grants = sorted(conn.execute(
            "SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type FROM pg_database d, "
            "aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE d.datname = current_database() AND r.rolname IS DISTINCT FROM %s", (upgrade.ROLE,)).fetchall())
    return {"settings": settings, "grants": grants}


def catalogue(conninfo: str) -> dict[str, list[str]]:
    """What replication objects a cluster holds."""
    with psycopg.connect(conninfo) as conn:
        return {"slots": [r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots")],
                "publications": [r[0] for r in conn.execute("SELECT pubname FROM pg_publication")],
                "subscriptions": [r[0] for r in conn.execute("SELECT subname FROM pg_subscription")],
                "roles": [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = %s",
                                                     (upgrade.ROLE,))]}


def test_an_upgrade_given_up_before_the_cut_over_leaves_nothing_behind(
        source: Source, target: NewerPostgres, service: tuple[str, Bouncer], book_env: dict[str, str]) -> None:
    url, _ = service
    provision(target, source)
    step("upgrade-prepare", book_env)
    step("upgrade-wait", book_env)
    step("upgrade-abandon", book_env)
    nothing = {"slots": [], "publications": [], "subscriptions": [], "roles": []}
    assert catalogue(source.superuser()) == catalogue(target.superuser(DATABASE)) == nothing
    # The old cluster never stopped serving.
    r = an_officer(source.env["KNTC_ADMIN_DATABASE_URL"], url).post("/api/cases", json=petition_body())
    assert r.status_code in (200, 201), r.text
    assert step("upgrade-abandon", book_env)["name"] == "abandon"  # again: nothing to do, no error


def test_a_cut_over_that_cannot_make_its_way_back_does_not_happen(
        source: Source, target: NewerPostgres, service: tuple[str, Bouncer], book_env: dict[str, str]) -> None:
    """The old cluster cannot reach the new one (a pg_hba or firewall line missing on the way back):
    the cut-over stops before any writer moves, and the old cluster takes writes again."""
    url, _ = service
    provision(target, source)
    step("upgrade-prepare", book_env)
    step("upgrade-wait", book_env)
    unreachable = f"host=127.0.0.1 port={free_port()} dbname={DATABASE}"
    with pytest.raises(DrError, match="no way back"):
        upgrade.cutover(upgrade.Endpoints(source.superuser(), target.superuser(DATABASE),
                                          target_seen_from_source=unreachable), timeout=30)
    nothing = {"slots": [], "publications": [], "subscriptions": [], "roles": []}
    assert catalogue(source.superuser()) == catalogue(target.superuser(DATABASE)) == nothing
    r = an_officer(source.env["KNTC_ADMIN_DATABASE_URL"], url).post("/api/cases", json=petition_body())
    assert r.status_code in (200, 201), r.text


def test_a_second_attempt_copies_every_row_alike_and_finish_retires_the_old_cluster(
        source: Source, target: NewerPostgres, service: tuple[str, Bouncer], book_env: dict[str, str]) -> None:
    url, bouncer = service
    e = upgrade.Endpoints(source.superuser(), target.superuser(DATABASE))
    # The way back left 17's copy behind: it is not reused.
    assert "already holds" in step("upgrade-prepare", book_env, exit_code=1)["error"]
    assert step("upgrade-reset", book_env)["name"] == "reset"
    assert tables(e.target) == []
    step("upgrade-prepare", book_env)
    step("upgrade-wait", book_env)
    # Nothing is dropped while it follows.
    assert "abandon" in step("upgrade-reset", book_env, exit_code=1)["error"]
    # What pg_dump leaves to --create came too: the database's own settings and grants.
    assert database_level(source.superuser()) == database_level(target.superuser(DATABASE))
    # The replication role's password is in the new cluster's catalogue alone, which the service's
    # roles cannot read.
    with psycopg.connect(on_port(source.env["KNTC_DATABASE_URL"], target.port)) as app, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SELECT subconninfo FROM pg_subscription")
    bouncer.console(f"PAUSE {DATABASE}")
    try:
        every = tables(e.source)
        upgrade.caught_up(e.source, upgrade.FORWARD, 30)
        assert table_digests(e.source, every) == table_digests(e.target, every)
        step("upgrade-cutover", book_env)
        bouncer.point_at(target.port)
    finally:
        bouncer.console(f"RESUME {DATABASE}")
    assert "rollback" in step("upgrade-abandon", book_env, exit_code=1)["error"]  # too late to give up
    # The new database is the primary's now: never dropped, before `finish` or after.
    assert "rollback" in step("upgrade-reset", book_env, exit_code=1)["error"]
    step("upgrade-finish", book_env)
    assert "rollback" in step("upgrade-reset", book_env, exit_code=1)["error"]
    assert catalogue(e.source) == catalogue(e.target) == {"slots": [], "publications": [], "subscriptions": [],
                                                          "roles": []}
    # The old cluster is read-only for the service's roles; the new one serves the officers.
    with psycopg.connect(source.env["KNTC_ADMIN_DATABASE_URL"]) as old, \
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        old.execute("UPDATE kntc.unit SET name = name WHERE false")
    officer = an_officer(on_port(source.env["KNTC_ADMIN_DATABASE_URL"], target.port), url)
    r = officer.post("/api/cases", json=petition_body())
    assert r.status_code in (200, 201), r.text
    assert r.json()["code"] in codes(e.target)


def test_a_cluster_not_ready_is_refused_in_one_line_and_nothing_is_created(
        target: NewerPostgres, pg_env: dict[str, str]) -> None:
    """The session's own cluster (wal_level = replica, the service's owner role, no superuser)."""
    owner = psycopg.conninfo.make_conninfo(pg_env["KNTC_ADMIN_DATABASE_URL"])
    before = catalogue(owner)
    res = subprocess.run([str(BIN / "kntc-dr"), "upgrade", "check"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "KNTC_UPGRADE_SOURCE": owner,
                              "KNTC_UPGRADE_TARGET": target.superuser("postgres")})
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "wal_level" in res.stderr and "superuser" in res.stderr and "Traceback" not in res.stderr
    assert "password" not in res.stderr.lower()
    assert catalogue(owner) == before
    # The new version's programs missing where --pg-bin says: refused before anything is touched.
    res = subprocess.run([str(BIN / "kntc-dr"), "upgrade", "prepare", "--pg-bin", "/nonexistent/17/bin"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "KNTC_UPGRADE_SOURCE": owner, "KNTC_UPGRADE_TARGET": target.superuser()})
    assert res.returncode == 2 and "pg_dump, psql" in res.stderr and len(res.stderr.strip().splitlines()) == 1, \
        res.stderr
    assert catalogue(owner) == before
    # A conninfo that names no database, or that libpq cannot read: refused before connecting.
    no_database = {k: v for k, v in psycopg.conninfo.conninfo_to_dict(owner).items() if k != "dbname"}
    for bad, says in ((psycopg.conninfo.make_conninfo(**no_database), "names no dbname"),
                      ("host=127.0.0.1 password=s3cret-value nonsense", "cannot read")):
        res = subprocess.run([str(BIN / "kntc-dr"), "upgrade", "check"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "KNTC_UPGRADE_SOURCE": bad,
                                              "KNTC_UPGRADE_TARGET": target.superuser("postgres")})
        assert res.returncode == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "s3cret" not in res.stderr and "Traceback" not in res.stderr


def test_no_password_reaches_either_clusters_log(source: Source, target: NewerPostgres) -> None:
    """Both clusters log every statement here (log_statement = all): the subscriptions' conninfo and
    the replication role's password are sent, but never logged, failing or not. Read after the
    tests above, which subscribed each cluster to the other (their apply workers logged it)."""
    for log, subscription in ((source.cluster.log_file, upgrade.BACK), (target.cluster.log_file, upgrade.FORWARD)):
        text = log.read_text(errors="replace")
        assert f'subscription "{subscription}" has started' in text, f"{log}: no upgrade ran against it"
        assert "CREATE SUBSCRIPTION" not in text and "password=" not in text.lower(), log


def _schema(target: NewerPostgres, conninfo: str) -> list[str]:
    """A database's schema as 17's pg_dump writes it, without what names the dump rather than the
    schema (comments, session settings, psql's \\restrict guard)."""
    dump = target.run("pg_dump", ["--schema-only", "--no-owner", "--no-privileges", "--no-publications",
                                  "--no-subscriptions", "-d", conninfo], timeout=120)
    assert dump.returncode == 0, dump.stderr
    return [ln for ln in dump.stdout.splitlines()
            if ln and not ln.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict"))]


def test_a_new_deployment_on_17_migrates_from_nothing_to_the_schema_15_has(
        source: Source, target: NewerPostgres) -> None:
    """Debian 13 for new deployments: the migrations run on 17 as they do on 15, to the same schema."""
    fresh = "kntc_fresh_17"
    with psycopg.connect(target.superuser(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{fresh}" OWNER kntc_owner')
        conn.execute(f'REVOKE ALL ON DATABASE "{fresh}" FROM PUBLIC')
        conn.execute(f'GRANT CONNECT ON DATABASE "{fresh}" TO kntc_app, kntc_readonly, kntc_auth')
    env = with_database({k: on_port(v, target.port) if k.endswith("DATABASE_URL") else v
                         for k, v in source.env.items()}, fresh)
    for command in (["migrate"], ["seed-units"]):
        res = subprocess.run([str(BIN / "kntc"), *command], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    on_17 = _schema(target, target.superuser(fresh))
    on_15 = _schema(target, source.superuser())
    assert on_17 == on_15, "\n".join(difflib.unified_diff(on_15, on_17, "15", "17", lineterm="", n=1))
