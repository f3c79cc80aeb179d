"""The officer's daily work made whole: deadlines that start and end on events, extensions within the
law, a second complaint round on the same file, filing limits, rules edited as versioned data; a
duplicate decision before any petition is recorded; corrections of any recorded field with a reason.

Why:
- Every rule had a start event and no end: the denunciation notice limit (TC-NOTIFY) was never met,
  so every accepted denunciation stayed overdue for ever. Each rule now names the events that end
  it (`end_events`, the workflow's action names); the application ends a step by its event, in SQL
  that reads the rule, not a list in code.
- Rules are versioned (`kntc.deadline_rule_version`): each edit is a new version with its legal
  basis, reason, editor and effective date, made through `kntc.deadline_rule_edit` by a central
  system administrator only. A step uses the version in force on the day it starts. Application
  hosts cache the rulebook keyed on `kntc.rulebook_stamp`, which every edit (and every change of the
  calendar overrides) bumps in the same transaction: no restart, no stale host.
- An extension is a row of `kntc.deadline_extension` (reason, decision reference, the approving
  head); the database refuses a later due date or a higher extension count without one, and more
  extensions than the rule version allows.
- A petition recorded by an officer must carry the duplicate check it was recorded after
  (`petition.intake_check_id`: the officer's own, recent, used once), and by commit the check must
  hold the decision (new case, or linked to this case): "one case file per matter" no longer
  depends on each caller's goodwill. Operator paths (legacy import) record checks of their own.
- Two people with different personal ID numbers are not the same person: the exact name match of
  such a pair is only a low note, `same_name_other_id`, and their names add no similarity.
- A party's address may be written in a unit from before the 2025 reform: the unit as written is
  kept beside its current successor (`address_unit_written_id`), and matching uses both.
- What an officer typed at a duplicate check is readable by that officer alone (the query column).
- Corrections: the holding unit may correct the parties and petitions it recorded, and every such
  update needs a reason in the same transaction; discrepancies, corrections, decisions, extensions
  and rule versions are covered by the audit chain.

Revision ID: 0012_officer_work
Revises: 0011_exchange
"""

from alembic import op

revision = "0012_officer_work"
down_revision = "0011_exchange"
branch_labels = None
depends_on = None

SQL = r"""
-- Deadline rules: events that start and end them -----------------------------------------------
ALTER TABLE kntc.deadline_rule DROP CONSTRAINT deadline_rule_step_check;
ALTER TABLE kntc.deadline_rule DROP CONSTRAINT deadline_rule_start_event_check;
ALTER TABLE kntc.deadline_rule
    ADD CONSTRAINT deadline_rule_step_check
        CHECK (step IN ('file', 'accept', 'transfer', 'notify_acceptance', 'resolve', 'correct_data')),
    -- receipt: the petition reaches the unit; acceptance: the decision to accept; known: the
    -- complainant learnt of the decision complained of; first_decision: the first-round decision;
    -- discovery: wrong data found.
    ADD CONSTRAINT deadline_rule_start_event_check
        CHECK (start_event IN ('receipt', 'acceptance', 'known', 'first_decision', 'discovery')),
    ADD COLUMN end_events text[] NOT NULL DEFAULT '{}',
    -- The k-th extension needs the case to be at least extension_levels[k] complex (TC-RESOLVE:
    -- once if complex, twice if especially complex); NULL: a reason suffices.
    ADD COLUMN extension_levels text[],
    ADD COLUMN version integer NOT NULL DEFAULT 1,
    ADD COLUMN effective_from date NOT NULL DEFAULT '2018-03-15';

UPDATE kntc.deadline_rule SET end_events = '{accept,forward,guide,file_away,return}' WHERE step = 'accept';
UPDATE kntc.deadline_rule SET end_events = '{forward,accept,guide,file_away,return}' WHERE step = 'transfer';
UPDATE kntc.deadline_rule SET end_events = '{notify_acceptance}' WHERE step = 'notify_acceptance';
UPDATE kntc.deadline_rule SET end_events = '{resolve}' WHERE step = 'resolve';
UPDATE kntc.deadline_rule SET end_events = '{correct}' WHERE step = 'correct_data';
UPDATE kntc.deadline_rule SET extension_levels = '{complex,especially_complex}' WHERE code = 'TC-RESOLVE';
UPDATE kntc.deadline_rule SET effective_from = '2012-07-01' WHERE code LIKE 'KN_-%';
UPDATE kntc.deadline_rule SET effective_from = '2019-01-01' WHERE code LIKE 'TC-%';

INSERT INTO kntc.deadline_rule (code, case_kind, step, complaint_round, days, day_unit, remote_days, start_event,
    end_events, legal_basis, description_vi, description_en, effective_from) VALUES
 ('KN1-FILE', 'complaint', 'file', 1, 90, 'days', NULL, 'known', '{receipt}', 'Luật Khiếu nại 2011, Điều 9',
  'Thời hiệu khiếu nại: 90 ngày kể từ ngày biết được quyết định, hành vi hành chính',
  'Time to file a complaint: 90 days from learning of the decision or act', '2012-07-01'),
 ('KN2-FILE', 'complaint', 'file', 2, 30, 'days', 45, 'first_decision', '{receipt}', 'Luật Khiếu nại 2011, Điều 33',
  'Khiếu nại lần hai: 30 ngày (vùng sâu, vùng xa 45 ngày) từ khi hết hạn hoặc nhận quyết định lần đầu',
  'Second complaint: 30 days (remote areas 45) from the first decision or the end of its limit', '2012-07-01');

ALTER TABLE kntc.deadline_rule ADD CONSTRAINT deadline_rule_ends CHECK (cardinality(end_events) > 0);

CREATE TABLE kntc.deadline_rule_version (
    code                text NOT NULL REFERENCES kntc.deadline_rule(code),
    version             integer NOT NULL CHECK (version >= 1),
    effective_from      date NOT NULL,
    days                integer NOT NULL CHECK (days > 0 AND days <= 3650),
    day_unit            text NOT NULL CHECK (day_unit IN ('days', 'working_days')),
    complex_days        integer CHECK (complex_days > 0),
    remote_days         integer CHECK (remote_days > 0),
    remote_complex_days integer CHECK (remote_complex_days > 0),
    extension_days      integer NOT NULL CHECK (extension_days >= 0),
    max_extensions      integer NOT NULL CHECK (max_extensions BETWEEN 0 AND 5),
    extension_levels    text[] CHECK (extension_levels <@ ARRAY['complex', 'especially_complex']),
    start_event         text NOT NULL CHECK (start_event IN ('receipt', 'acceptance', 'known', 'first_decision',
                            'discovery')),
    end_events          text[] NOT NULL CHECK (cardinality(end_events) > 0 AND end_events <@ ARRAY['receipt',
                            'accept', 'forward', 'guide', 'file_away', 'return', 'notify_acceptance', 'resolve',
                            'correct']),
    legal_basis         text NOT NULL CHECK (length(btrim(legal_basis)) >= 5),
    description_vi      text NOT NULL,
    description_en      text NOT NULL,
    reason              text NOT NULL CHECK (length(btrim(reason)) >= 10),
    edited_by           integer REFERENCES kntc.account(id),
    edited_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code, version)
);
CREATE INDEX deadline_rule_version_effective ON kntc.deadline_rule_version (code, effective_from DESC, version DESC);
INSERT INTO kntc.deadline_rule_version (code, version, effective_from, days, day_unit, complex_days, remote_days,
    remote_complex_days, extension_days, max_extensions, extension_levels, start_event, end_events, legal_basis,
    description_vi, description_en, reason)
SELECT code, 1, effective_from, days, day_unit, complex_days, remote_days, remote_complex_days, extension_days,
       max_extensions, extension_levels, start_event, end_events, legal_basis, description_vi, description_en,
       'Bản đầu tiên / first version, as shipped'
  FROM kntc.deadline_rule;

-- What application hosts compare their cached rulebook with: one row, bumped in the transaction of
-- every change that alters a due date (a rule version, a calendar override).
CREATE TABLE kntc.rulebook_stamp (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    stamp  bigint NOT NULL
);
INSERT INTO kntc.rulebook_stamp VALUES (true, 1);

CREATE FUNCTION kntc.rulebook_touch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE kntc.rulebook_stamp SET stamp = stamp + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER rulebook_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kntc.calendar_override
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.rulebook_touch();
CREATE TRIGGER rulebook_touch AFTER INSERT OR UPDATE OR DELETE ON kntc.deadline_rule_version
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.rulebook_touch();

-- A rule changes only through kntc.deadline_rule_edit: a row changed by hand would not be a version,
-- and the application would never see it.
CREATE FUNCTION kntc.deadline_rule_one_door() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    IF coalesce(current_setting('kntc.rule_edit', true), '') <> 'on' THEN
        RAISE EXCEPTION 'quy định thời hạn chỉ sửa qua kntc.deadline_rule_edit / deadline rules change only '
                        'through kntc.deadline_rule_edit' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER deadline_rule_one_door BEFORE UPDATE OR DELETE ON kntc.deadline_rule
    FOR EACH ROW EXECUTE FUNCTION kntc.deadline_rule_one_door();

-- A new version of a rule. Only a system administrator of a central unit (the rules are national
-- law), with a legal basis and a reason; not effective before the latest version (history stays in
-- order; the same day supersedes). p_rule holds only the fields that change.
CREATE FUNCTION kntc.deadline_rule_edit(p_code text, p_effective_from date, p_rule jsonb, p_reason text)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    lvl text;
    cur kntc.deadline_rule_version;
    nxt kntc.deadline_rule_version;
    bad text[];
BEGIN
    SELECT u.level INTO lvl FROM kntc.unit u WHERE u.id = a.unit_id;
    IF a.account_id IS NULL OR NOT ('sysadmin' = ANY (a.roles)) OR lvl IS DISTINCT FROM 'central' THEN
        RAISE EXCEPTION 'chỉ quản trị hệ thống cấp trung ương được sửa quy định thời hạn / only a central system '
                        'administrator may edit a deadline rule' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT array_agg(k) INTO bad FROM jsonb_object_keys(coalesce(p_rule, '{}')) k
     WHERE k NOT IN ('days', 'day_unit', 'complex_days', 'remote_days', 'remote_complex_days', 'extension_days',
                     'max_extensions', 'extension_levels', 'start_event', 'end_events', 'legal_basis',
                     'description_vi', 'description_en');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'trường không sửa được / fields that cannot be edited: %', array_to_string(bad, ', ')
            USING ERRCODE = 'check_violation';
    END IF;
    IF length(btrim(coalesce(p_rule ->> 'legal_basis', ''))) < 5 THEN
        RAISE EXCEPTION 'cần nêu căn cứ pháp lý của phiên bản mới / the new version needs its legal basis'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'rule_legal_basis';
    END IF;
    PERFORM 1 FROM kntc.deadline_rule r WHERE r.code = p_code FOR UPDATE;
    SELECT * INTO cur FROM kntc.deadline_rule_version v WHERE v.code = p_code ORDER BY v.version DESC LIMIT 1;
    IF cur.code IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_effective_from < (SELECT max(v.effective_from) FROM kntc.deadline_rule_version v WHERE v.code = p_code) THEN
        RAISE EXCEPTION 'ngày hiệu lực trước phiên bản mới nhất / effective before the latest version'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'rule_effective_order';
    END IF;
    nxt := jsonb_populate_record(cur, p_rule || jsonb_build_object(
        'version', cur.version + 1, 'effective_from', p_effective_from, 'reason', p_reason,
        'edited_by', a.account_id, 'edited_at', now()));
    INSERT INTO kntc.deadline_rule_version SELECT nxt.*;
    IF p_effective_from <= current_date THEN
        PERFORM set_config('kntc.rule_edit', 'on', true);
        UPDATE kntc.deadline_rule r SET days = nxt.days, day_unit = nxt.day_unit, complex_days = nxt.complex_days,
               remote_days = nxt.remote_days, remote_complex_days = nxt.remote_complex_days,
               extension_days = nxt.extension_days, max_extensions = nxt.max_extensions,
               extension_levels = nxt.extension_levels, start_event = nxt.start_event, end_events = nxt.end_events,
               legal_basis = nxt.legal_basis, description_vi = nxt.description_vi,
               description_en = nxt.description_en, version = nxt.version, effective_from = nxt.effective_from
         WHERE r.code = p_code;
        PERFORM set_config('kntc.rule_edit', '', true);
    END IF;
    RETURN nxt.version;
END $$;

-- Steps of a case: which rule version, which event ended it ------------------------------------
ALTER TABLE kntc.case_deadline ADD COLUMN rule_version integer, ADD COLUMN ended_by text;
ALTER TABLE kntc.case_file ADD COLUMN decision_known_on date;

CREATE TABLE kntc.deadline_extension (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id       uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    step          text NOT NULL,
    -- not "n" nor "o": the audit trigger names its rows so, and a column of that name would shadow them
    extension_no  integer NOT NULL CHECK (extension_no >= 1),
    days          integer NOT NULL CHECK (days > 0),
    level         text CHECK (level IN ('complex', 'especially_complex')),
    reason        text NOT NULL CHECK (length(btrim(reason)) >= 10 AND length(reason) <= 5000),
    decision_ref  text CHECK (length(decision_ref) <= 100),
    approved_by   integer NOT NULL REFERENCES kntc.account(id),
    unit_id       integer NOT NULL REFERENCES kntc.unit(id),
    approved_on   date NOT NULL,
    old_due_on    date NOT NULL,
    new_due_on    date NOT NULL CHECK (new_due_on > old_due_on),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, step, extension_no)
);
ALTER TABLE kntc.deadline_extension ENABLE ROW LEVEL SECURITY;
CREATE POLICY extension_read ON kntc.deadline_extension FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
-- The approver is the head of the unit holding the case, acting now.
CREATE POLICY extension_write ON kntc.deadline_extension FOR INSERT WITH CHECK (
    approved_by = (SELECT (kntc.actor()).account_id)
    AND unit_id = (SELECT (kntc.actor()).unit_id)
    AND 'head' = ANY ((SELECT (kntc.actor()).roles)::text[])
    AND EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));

-- A later due date, or one more extension, only with its extension row and within the rule version.
CREATE FUNCTION kntc.case_deadline_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    allowed integer;
BEGIN
    IF NEW.starts_on IS DISTINCT FROM OLD.starts_on OR NEW.rule_code IS DISTINCT FROM OLD.rule_code THEN
        RETURN NEW;  -- the step started again (a forward, a second round): a new count
    END IF;
    IF NEW.extensions > OLD.extensions OR NEW.due_on > OLD.due_on THEN
        SELECT coalesce(v.max_extensions, r.max_extensions) INTO allowed
          FROM kntc.deadline_rule r
          LEFT JOIN kntc.deadline_rule_version v ON v.code = r.code AND v.version = NEW.rule_version
         WHERE r.code = NEW.rule_code;
        IF NEW.extensions > coalesce(allowed, 0) OR NOT EXISTS (
                SELECT 1 FROM kntc.deadline_extension e
                 WHERE e.case_id = NEW.case_id AND e.step = NEW.step AND e.extension_no = NEW.extensions
                   AND e.new_due_on = NEW.due_on) THEN
            RAISE EXCEPTION 'gia hạn cần quyết định gia hạn hợp lệ / an extension needs a valid extension decision'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'deadline_extension_required';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER case_deadline_guard BEFORE UPDATE ON kntc.case_deadline
    FOR EACH ROW EXECUTE FUNCTION kntc.case_deadline_guard();

-- Duplicate decision before a petition is recorded --------------------------------------------
ALTER TABLE kntc.dedup_check ALTER COLUMN account_id DROP NOT NULL,
    ADD COLUMN source text NOT NULL DEFAULT 'officer' CHECK (source IN ('officer', 'import')),
    ADD CONSTRAINT dedup_check_who CHECK (source = 'import' OR account_id IS NOT NULL);
ALTER TABLE kntc.dedup_decision ALTER COLUMN account_id DROP NOT NULL,
    ADD COLUMN source text NOT NULL DEFAULT 'officer' CHECK (source IN ('officer', 'import')),
    ADD CONSTRAINT dedup_decision_who CHECK (source = 'import' OR account_id IS NOT NULL);
CREATE INDEX dedup_decision_case ON kntc.dedup_decision (case_id);
ALTER TABLE kntc.petition ADD COLUMN intake_check_id uuid UNIQUE REFERENCES kntc.dedup_check(id);

-- What an officer's petition must carry: their own check, at most 12 hours old (a check is what was
-- shown; a day later the register may hold the matter), used by no other petition (UNIQUE).
CREATE FUNCTION kntc.petition_intake_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    chk kntc.dedup_check;
BEGIN
    IF a.account_id IS NULL THEN
        RETURN NEW;  -- the operator's paths (legacy import) record their checks and decisions themselves
    END IF;
    IF NEW.intake_check_id IS NULL THEN
        RAISE EXCEPTION 'chưa kiểm tra trùng: hãy kiểm tra trùng trước khi ghi nhận đơn / no duplicate check: run the '
                        'duplicate check before recording a petition' USING ERRCODE = 'KD001';
    END IF;
    SELECT * INTO chk FROM kntc.dedup_check c WHERE c.id = NEW.intake_check_id;
    IF chk.id IS NULL OR chk.account_id IS DISTINCT FROM a.account_id OR chk.at < now() - interval '12 hours' THEN
        RAISE EXCEPTION 'lần kiểm tra trùng không hợp lệ hoặc đã quá 12 giờ / the duplicate check is not yours or is '
                        'more than 12 hours old' USING ERRCODE = 'KD002';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER petition_intake_guard BEFORE INSERT ON kntc.petition
    FOR EACH ROW EXECUTE FUNCTION kntc.petition_intake_guard();

-- By commit the check holds the decision about this petition: a new case (this case), or linked (this
-- petition). A new case's parties' ID numbers must have been among those checked.
CREATE FUNCTION kntc.petition_intake_decided() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    d kntc.dedup_decision;
BEGIN
    IF NEW.intake_check_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO d FROM kntc.dedup_decision x WHERE x.check_id = NEW.intake_check_id;
    IF d.id IS NULL OR NOT ((d.decision = 'new' AND d.case_id = NEW.case_id)
                            OR (d.decision = 'linked' AND d.petition_id = NEW.id)) THEN
        RAISE EXCEPTION 'đơn chưa có quyết định sau kiểm tra trùng / the petition has no duplicate decision'
            USING ERRCODE = 'KD003';
    END IF;
    IF d.decision = 'new' AND EXISTS (
            SELECT 1 FROM kntc.party p JOIN kntc.dedup_check c ON c.id = NEW.intake_check_id
             WHERE p.case_id = NEW.case_id AND p.id_number IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(c.query -> 'parties', '[]')) q
                                WHERE q ->> 'id_number' = p.id_number)) THEN
        RAISE EXCEPTION 'số định danh chưa được kiểm tra trùng / an ID number of the case was not checked'
            USING ERRCODE = 'KD002';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER petition_intake_decided AFTER INSERT ON kntc.petition
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kntc.petition_intake_decided();

-- A case an officer opens has, by commit, its first petition decided 'new'.
CREATE FUNCTION kntc.case_intake_decided() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF (kntc.actor()).account_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kntc.dedup_decision d JOIN kntc.petition p ON p.intake_check_id = d.check_id
                    WHERE d.case_id = NEW.id AND d.decision = 'new' AND p.case_id = NEW.id) THEN
        RAISE EXCEPTION 'hồ sơ mới chưa có quyết định sau kiểm tra trùng / a new case file has no duplicate decision'
            USING ERRCODE = 'KD003';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER case_intake_decided AFTER INSERT ON kntc.case_file
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kntc.case_intake_decided();

-- Legacy addresses: the unit as written beside its current successor ---------------------------
ALTER TABLE kntc.party ADD COLUMN address_unit_written_id integer REFERENCES kntc.unit(id);

-- Matching: the rules of 0006, with one change. A name matched at the same address whose party has
-- another personal ID number than the one given is another person: no name evidence, only a low note.
DROP FUNCTION kntc.dedup_candidates(jsonb, text[], text[], integer[], text, text, integer);
DROP FUNCTION kntc.dedup_match(text[], text[], integer[], text, text, integer, uuid);
CREATE FUNCTION kntc.dedup_match(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                 p_respondent text, p_limit integer DEFAULT 20, p_exclude uuid DEFAULT NULL,
                                 p_name_ids text[] DEFAULT NULL)
RETURNS TABLE (case_id uuid, reasons text[], score real, subject_sim real, respondent_sim real)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    qs text := coalesce(kntc.norm(p_subject), '');
    qr text := kntc.norm(p_respondent);
    qs_codes integer[] := kntc.trigram_codes(qs);
BEGIN
    RETURN QUERY
    WITH qp AS MATERIALIZED (
        SELECT DISTINCT kntc.norm(t.n) AS n, t.u, kntc.trigram_codes(kntc.norm(t.n)) AS codes, t.i AS idn
          FROM unnest(coalesce(p_names, '{}'), coalesce(p_units, '{}'), coalesce(p_name_ids, '{}')) AS t(n, u, i)
         WHERE t.n IS NOT NULL AND t.u IS NOT NULL
    ), near AS (
        -- The ID comparison reads the party row, so it runs only for the few neighbours that passed.
        SELECT k.case_id, max(x.ns) FILTER (WHERE NOT (qp.idn IS NOT NULL AND EXISTS (
                   SELECT 1 FROM kntc.party p WHERE p.id = k.party_id AND p.id_number IS NOT NULL
                                                AND p.id_number <> qp.idn))) AS ns
          FROM qp JOIN kntc.dedup_key k ON k.address_unit_id = qp.u
         CROSS JOIN LATERAL (SELECT kntc.code_similarity(k.name_codes, qp.codes) AS ns,
                                    kntc.code_similarity(k.subject_codes, qs_codes) AS ss) x
         WHERE (x.ss >= 0.39 OR (x.ns >= 0.69 AND x.ss >= 0.29))
           AND (NOT k.protected OR kntc.handles_case(k.case_id))
         GROUP BY k.case_id
    ), hits AS (
        SELECT p.case_id, 'id_number'::text AS reason, 1.0::real AS w
          FROM kntc.party p
         WHERE p.id_number = ANY (coalesce(p_ids, '{}'))
           AND (NOT p.identity_protected OR kntc.handles_case(p.case_id))
        UNION ALL
        SELECT p.case_id,
               CASE WHEN qp.idn IS NOT NULL AND p.id_number IS NOT NULL AND p.id_number <> qp.idn
                    THEN 'same_name_other_id' ELSE 'name_address' END,
               CASE WHEN qp.idn IS NOT NULL AND p.id_number IS NOT NULL AND p.id_number <> qp.idn
                    THEN 0.0 ELSE 0.8 END::real
          FROM qp JOIN kntc.party p ON p.address_unit_id = qp.u AND p.name_norm = qp.n
         WHERE NOT p.identity_protected OR kntc.handles_case(p.case_id)
        UNION ALL
        SELECT n.case_id, 'near', n.ns FROM near n
    ), per_case AS (
        SELECT h.case_id,
               array_agg(DISTINCT h.reason) FILTER (WHERE h.reason NOT IN ('near', 'same_name_other_id')) AS strong,
               max(h.w) FILTER (WHERE h.reason NOT IN ('near', 'same_name_other_id')) AS person_w,
               coalesce(max(h.w) FILTER (WHERE h.reason = 'near'), 0) AS name_sim,
               bool_or(h.reason = 'same_name_other_id') AS other_person
          FROM hits h
         WHERE h.case_id IS DISTINCT FROM p_exclude
         GROUP BY h.case_id
    ), scored AS MATERIALIZED (
        SELECT pc.case_id, pc.strong, pc.person_w, pc.name_sim, pc.other_person,
               CASE WHEN qs = '' THEN 0 ELSE similarity(c.subject_norm, qs) END::real AS ss,
               CASE WHEN qr IS NULL OR c.respondent_norm IS NULL THEN 0
                    ELSE similarity(c.respondent_norm, qr) END::real AS rs
          FROM per_case pc JOIN kntc.case_file c ON c.id = pc.case_id
    ), judged AS MATERIALIZED (
        SELECT s.*,
               coalesce(s.strong, '{}')
               || CASE WHEN s.strong IS NULL AND s.name_sim >= 0.7 AND s.ss >= 0.3
                       THEN '{similar_name_address}'::text[] ELSE '{}' END
               || CASE WHEN s.ss >= 0.6 OR (s.ss >= 0.4 AND s.rs >= 0.6) THEN '{similar_subject}'::text[]
                       ELSE '{}' END
               || CASE WHEN s.rs >= 0.6 THEN '{similar_respondent}'::text[] ELSE '{}' END
               || CASE WHEN s.strong IS NULL AND s.other_person THEN '{same_name_other_id}'::text[]
                       ELSE '{}' END AS why
          FROM scored s
    )
    SELECT j.case_id, j.why,
           (0.6 * coalesce(j.person_w, CASE WHEN 'similar_name_address' = ANY (j.why) THEN 0.5 * j.name_sim ELSE 0 END)
            + 0.3 * j.ss + 0.1 * j.rs)::real AS score,
           j.ss, j.rs
      FROM judged j
     WHERE j.strong IS NOT NULL OR 'similar_name_address' = ANY (j.why) OR 'similar_subject' = ANY (j.why)
        OR 'same_name_other_id' = ANY (j.why)
     ORDER BY 3 DESC, 1
     LIMIT p_limit;
END $$;
"""

# kntc.dedup_candidates of 0011 (a connected system's own budget), with the ID number of each named
# party passed on to the match.
CANDIDATES = r"""
CREATE FUNCTION kntc.dedup_candidates(p_query jsonb, p_ids text[], p_names text[], p_units integer[],
                                      p_subject text, p_respondent text, p_limit integer DEFAULT 10,
                                      p_name_ids text[] DEFAULT NULL)
RETURNS TABLE (check_id uuid, readable boolean, case_code text, subject text, kind text, status text,
               received_on date, unit_code text, unit_name text, reasons text[], score real, handle uuid)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    a kntc.actor := kntc.actor();
    chk uuid := gen_random_uuid();
    lead uuid;
    hidden uuid[];
    seen jsonb;
    shown jsonb;
    budget record;
    -- A connected system checks every petition it submits: its own, larger budget (still per client).
    budget_kind text := CASE WHEN kntc.exchange_client_id() IS NULL THEN 'dedup' ELSE 'exchange_dedup' END;
BEGIN
    IF a.account_id IS NULL OR NOT (a.roles && ARRAY['reception', 'handling', 'head']) THEN
        RAISE EXCEPTION 'duplicate check refused: no officer acting with an intake role'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR budget IN SELECT * FROM kntc.throttle_hit(budget_kind || '_minute', a.account_id::text)
                  UNION ALL SELECT * FROM kntc.throttle_hit(budget_kind || '_day', a.account_id::text) LOOP
        IF NOT budget.allowed THEN
            RAISE EXCEPTION 'too many duplicate checks' USING ERRCODE = 'KT429',
                DETAIL = budget.retry_after_s::text;
        END IF;
    END LOOP;
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.case_id, 'reasons', to_jsonb(r.reasons),
                                                 'score', round(r.score::numeric, 3), 'ok', r.ok)), '[]')
      INTO seen
      FROM (SELECT m.*, v.ok, row_number() OVER (PARTITION BY v.ok ORDER BY m.score DESC, m.case_id) AS rank
              FROM kntc.dedup_match(p_ids, p_names, p_units, p_subject, p_respondent, 200, NULL, p_name_ids) m
              JOIN kntc.case_file c ON c.id = m.case_id
             CROSS JOIN LATERAL (SELECT c.classification <= a.clearance
                                        AND (c.handling_unit_path <@ a.scope_path
                                             OR c.receiving_unit_path <@ a.scope_path) AS ok) v) r
     WHERE NOT r.ok OR r.rank <= p_limit;
    SELECT array_agg((e ->> 'id')::uuid ORDER BY e ->> 'id') INTO hidden
      FROM jsonb_array_elements(seen) e WHERE NOT (e ->> 'ok')::boolean;
    SELECT coalesce(jsonb_agg(jsonb_build_object('case_code', c.code, 'unit_code', u.code, 'reasons', e -> 'reasons',
                                                 'score', e -> 'score') ORDER BY (e ->> 'score')::real DESC, c.code),
                    '[]')
      INTO shown
      FROM jsonb_array_elements(seen) e
      JOIN kntc.case_file c ON c.id = (e ->> 'id')::uuid JOIN kntc.unit u ON u.id = c.handling_unit_id
     WHERE (e ->> 'ok')::boolean;
    IF hidden IS NOT NULL THEN
        shown := shown || jsonb_build_array(jsonb_build_object('held_elsewhere', true));
    END IF;
    INSERT INTO kntc.dedup_check (id, account_id, unit_id, unit_path, query, candidates)
    VALUES (chk, a.account_id, a.unit_id, a.unit_path, coalesce(p_query, '{}'), shown);
    IF hidden IS NOT NULL THEN
        INSERT INTO kntc.dedup_lead (check_id, account_id, case_ids) VALUES (chk, a.account_id, hidden)
        RETURNING dedup_lead.handle INTO lead;
    END IF;
    RETURN QUERY
    SELECT chk, true, c.code, c.subject, c.kind, c.status, c.received_on, u.code, u.name,
           ARRAY(SELECT jsonb_array_elements_text(e -> 'reasons')), (e ->> 'score')::real, NULL::uuid
      FROM jsonb_array_elements(seen) e
      JOIN kntc.case_file c ON c.id = (e ->> 'id')::uuid JOIN kntc.unit u ON u.id = c.handling_unit_id
     WHERE (e ->> 'ok')::boolean
    UNION ALL
    SELECT chk, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, lead WHERE lead IS NOT NULL
    UNION ALL
    SELECT chk, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE seen = '[]'::jsonb
    ORDER BY 2 DESC NULLS LAST, 11 DESC NULLS LAST, 3;
END $$;
"""

CORRECTIONS = r"""
-- Corrections: the holding unit corrects the parties and petitions of its cases, with a reason ---
GRANT UPDATE (role, party_kind, full_name, id_number, address, address_unit_id, address_unit_written_id, phone,
              email) ON kntc.party TO kntc_app;
GRANT UPDATE (received_on, channel, content, people_count) ON kntc.petition TO kntc_app;
CREATE POLICY party_correct ON kntc.party FOR UPDATE
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                   AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id))
           AND (NOT identity_protected OR kntc.handles_case(case_id))
           AND NOT ('external_reader' = ANY ((SELECT (kntc.actor()).roles)::text[])))
    WITH CHECK (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                        AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));
CREATE POLICY petition_correct ON kntc.petition FOR UPDATE
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                   AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id))
           AND NOT ('external_reader' = ANY ((SELECT (kntc.actor()).roles)::text[])))
    WITH CHECK (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                        AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));

-- An officer's change to recorded data states why (kntc.change_reason, set in the same transaction);
-- the audit chain keeps the before and after.
CREATE FUNCTION kntc.correction_reason_required() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF (kntc.actor()).account_id IS NOT NULL
       AND length(btrim(coalesce(current_setting('kntc.change_reason', true), ''))) < 3 THEN
        RAISE EXCEPTION 'cần nêu lý do sửa dữ liệu / a correction needs a reason'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'correction_reason';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER party_correction_reason BEFORE UPDATE OF role, party_kind, full_name, id_number, address,
    address_unit_id, address_unit_written_id, phone, email ON kntc.party
    FOR EACH ROW EXECUTE FUNCTION kntc.correction_reason_required();
CREATE TRIGGER petition_correction_reason BEFORE UPDATE OF received_on, channel, content, people_count
    ON kntc.petition FOR EACH ROW EXECUTE FUNCTION kntc.correction_reason_required();

-- Audit chain over the new records of the work ---------------------------------------------------
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.discrepancy REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_upd AFTER UPDATE ON kntc.discrepancy REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.correction REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.dedup_decision REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.deadline_extension REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.deadline_rule_version REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('code', 'version');
CREATE TRIGGER audit_upd AFTER UPDATE ON kntc.deadline_rule REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('code');

-- What an officer typed at a check (names, ID numbers: a protected denouncer's too, now that every
-- intake runs one) is theirs alone: others of the area see that a check was made and what it
-- proposed, never the query.
REVOKE SELECT ON kntc.dedup_check FROM kntc_app;
GRANT SELECT (id, at, account_id, unit_id, unit_path, candidates, source) ON kntc.dedup_check TO kntc_app;
CREATE FUNCTION kntc.dedup_check_parties(p_check uuid) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT coalesce(c.query -> 'parties', '[]') FROM kntc.dedup_check c
     WHERE c.id = p_check AND c.account_id = (kntc.actor()).account_id
$$;

-- Least privilege ---------------------------------------------------------------------------------
GRANT SELECT ON kntc.deadline_rule_version, kntc.rulebook_stamp TO kntc_app, kntc_readonly;
GRANT SELECT, INSERT ON kntc.deadline_extension TO kntc_app;
GRANT SELECT ON kntc.deadline_extension TO kntc_readonly;
REVOKE ALL ON FUNCTION kntc.rulebook_touch(), kntc.deadline_rule_one_door(), kntc.case_deadline_guard(),
    kntc.petition_intake_guard(), kntc.petition_intake_decided(), kntc.case_intake_decided(),
    kntc.correction_reason_required(), kntc.deadline_rule_edit(text, date, jsonb, text),
    kntc.dedup_check_parties(uuid),
    kntc.dedup_match(text[], text[], integer[], text, text, integer, uuid, text[]),
    kntc.dedup_candidates(jsonb, text[], text[], integer[], text, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.deadline_rule_edit(text, date, jsonb, text), kntc.dedup_check_parties(uuid),
    kntc.dedup_candidates(jsonb, text[], text[], integer[], text, text, integer, text[]) TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)
    op.execute(CANDIDATES)
    op.execute(CORRECTIONS)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
