"""Backups taken on a repository host: the manifest's writer hold without the owner's rights.

Why: after each backup, `kntc-dr backup` records a restore point and the digests of the key tables
exactly as of that point (dr/sql.py), holding writers to those tables for the instant it takes to
create the point and export a snapshot. On the lab and in production it runs on the backup host and
connects as `kntc_backup`, which may read (pg_read_all_data, BYPASSRLS) but may not take a SHARE
lock: that needs UPDATE, DELETE or TRUNCATE on each table. This function takes the lock for it, on
tables of schema kntc only, and holds it until the caller's transaction ends.

`kntc_backup` is created by the deployment (the patroni role), before the migrations run; where it
does not exist (a developer's cluster) only the owner can call the function.

Revision ID: 0018_backup_manifest
Revises: 0016_consent_and_recompute
"""

from alembic import op

revision = "0018_backup_manifest"
down_revision = "0016_consent_and_recompute"
branch_labels = None
depends_on = None

SQL = r"""
CREATE FUNCTION kntc.hold_writers(tables text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    t text;
    rel regclass;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        rel := to_regclass(t);
        CONTINUE WHEN rel IS NULL;
        IF (SELECT c.relnamespace <> 'kntc'::regnamespace OR c.relkind NOT IN ('r', 'p')
              FROM pg_class c WHERE c.oid = rel) THEN
            RAISE EXCEPTION 'hold_writers: % is not a table of schema kntc', t USING ERRCODE = '42501';
        END IF;
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', rel);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION kntc.hold_writers(text[]) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'kntc_backup') THEN
        GRANT USAGE ON SCHEMA kntc TO kntc_backup;
        GRANT EXECUTE ON FUNCTION kntc.hold_writers(text[]) TO kntc_backup;
    END IF;
END
$$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
