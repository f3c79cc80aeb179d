"""kntc.actor() in PL/pgSQL: its plan is cached for the session.

Every row-level-security check calls kntc.actor(). As a SQL function with `SET search_path`
it cannot be inlined and was planned again on every call: about 8 ms of database CPU per case
file request (measured by `make bench-app`). PL/pgSQL keeps the plan; the answer is the same.

Revision ID: 0003_actor_plpgsql
Revises: 0002_dedup_audit
"""

from alembic import op

revision = "0003_actor_plpgsql"
down_revision = "0002_dedup_audit"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION kntc.actor() RETURNS kntc.actor
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    token text := nullif(current_setting('kntc.session_token', true), '');
    result kntc.actor;
BEGIN
    IF token IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
      INTO result
      FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
      JOIN kntc.unit u ON u.id = a.unit_id
      JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
     WHERE ss.token_hash = sha256(convert_to(token, 'UTF8'))
       AND ss.expires_at > now();
    RETURN result;
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
