"""Duplicate detection, search indexes, the hash-chained audit log, discrepancies and corrections,
and the register of legacy imports.

Revision ID: 0002_dedup_audit
Revises: 0001_core
"""

from alembic import op

revision = "0002_dedup_audit"
down_revision = "0001_core"
branch_labels = None
depends_on = None

SCHEMA = r"""
-- Normalisation -----------------------------------------------------------------------------
-- One spelling for comparison: unaccented (Đ -> D, combining marks dropped: unaccent.rules has
-- both), lower case, single spaces. IMMUTABLE with the dictionary named in full, so that it
-- can be indexed and is safe under any search_path (pg_dump restores with an empty one).
CREATE FUNCTION kntc.norm(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT btrim(regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, t)), '\s+', ' ', 'g'))
$$;

-- The normalised forms are stored (generated columns), so that matching and ranking read them
-- instead of recomputing kntc.norm() for every neighbour: unaccent is a dictionary lookup per
-- character and the function cannot be inlined (its dictionary cast is only STABLE).
ALTER TABLE kntc.party ADD COLUMN name_norm text GENERATED ALWAYS AS (kntc.norm(full_name)) STORED;
ALTER TABLE kntc.case_file ADD COLUMN subject_norm text GENERATED ALWAYS AS (kntc.norm(subject)) STORED;
ALTER TABLE kntc.case_file ADD COLUMN respondent_norm text GENERATED ALWAYS AS (kntc.norm(respondent)) STORED;

CREATE INDEX party_name_unit ON kntc.party (address_unit_id, name_norm) INCLUDE (case_id);
-- A person is searched by the beginning of the name (surname first): a prefix range on a btree.
-- A trigram index would also find the middle of names, but "nguyen" is in 38% of them and its
-- posting lists make every such search slow.
CREATE INDEX party_name_prefix ON kntc.party (name_norm text_pattern_ops);
CREATE INDEX case_subject_trgm ON kntc.case_file USING gin (subject_norm public.gin_trgm_ops);
CREATE INDEX case_respondent_trgm ON kntc.case_file USING gin (respondent_norm public.gin_trgm_ops)
    WHERE respondent_norm IS NOT NULL;
CREATE INDEX case_code_prefix ON kntc.case_file (code text_pattern_ops);
-- Ranking reads the subject and respondent of every case in an address's neighbourhood: from
-- this index alone (index-only scan) rather than from wide case rows scattered over the heap.
CREATE INDEX case_dedup_cover ON kntc.case_file (id) INCLUDE (subject_norm, respondent_norm);

-- Duplicate detection ----------------------------------------------------------------------
-- Every case that may be the same matter, nationwide, with the reasons. Owner only: it sees
-- through row-level security; officers reach it through kntc.dedup_candidates below.
--
-- Rules (weights in the score):
--   id_number            a party has the same 12-digit personal ID number;
--   name_address         a party has the same normalised name and the same address unit;
--   similar_name_address a party of the same address unit has a trigram-similar name (>= 0.7)
--                        and the subject is at least loosely similar (>= 0.3);
--   similar_subject      a case of a party of the same address unit has a similar subject (>= 0.6),
--                        or a loosely similar one (>= 0.4) against a similar respondent (>= 0.6).
-- A trigram match on the subject alone, nationwide, is too common to be evidence (every
-- "khiếu nại quyết định thu hồi đất" looks alike), so subject similarity is weighed inside
-- the address unit of the parties, where a resent or collective petition lives.
CREATE FUNCTION kntc.dedup_match(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                 p_respondent text, p_limit integer DEFAULT 20, p_exclude uuid DEFAULT NULL)
RETURNS TABLE (case_id uuid, reasons text[], score real, subject_sim real, respondent_sim real)
-- PL/pgSQL rather than SQL: a SQL function that cannot be inlined is planned again on every
-- call, and planning this query costs more than running it; PL/pgSQL keeps the plan.
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH q AS MATERIALIZED (
        SELECT coalesce(kntc.norm(p_subject), '') AS s, kntc.norm(p_respondent) AS r
    ), qp AS MATERIALIZED (
        SELECT DISTINCT kntc.norm(t.n) AS n, t.u
          FROM unnest(coalesce(p_names, '{}'), coalesce(p_units, '{}')) AS t(n, u)
         WHERE t.n IS NOT NULL AND t.u IS NOT NULL
    ), hits AS (
        SELECT p.case_id, 'id_number'::text AS reason, 1.0::real AS w
          FROM kntc.party p
         WHERE p.id_number = ANY (coalesce(p_ids, '{}'))
        UNION ALL
        SELECT p.case_id, 'name_address', 0.8
          FROM qp JOIN kntc.party p ON p.address_unit_id = qp.u AND p.name_norm = qp.n
        UNION ALL
        -- The neighbourhood: the parties of the same address unit (bounded).
        SELECT x.case_id, 'near', x.ns
          FROM qp, LATERAL (
                SELECT p.case_id, similarity(p.name_norm, qp.n)::real AS ns
                  FROM kntc.party p WHERE p.address_unit_id = qp.u
                 LIMIT 5000) x
    ), per_case AS (
        SELECT h.case_id,
               array_agg(DISTINCT h.reason) FILTER (WHERE h.reason <> 'near') AS strong,
               max(h.w) FILTER (WHERE h.reason <> 'near') AS person_w,
               max(h.w) FILTER (WHERE h.reason = 'near') AS name_sim
          FROM hits h
         WHERE h.case_id IS DISTINCT FROM p_exclude
         GROUP BY h.case_id
    ), scored AS MATERIALIZED (
        SELECT pc.case_id, pc.strong, pc.person_w, pc.name_sim,
               CASE WHEN q.s = '' THEN 0 ELSE similarity(c.subject_norm, q.s) END::real AS ss,
               CASE WHEN q.r IS NULL OR c.respondent_norm IS NULL THEN 0
                    ELSE similarity(c.respondent_norm, q.r) END::real AS rs
          FROM per_case pc JOIN kntc.case_file c ON c.id = pc.case_id, q
    ), judged AS MATERIALIZED (
        SELECT s.*,
               coalesce(s.strong, '{}')
               || CASE WHEN s.strong IS NULL AND s.name_sim >= 0.7 AND s.ss >= 0.3
                       THEN '{similar_name_address}'::text[] ELSE '{}' END
               || CASE WHEN s.ss >= 0.6 OR (s.ss >= 0.4 AND s.rs >= 0.6) THEN '{similar_subject}'::text[]
                       ELSE '{}' END
               || CASE WHEN s.rs >= 0.6 THEN '{similar_respondent}'::text[] ELSE '{}' END AS why
          FROM scored s
    )
    SELECT j.case_id, j.why,
           (0.6 * coalesce(j.person_w, CASE WHEN 'similar_name_address' = ANY (j.why) THEN 0.5 * j.name_sim ELSE 0 END)
            + 0.3 * j.ss + 0.1 * j.rs)::real AS score,
           j.ss, j.rs
      FROM judged j
     WHERE j.strong IS NOT NULL OR 'similar_name_address' = ANY (j.why) OR 'similar_subject' = ANY (j.why)
     ORDER BY 3 DESC, 1
     LIMIT p_limit;
END $$;

-- What an officer may be told: in their scope (area and clearance), the case itself; outside
-- it, only that a case exists at unit X and why it matched. Nothing without a live session.
CREATE FUNCTION kntc.dedup_candidates(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                      p_respondent text, p_limit integer DEFAULT 20)
RETURNS TABLE (in_scope boolean, case_code text, subject text, kind text, status text, received_on date,
               unit_code text, unit_name text, reasons text[], score real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT v.ok, CASE WHEN v.ok THEN c.code END, CASE WHEN v.ok THEN c.subject END,
           CASE WHEN v.ok THEN c.kind END, CASE WHEN v.ok THEN c.status END,
           CASE WHEN v.ok THEN c.received_on END, u.code, u.name, m.reasons, round(m.score::numeric, 3)::real
      FROM kntc.actor() a
      CROSS JOIN kntc.dedup_match(p_ids, p_names, p_units, p_subject, p_respondent, p_limit) m
      JOIN kntc.case_file c ON c.id = m.case_id
      JOIN kntc.unit u ON u.id = c.handling_unit_id
      CROSS JOIN LATERAL (SELECT c.classification <= a.clearance
                                 AND (c.handling_unit_path <@ a.scope_path OR c.receiving_unit_path <@ a.scope_path)
                                 AS ok) v
     WHERE a.account_id IS NOT NULL
     ORDER BY m.score DESC;
END $$;

-- Search: the ids of the cases an officer may see that match the filters, newest first.
-- The officer's scope is written into the query as a constant: behind row-level security it is
-- a run-time parameter, which the planner guesses at 0.1% of the table, and it then walks the
-- whole country through the path index for a national officer. With the constant it knows a
-- commune from the nation. The final read of the rows still goes through row-level security.
CREATE FUNCTION kntc.search_ids(p_q text, p_code text, p_person text, p_id_number text, p_respondent text,
                                p_unit text, p_kind text, p_status text, p_from date, p_to date,
                                p_limit integer, p_offset integer)
RETURNS TABLE (id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    w text[];
    unit_path ltree;
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
        w := w || format('EXISTS (SELECT 1 FROM kntc.party p WHERE p.case_id = c.id AND p.name_norm LIKE %L '
                         'AND (NOT p.identity_protected OR kntc.handles_case(p.case_id)))', p_person);
    END IF;
    IF p_id_number IS NOT NULL THEN
        w := w || format('EXISTS (SELECT 1 FROM kntc.party p WHERE p.case_id = c.id AND p.id_number = %L '
                         'AND (NOT p.identity_protected OR kntc.handles_case(p.case_id)))', p_id_number);
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

-- What was shown at intake, and what the officer decided.
CREATE TABLE kntc.dedup_check (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at          timestamptz NOT NULL DEFAULT now(),
    account_id  integer NOT NULL REFERENCES kntc.account(id),
    unit_id     integer NOT NULL REFERENCES kntc.unit(id),
    unit_path   ltree NOT NULL,
    query       jsonb NOT NULL,
    candidates  jsonb NOT NULL
);
CREATE INDEX dedup_check_unit ON kntc.dedup_check USING gist (unit_path);

CREATE TABLE kntc.dedup_decision (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    check_id      uuid NOT NULL UNIQUE REFERENCES kntc.dedup_check(id),
    decided_at    timestamptz NOT NULL DEFAULT now(),
    account_id    integer NOT NULL REFERENCES kntc.account(id),
    unit_id       integer NOT NULL REFERENCES kntc.unit(id),
    unit_path     ltree NOT NULL,
    -- linked: the petition joined an existing case; new: it is a new matter; elsewhere: the
    -- matter is already held by another unit (out of scope), the petition goes there.
    decision      text NOT NULL CHECK (decision IN ('linked', 'new', 'elsewhere')),
    case_id       uuid REFERENCES kntc.case_file(id),
    petition_id   uuid REFERENCES kntc.petition(id),
    other_unit_id integer REFERENCES kntc.unit(id),
    note          text CHECK (length(note) <= 2000),
    CHECK (decision <> 'linked' OR (case_id IS NOT NULL AND petition_id IS NOT NULL)),
    CHECK (decision <> 'new' OR case_id IS NOT NULL),
    CHECK (decision <> 'elsewhere' OR other_unit_id IS NOT NULL)
);
CREATE INDEX dedup_decision_unit ON kntc.dedup_decision USING gist (unit_path);

ALTER TABLE kntc.dedup_check ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.dedup_decision ENABLE ROW LEVEL SECURITY;
CREATE POLICY dedup_check_read ON kntc.dedup_check FOR SELECT
    USING (unit_path <@ (SELECT (kntc.actor()).scope_path));
CREATE POLICY dedup_check_write ON kntc.dedup_check FOR INSERT
    WITH CHECK (account_id = (SELECT (kntc.actor()).account_id) AND unit_id = (SELECT (kntc.actor()).unit_id));
CREATE POLICY dedup_decision_read ON kntc.dedup_decision FOR SELECT
    USING (unit_path <@ (SELECT (kntc.actor()).scope_path));
CREATE POLICY dedup_decision_write ON kntc.dedup_decision FOR INSERT
    WITH CHECK (account_id = (SELECT (kntc.actor()).account_id) AND unit_id = (SELECT (kntc.actor()).unit_id));

-- Discrepancies and corrections -------------------------------------------------------------
-- Data found wrong must be corrected within the DATA-CORRECT limit (5 working days) of the report.
CREATE TABLE kntc.discrepancy (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id      uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    unit_id      integer NOT NULL REFERENCES kntc.unit(id),      -- the unit that must correct it
    unit_path    ltree NOT NULL,
    reported_on  date NOT NULL,
    reported_by  integer NOT NULL REFERENCES kntc.account(id),
    reporter_unit_id integer NOT NULL REFERENCES kntc.unit(id),
    description  text NOT NULL CHECK (length(description) BETWEEN 3 AND 5000),
    field        text CHECK (length(field) <= 100),
    rule_code    text NOT NULL REFERENCES kntc.deadline_rule(code),
    due_on       date NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'corrected')),
    corrected_on date,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX discrepancy_case ON kntc.discrepancy (case_id);
CREATE INDEX discrepancy_open ON kntc.discrepancy (due_on) WHERE status = 'open';
CREATE INDEX discrepancy_unit ON kntc.discrepancy USING gist (unit_path);

CREATE TABLE kntc.correction (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    discrepancy_id  uuid NOT NULL REFERENCES kntc.discrepancy(id) ON DELETE CASCADE,
    case_id         uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    unit_id         integer NOT NULL REFERENCES kntc.unit(id),
    unit_path       ltree NOT NULL,
    corrected_on    date NOT NULL,
    corrected_by    integer NOT NULL REFERENCES kntc.account(id),
    reason          text NOT NULL CHECK (length(reason) BETWEEN 3 AND 2000),
    changes         jsonb NOT NULL,
    working_days    integer NOT NULL,
    late            boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX correction_late ON kntc.correction USING gist (unit_path) WHERE late;
CREATE INDEX correction_discrepancy ON kntc.correction (discrepancy_id);

ALTER TABLE kntc.discrepancy ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.correction ENABLE ROW LEVEL SECURITY;
CREATE POLICY discrepancy_read ON kntc.discrepancy FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
-- Whoever may see the case may report that it is wrong (an inspecting province, the unit itself).
CREATE POLICY discrepancy_write ON kntc.discrepancy FOR INSERT WITH CHECK (
    reported_by = (SELECT (kntc.actor()).account_id)
    AND reporter_unit_id = (SELECT (kntc.actor()).unit_id)
    AND EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id)
    AND NOT ('external_reader' = ANY ((SELECT (kntc.actor()).roles)::text[])));
CREATE POLICY discrepancy_close ON kntc.discrepancy FOR UPDATE
    USING (unit_id = (SELECT (kntc.actor()).unit_id));
CREATE POLICY correction_read ON kntc.correction FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY correction_write ON kntc.correction FOR INSERT
    WITH CHECK (unit_id = (SELECT (kntc.actor()).unit_id) AND corrected_by = (SELECT (kntc.actor()).account_id));

-- Legacy import register ----------------------------------------------------------------------
-- One row per imported legacy record: a file imported twice is refused, row by row.
CREATE TABLE kntc.legacy_import (
    source_ref   text PRIMARY KEY CHECK (length(source_ref) BETWEEN 1 AND 100),
    case_id      uuid NOT NULL REFERENCES kntc.case_file(id),
    petition_id  uuid REFERENCES kntc.petition(id),
    legacy_unit  text NOT NULL,
    file_sha256  bytea NOT NULL,
    line_no      integer NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX legacy_import_case ON kntc.legacy_import (case_id);

-- Tamper-evident audit log -----------------------------------------------------------------
-- Append-only and hash-chained: hash = sha256(prev_hash || canonical content). Ids are gapless
-- (tail + 1 under one lock), so a removed row leaves a hole that names it, and a writer with a
-- stale snapshot collides on the primary key instead of forking the chain.
CREATE TABLE kntc.audit_log (
    id          bigint PRIMARY KEY,
    at          timestamptz NOT NULL,
    account_id  integer,
    db_user     text NOT NULL,
    unit_id     integer,
    table_name  text NOT NULL,
    op          text NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    row_key     text NOT NULL,
    before      jsonb,
    after       jsonb,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL
);
CREATE INDEX audit_log_row ON kntc.audit_log (table_name, row_key);

-- The exact bytes that are hashed (after prev_hash); `kntc audit verify` hashes the same.
CREATE FUNCTION kntc.audit_text(p_id bigint, p_at timestamptz, p_account integer, p_user text, p_unit integer,
                                p_table text, p_op text, p_key text, p_before jsonb, p_after jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT concat_ws(E'\x1f', p_id::text, (extract(epoch FROM p_at) * 1000000)::bigint::text,
                     coalesce(p_account::text, ''), p_user, coalesce(p_unit::text, ''), p_table, p_op, p_key,
                     coalesce(p_before::text, ''), coalesce(p_after::text, ''))
$$;
CREATE FUNCTION kntc.audit_canonical(a kntc.audit_log) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT kntc.audit_text(a.id, a.at, a.account_id, a.db_user, a.unit_id, a.table_name, a.op, a.row_key,
                           a.before, a.after)
$$;

CREATE FUNCTION kntc.audit_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    act kntc.actor := kntc.actor();
    who text := session_user;
    ts timestamptz := clock_timestamp();
    keyn text;
    keyo text;
    q text;
    r record;
    tail_id bigint;
    tail_hash bytea;
    b jsonb;
    a jsonb;
    unit integer;
    ids bigint[] := '{}';
    units integer[] := '{}';
    keys text[] := '{}';
    befores jsonb[] := '{}';
    afters jsonb[] := '{}';
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
BEGIN
    -- One writer at a time until commit: the chain stays linear.
    PERFORM pg_advisory_xact_lock(727001);
    SELECT l.id, l.hash INTO tail_id, tail_hash FROM kntc.audit_log l ORDER BY l.id DESC LIMIT 1;
    IF tail_id IS NULL THEN
        tail_id := 0;
        tail_hash := decode(repeat('00', 32), 'hex');
    END IF;
    SELECT string_agg(format('n.%I::text', k), ' || ''/'' || '),
           string_agg(format('o.%I::text', k), ' || ''/'' || ')
      INTO keyn, keyo FROM unnest(TG_ARGV) AS k;
    IF TG_OP = 'INSERT' THEN
        q := format('SELECT %s AS k, NULL::jsonb AS b, to_jsonb(n) AS a FROM new_rows n ORDER BY 1', keyn);
    ELSIF TG_OP = 'DELETE' THEN
        q := format('SELECT %s AS k, to_jsonb(o) AS b, NULL::jsonb AS a FROM old_rows o ORDER BY 1', keyo);
    ELSE
        q := format('SELECT coalesce(nn.k, oo.k) AS k, oo.j AS b, nn.j AS a
                       FROM (SELECT %s AS k, to_jsonb(n) AS j FROM new_rows n) nn
                       FULL JOIN (SELECT %s AS k, to_jsonb(o) AS j FROM old_rows o) oo ON nn.k = oo.k
                      WHERE nn.j IS DISTINCT FROM oo.j ORDER BY 1', keyn, keyo);
    END IF;
    -- The chain is sequential; the insert is not: collect, then one INSERT for the statement.
    FOR r IN EXECUTE q LOOP
        tail_id := tail_id + 1;
        -- A password hash is a secret, not history; that it changed shows in password_changed_at.
        b := r.b - 'password_hash';
        a := r.a - 'password_hash';
        unit := coalesce(act.unit_id, (coalesce(a, b) ->> 'handling_unit_id')::integer,
                         (coalesce(a, b) ->> 'unit_id')::integer);
        ids := ids || tail_id;
        units := units || unit;
        keys := keys || r.k;
        befores := befores || b;
        afters := afters || a;
        prevs := prevs || tail_hash;
        tail_hash := sha256(tail_hash || convert_to(kntc.audit_text(tail_id, ts, act.account_id, who, unit,
                                                                    TG_TABLE_NAME, TG_OP, r.k, b, a), 'UTF8'));
        hashes := hashes || tail_hash;
    END LOOP;
    INSERT INTO kntc.audit_log (id, at, account_id, db_user, unit_id, table_name, op, row_key, before, after,
                                prev_hash, hash)
    SELECT x.id, ts, act.account_id, who, x.unit, TG_TABLE_NAME, TG_OP, x.k, x.b, x.a, x.p, x.h
      FROM unnest(ids, units, keys, befores, afters, prevs, hashes) AS x(id, unit, k, b, a, p, h);
    RETURN NULL;
END $$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('case_file', 'id'), ('party', 'id'), ('petition', 'id'),
                                   ('case_deadline', 'case_id, step'), ('account', 'id')) v(tab, keys) LOOP
        EXECUTE format('CREATE TRIGGER audit_ins AFTER INSERT ON kntc.%I REFERENCING NEW TABLE AS new_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture(%s)', t.tab,
                       (SELECT string_agg(quote_literal(btrim(k)), ', ') FROM unnest(string_to_array(t.keys, ',')) k));
        EXECUTE format('CREATE TRIGGER audit_upd AFTER UPDATE ON kntc.%I REFERENCING OLD TABLE AS old_rows
                        NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture(%s)', t.tab,
                       (SELECT string_agg(quote_literal(btrim(k)), ', ') FROM unnest(string_to_array(t.keys, ',')) k));
        EXECUTE format('CREATE TRIGGER audit_del AFTER DELETE ON kntc.%I REFERENCING OLD TABLE AS old_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture(%s)', t.tab,
                       (SELECT string_agg(quote_literal(btrim(k)), ', ') FROM unnest(string_to_array(t.keys, ',')) k));
    END LOOP;
END $$;

-- Nobody changes history: not the application (no privilege), not the owner (this trigger);
-- only a superuser, who must first disable it, and the chain then shows it.
CREATE FUNCTION kntc.audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'kntc.audit_log chỉ được ghi thêm / is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_protect BEFORE UPDATE OR DELETE ON kntc.audit_log
    FOR EACH ROW EXECUTE FUNCTION kntc.audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON kntc.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_refuse_change();

-- Least privilege ---------------------------------------------------------------------------
REVOKE ALL ON kntc.audit_log FROM PUBLIC, kntc_app;
GRANT SELECT ON kntc.audit_log TO kntc_readonly;
GRANT SELECT, INSERT ON kntc.dedup_check, kntc.dedup_decision, kntc.correction TO kntc_app;
GRANT SELECT, INSERT ON kntc.discrepancy TO kntc_app;
GRANT UPDATE (status, corrected_on) ON kntc.discrepancy TO kntc_app;
GRANT SELECT ON kntc.discrepancy, kntc.correction, kntc.dedup_decision TO kntc_readonly;
REVOKE ALL ON FUNCTION kntc.dedup_match(text[], text[], integer[], text, text, integer, uuid),
    kntc.dedup_candidates(text[], text[], integer[], text, text, integer), kntc.audit_capture(),
    kntc.audit_canonical(kntc.audit_log),
    kntc.audit_text(bigint, timestamptz, integer, text, integer, text, text, text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.dedup_candidates(text[], text[], integer[], text, text, integer) TO kntc_app;
REVOKE ALL ON FUNCTION kntc.search_ids(text, text, text, text, text, text, text, text, date, date, integer, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.search_ids(text, text, text, text, text, text, text, text, date, date, integer, integer)
    TO kntc_app;
GRANT EXECUTE ON FUNCTION kntc.audit_canonical(kntc.audit_log),
    kntc.audit_text(bigint, timestamptz, integer, text, integer, text, text, text, jsonb, jsonb) TO kntc_readonly;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
