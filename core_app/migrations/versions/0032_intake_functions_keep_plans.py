"""Two small functions of every intake keep their plans on a server connection.

Why: with every level of `pg_stat_statements` tracked and planning counted (`make bench-app`, which
now prints each request's planning), SQL functions that every intake calls were planned at each
call, as PostgreSQL plans the body of a SQL function it cannot inline each time it is called:

- `kntc.next_case_code()`, the case's code (0.07–0.09 ms of planning, 0.04 ms of work);
- `kntc.dedup_check_parties()`, the parties typed at the check, read when the petition is
  recorded under it (0.06 ms, 0.02 ms).

They are now PL/pgSQL, which keeps the plan of each statement for the life of the server
connection; each body is the same statement, so each answers what it answered. A third,
`kntc.trigram_codes()` (0.011 ms of planning, four to eight calls an intake), stays SQL: as PL/pgSQL
it was no faster per call, alone or over 20,000 subjects in one statement.

Revision ID: 0032_intake_functions_keep_plans
Revises: 0031_planned_once_per_connection
"""

from alembic import op

revision = "0032_intake_functions_keep_plans"
down_revision = "0031_planned_once_per_connection"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION kntc.next_case_code(p_unit_id integer, p_year integer) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    result text;
BEGIN
    WITH n AS (
        INSERT INTO kntc.case_code_counter AS c (unit_id, year, last_seq) VALUES (p_unit_id, p_year, 1)
        ON CONFLICT (unit_id, year) DO UPDATE SET last_seq = c.last_seq + 1
        RETURNING c.last_seq
    )
    SELECT u.code || '-' || p_year || '-' || lpad(n.last_seq::text, 6, '0') INTO result
      FROM n, kntc.unit u WHERE u.id = p_unit_id;
    RETURN result;
END $$;

CREATE OR REPLACE FUNCTION kntc.dedup_check_parties(p_check uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT coalesce(c.query -> 'parties', '[]') INTO result
      FROM kntc.dedup_check c
     WHERE c.id = p_check AND c.account_id = (kntc.actor()).account_id;
    RETURN result;
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
