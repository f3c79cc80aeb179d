"""Search: the planner is given figures it can count (the officer's scope as unit ids, a person's
name from the few parties that bear it).

Why (measured with `make bench-dedup N=5000000`, 1 Dec 2026): the planner estimates a name prefix
such as 'nguyen tien duc%' from the histogram of all names, where "nguyen" is 38 %: 48,293 rows
where there are 1,032. It then walks the officer's scope newest first, expecting a match every
few hundred cases, and for a province officer read 2.4 million case rows (11 s) to find 21.
search_ids now counts the parties bearing the name (up to 5,000, from the prefix index) and, when
they are few, starts from them; an ID number always does. The scope is handled the same way
(kntc.subtree_units), and a code prefix or a commune gives a small set to start from. The answers are the same.

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

-- The units of a subtree, or NULL for the whole country. `path <@ constant` is estimated at
-- 0.1 % of the table for a commune and for the nation alike (ltree keeps no statistics); unit
-- ids are estimated from the columns' own. Paths follow unit ids (kntc.case_set_paths), so the
-- conditions are the same; the final read still goes through row-level security on the paths.
CREATE FUNCTION kntc.subtree_units(p_path ltree) RETURNS integer[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT CASE WHEN nlevel(p_path) = 1 AND (SELECT count(*) FROM kntc.unit u WHERE u.parent_id IS NULL) = 1
                THEN NULL
                ELSE (SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}') FROM kntc.unit u WHERE u.path <@ p_path) END
$$;

CREATE OR REPLACE FUNCTION kntc.search_ids(p_q text, p_code text, p_person text, p_id_number text, p_respondent text,
                                           p_unit text, p_kind text, p_status text, p_from date, p_to date,
                                           p_limit integer, p_offset integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    w text[];
    unit_path ltree;
    units integer[];
    narrowest integer[];
    code_like text;
    -- A small set of case ids that every answer belongs to, when a filter yields one (a code
    -- prefix with at most `few` cases, a commune's cases): the query starts from it instead of
    -- walking the scope newest first, which the planner does when it overestimates the matches.
    start_from text;
    n bigint;
    few constant integer := 5000;
    small_scope constant integer := 20;  -- units: a commune with the communes merged into it
BEGIN
    IF a.account_id IS NULL THEN
        RETURN;
    END IF;
    w := ARRAY[format('c.classification <= %s', a.clearance)];
    FOREACH unit_path IN ARRAY ARRAY[a.scope_path, CASE WHEN p_unit IS NOT NULL THEN
                                        coalesce((SELECT u.path FROM kntc.unit u WHERE u.code = p_unit), ''::ltree)
                                     END] LOOP
        CONTINUE WHEN unit_path IS NULL;
        IF nlevel(unit_path) = 0 THEN
            RETURN;  -- no such unit
        END IF;
        units := kntc.subtree_units(unit_path);
        IF units IS NOT NULL THEN
            w := w || format('(c.handling_unit_id = ANY (%L::integer[]) OR c.receiving_unit_id = ANY (%L::integer[]))',
                             units, units);
            IF narrowest IS NULL OR cardinality(units) < cardinality(narrowest) THEN
                narrowest := units;
            END IF;
        END IF;
    END LOOP;
    IF p_code IS NOT NULL THEN
        IF p_code ~ '-[0-9]{4}-[0-9]{6}$' THEN
            w := w || format('c.code = %L', p_code);
        ELSE
            code_like := replace(replace(p_code, '%', ''), '_', '\_') || '%';
            w := w || format('c.code LIKE %L', code_like);
            EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM kntc.case_file c WHERE c.code LIKE %L LIMIT %s) s',
                           code_like, few + 1) INTO n;
            IF n <= few THEN
                start_from := format('SELECT c.id FROM kntc.case_file c WHERE c.code LIKE %L', code_like);
            END IF;
        END IF;
    END IF;
    -- Text in a commune: its cases are fewer than the trigram index's matches nationwide, which the
    -- planner underestimates (a bitmap of 165,000 rows for "khieu nai quyet dinh" at 1 M).
    IF start_from IS NULL AND cardinality(narrowest) <= small_scope AND (p_q IS NOT NULL OR p_respondent IS NOT NULL)
    THEN
        start_from := format('SELECT c.id FROM kntc.case_file c WHERE c.handling_unit_id = ANY (%L::integer[]) '
                             'UNION SELECT c.id FROM kntc.case_file c WHERE c.receiving_unit_id = ANY (%L::integer[])',
                             narrowest, narrowest);
    END IF;
    IF start_from IS NOT NULL THEN
        w := w || format('c.id = ANY (ARRAY(%s))', start_from);
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
        -- Many (a bare surname): test each case of the walk.
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
REVOKE ALL ON FUNCTION kntc.subtree_units(ltree) FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
