"""Database sessions of kntc-dr: restore points, table digests (manifests) and amcheck.

These functions run as the postgres user (call them through dr.proc.call_as_postgres) and take
libpq conninfo strings, so that results are plain data that crosses the process boundary.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from dr.errors import PostgresError, one_line

# Text output of a row must not depend on the session: same settings when the manifest is taken
# on the source and when the restored copy is checked.
_SESSION = ("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
            "SET extra_float_digits = 3; SET bytea_output = 'hex'; SET row_security = off")

# Order-independent digest of a table: count, sum and xor of two halves of each row's md5. It
# streams (no 1 GB string_agg limit on big tables) and needs no primary key order.
_DIGEST = """
SELECT count(*),
       coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text,
       coalesce(bit_xor(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text
  FROM (SELECT md5(t::text) AS h FROM {} AS t) AS s
"""


def _connect(conninfo: str, **kw: Any) -> psycopg.Connection:
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10, **kw)
    except psycopg.Error as exc:
        raise PostgresError(f"không kết nối được / cannot connect ({conninfo}): {one_line(str(exc))}") from exc
    return conn


def _table_ident(name: str) -> sql.Identifier:
    schema, _, table = name.partition(".")
    return sql.Identifier(schema, table)


def _digests(conn: psycopg.Connection, tables: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in tables:
        if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is None:
            out[t] = {"present": False}
            continue
        count, s, x = conn.execute(sql.SQL(_DIGEST).format(_table_ident(t))).fetchone()
        out[t] = {"present": True, "rows": int(count), "digest": f"{s}:{x}"}
    return out


def _may_lock(conn: psycopg.Connection, tables: list[str]) -> bool:
    """Whether this role may SHARE-lock the tables itself (the owner, a superuser)."""
    return bool(conn.execute(
        "SELECT coalesce(bool_and(has_table_privilege(t, 'UPDATE') OR has_table_privilege(t, 'TRUNCATE')), true) "
        "FROM unnest(%s::text[]) AS t", (tables,)).fetchone()[0])


def _hold_writers(conn: psycopg.Connection, tables: list[str], may_lock: bool) -> None:
    """SHARE-lock `tables` until the transaction ends.

    The owner or a superuser locks them directly; the backup role of a repository host may not
    (the lock needs UPDATE, DELETE or TRUNCATE) and goes through kntc.hold_writers, which takes the
    same lock as the owner on tables of schema kntc only.
    """
    if may_lock:
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.SQL(", ").join(_table_ident(t) for t in tables)))
    else:
        conn.execute("SELECT kntc.hold_writers(%s::text[])", (tables,))


def create_restore_point(conninfo: str, name: str) -> dict[str, str]:
    with _connect(conninfo, autocommit=True) as conn:
        lsn, now = conn.execute("SELECT pg_create_restore_point(%s)::text, now()", (name,)).fetchone()
    return {"name": name, "lsn": lsn, "time": now.astimezone(UTC).isoformat()}


def take_manifest(conninfo: str, restore_point: str, tables: list[str]) -> dict[str, Any]:
    """A restore point and the digests of `tables` exactly as of that restore point.

    Writers to the tables are held (SHARE lock) only for the instant it takes to create the
    restore point and export a snapshot; the digests are then read in that snapshot while writes
    continue. Everything committed to these tables before the restore point record is in the
    snapshot, and nothing after it, so a restore to the restore point must reproduce the digests.
    The lock waits for transactions already writing (lock_timeout 30 s); an autovacuum in the way
    is cancelled by PostgreSQL itself.
    """
    holder = _connect(conninfo, autocommit=True)
    reader = _connect(conninfo)
    try:
        present = [t for t in tables if holder.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None]
        # Asked now, in autocommit: in the transaction below the first query fixes the snapshot.
        may_lock = _may_lock(holder, present)
        holder.autocommit = False
        holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        # LOCK before any query: a REPEATABLE READ snapshot is taken by the first query, and it must
        # be taken once the writers are held.
        holder.execute("SET LOCAL lock_timeout = '30s'")
        if present:
            _hold_writers(holder, present, may_lock)
        snap, lsn, now, sysid = holder.execute(
            "SELECT pg_export_snapshot(), pg_create_restore_point(%s)::text, now(), "
            "(SELECT system_identifier::text FROM pg_control_system())", (restore_point,)).fetchone()
        reader.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snap)))
        holder.commit()  # writers resume here
        reader.execute(_SESSION)
        digests = _digests(reader, tables)
        database = reader.info.dbname
        reader.commit()
    except psycopg.Error as exc:
        raise PostgresError(f"không lập được manifest / manifest failed: {one_line(str(exc))}") from exc
    finally:
        holder.close()
        reader.close()
    return {"restore_point": restore_point, "lsn": lsn, "time": now.astimezone(UTC).isoformat(),
            "system_identifier": sysid, "database": database, "tables": digests}


def table_digests(conninfo: str, tables: list[str]) -> dict[str, dict[str, Any]]:
    with _connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute(_SESSION)
        out = _digests(conn, tables)
        conn.commit()
        return out


def amcheck_all(conninfo_base: str) -> dict[str, Any]:
    """bt_index_check(heapallindexed) on every btree index of every database of a scratch copy.

    Needs the superuser (CREATE EXTENSION amcheck): only ever run it against a scratch copy.
    """
    checked = 0
    failures: list[dict[str, str]] = []
    started = datetime.now(UTC)
    with _connect(conninfo_base + " dbname=postgres", autocommit=True) as conn:
        dbs = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")]
    for db in dbs:
        with _connect(f"{conninfo_base} dbname={db}", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            rows = conn.execute("""
                SELECT c.oid, n.nspname || '.' || c.relname
                  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam
                 WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid
                 ORDER BY 2""").fetchall()
            for oid, name in rows:
                try:
                    conn.execute("SELECT bt_index_check(%s::oid::regclass, true)", (oid,))
                except psycopg.Error as exc:
                    failures.append({"database": db, "index": name, "error": one_line(str(exc))})
                checked += 1
    return {"databases": dbs, "indexes_checked": checked, "failures": failures,
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 3)}


def run_sql(conninfo: str, statements: list[str]) -> list[list[Any]]:
    """Run statements in autocommit; return the rows of each (used by the sandbox and the drill)."""
    out: list[list[Any]] = []
    with _connect(conninfo, autocommit=True) as conn:
        for st in statements:
            cur = conn.execute(st)
            out.append([tuple(r) for r in cur.fetchall()] if cur.description else [])
    return out
