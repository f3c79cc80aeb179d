"""Three functions every request or duplicate check runs are planned once per server connection.

Why: `pg_stat_statements` with planning counted (`track = all`, `track_planning = on`) on the
bench's cluster (`make bench-app`, one client) showed functions planned at every call although
nothing in their plans depends on the values they are given:

- `kntc.actor_remember()`, which seals the officer into the transaction's cache at the start of
  every officer request, is a SQL function: PostgreSQL plans a SQL function's body each time it is
  called (0.06 ms of planning for 0.02 ms of work).
- `kntc.exchange_client_id()` and `kntc.exchange_token_row()`, which the duplicate check asks to
  choose its budget, are SQL functions too: each check planned the token's three-table join
  (0.16 ms) even when the request carries no token at all, as an officer's never does.
- `kntc.dedup_match()` is PL/pgSQL, which keeps a statement's plan, but only once the plan it would
  keep for every value costs no more than the plans made for each call's values. The match's
  ward comes from a CTE, so its plan cannot use the value, yet the estimates differ enough that
  PL/pgSQL went on planning for each call: 0.7 to 0.8 ms per check, more than the match itself on
  a small ward (0.41 ms planned once against 1.13 ms planned each time, 41 keys; 0.88 against
  1.71 ms, 234 keys).

PL/pgSQL keeps the plans of its statements for the life of the server connection, and PgBouncer
keeps those connections open across clients. So the first two are now PL/pgSQL, the token's
function returning at once when there is no token, and the match is told to keep one plan
(`plan_cache_mode = force_generic_plan`): its plan is the same for every value (the same indexes:
the ward's keys by the unit's index, the ID numbers and names by theirs). What each returns is
unchanged: tests/exchange, tests/security and tests/dedup run them as before.

Revision ID: 0031_planned_once_per_connection
Revises: 0030_dedup_subject_first
"""

from alembic import op

revision = "0031_planned_once_per_connection"
down_revision = "0030_dedup_subject_first"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION kntc.actor_remember(p_token text, p_actor kntc.actor) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('kntc.actor_cache',
                       p_actor::text || '#'
                       || kntc.actor_seal(p_token, p_actor::text, (SELECT ak.key FROM kntc.actor_key ak)),
                       true);
END $$;

-- The live token of the transaction: the token's hash, the certificate the terminator saw, the
-- credential and the client all still valid. NULL otherwise, and at once when there is no token.
CREATE OR REPLACE FUNCTION kntc.exchange_token_row() RETURNS kntc.exchange_token
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    token text := nullif(current_setting('kntc.exchange_token', true), '');
    live kntc.exchange_token;
BEGIN
    IF token IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT t.* INTO live
      FROM kntc.exchange_token t
      JOIN kntc.exchange_credential cr ON cr.id = t.credential_id AND cr.revoked_at IS NULL
                                       AND (cr.not_after IS NULL OR cr.not_after > now())
      JOIN kntc.exchange_client c ON c.id = t.client_id AND c.revoked_at IS NULL
     WHERE t.token_hash = sha256(convert_to(token, 'UTF8'))
       AND t.expires_at > now()
       AND t.thumbprint = (SELECT decode(x, 'hex') FROM (SELECT current_setting('kntc.exchange_cert', true) AS x) s
                            WHERE x ~ '^[0-9a-f]{64}$');
    RETURN live;
END $$;

CREATE OR REPLACE FUNCTION kntc.exchange_client_id() RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    RETURN (kntc.exchange_token_row()).client_id;
END $$;

ALTER FUNCTION kntc.dedup_match(text[], text[], integer[], text, text, integer, uuid, text[])
    SET plan_cache_mode = force_generic_plan;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
