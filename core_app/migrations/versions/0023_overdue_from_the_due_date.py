"""The overdue list starts from the due dates, not from every case of the officer's area.

Why: the list (the API's, and the ten on every officer's home page) read overdue steps through
row-level security, where the officer's area is a run-time value the planner cannot see. It took
the area's every case and probed each for an open step, so its cost grew with the area's cases,
not with the rows shown. On the lab's 300,000 case files (`EXPLAIN (ANALYZE)` on the DC leader as
`kntc_app` with a live session, warm caches, fifty rows):

| head of | before | after |
|---|---:|---:|
| a commune | 1.3 ms | 0.9–1.7 ms |
| a province | 84 ms | 11–22 ms |
| the country | 1,883 ms | 1.4–3.7 ms |

(loadtests/CAPACITY.md, "The overdue list"). At 5 million case files the country's would have
taken half a minute.

`kntc.overdue_steps` picks the steps as `kntc.search_ids` picks the search's cases: it writes the
officer's area, clearance and the unit asked for into the query as constants, so the planner sees
how much of the country they are. For a wide area it walks the open steps from the oldest due
date and stops at the page's last row; for a commune (at most 20 units, `kntc.few_units`, which search
uses too) it starts from the commune's cases, and from a commune asked for by a wider area's head, as the planner overestimates a commune's path and would walk the nation's late
steps for it. It
applies the case-reading policy's own test (clearance, the handling or receiving unit under the
area); the rows are then read through row-level security as everywhere else, which stays the
guard.

Revision ID: 0023_overdue_from_the_due_date
Revises: 0022_scope_indexes_with_status
"""

from alembic import op

revision = "0023_overdue_from_the_due_date"
down_revision = "0022_scope_indexes_with_status"
branch_labels = None
depends_on = None

SQL = r"""
-- The units under a path when few enough to list and start a query from (a commune with the
-- communes merged into it, at most 20), else NULL: a wider area is tested by its path. Read only up
-- to that bound, never built for a province. Search and the overdue list both decide by it.
CREATE FUNCTION kntc.few_units(p_path ltree) RETURNS integer[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    ids integer[] := ARRAY(SELECT u.id FROM kntc.unit u WHERE u.path <@ p_path ORDER BY u.id LIMIT 21);
BEGIN
    -- PL/pgSQL, not SQL: a SQL function with its own search_path is planned again at every call.
    RETURN CASE WHEN cardinality(ids) <= 20 THEN ids END;
END $$;
REVOKE ALL ON FUNCTION kntc.few_units(ltree) FROM PUBLIC;

CREATE FUNCTION kntc.overdue_steps(p_today date, p_unit text, p_limit integer)
RETURNS TABLE (case_id uuid, step text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    w text[];
    unit_path ltree;
    units integer[];
BEGIN
    IF a.account_id IS NULL OR p_today IS NULL OR coalesce(p_limit, 0) <= 0 THEN
        RETURN;
    END IF;
    -- case_read's test, with the officer's values written in.
    w := ARRAY[format('c.classification <= %s', a.clearance), format('d.due_on < %L::date', p_today)];
    units := kntc.few_units(a.scope_path);
    IF units IS NOT NULL THEN
        -- A commune: start from its cases. Left to choose, the planner overestimates a commune's
        -- share a hundredfold and reads the nation's late steps for it.
        w := w || format('d.case_id = ANY (ARRAY(SELECT c.id FROM kntc.case_file c WHERE c.handling_unit_id = ANY (%L::integer[]) '
                         'UNION SELECT c.id FROM kntc.case_file c WHERE c.receiving_unit_id = ANY (%L::integer[])))',
                         units, units);
    ELSE
        -- A wider area by its path: one comparison per case, where its list of units is hundreds.
        w := w || format('(c.handling_unit_path <@ %L::ltree OR c.receiving_unit_path <@ %L::ltree)',
                         a.scope_path, a.scope_path);
    END IF;
    IF p_unit IS NOT NULL THEN
        SELECT u.path INTO unit_path FROM kntc.unit u WHERE u.code = p_unit;
        IF unit_path IS NULL THEN
            RETURN;  -- no such unit
        END IF;
        units := kntc.few_units(unit_path);
        IF units IS NOT NULL THEN
            -- A province head asking for one commune: from that commune's cases, for the same reason.
            w := w || format('d.case_id = ANY (ARRAY(SELECT c.id FROM kntc.case_file c '
                             'WHERE c.handling_unit_id = ANY (%L::integer[])))', units);
        ELSE
            w := w || format('c.handling_unit_path <@ %L::ltree', unit_path);
        END IF;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT d.case_id, d.step FROM kntc.case_deadline d JOIN kntc.case_file c ON c.id = d.case_id '
        'WHERE d.met_on IS NULL AND %s ORDER BY d.due_on, c.code LIMIT %s',
        array_to_string(w, ' AND '), p_limit);
END $$;

REVOKE ALL ON FUNCTION kntc.overdue_steps(date, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.overdue_steps(date, text, integer) TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
