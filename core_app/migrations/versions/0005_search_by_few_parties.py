"""Search: the planner is given figures it can count (the officer's scope as unit ids, a person's
name from the few parties that bear it).

Why (measured with `make bench-dedup N=5000000`, 1 Dec 2026): the planner estimates a name prefix
such as 'nguyen tien duc%' from the histogram of all names, where "nguyen" is 38 %: 48,293 rows
where there are 1,032. It then walks the officer's scope newest first, expecting a match every
few hundred cases, and for a province officer read 2.4 million case rows (11 s) to find 21.
search_ids now counts the parties bearing the name (up to 5,000, from the prefix index) and, when
they are few, starts from them; an ID number always does. The scope is handled the same way
(see kntc.search_scope). The answers are the same.

Revision ID: 0005_search_by_few_parties
Revises: 0004_dedup_neighbourhood
"""

from alembic import op

revision = "0005_search_by_few_parties"
down_revision = "0004_dedup_neighbourhood"
branch_labels = None
depends_on = None

SQL = r"""
CREATE INDEX case_receiving_unit ON kntc.case_file (receiving_unit_id);

-- The cases of a subtree as a condition the planner can count. `path <@ constant` is estimated
-- at 0.1 % of the table for a commune and for the nation alike (ltree has no statistics), and a
-- commune's text search then walked the whole table newest first (1.1 s at 1 M case files) to
-- find its few hundred cases. The unit ids of the subtree are estimated from the column's own
-- statistics. Paths follow unit ids (kntc.case_set_paths), so the two conditions are the same;
-- the final read still goes through row-level security on the paths.
CREATE FUNCTION kntc.search_scope(p_path ltree) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    ids integer[];
BEGIN
    IF nlevel(p_path) = 1 AND (SELECT count(*) FROM kntc.unit u WHERE u.parent_id IS NULL) = 1 THEN
        RETURN 'true';  -- the whole country
    END IF;
    SELECT array_agg(u.id ORDER BY u.id) INTO ids FROM kntc.unit u WHERE u.path <@ p_path;
    IF ids IS NULL THEN
        RETURN 'false';
    ELSIF cardinality(ids) > 2000 THEN
        RETURN format('(c.handling_unit_path <@ %L::ltree OR c.receiving_unit_path <@ %L::ltree)', p_path, p_path);
    END IF;
    RETURN format('(c.handling_unit_id = ANY (%L::integer[]) OR c.receiving_unit_id = ANY (%L::integer[]))', ids, ids);
END $$;
REVOKE ALL ON FUNCTION kntc.search_scope(ltree) FROM PUBLIC;

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
    w := ARRAY[kntc.search_scope(a.scope_path), format('c.classification <= %s', a.clearance)];
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
        w := w || kntc.search_scope(unit_path);
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
