"""Search pages by keyset; the database itself ends sessions left idle.

- `kntc.search_ids` took LIMIT/OFFSET, so page 500 of a province's search read and threw away
  10,000 rows first. It now takes the sort key of the last row shown (received_on, code); the
  rest of the function is unchanged from 0005.
- The idle limit was applied by `kntc.session_begin`, which the application calls; someone holding
  the application role's password and a token left idle could skip it. `kntc.actor()` now refuses
  a session idle past `kntc.session_idle_ceiling()` (30 minutes, plus the minute within which
  last_seen_at is written), and `session_begin` never allows a longer limit than the ceiling. The
  application may be stricter (KNTC_IDLE_SECONDS), never looser.

Revision ID: 0009_search_keyset
Revises: 0008_reception_scope
"""

from alembic import op

revision = "0009_search_keyset"
down_revision = "0008_reception_scope"
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
       AND ss.expires_at > now()
       -- last_seen_at is written at most once a minute (session_begin): one minute of slack.
       AND ss.last_seen_at > now() - make_interval(secs => kntc.session_idle_ceiling() + 60);
    RETURN result;
END $$;

DROP FUNCTION kntc.search_ids(text, text, text, text, text, text, text, text, date, date, integer, integer);

CREATE FUNCTION kntc.search_ids(p_q text, p_code text, p_person text, p_id_number text, p_respondent text,
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
    -- The next page starts after the last row shown (received_on, code are the sort key; codes are
    -- unique), so a deep page costs what the first does.
    IF p_after_received IS NOT NULL AND p_after_code IS NOT NULL THEN
        w := w || format('(c.received_on, c.code) < (%L::date, %L::text)', p_after_received, p_after_code);
    END IF;
    RETURN QUERY EXECUTE format('SELECT c.id FROM kntc.case_file c WHERE %s ORDER BY c.received_on DESC, c.code DESC '
                                'LIMIT %s', array_to_string(w, ' AND '), p_limit);
END $$;

REVOKE ALL ON FUNCTION kntc.search_ids(text, text, text, text, text, text, text, text, date, date, integer, date, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.search_ids(text, text, text, text, text, text, text, text, date, date, integer, date, text)
    TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
