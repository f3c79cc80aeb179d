"""A major PostgreSQL upgrade by logical replication (blue/green), with the old cluster as the way back.

A site built new on Debian 13 carries PostgreSQL 17 and no 15, so `pg_upgrade` (old and new binaries
on one host) is not the route, and physical replication does not cross major versions. Instead:

1. `prepare`: the schema is copied into the new cluster by the new version's `pg_dump`, the old one
   publishes every table, and the new one subscribes, copying the rows and then following.
2. `cutover` (writers held, e.g. behind a PgBouncer PAUSE): the old cluster's login roles are made
   read-only and their sessions ended, the new one receives the last commit, the sequences are
   carried over, and replication is turned round: the old cluster now subscribes to the new one,
   so that going back loses nothing written after the cut-over.
3. `rollback` is the same cut-over in the other direction; `finish` removes the way back once the
   new cluster is kept; `abandon` gives up before a cut-over. None leaves a slot behind.

Every step names what it found in one line when it refuses, and changes nothing then. The
replication role the clusters use between them (`kntc_upgrade`) gets a password generated for
each direction, held only in the subscriber's catalogue (readable by superusers alone); it reads
past row-level security (BYPASSRLS, pg_read_all_data) because the initial copy must carry every
row, and it is dropped by `abandon`, `finish` and `rollback`. No statement of these sessions reaches
the server's log, since some carry that password.

Tables PostgreSQL does not carry: unlogged ones (the throttle counters, which are transient and
start empty on the new cluster). Large objects are refused (the schema has none).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dr.errors import ConfigError, DrError, NotInTime, PostgresError, one_line

FORWARD = "kntc_upgrade"
BACK = "kntc_upgrade_back"
ROLE = "kntc_upgrade"

# Tables without a primary key cannot publish updates or deletes: the old cluster's writers would
# fail as soon as the publication exists. Refused before anything is created.
_NO_KEY = """
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
   AND c.relreplident IN ('d', 'n')
   AND (c.relreplident = 'n' OR NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
 ORDER BY 1
"""
_UNLOGGED = """
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND n.nspname !~ '^pg_' ORDER BY 1
"""
# The roles the copied schema names (owners, grantees, policies, default privileges, settings):
# the new cluster's provisioning creates them, with their own passwords; the copy does not.
_NAMED_ROLES = """
WITH ns AS (SELECT oid, nspowner, nspacl FROM pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_'),
ids AS (
    SELECT nspowner AS id FROM ns
    UNION SELECT (aclexplode(nspacl)).grantee FROM ns WHERE nspacl IS NOT NULL
    UNION SELECT relowner FROM pg_class WHERE relnamespace IN (SELECT oid FROM ns)
    UNION SELECT (aclexplode(relacl)).grantee FROM pg_class
     WHERE relnamespace IN (SELECT oid FROM ns) AND relacl IS NOT NULL
    UNION SELECT proowner FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ns)
    UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc
     WHERE pronamespace IN (SELECT oid FROM ns) AND proacl IS NOT NULL
    UNION SELECT typowner FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns)
    UNION SELECT unnest(polroles) FROM pg_policy
    UNION SELECT defaclrole FROM pg_default_acl
    UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
    UNION SELECT datdba FROM pg_database WHERE datname = current_database()
    UNION SELECT (aclexplode(datacl)).grantee FROM pg_database WHERE datname = current_database() AND datacl IS NOT NULL
    UNION SELECT setrole FROM pg_db_role_setting
     WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT rolname FROM pg_roles WHERE oid IN (SELECT id FROM ids) AND rolname !~ '^pg_' ORDER BY 1
"""
# The roles held read-only during a cut-over: whoever logs in to write, except superusers and the
# replication roles (which carry the data across and must keep writing).
_WRITERS = """
SELECT rolname FROM pg_roles WHERE rolcanlogin AND NOT rolsuper AND NOT rolreplication AND rolname !~ '^pg_'
 ORDER BY 1
"""
_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""
# Who holds what on the current database, but its owner; a database never granted on holds the
# defaults (CONNECT and TEMPORARY to PUBLIC), which `datacl` leaves NULL.
_DATABASE_GRANTS = """
SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type
  FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE d.datname = current_database() AND a.grantee <> d.datdba
"""
_TABLE_STATES = "SELECT srsubstate, count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid " \
                "WHERE s.subname = %s GROUP BY 1"


@dataclass(frozen=True)
class Endpoints:
    """The two clusters as this tool reaches them, and as each reaches the other.

    `source` and `target` are superuser conninfos of the database being upgraded; `source_seen_from_target`
    and `target_seen_from_source` are the host, port and TLS parts the subscriptions use (defaults:
    the same as this tool's). Passwords in them are never printed."""

    source: str
    target: str
    source_seen_from_target: str | None = None
    target_seen_from_source: str | None = None


@dataclass
class Step:
    """What a step did, for the operator and the drill's report; no secret in it."""

    name: str
    facts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _where(conninfo: str) -> str:
    """host:port/db of a conninfo, for messages: never its password."""
    try:
        d = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "?"
    return f"{d.get('host', 'local')}:{d.get('port', '5432')}/{d.get('dbname', '?')}"


@contextmanager
def _session(conninfo: str, **kw: Any) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10, autocommit=True, **kw)
    except psycopg.Error as exc:
        raise PostgresError(f"không kết nối được / cannot connect to {_where(conninfo)}: "
                            f"{one_line(str(exc).replace(conninfo, ''))}") from exc
    try:
        # Some statements carry the replication role's password (CREATE SUBSCRIPTION, the role's
        # verifier): none of this session's statements may reach the server's log, failing or slow.
        # (Only a superuser may; `check` refuses any other before a secret is sent.)
        conn.execute("SET statement_timeout = '5min'; SET lock_timeout = '30s'")
        if _value(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            conn.execute("SET log_statement = 'none'; SET log_min_duration_statement = -1; "
                         "SET log_min_error_statement = 'panic'")
        yield conn
    except psycopg.Error as exc:
        raise PostgresError(f"{_where(conninfo)}: {one_line(str(exc))}") from exc
    finally:
        conn.close()


def _column(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> list[Any]:
    return [r[0] for r in conn.execute(query, params).fetchall()]


def _value(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _database(conninfo: str) -> str:
    """The database a conninfo names; a conninfo that cannot be read, or names none, is refused
    (without one, libpq would pick the user's name and the upgrade another database)."""
    try:
        db = conninfo_to_dict(conninfo).get("dbname")
    except psycopg.Error:
        raise ConfigError("conninfo không đọc được / a conninfo that libpq cannot read: write it as "
                          "'host=… port=… dbname=… user=…'") from None
    if not db:
        raise ConfigError(f"thiếu tên CSDL / the conninfo of {_where(conninfo)} names no dbname")
    return str(db)


def _subscriber_conninfo(publisher_seen: str, password: str) -> str:
    """The conninfo a subscription stores: where the publisher is, as the replication role."""
    keep = {k: v for k, v in conninfo_to_dict(publisher_seen).items()
            if k in ("host", "hostaddr", "port", "dbname", "sslmode", "sslrootcert", "sslcert", "sslkey")}
    return make_conninfo(**keep, user=ROLE, password=password, connect_timeout="10",
                         application_name="kntc_upgrade")


# ------------------------------------------------------------------ checks
def check(ends: Endpoints) -> Step:
    """Whether both clusters are ready for `prepare`; raises with every problem found, in one line."""
    problems: list[str] = []
    facts: dict[str, Any] = {}
    for conninfo in (ends.source, ends.target):
        _database(conninfo)
    with _session(ends.source) as src:
        facts["source_version"] = int(_value(src, "SHOW server_version_num"))
        if _value(src, "SHOW wal_level") != "logical":
            problems.append("nguồn chưa có wal_level = logical / the source's wal_level is not logical "
                            "(set it in Patroni's parameters; it needs a rolling restart)")
        if not _value(src, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            problems.append("cần quyền superuser trên nguồn / the source session is not a superuser")
        if no_key := _column(src, _NO_KEY):
            problems.append("bảng không có khóa chính / tables without a primary key: " + ", ".join(no_key))
        if _value(src, "SELECT count(*) FROM pg_largeobject_metadata"):
            problems.append("có large object, không sao chép được / the source holds large objects")
        free = _value(src, "SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots")
        if free < 1:
            problems.append("hết replication slot trên nguồn / no free replication slot on the source")
        facts["not_carried"] = _column(src, _UNLOGGED)
        named = set(_column(src, _NAMED_ROLES))
    with _session(ends.target) as dst:
        facts["target_version"] = int(_value(dst, "SHOW server_version_num"))
        if facts["target_version"] // 10000 <= facts["source_version"] // 10000:
            problems.append(f"đích không mới hơn nguồn / the target ({facts['target_version']}) is no newer major "
                            f"version than the source ({facts['source_version']})")
        if not _value(dst, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            problems.append("cần quyền superuser trên đích / the target session is not a superuser")
        if _value(dst, "SHOW wal_level") != "logical":
            # found only at the cut-over otherwise, when the way back cannot be made
            problems.append("đích chưa có wal_level = logical / the target's wal_level is not logical: after the "
                            "cut-over it publishes to the old cluster, the way back")
        if missing := sorted(named - set(_column(dst, "SELECT rolname FROM pg_roles"))):
            problems.append("thiếu vai trò trên đích / roles the schema names are missing on the target "
                            "(provision the new cluster first): " + ", ".join(missing))
        user_tables = _value(dst, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', "
                                  "'information_schema') AND n.nspname !~ '^pg_'")
        if user_tables:
            problems.append(f"CSDL đích đã có {user_tables} bảng / the target database already holds {user_tables} "
                            "tables: the schema is copied into an empty one")
    if problems:
        raise DrError("chưa nâng cấp được / not ready to upgrade: " + "; ".join(problems))
    return Step("check", facts)


# ------------------------------------------------------------------ prepare
# Runs one of the *target's* client programs (pg_dump, psql): a newer pg_dump reads an older server,
# never the reverse. Arguments: program name, arguments, standard input, extra environment.
Tools = Callable[[str, list[str], str | None, dict[str, str]], subprocess.CompletedProcess[str]]


def local_tools(pg_bin: Path) -> Tools:
    """The target version's programs installed on this host (the new site's database host); refused
    in one line, before anything is touched, when they are not there."""
    missing = [p for p in ("pg_dump", "psql") if not os.access(pg_bin / p, os.X_OK)]
    if missing:
        raise ConfigError(f"không có {', '.join(missing)} trong / not found in --pg-bin {pg_bin}: install the new "
                          "version's client (postgresql-client-17) or point --pg-bin at its programs")

    def run(program: str, args: list[str], stdin: str | None, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([str(pg_bin / program), *args], input=stdin, capture_output=True, text=True,
                                  env={**os.environ, **env}, timeout=3600, check=False)
        except subprocess.TimeoutExpired:
            raise NotInTime(f"{program} chưa xong sau 1 giờ / did not finish within an hour") from None
    return run


def _without_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """A conninfo for a command line (which any local user can read in ps) and the password apart."""
    d = conninfo_to_dict(conninfo)
    password = d.pop("password", None)
    return make_conninfo(**d), ({"PGPASSWORD": str(password)} if password else {})


def copy_schema(ends: Endpoints, tools: Tools) -> None:
    """The source database's schema into the target's, by the target's pg_dump and psql, in one
    transaction; then what pg_dump leaves to `--create`: the database's own settings and grants."""
    src, src_env = _without_password(ends.source)
    dump = tools("pg_dump", ["--schema-only", "--no-publications", "--no-subscriptions", "--dbname", src], None,
                 src_env)
    if dump.returncode != 0:
        raise PostgresError(f"pg_dump thất bại / pg_dump failed: {one_line(dump.stderr)}")
    dst, dst_env = _without_password(ends.target)
    load = tools("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname", dst],
                 dump.stdout, dst_env)
    if load.returncode != 0:
        raise PostgresError(f"chép lược đồ thất bại / loading the schema failed: {one_line(load.stderr)}")
    with _session(ends.source) as a:
        statements = _database_settings(a, _database(ends.target))
    with _session(ends.target) as b, b.transaction():
        # The grants become the old database's exactly: what the new one's creation gave (CONNECT
        # and TEMPORARY to PUBLIC by default) is taken back first.
        for grantee in sorted({grantee for grantee, _ in b.execute(_DATABASE_GRANTS).fetchall()}):
            who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
            b.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(sql.Identifier(_database(ends.target)),
                                                                       who))
        for st in statements:
            b.execute(st)


# GUCs whose value is a list: each element is quoted apart, as pg_dump does.
_LIST_SETTINGS = {"search_path", "temp_tablespaces", "local_preload_libraries", "session_preload_libraries"}


def _database_settings(conn: psycopg.Connection[Any], target_db: str) -> list[sql.Composable]:
    out: list[sql.Composable] = []
    rows = conn.execute("SELECT coalesce(r.rolname, ''), s.setconfig FROM pg_db_role_setting s "
                        "LEFT JOIN pg_roles r ON r.oid = s.setrole "
                        "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
                        ).fetchall()
    for role, config in rows:
        for item in config:
            name, _, value = item.partition("=")
            if name == "default_transaction_read_only":
                continue  # a cut-over's fence, not the database's setting
            parts = [v.strip() for v in value.split(",")] if name in _LIST_SETTINGS else [value]
            values = sql.SQL(", ").join(sql.Literal(v) for v in parts)
            head = (sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(target_db))
                    if role else sql.SQL("ALTER DATABASE {}").format(sql.Identifier(target_db)))
            out.append(sql.SQL("{} SET {} TO {}").format(head, sql.Identifier(name), values))
    for grantee, privilege in conn.execute(_DATABASE_GRANTS).fetchall():
        if grantee == ROLE:
            continue  # the upgrade's own, made per direction
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        out.append(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(sql.SQL(privilege), sql.Identifier(target_db), who))
    return out


def prepare(ends: Endpoints, tools: Tools) -> Step:
    """Copy the schema, publish on the source, subscribe on the target (which copies every row)."""
    t0 = time.monotonic()
    facts = check(ends).facts
    copy_schema(ends, tools)
    password = secrets.token_urlsafe(32)
    with _session(ends.source) as src:
        _replication_role(src, password)
        src.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(FORWARD)))
        src.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(FORWARD)))
    try:
        with _session(ends.target) as dst:
            dst.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                                "WITH (copy_data = true, disable_on_error = true)").format(
                sql.Identifier(FORWARD),
                sql.Literal(_subscriber_conninfo(ends.source_seen_from_target or ends.source, password)),
                sql.Identifier(FORWARD)))
    except DrError as exc:
        # The old cluster is left as it was; the new database holds the schema and is made anew.
        with _session(ends.source) as src:
            _drop_replication_side(src, FORWARD)
        raise DrError(f"{exc} (nguồn đã được dọn; hãy tạo lại CSDL đích / the source is cleaned up; create "
                      "the target database anew before trying again)") from exc
    return Step("prepare", facts, time.monotonic() - t0)


def _replication_role(conn: psycopg.Connection[Any], password: str) -> None:
    """The role a subscription logs in as: replication, every row (past RLS) read, nothing written."""
    exists = _value(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (ROLE,))
    verb = "ALTER" if exists else "CREATE"
    verifier = conn.pgconn.encrypt_password(password.encode(), ROLE.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL(verb + " ROLE {} LOGIN REPLICATION BYPASSRLS PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(verifier)))
    conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(ROLE)))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
        sql.Identifier(_value(conn, "SELECT current_database()")), sql.Identifier(ROLE)))


def _drop_replication_side(conn: psycopg.Connection[Any], publication: str) -> None:
    """The publisher's part of one direction: its publication and the replication role."""
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
    if _value(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (ROLE,)):
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(ROLE)))  # its CONNECT grant
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


# ------------------------------------------------------------------ status
def status(publisher: str, subscriber: str, name: str = FORWARD) -> dict[str, Any]:
    """Where a subscription stands: its tables' copy states, whether it runs, and its lag in bytes."""
    with _session(subscriber) as dst:
        row = dst.execute("SELECT subenabled, (SELECT count(*) FROM pg_stat_subscription ss WHERE ss.subid = s.oid "
                          "AND ss.pid IS NOT NULL) FROM pg_subscription s WHERE subname = %s", (name,)).fetchone()
        if row is None:
            raise DrError(f"không có subscription {name} / no subscription {name} on {_where(subscriber)}")
        states = {s: n for s, n in dst.execute(_TABLE_STATES, (name,)).fetchall()}
    with _session(publisher) as src:
        lag = _value(src, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                          "FROM pg_replication_slots WHERE slot_name = %s", (name,))
    tables = sum(states.values())
    return {"subscription": name, "enabled": bool(row[0]), "workers": int(row[1]), "tables": tables,
            "tables_ready": states.get("r", 0), "lag_bytes": lag,
            "ready": bool(row[0]) and tables > 0 and states.get("r", 0) == tables}


def wait_ready(publisher: str, subscriber: str, name: str = FORWARD, timeout: float = 3600,
               log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Until every table is copied and following, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        s = status(publisher, subscriber, name)
        if s["ready"]:
            return s
        if not s["enabled"]:
            raise DrError(f"subscription {name} đã dừng vì lỗi / stopped on an error: read the target's log")
        line = f"{s['tables_ready']}/{s['tables']} tables copied, lag {s['lag_bytes']} bytes"
        if line != last:
            log(line)
            last = line
        if time.monotonic() > deadline:
            raise NotInTime(f"chưa chép xong sau {timeout:.0f} s / not copied after {timeout:.0f} s: {line}")
        time.sleep(1)


# ------------------------------------------------------------------ cut-over
def fence(conninfo: str) -> list[str]:
    """Make the writers' roles read-only in this database and end their sessions; return the roles.

    Held per role and database (ALTER ROLE … IN DATABASE), so replication keeps writing; a session
    could override it with SET, which the case service never does: the cut-over holds the service,
    it is not a defence against a holder of its password (who could write through it anyway)."""
    db = _database(conninfo)
    with _session(conninfo) as conn:
        roles = _column(conn, _WRITERS)
        for r in roles:
            conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(
                sql.Identifier(r), sql.Identifier(db)))
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid() AND usename = ANY(%s)", (roles,))
    return roles


def unfence(conninfo: str) -> None:
    db = _database(conninfo)
    with _session(conninfo) as conn:
        for r in _column(conn, _WRITERS):
            conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET default_transaction_read_only").format(
                sql.Identifier(r), sql.Identifier(db)))


def caught_up(publisher: str, name: str, timeout: float) -> float:
    """Until the subscriber has confirmed everything the publisher wrote so far; the seconds it took."""
    t0 = time.monotonic()
    with _session(publisher) as src:
        end = _value(src, "SELECT pg_current_wal_lsn()")
        while True:
            behind = _value(src, "SELECT pg_wal_lsn_diff(%s, confirmed_flush_lsn)::bigint FROM pg_replication_slots "
                                 "WHERE slot_name = %s", (end, name))
            if behind is None:
                raise DrError(f"không có slot {name} trên nguồn / no replication slot {name} on {_where(publisher)}")
            if behind <= 0:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise NotInTime(f"đích chưa nhận hết sau {timeout:.0f} s / the subscriber is still {behind} bytes "
                                f"behind after {timeout:.0f} s")
            time.sleep(0.05)


def _carry_sequences(src: str, dst: str) -> int:
    with _session(src) as a:
        values = a.execute(_SEQUENCES).fetchall()
    with _session(dst) as b:
        for name, last in values:
            if last is not None:
                b.execute("SELECT setval(%s::regclass, %s, true)", (name, last))
    return len(values)


def _hand_over(old: str, new: str, following: str, timeout: float) -> dict[str, Any]:
    """Fence `old`, let `new` (subscription `following`) receive its last commit, carry the
    sequences, and stop `new` following. When `new` cannot catch up, `old` takes writes again."""
    roles = fence(old)
    try:
        waited = caught_up(old, following, timeout)
        sequences = _carry_sequences(old, new)
    except Exception:
        unfence(old)
        raise
    with _session(new) as n:
        n.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(following)))  # and its slot on old
    with _session(old) as o:
        _drop_replication_side(o, following)
    return {"fenced_roles": roles, "catch_up_s": round(waited, 3), "sequences": sequences}


def cutover(ends: Endpoints, timeout: float = 60) -> Step:
    """The new cluster becomes the primary and the old one follows it, as the way back. Hold the
    writers first (PgBouncer PAUSE) and point them at the new cluster after."""
    t0 = time.monotonic()
    s = status(ends.source, ends.target, FORWARD)
    if not s["ready"]:
        raise DrError(f"chưa sẵn sàng / not ready: {s['tables_ready']}/{s['tables']} tables copied, "
                      f"subscription {'enabled' if s['enabled'] else 'stopped'}")
    facts = _hand_over(ends.source, ends.target, FORWARD, timeout)
    # Before any writer reaches the new cluster: the old one's subscription starts from here.
    password = secrets.token_urlsafe(32)
    try:
        with _session(ends.target) as n:
            _replication_role(n, password)
            n.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(BACK)))
            n.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(BACK)))
        with _session(ends.source) as o:
            o.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} "
                              "WITH (copy_data = false, disable_on_error = true)").format(
                sql.Identifier(BACK), sql.Literal(_subscriber_conninfo(ends.target_seen_from_source or ends.target,
                                                                        password)),
                sql.Identifier(BACK)))
    except DrError as exc:
        # Without a way back there is no cut-over. Nothing was written since the fence, so the old
        # cluster takes writes again, whole; the new one no longer follows it.
        unfence(ends.source)
        with _session(ends.target) as n:
            _drop_replication_side(n, BACK)
        raise DrError(f"không lập được đường quay lại, chưa chuyển / no way back could be made, so nothing "
                      f"moved: the old cluster takes writes again; resume the pools on it, make the new "
                      f"database anew and start from `prepare` ({exc})") from exc
    unfence(ends.target)
    return Step("cutover", facts, time.monotonic() - t0)


def rollback(ends: Endpoints, timeout: float = 60) -> Step:
    """Back to the old cluster after a cut-over, with what was written on the new one since. The new
    cluster stays read-only and follows nothing: a second attempt starts again from `prepare`."""
    t0 = time.monotonic()
    status(ends.target, ends.source, BACK)  # refuses when there is no way back
    facts = _hand_over(ends.target, ends.source, BACK, timeout)
    unfence(ends.source)
    return Step("rollback", facts, time.monotonic() - t0)


def abandon(ends: Endpoints) -> Step:
    """Give up before the cut-over: the new cluster stops following and the old one keeps no
    publication, role or slot (a slot left behind would hold the old primary's WAL without end).
    The new database keeps what was copied: make it anew before another `prepare`."""
    t0 = time.monotonic()
    with _session(ends.source) as o:
        if _value(o, "SELECT count(*) FROM pg_subscription WHERE subname = %s", (BACK,)):
            raise DrError("đã chuyển sang cụm mới / a cut-over was made: `rollback` goes back, `finish` keeps "
                          "the new cluster")
    with _session(ends.target) as n:
        if _value(n, "SELECT count(*) FROM pg_subscription WHERE subname = %s", (FORWARD,)):
            n.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(FORWARD)))  # and its slot on old
    with _session(ends.source) as o:
        o.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                  "WHERE slot_name = %s AND NOT active", (FORWARD,))  # when the target could not drop it
        _drop_replication_side(o, FORWARD)
    return Step("abandon", {}, time.monotonic() - t0)


def finish(ends: Endpoints) -> Step:
    """Keep the new cluster: the old one stops following it and stays read-only, to be retired."""
    t0 = time.monotonic()
    status(ends.target, ends.source, BACK)
    with _session(ends.source) as o:
        o.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(BACK)))  # and its slot on the target
    fence(ends.source)
    with _session(ends.target) as n:
        _drop_replication_side(n, BACK)
    return Step("finish", {}, time.monotonic() - t0)


_FENCED = """
SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
 WHERE d.datname = current_database() AND 'default_transaction_read_only=on' = ANY(s.setconfig)
"""


def reset(ends: Endpoints) -> Step:
    """Make the new database anew for another `prepare`, after `abandon` or `rollback`: dropped and
    created empty, with the same owner, encoding and locale (`prepare` brings its settings and
    grants). Refused while anything follows or publishes there, and whenever the old cluster does
    not take writes: after a cut-over the new database is the primary's, until `rollback`."""
    t0 = time.monotonic()
    db = _database(ends.target)
    with _session(ends.source) as o:
        if _value(o, _FENCED):
            raise DrError("cụm cũ không nhận ghi: cụm mới đang là primary / the old cluster takes no writes, so "
                          "the new database is the primary's: `rollback` first, or keep it")
    with _session(ends.target) as n:
        following = _value(n, "SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                              "WHERE d.datname = current_database()")
        if following or _value(n, "SELECT count(*) FROM pg_publication"):
            raise DrError("cơ sở dữ liệu mới còn đang sao chép / the new database still follows or publishes: "
                          "`abandon` first")
    with _session(make_conninfo(ends.target, dbname="postgres")) as n:
        owner, encoding, collate, ctype = n.execute(
            "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype "
            "FROM pg_database WHERE datname = %s", (db,)).fetchone()
        n.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
        create = "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
        n.execute(sql.SQL(create).format(sql.Identifier(db), sql.Identifier(owner), sql.Literal(encoding),
                                         sql.Literal(collate), sql.Literal(ctype)))
    return Step("reset", {"database": db, "owner": owner}, time.monotonic() - t0)
