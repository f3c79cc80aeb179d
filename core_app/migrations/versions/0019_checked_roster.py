"""A roster checked in the administrator's pages, kept so that "Import" needs no second upload.

Why: the checked file was kept in the one-day store of the initial-passwords downloads, for any
session of the administrator. Importing exactly the checked bytes, safely, needs more: the file is
kept for the session that checked it (another session, even of the same administrator, is told so
and does not use it up), for 30 minutes, with its SHA-256 beside it (the application seals the
content bound to the account and that digest, and compares the digest of what it opens). Each
refusal says which of these it is; a file kept for another administrator looks like no file at all.

The application role reaches the table only through the two functions below.

Revision ID: 0019_checked_roster
Revises: 0018_backup_manifest
"""

from alembic import op

revision = "0019_checked_roster"
down_revision = "0018_backup_manifest"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE kntc.roster_checked (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id   integer NOT NULL REFERENCES kntc.account(id) ON DELETE CASCADE,
    -- kntc.session.token_hash of the session that checked it.
    session_hash bytea NOT NULL,
    file_sha256  text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    filename     text NOT NULL CHECK (length(filename) <= 255),
    sealed       bytea NOT NULL CHECK (length(sealed) <= 4 * 1024 * 1024),
    expires_at   timestamptz NOT NULL DEFAULT now() + interval '30 minutes'
);
CREATE INDEX roster_checked_account ON kntc.roster_checked (account_id);
REVOKE ALL ON kntc.roster_checked FROM PUBLIC;

CREATE FUNCTION kntc.roster_checked_session() RETURNS bytea
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT sha256(convert_to(nullif(current_setting('kntc.session_token', true), ''), 'UTF8'))
$$;

-- Keep a file the acting administrator has just checked (their earlier one of this session goes).
CREATE FUNCTION kntc.roster_keep(p_file_sha256 text, p_filename text, p_sealed bytea)
RETURNS TABLE (id uuid, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    s bytea := kntc.roster_checked_session();
BEGIN
    IF a.account_id IS NULL OR s IS NULL OR NOT (a.roles && ARRAY['unit_admin', 'sysadmin']) THEN
        RAISE EXCEPTION 'only an administrator imports accounts' USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM kntc.roster_checked r WHERE r.expires_at < now() OR r.session_hash = s;
    RETURN QUERY INSERT INTO kntc.roster_checked AS r (account_id, session_hash, file_sha256, filename, sealed)
        VALUES (a.account_id, s, p_file_sha256, p_filename, p_sealed) RETURNING r.id, r.expires_at;
END $$;

-- Take a kept file to import it: state 'ok' (and it is gone from the store), 'expired' (gone too),
-- 'other_session' (kept, for the session that checked it), or 'gone' (imported already, never
-- kept, or another administrator's: the same answer, so a handle says nothing of others' files).
CREATE FUNCTION kntc.roster_take(p_id uuid)
RETURNS TABLE (state text, file_sha256 text, filename text, sealed bytea)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    r kntc.roster_checked;
BEGIN
    IF a.account_id IS NULL OR NOT (a.roles && ARRAY['unit_admin', 'sysadmin']) THEN
        RAISE EXCEPTION 'only an administrator imports accounts' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT * INTO r FROM kntc.roster_checked c WHERE c.id = p_id AND c.account_id = a.account_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'gone', NULL::text, NULL::text, NULL::bytea;
    ELSIF r.expires_at <= now() THEN
        DELETE FROM kntc.roster_checked c WHERE c.id = r.id;
        RETURN QUERY SELECT 'expired', NULL::text, NULL::text, NULL::bytea;
    ELSIF r.session_hash IS DISTINCT FROM kntc.roster_checked_session() THEN
        RETURN QUERY SELECT 'other_session', NULL::text, NULL::text, NULL::bytea;
    ELSE
        DELETE FROM kntc.roster_checked c WHERE c.id = r.id;
        RETURN QUERY SELECT 'ok', r.file_sha256, r.filename, r.sealed;
    END IF;
END $$;

REVOKE ALL ON FUNCTION kntc.roster_checked_session(), kntc.roster_keep(text, text, bytea), kntc.roster_take(uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.roster_keep(text, text, bytea), kntc.roster_take(uuid) TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
