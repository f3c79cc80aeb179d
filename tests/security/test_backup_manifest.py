"""The backup role of a repository host takes its manifest through kntc.hold_writers, which holds
writers to tables of schema kntc only; nobody else may call it (runbooks/security.md).

Threat rows (runbooks/security.md): T101.
"""

from __future__ import annotations

import os
import secrets

import psycopg
import pytest

from dr import sql as drsql

KEY_TABLES = ["kntc.unit", "kntc.account", "kntc.case_file", "kntc.petition", "kntc.party", "kntc.case_event"]


@pytest.fixture(scope="module")
def superuser(pg_env: dict[str, str]) -> str:
    port = os.environ["KNTC_TEST_PG_PORT"]
    return f"host={pg_env['_superuser_hint']} port={port} user=postgres dbname=kntc_test"


@pytest.fixture(scope="module")
def backup_role(superuser: str, pg_env: dict[str, str]) -> str:
    """A role made as the patroni role makes kntc_backup: reads everything, bypasses RLS, may
    create restore points and call kntc.hold_writers; a password login over TCP."""
    password = secrets.token_urlsafe(24)
    port = os.environ["KNTC_TEST_PG_PORT"]
    with psycopg.connect(superuser, autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS kntc_backup_probe")
        c.execute(f"CREATE ROLE kntc_backup_probe LOGIN BYPASSRLS PASSWORD '{password}' "
                  "IN ROLE pg_read_all_data, pg_monitor")
        c.execute("GRANT CONNECT ON DATABASE kntc_test TO kntc_backup_probe")
        c.execute("GRANT USAGE ON SCHEMA kntc TO kntc_backup_probe")
        c.execute("GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO kntc_backup_probe")
        c.execute("GRANT EXECUTE ON FUNCTION kntc.hold_writers(text[]) TO kntc_backup_probe")
    return f"host=127.0.0.1 port={port} user=kntc_backup_probe password={password} dbname=kntc_test"


def test_the_backup_role_takes_a_manifest_equal_to_what_the_superuser_reads(backup_role: str, superuser: str):
    manifest = drsql.take_manifest(backup_role, f"kntc-probe-{secrets.token_hex(4)}", KEY_TABLES)
    assert manifest["tables"] == drsql.table_digests(superuser, KEY_TABLES)
    assert manifest["tables"]["kntc.unit"]["rows"] > 0


def test_the_backup_role_may_hold_only_tables_of_schema_kntc(backup_role: str):
    with psycopg.connect(backup_role) as c:
        for outside in ("pg_catalog.pg_authid", "public.alembic_version"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute("SELECT kntc.hold_writers(ARRAY[%s])", (outside,))
            c.rollback()
        # And it may not lock the tables directly: only through the function.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("LOCK TABLE kntc.case_file IN SHARE MODE")


def test_the_app_role_may_not_hold_writers(pg_env: dict[str, str]):
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("SELECT kntc.hold_writers(ARRAY['kntc.case_file'])")
