"""Search by a person's name starts from the few parties that bear it.

Why (measured with `make bench-dedup N=5000000`, 1 Dec 2026): the planner estimates a name prefix
such as 'nguyen tien duc%' from the histogram of all names, where "nguyen" is 38 %: 48,293 rows
where there are 1,032. It then walks the officer's scope newest first, expecting a match every
few hundred cases, and for a province officer read 2.4 million case rows (11 s) to find 21.
search_ids now counts the parties bearing the name (up to 5,000, from the prefix index) and, when
they are few, starts from them; an ID number always does. The answers are the same.

Revision ID: 0005_search_by_few_parties
Revises: 0004_dedup_neighbourhood
"""

from alembic import op

revision = "0005_search_by_few_parties"
down_revision = "0004_dedup_neighbourhood"
branch_labels = None
depends_on = None

SQL = r"""
CREATE OR REPLACE FUNCTION kntc.search_ids(p_q text, p_code text, p_person text, p_id_number text, p_respondent text,
                                p_unit text, p_kind text, p_status text, p_from date, p_to date,
                                p_limit integer, p_offset integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    w text[];
    unit_path ltree;
    n bigint;
    few constant integer := 5000;
BEGIN
    IF a.account_id IS NULL THEN
        RETURN;
    END IF;
    w := ARRAY[format('(c.handling_unit_path <@ %L::ltree OR c.receiving_unit_path <@ %L::ltree)', a.scope_path,
                      a.scope_path),
               format('c.classification <= %s', a.clearance)];
    IF p_code IS NOT NULL THEN
        w := w || CASE WHEN p_code ~ '-[0-9]{4}-[0-9]{6}$' THEN format('c.code = %L', p_code)
                       ELSE format('c.code LIKE %L', replace(replace(p_code, '%', ''), '_', '\_') || '%') END;
    END IF;
    IF p_q IS NOT NULL THEN
        w := w || format('c.subject_norm LIKE %L', p_q);
    END IF;
    IF p_respondent IS NOT NULL THEN
        w := w || format('c.respondent_norm LIKE %L', p_respondent);
    END IF;
    -- A confidential denouncer is found by name or ID number only by those handling the case,
    -- as party_read allows.
    IF p_person IS NOT NULL THEN
        -- Few parties bear the name (a full name, nationwide, is a few hundred): start from them.
        -- Many (a bare surname): walk the scope newest first and test each case.
        EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM kntc.party p WHERE p.name_norm LIKE %L LIMIT %s) s',
                       p_person, few + 1) INTO n;
        w := w || format(CASE WHEN n <= few
                              THEN 'c.id = ANY (ARRAY(SELECT p.case_id FROM kntc.party p WHERE p.name_norm LIKE %L '
                                   'AND (NOT p.identity_protected OR kntc.handles_case(p.case_id))))'
                              ELSE 'EXISTS (SELECT 1 FROM kntc.party p WHERE p.case_id = c.id AND p.name_norm LIKE %L '
                                   'AND (NOT p.identity_protected OR kntc.handles_case(p.case_id)))' END, p_person);
    END IF;
    IF p_id_number IS NOT NULL THEN
        w := w || format('c.id = ANY (ARRAY(SELECT p.case_id FROM kntc.party p WHERE p.id_number = %L '
                         'AND (NOT p.identity_protected OR kntc.handles_case(p.case_id))))', p_id_number);
    END IF;
    IF p_unit IS NOT NULL THEN
        SELECT u.path INTO unit_path FROM kntc.unit u WHERE u.code = p_unit;
        IF unit_path IS NULL THEN
            RETURN;
        END IF;
        w := w || format('(c.handling_unit_path <@ %L::ltree OR c.receiving_unit_path <@ %L::ltree)', unit_path,
                         unit_path);
    END IF;
    IF p_kind IS NOT NULL THEN
        w := w || format('c.kind = %L', p_kind);
    END IF;
    IF p_status IS NOT NULL THEN
        w := w || format('c.status = %L', p_status);
    END IF;
    IF p_from IS NOT NULL THEN
        w := w || format('c.received_on >= %L::date', p_from);
    END IF;
    IF p_to IS NOT NULL THEN
        w := w || format('c.received_on <= %L::date', p_to);
    END IF;
    RETURN QUERY EXECUTE format('SELECT c.id FROM kntc.case_file c WHERE %s ORDER BY c.received_on DESC, c.code DESC '
                                'LIMIT %s OFFSET %s', array_to_string(w, ' AND '), p_limit, p_offset);
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
