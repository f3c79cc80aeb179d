"""Search starts from a commune's cases, or a code prefix's, by their row addresses.

Why: where one filter yields a small set of cases every answer belongs to (a commune's cases for a
phrase, at most 5,000 cases of a code prefix), `kntc.search_ids` collects them first and then reads
them in the query's order. It collected their ids, and PostgreSQL then found each id again in the
primary key: on the bench's commune of 5,277 case files the look-ups by id took 17 ms of a 22 ms
search for "bồi thường". It now collects the rows' addresses (`ctid`), which the same statement's
snapshot has just read, and fetches each row directly (a TID scan): 11–13 ms for that search
against 16–18 ms (loadtests/CAPACITY.md, "Search starts from its rows' addresses"). Which rows
are read, and what is tested on each, is unchanged.

Revision ID: 0035_search_from_row_addresses
Revises: 0034_dedup_scored_from_keys
"""

from alembic import op

revision = "0035_search_from_row_addresses"
down_revision = "0034_dedup_scored_from_keys"
branch_labels = None
depends_on = None

SEARCH = r"""
CREATE OR REPLACE FUNCTION kntc.search_ids(p_q text, p_code text, p_person text, p_id_number text, p_respondent text,
                                           p_unit text, p_kind text, p_status text, p_from date, p_to date,
                                           p_limit integer, p_after_received date, p_after_code text)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    w text[];
    unit_path ltree;
    units integer[];
    narrowest integer[];
    code_like text;
    rare text;
    -- A small set of cases that every answer belongs to, when a filter yields one (a code prefix
    -- with at most `few` cases, a commune's cases): the query starts from it instead of walking the
    -- scope newest first, which the planner does when it overestimates the matches. The set is of
    -- row addresses (ctid), which the query's own snapshot read a moment before: the rows are then
    -- fetched directly, where ids cost a descent of the primary key each (17 ms for 5,000 ids).
    start_from text;
    n bigint;
    few constant integer := 5000;
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
        -- The whole country (the one root): nothing to test.
        CONTINUE WHEN nlevel(unit_path) = 1 AND (SELECT count(*) FROM kntc.unit u WHERE u.parent_id IS NULL) = 1;
        units := kntc.few_units(unit_path);
        IF units IS NOT NULL THEN
            -- A commune with the communes merged into it: its few units, which the query can start from.
            w := w || format('(c.handling_unit_id = ANY (%L::integer[]) OR c.receiving_unit_id = ANY (%L::integer[]))',
                             units, units);
            IF narrowest IS NULL OR cardinality(units) < cardinality(narrowest) THEN
                narrowest := units;
            END IF;
        ELSE
            -- A wider area by its path, not by the list of its units: a province's list is hundreds
            -- of ids, each compared with every case the query walks; the path is one comparison.
            w := w || format('(c.handling_unit_path <@ %L::ltree OR c.receiving_unit_path <@ %L::ltree)',
                             unit_path, unit_path);
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
                start_from := format('SELECT c.ctid FROM kntc.case_file c WHERE c.code LIKE %L', code_like);
            END IF;
        END IF;
    END IF;
    -- Text in a commune: its cases are fewer than the trigram index's matches nationwide, which the
    -- planner underestimates (a bitmap of 165,000 rows for "khieu nai quyet dinh" at 1 M).
    IF start_from IS NULL AND narrowest IS NOT NULL AND (p_q IS NOT NULL OR p_respondent IS NOT NULL)
    THEN
        start_from := format('SELECT c.ctid FROM kntc.case_file c WHERE c.handling_unit_id = ANY (%L::integer[]) '
                             'UNION SELECT c.ctid FROM kntc.case_file c WHERE c.receiving_unit_id = ANY (%L::integer[])',
                             narrowest, narrowest);
    END IF;
    IF start_from IS NOT NULL THEN
        w := w || format('c.ctid = ANY (ARRAY(%s))', start_from);
    END IF;
    IF p_q IS NOT NULL THEN
        rare := CASE WHEN start_from IS NULL THEN kntc.rare_inner_words(p_q) END;
        IF rare IS NOT NULL THEN
            -- The phrase's rare whole words find the candidates (migration 0026); the substring is
            -- tested on each, written so that the trigram index is not intersected with them.
            w := w || format('to_tsvector(''simple'', c.subject_norm) @@ plainto_tsquery(''simple'', %L)', rare)
                   || format('(c.subject_norm || '''') LIKE %L', p_q);
        ELSE
            w := w || format('c.subject_norm LIKE %L', p_q);
        END IF;
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
    -- The next page starts after the last row shown (received_on, code are the sort key; codes are
    -- unique), so a deep page costs what the first does.
    IF p_after_received IS NOT NULL AND p_after_code IS NOT NULL THEN
        w := w || format('(c.received_on, c.code) < (%L::date, %L::text)', p_after_received, p_after_code);
    END IF;
    RETURN QUERY EXECUTE format('SELECT c.id FROM kntc.case_file c WHERE %s ORDER BY c.received_on DESC, c.code DESC '
                                'LIMIT %s', array_to_string(w, ' AND '), p_limit);
END $$;
"""


def upgrade() -> None:
    op.execute(SEARCH)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
