"""The officer of a transaction is sealed into its cache by one function.

Why: two functions seal the officer into `kntc.actor_cache`: kntc.actor(), on the first call of a
transaction that finds a live session, and kntc.session_resume(), which opens every officer
request. Each read the key, made the seal and wrote the setting in its own copy of the same three
lines, so a change to what the seal binds (the token's hash, the backend, the transaction's start)
had to be made twice, and a copy left behind would make every later check of the transaction miss
the cache and look the session up again: slower, with nothing to show it.

kntc.actor_remember() is now the one place that writes the cache, and kntc.actor() and
kntc.session_resume() call it. It is not SECURITY DEFINER and PUBLIC may not execute it: it runs only
inside those two functions, with their owner's rights, which are the rights that can read the key.
The application role could already write any value into the setting; what it cannot do, make a
valid seal, stays the same.

Revision ID: 0029_actor_remembered_in_one
Revises: 0028_account_scope_per_row
"""

from alembic import op

revision = "0029_actor_remembered_in_one"
down_revision = "0028_account_scope_per_row"
branch_labels = None
depends_on = None

SQL = r"""
-- The officer found for this token, kept for the rest of the transaction under a seal only the
-- schema's owner can make (kntc.actor_seal binds it to the token, the backend and the transaction).
CREATE FUNCTION kntc.actor_remember(p_token text, p_actor kntc.actor) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT set_config('kntc.actor_cache',
                      p_actor::text || '#'
                      || kntc.actor_seal(p_token, p_actor::text, (SELECT ak.key FROM kntc.actor_key ak)),
                      true)
$$;
REVOKE ALL ON FUNCTION kntc.actor_remember(text, kntc.actor) FROM PUBLIC;

CREATE OR REPLACE FUNCTION kntc.actor() RETURNS kntc.actor
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    token text := nullif(current_setting('kntc.session_token', true), '');
    cached text := nullif(current_setting('kntc.actor_cache', true), '');
    k bytea;
    body text;
    result kntc.actor;
BEGIN
    IF token IS NULL THEN
        IF nullif(current_setting('kntc.exchange_token', true), '') IS NULL THEN
            RETURN NULL;
        END IF;
        -- A connected system's token: its own checks (certificate, credential), not cached.
        SELECT a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
          INTO result
          FROM kntc.exchange_client c
          JOIN kntc.account a ON a.id = c.account_id AND a.is_active
          JOIN kntc.unit u ON u.id = a.unit_id
          JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
         WHERE c.id = kntc.exchange_client_id();
        RETURN result;
    END IF;
    IF cached IS NOT NULL THEN
        SELECT ak.key INTO k FROM kntc.actor_key ak;
        body := split_part(cached, '#', 1);
        IF split_part(cached, '#', 2) = kntc.actor_seal(token, body, k) THEN
            RETURN body::kntc.actor;
        END IF;
    END IF;
    SELECT a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
      INTO result
      FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
      JOIN kntc.unit u ON u.id = a.unit_id
      JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
     WHERE ss.token_hash = sha256(convert_to(token, 'UTF8'))
       AND ss.purpose = 'full'
       AND ss.expires_at > now()
       -- last_seen_at is written at most once a minute (session_resume): one minute of slack.
       AND ss.last_seen_at > now() - make_interval(secs => kntc.session_idle_ceiling() + 60);
    IF result.account_id IS NOT NULL THEN
        PERFORM kntc.actor_remember(token, result);
    END IF;
    RETURN result;
END $$;

CREATE OR REPLACE FUNCTION kntc.session_resume(p_token text, p_idle_seconds integer, OUT state text,
                                               OUT who kntc.actor)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    h bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
    idle integer := least(p_idle_seconds, kntc.session_idle_ceiling());
    seen timestamptz;
    kind text;
BEGIN
    -- Transaction-local, as the statement's own set_config was: the seal binds the officer to it.
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
    PERFORM kntc.actor_remember(p_token, who);
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
