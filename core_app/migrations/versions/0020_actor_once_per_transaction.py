"""kntc.actor() resolved once per transaction, in a sealed transaction-local setting.

Why: every row-level-security check reads the actor through an InitPlan, two or three per policy
and again in each child table's policy (the case is visible, then its parties, events, ...): a
case file's request called kntc.actor() about 35 times, each a session lookup joining four
tables (66 µs of database CPU per call here, measured with a volatile wrapper, `make bench-app`'s
section in loadtests/CAPACITY.md).

Now the first call of a transaction stores what it found in `kntc.actor_cache`, a
transaction-local setting, sealed with an HMAC under a key only the schema's owner can read
(`kntc.actor_key`). Later calls of the same transaction check the seal (one read of a one-row
table and an HMAC, 2.6 times cheaper) instead of the lookup. The seal binds the actor to the
session token's hash, the backend and the transaction's start: the application role can read the
setting and write any value into it, but a value it made up, or one copied from another
transaction, another connection or another token, fails the check and the lookup runs again.

kntc.handles_case() (a confidential denouncer's identity is shown only to those handling the case)
was a SQL function with `SET search_path`: never inlined, planned again on every call (250 µs of
planning per protected party, pg_stat_statements). The same query in PL/pgSQL keeps its plan.

An account changed by an administrator (role, clearance, deactivated) takes effect at the
officer's next transaction instead of the next statement; a request is one transaction.

Revision ID: 0020_actor_once_per_transaction
Revises: 0019_checked_roster
"""

from alembic import op

revision = "0020_actor_once_per_transaction"
down_revision = "0019_checked_roster"
branch_labels = None
depends_on = None

SQL = r"""
CREATE TABLE kntc.actor_key (
    only_one boolean PRIMARY KEY DEFAULT true CHECK (only_one),
    key      bytea NOT NULL CHECK (length(key) = 32)
);
INSERT INTO kntc.actor_key (key) VALUES (gen_random_bytes(32));
REVOKE ALL ON kntc.actor_key FROM PUBLIC;

-- The seal of a cached actor: HMAC-SHA-256 over the token's hash, the backend, the transaction's
-- start and the actor's text. Only kntc.actor() (owner's rights) calls it.
CREATE FUNCTION kntc.actor_seal(p_token text, p_body text, p_key bytea) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT encode(public.hmac(convert_to(encode(sha256(convert_to(p_token, 'UTF8')), 'hex') || '/'
                                         || pg_backend_pid() || '/' || now() || '/' || p_body, 'UTF8'),
                              p_key, 'sha256'), 'hex')
$$;
REVOKE ALL ON FUNCTION kntc.actor_seal(text, text, bytea) FROM PUBLIC;

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
    SELECT ak.key INTO k FROM kntc.actor_key ak;
    IF cached IS NOT NULL THEN
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
       -- last_seen_at is written at most once a minute (session_begin): one minute of slack.
       AND ss.last_seen_at > now() - make_interval(secs => kntc.session_idle_ceiling() + 60);
    IF result.account_id IS NOT NULL THEN
        body := result::text;
        PERFORM set_config('kntc.actor_cache', body || '#' || kntc.actor_seal(token, body, k), true);
    END IF;
    RETURN result;
END $$;

CREATE OR REPLACE FUNCTION kntc.handles_case(p_case_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM kntc.case_file c, kntc.actor() a
         WHERE c.id = p_case_id
           AND (c.created_by = a.account_id
                OR (c.handling_unit_id = a.unit_id AND 'head' = ANY (a.roles))
                OR EXISTS (SELECT 1 FROM kntc.case_assignment ca
                            WHERE ca.case_id = c.id AND ca.account_id = a.account_id)));
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
