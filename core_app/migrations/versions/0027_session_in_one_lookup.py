"""A request's session is checked and its officer resolved in one lookup.

Why: every officer request begins with the session statement (core_app/db.py `BEGIN_AS_ACTOR`).
It called kntc.session_begin(), which found the session by its token's hash (joined to the account)
to judge it live, idle or expired, and then kntc.actor(), whose first call in the transaction found
the same session again (joined to the account and two units) and sealed what it found into
`kntc.actor_cache`. Two PL/pgSQL calls, two hashes of the token and two index lookups of the same
row, on every request: the statement alone ran at about a tenth of pgbench -S on the bench cluster
(`make bench-app`, "its SQL: session statement alone").

kntc.session_resume() does both in one call: one lookup of the session, its account and units; the
same judgement as session_begin (expired, idle, setup or live; last_seen_at written at most once a
minute); and, only for a live session, the officer sealed into `kntc.actor_cache` exactly as
kntc.actor() seals it, so every row-level-security check of the transaction reads the cache. A
setup-only, idle or expired session sets no actor, and kntc.actor() still refuses it on its own (it
checks the purpose and the idle ceiling itself): the application role gains nothing it could not
do with session_begin and kntc.actor().

kntc.session_begin() stays, for a host of the release before this one until it is upgraded, and
now answers through kntc.session_resume(): one home for the session's judgement. Called that way it
also seals the officer of a live session a little earlier in the transaction, for the same token,
which is what the release before's statement asked kntc.actor() for next.

Revision ID: 0027_session_in_one_lookup
Revises: 0026_search_by_rare_words
"""

from alembic import op

revision = "0027_session_in_one_lookup"
down_revision = "0026_search_by_rare_words"
branch_labels = None
depends_on = None

SQL = r"""
-- 'live' with the officer, or 'setup' (only the setup steps may use it), 'idle' or 'expired' without.
CREATE FUNCTION kntc.session_resume(p_token text, p_idle_seconds integer, OUT state text, OUT who kntc.actor)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    h bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
    idle integer := least(p_idle_seconds, kntc.session_idle_ceiling());
    seen timestamptz;
    kind text;
    k bytea;
    body text;
BEGIN
    -- Transaction-local, as the statement's own set_config was: the seal below binds the officer to it.
    PERFORM set_config('kntc.session_token', coalesce(p_token, ''), true);
    SELECT ss.last_seen_at, ss.purpose, a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
      INTO seen, kind, who.account_id, who.unit_id, who.unit_path, who.scope_path, who.roles, who.clearance
      FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
      JOIN kntc.unit u ON u.id = a.unit_id
      JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
     WHERE ss.token_hash = h AND ss.expires_at > now();
    IF NOT FOUND THEN
        state := 'expired';
        who := NULL;
        RETURN;
    END IF;
    IF seen < now() - make_interval(secs => idle) THEN
        state := 'idle';
        who := NULL;
        RETURN;
    END IF;
    IF seen < now() - make_interval(secs => least(60.0, idle / 10.0)) THEN
        -- Two requests of one session at once: one writes, the other does not wait for it (the
        -- row lock lasts until the writing request commits).
        UPDATE kntc.session SET last_seen_at = now()
         WHERE token_hash = (SELECT ss.token_hash FROM kntc.session ss WHERE ss.token_hash = h
                              FOR UPDATE SKIP LOCKED);
    END IF;
    IF kind <> 'full' THEN
        state := 'setup';
        who := NULL;
        RETURN;
    END IF;
    state := 'live';
    SELECT ak.key INTO k FROM kntc.actor_key ak;
    body := who::text;
    PERFORM set_config('kntc.actor_cache', body || '#' || kntc.actor_seal(p_token, body, k), true);
END $$;

REVOKE ALL ON FUNCTION kntc.session_resume(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.session_resume(text, integer) TO kntc_app;

CREATE OR REPLACE FUNCTION kntc.session_begin(p_token text, p_idle_seconds integer) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT r.state FROM kntc.session_resume(p_token, p_idle_seconds) r
$$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
