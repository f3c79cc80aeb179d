"""Confidentiality at intake and in accounts: the duplicate check tells an officer only what they may
read, a protected denouncer is matched only for those handling the case, lowering a classification
is the head's decision, administrators grant no more than their own level, and the counters that
throttle logins, lookups, API calls and duplicate checks live in the database, shared by every
worker of every application host.

Why each, in runbooks/security.md (threat table). In short:
- kntc.dedup_candidates returned unit, score and reasons for cases outside the caller's scope or
  clearance (secret ones included) and matched a protected denouncer's ID number for anyone. Now
  a case the caller may not read is one line, "a possible existing case is held elsewhere", with a
  random handle; the check is recorded by the function itself (what was shown, and apart, what
  was hidden), and the officer asks the holding unit's head through kntc.dedup_inquire.
- Any officer of the holding unit could lower a classification; the account policies let a unit
  administrator create heads and administrators of their own unit.
- Throttling was per worker process; five app hosts with two workers each counted ten times.

Revision ID: 0006_confidential_dedup
Revises: 0005_search_by_few_parties
"""

from alembic import op

revision = "0006_confidential_dedup"
down_revision = "0005_search_by_few_parties"
branch_labels = None
depends_on = None

SQL = r"""
-- Throttle counters -------------------------------------------------------------------------
-- The budgets are data (like the deadline rules): an operator may tune one without a release, a
-- benchmark database may raise one, and the application role can neither read nor choose them.
CREATE TABLE kntc.throttle_rule (
    purpose      text PRIMARY KEY,
    window_s     integer NOT NULL CHECK (window_s > 0),
    max_hits     integer NOT NULL CHECK (max_hits > 0),
    -- Progressive delay: past `free_hits` in the window, each further hit must wait
    -- 2^(hits - free_hits - 1) seconds after the last one, at most `max_delay_s`.
    free_hits    integer CHECK (free_hits >= 0),
    max_delay_s  integer NOT NULL DEFAULT 0 CHECK (max_delay_s >= 0),
    description  text NOT NULL
);
INSERT INTO kntc.throttle_rule VALUES
 ('login_pair',     900,   20,    3, 300, 'failed logins to one account from one address'),
 ('login_address',  900,   10, NULL,   0, 'failed logins from one address, all accounts (a password spray)'),
 ('login_account', 3600,  100, NULL,   0, 'failed logins to one account from every address; past it only '
                                          'addresses it logged in from before may try'),
 ('login_known', 2592000, 1000000, NULL, 0, 'addresses an account logged in from (30 days)'),
 ('lookup_fail',    900,   30,    3,   8, 'failed citizen lookups from one address'),
 ('api_session',     60,  600, NULL,   0, 'API calls of one session'),
 ('api_address',     60,  300, NULL,   0, 'API calls without a session from one address'),
 ('dedup_minute',    60,   20, NULL,   0, 'duplicate checks of one officer per minute'),
 ('dedup_day',    86400,  600, NULL,   0, 'duplicate checks of one officer per day');

-- Counters only: UNLOGGED, so a hit writes no WAL and its commit does not wait for a flush; they
-- are not replicated nor backed up and start empty after a crash or a failover, which costs an
-- attacker's budget nothing worth having and keeps addresses out of the backups.
CREATE UNLOGGED TABLE kntc.throttle (
    purpose      text NOT NULL REFERENCES kntc.throttle_rule(purpose),
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    prev_hits    integer NOT NULL DEFAULT 0,
    last_at      timestamptz NOT NULL,
    PRIMARY KEY (purpose, key)
) WITH (fillfactor = 70);  -- room for HOT updates: a hit rewrites the row in place
REVOKE ALL ON kntc.throttle, kntc.throttle_rule FROM PUBLIC, kntc_app, kntc_readonly;

-- A sliding window from two fixed ones: the current window's hits plus the previous window's,
-- weighted by how much of it still lies within `window_s` of now. Plain arithmetic in each
-- function rather than a shared helper: a function call per hit cost more than the upsert itself.

-- Where a throttle stands, without counting: hits in the window, whether the budget is spent, and
-- how long the progressive delay still asks to wait.
CREATE FUNCTION kntc.throttle_state(p_purpose text, p_key text)
RETURNS TABLE (hits integer, blocked boolean, wait_s integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    r kntc.throttle_rule;
    t_start timestamptz;
    t_hits integer;
    t_prev integer;
    t_last timestamptz;
    age double precision;
    n integer := 0;
    d double precision := 0;
BEGIN
    SELECT * INTO STRICT r FROM kntc.throttle_rule x WHERE x.purpose = p_purpose;
    SELECT x.window_start, x.hits, x.prev_hits, x.last_at INTO t_start, t_hits, t_prev, t_last
      FROM kntc.throttle x WHERE x.purpose = p_purpose AND x.key = p_key;
    IF t_start IS NOT NULL THEN
        age := extract(epoch FROM now() - t_start) / r.window_s;
        n := CASE WHEN age < 1 THEN t_hits + floor(t_prev * (1 - age))::integer
                  WHEN age < 2 THEN floor(t_hits * (2 - age))::integer ELSE 0 END;
    END IF;
    IF r.free_hits IS NOT NULL AND n > r.free_hits THEN
        d := least(r.max_delay_s, 2 ^ least(n - r.free_hits - 1, 20)) - extract(epoch FROM clock_timestamp() - t_last);
    END IF;
    hits := n;
    blocked := n >= r.max_hits;
    wait_s := greatest(0, ceil(d))::integer;
    RETURN NEXT;
END $$;

-- Count one hit; the answer is the state after it.
CREATE FUNCTION kntc.throttle_hit(p_purpose text, p_key text)
RETURNS TABLE (hits integer, allowed boolean, retry_after_s integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    w integer;
    lim integer;
    cur timestamptz;
    t_hits integer;
    t_prev integer;
    n integer;
BEGIN
    SELECT x.window_s, x.max_hits INTO STRICT w, lim FROM kntc.throttle_rule x WHERE x.purpose = p_purpose;
    cur := to_timestamp(floor(extract(epoch FROM now()) / w) * w);
    INSERT INTO kntc.throttle AS x (purpose, key, window_start, hits, prev_hits, last_at)
    -- last_at is the moment of the hit, not the start of the transaction: a failed login is
    -- counted after the password check, and the delay runs from then.
    VALUES (p_purpose, p_key, cur, 1, 0, clock_timestamp())
    ON CONFLICT (purpose, key) DO UPDATE SET
        hits = CASE WHEN x.window_start = cur THEN x.hits + 1 ELSE 1 END,
        prev_hits = CASE WHEN x.window_start = cur THEN x.prev_hits
                         WHEN x.window_start = cur - make_interval(secs => w) THEN x.hits ELSE 0 END,
        window_start = cur, last_at = clock_timestamp()
    RETURNING x.hits, x.prev_hits INTO t_hits, t_prev;
    n := t_hits + floor(t_prev * (1 - extract(epoch FROM now() - cur) / w))::integer;
    -- Expired rows go a few at a time, by whoever passes (about one hit in a thousand).
    IF random() < 0.001 THEN
        DELETE FROM kntc.throttle d USING kntc.throttle_rule dr
         WHERE dr.purpose = d.purpose AND d.last_at < now() - make_interval(secs => 2 * dr.window_s);
    END IF;
    hits := n;
    allowed := n <= lim;
    retry_after_s := CASE WHEN n <= lim THEN 0
                          ELSE ceil(extract(epoch FROM cur + make_interval(secs => w) - now()))::integer END;
    RETURN NEXT;
END $$;

-- A successful login forgives that address's failures on that account, and nothing else.
CREATE FUNCTION kntc.throttle_forgive_login(p_key text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DELETE FROM kntc.throttle WHERE purpose = 'login_pair' AND key = p_key;
$$;

-- The global lock after five failures let anyone lock every officer out by typing wrong
-- passwords; failures are now counted per account and address (kntc.throttle). The count on
-- the account stays, for support to read.
CREATE OR REPLACE FUNCTION kntc.login_result(p_account_id integer, p_ok boolean, p_new_hash text DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE kntc.account
       SET failed_logins = CASE WHEN p_ok THEN 0 ELSE failed_logins + 1 END,
           password_hash = coalesce(p_new_hash, password_hash)
     WHERE id = p_account_id
$$;

-- Duplicate check -----------------------------------------------------------------------------
-- The neighbourhood of an address keeps whether the party is a protected denouncer, so the match
-- can leave them out for those not handling the case without reading the party rows.
ALTER TABLE kntc.dedup_key ADD COLUMN protected boolean NOT NULL DEFAULT false;
UPDATE kntc.dedup_key k SET protected = true FROM kntc.party p WHERE p.id = k.party_id AND p.identity_protected;
DROP INDEX kntc.dedup_key_unit;
CREATE INDEX dedup_key_unit ON kntc.dedup_key (address_unit_id)
    INCLUDE (case_id, name_codes, subject_codes, respondent_codes, protected);

CREATE OR REPLACE FUNCTION kntc.dedup_key_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO kntc.dedup_key (party_id, case_id, address_unit_id, name_codes, subject_codes, respondent_codes,
                                protected)
    SELECT a.id, a.case_id, a.address_unit_id, kntc.trigram_codes(a.name_norm),
           coalesce(kntc.trigram_codes(c.subject_norm), '{}'), kntc.trigram_codes(c.respondent_norm),
           a.identity_protected
      FROM added a JOIN kntc.case_file c ON c.id = a.case_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kntc.dedup_key_party_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE kntc.dedup_key k
       SET case_id = NEW.case_id, address_unit_id = NEW.address_unit_id,
           name_codes = kntc.trigram_codes(NEW.name_norm),
           subject_codes = coalesce(kntc.trigram_codes(c.subject_norm), '{}'),
           respondent_codes = kntc.trigram_codes(c.respondent_norm),
           protected = NEW.identity_protected
      FROM kntc.case_file c
     WHERE k.party_id = NEW.id AND c.id = NEW.case_id;
    RETURN NULL;
END $$;
DROP TRIGGER party_dedup_key_changed ON kntc.party;
CREATE TRIGGER party_dedup_key_changed
    AFTER UPDATE OF full_name, address_unit_id, case_id, identity_protected ON kntc.party
    FOR EACH ROW EXECUTE FUNCTION kntc.dedup_key_party_changed();

-- The rules and figures of 0004; what changes is who is matched: a protected denouncer's ID
-- number, name and neighbourhood count only for those handling that case (kntc.handles_case),
-- exactly as party_read lets them read the party.
CREATE OR REPLACE FUNCTION kntc.dedup_match(p_ids text[], p_names text[], p_units integer[], p_subject text,
                                            p_respondent text, p_limit integer DEFAULT 20,
                                            p_exclude uuid DEFAULT NULL)
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
        SELECT DISTINCT kntc.norm(t.n) AS n, t.u, kntc.trigram_codes(kntc.norm(t.n)) AS codes
          FROM unnest(coalesce(p_names, '{}'), coalesce(p_units, '{}')) AS t(n, u)
         WHERE t.n IS NOT NULL AND t.u IS NOT NULL
    ), near AS (
        SELECT k.case_id, max(x.ns) AS ns
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
        SELECT p.case_id, 'name_address', 0.8
          FROM qp JOIN kntc.party p ON p.address_unit_id = qp.u AND p.name_norm = qp.n
         WHERE NOT p.identity_protected OR kntc.handles_case(p.case_id)
        UNION ALL
        SELECT n.case_id, 'near', n.ns FROM near n
    ), per_case AS (
        SELECT h.case_id,
               array_agg(DISTINCT h.reason) FILTER (WHERE h.reason <> 'near') AS strong,
               max(h.w) FILTER (WHERE h.reason <> 'near') AS person_w,
               coalesce(max(h.w) FILTER (WHERE h.reason = 'near'), 0) AS name_sim
          FROM hits h
         WHERE h.case_id IS DISTINCT FROM p_exclude
         GROUP BY h.case_id
    ), scored AS MATERIALIZED (
        SELECT pc.case_id, pc.strong, pc.person_w, pc.name_sim,
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

-- What was hidden from the officer at a check: owner and auditors only. The handle is what the
-- officer holds; it names no case, no unit and no count.
CREATE TABLE kntc.dedup_lead (
    handle      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    check_id    uuid NOT NULL UNIQUE REFERENCES kntc.dedup_check(id),
    account_id  integer NOT NULL REFERENCES kntc.account(id),
    case_ids    uuid[] NOT NULL CHECK (cardinality(case_ids) > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kntc.dedup_lead FROM PUBLIC, kntc_app;
GRANT SELECT ON kntc.dedup_lead TO kntc_readonly;

-- An officer told only "held elsewhere" decides "elsewhere" without knowing the unit: the
-- decision then names the handle, and the unit stays out of the asker's records.
ALTER TABLE kntc.dedup_decision ADD COLUMN lead_handle uuid REFERENCES kntc.dedup_lead(handle);
DO $$
DECLARE
    n text;
BEGIN
    SELECT conname INTO STRICT n FROM pg_constraint
     WHERE conrelid = 'kntc.dedup_decision'::regclass AND contype = 'c'
       AND pg_get_constraintdef(oid) LIKE '%elsewhere%other_unit_id%';
    EXECUTE format('ALTER TABLE kntc.dedup_decision DROP CONSTRAINT %I', n);
END $$;
ALTER TABLE kntc.dedup_decision ADD CONSTRAINT dedup_decision_elsewhere
    CHECK (decision <> 'elsewhere' OR other_unit_id IS NOT NULL OR lead_handle IS NOT NULL);

-- An officer's question to the unit holding a case they may not read: one notice per holding
-- unit, listed to its heads. The asker learns nothing from it but that it was sent.
CREATE TABLE kntc.dedup_inquiry (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    handle          uuid NOT NULL REFERENCES kntc.dedup_lead(handle),
    asked_at        timestamptz NOT NULL DEFAULT now(),
    asker_id        integer NOT NULL REFERENCES kntc.account(id),
    asker_unit_id   integer NOT NULL REFERENCES kntc.unit(id),
    reason          text NOT NULL CHECK (length(reason) BETWEEN 10 AND 2000),
    petition_ref    text CHECK (length(petition_ref) <= 200),
    holder_unit_id  integer NOT NULL REFERENCES kntc.unit(id),
    case_ids        uuid[] NOT NULL,
    seen_at         timestamptz,
    UNIQUE (handle, holder_unit_id)
);
CREATE INDEX dedup_inquiry_holder ON kntc.dedup_inquiry (holder_unit_id, asked_at DESC);
REVOKE ALL ON kntc.dedup_inquiry FROM PUBLIC, kntc_app;
GRANT SELECT ON kntc.dedup_inquiry TO kntc_readonly;
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.dedup_inquiry REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');

-- What an officer may be told, and the record of it, in one call: the check cannot be run
-- without being recorded, nor recorded differently from what was shown.
--   readable (in the officer's area and within their clearance): the case, score and reasons;
--   anything else: one row, whatever the number of such cases, with no unit, score, reason or
--   place in the ranking (it comes last), "a possible existing case is held elsewhere", and a
--   handle to ask about it (kntc.dedup_inquire).
-- The unit is withheld too: "unit X holds a case about this person" is itself the leak a secret
-- denunciation must not suffer (the denounced official knows which inspectorate handles them).
-- Checks are counted per officer (kntc.throttle_rule dedup_*): past the budget, SQLSTATE KT429.
DROP FUNCTION kntc.dedup_candidates(text[], text[], integer[], text, text, integer);
CREATE FUNCTION kntc.dedup_candidates(p_query jsonb, p_ids text[], p_names text[], p_units integer[],
                                      p_subject text, p_respondent text, p_limit integer DEFAULT 10)
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
BEGIN
    IF a.account_id IS NULL OR NOT (a.roles && ARRAY['reception', 'handling', 'head']) THEN
        RAISE EXCEPTION 'duplicate check refused: no officer acting with an intake role'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR budget IN SELECT * FROM kntc.throttle_hit('dedup_minute', a.account_id::text)
                  UNION ALL SELECT * FROM kntc.throttle_hit('dedup_day', a.account_id::text) LOOP
        IF NOT budget.allowed THEN
            RAISE EXCEPTION 'too many duplicate checks' USING ERRCODE = 'KT429',
                DETAIL = budget.retry_after_s::text;
        END IF;
    END LOOP;
    -- The candidates as one value (a few dozen at most): no temporary table, whose catalog rows
    -- every check would create and drop. The match is asked for many more than the officer wants,
    -- so that hidden cases do not take the places of readable ones: how many readable cases come
    -- back must not tell how many hidden ones outrank them (the match scores every neighbour
    -- before its LIMIT, so this costs nothing).
    SELECT coalesce(jsonb_agg(jsonb_build_object('id', r.case_id, 'reasons', to_jsonb(r.reasons),
                                                 'score', round(r.score::numeric, 3), 'ok', r.ok)), '[]')
      INTO seen
      FROM (SELECT m.*, v.ok, row_number() OVER (PARTITION BY v.ok ORDER BY m.score DESC, m.case_id) AS rank
              FROM kntc.dedup_match(p_ids, p_names, p_units, p_subject, p_respondent, 200) m
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
    -- An empty answer still carries the check's id, for the decision that follows.
    SELECT chk, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE seen = '[]'::jsonb
    -- Readable ones by score, then the one "held elsewhere" line: it never ranks among them.
    ORDER BY 2 DESC NULLS LAST, 11 DESC NULLS LAST, 3;
END $$;

-- Ask the holding unit(s) about a hidden match. Only the officer who ran the check holds its
-- handle (false for any other); asking twice is one notice per holding unit.
CREATE FUNCTION kntc.dedup_inquire(p_handle uuid, p_reason text, p_petition_ref text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    l kntc.dedup_lead;
BEGIN
    IF a.account_id IS NULL THEN
        RETURN false;
    END IF;
    SELECT * INTO l FROM kntc.dedup_lead d WHERE d.handle = p_handle AND d.account_id = a.account_id;
    IF l.handle IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO kntc.dedup_inquiry (handle, asker_id, asker_unit_id, reason, petition_ref, holder_unit_id, case_ids)
    SELECT l.handle, a.account_id, a.unit_id, p_reason, p_petition_ref, c.handling_unit_id, array_agg(c.id)
      FROM kntc.case_file c WHERE c.id = ANY (l.case_ids)
     GROUP BY c.handling_unit_id
    ON CONFLICT (handle, holder_unit_id) DO NOTHING;
    RETURN true;
END $$;

-- A head's notices: the asking unit, the officer, the reason and what they typed at the check;
-- the unit's own cases that matched by code (those within the head's clearance).
CREATE FUNCTION kntc.dedup_inquiries(p_limit integer DEFAULT 100)
RETURNS TABLE (id uuid, asked_at timestamptz, asker_username text, asker_name text, asker_unit_code text,
               asker_unit_name text, reason text, petition_ref text, query jsonb, case_codes text[],
               withheld integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    a kntc.actor := kntc.actor();
BEGIN
    IF a.account_id IS NULL OR NOT ('head' = ANY (a.roles)) THEN
        RETURN;
    END IF;
    UPDATE kntc.dedup_inquiry i SET seen_at = now() WHERE i.holder_unit_id = a.unit_id AND i.seen_at IS NULL;
    RETURN QUERY
    SELECT i.id, i.asked_at, acc.username, acc.full_name, au.code, au.name, i.reason, i.petition_ref, chk.query,
           ARRAY(SELECT c.code FROM kntc.case_file c WHERE c.id = ANY (i.case_ids) AND c.classification <= a.clearance
                  ORDER BY c.code),
           (SELECT count(*)::integer FROM kntc.case_file c WHERE c.id = ANY (i.case_ids)
                                                             AND c.classification > a.clearance)
      FROM kntc.dedup_inquiry i
      JOIN kntc.account acc ON acc.id = i.asker_id
      JOIN kntc.unit au ON au.id = i.asker_unit_id
      JOIN kntc.dedup_lead l ON l.handle = i.handle
      JOIN kntc.dedup_check chk ON chk.id = l.check_id
     WHERE i.holder_unit_id = a.unit_id
     ORDER BY i.asked_at DESC
     LIMIT p_limit;
END $$;

-- Declassification --------------------------------------------------------------------------
-- Lowering a case's classification is the decision of the head of the unit holding it, with a
-- reason (set by the application as kntc.change_reason in the same transaction); it goes on the
-- case's timeline here, and into the audit log through the case_file triggers. Raising stays
-- within the officer's clearance (case_update).
CREATE FUNCTION kntc.case_classification_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    why text := btrim(coalesce(current_setting('kntc.change_reason', true), ''));
BEGIN
    IF NEW.classification >= OLD.classification THEN
        RETURN NEW;
    END IF;
    IF a.account_id IS NULL OR NOT ('head' = ANY (a.roles)) OR a.unit_id <> OLD.handling_unit_id THEN
        RAISE EXCEPTION 'chỉ thủ trưởng đơn vị đang giữ hồ sơ mới được giảm độ mật / only the head of the unit '
                        'holding the case may lower its classification' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF length(why) < 3 THEN
        RAISE EXCEPTION 'cần nêu lý do giảm độ mật / a reason is required to lower a classification'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'declassification_reason';
    END IF;
    INSERT INTO kntc.case_event (case_id, actor_id, unit_id, action, from_status, to_status, note, data)
    VALUES (OLD.id, a.account_id, a.unit_id, 'declassify', OLD.status, NEW.status, why,
            jsonb_build_object('from', OLD.classification, 'to', NEW.classification));
    RETURN NEW;
END $$;
CREATE TRIGGER case_classification_guard BEFORE UPDATE OF classification ON kntc.case_file
    FOR EACH ROW WHEN (NEW.classification < OLD.classification)
    EXECUTE FUNCTION kntc.case_classification_guard();

-- Account powers ------------------------------------------------------------------------------
-- What the acting officer may grant to an account of unit p_unit_id:
--   sysadmin: any role, in their subtree, up to their clearance;
--   unit_admin: reception, handling, resolution, external_reader in their subtree, and head or
--     unit_admin only in units strictly below their own (a district administers its communes'
--     software, not its own head); never sysadmin; up to their clearance.
-- The same test applies to the account as it is (USING) and as it becomes (WITH CHECK), so an
-- administrator cannot edit an account above their level, nor their own roles.
CREATE FUNCTION kntc.may_grant(p_unit_id integer, p_roles text[], p_clearance smallint) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    target ltree;
BEGIN
    IF a.account_id IS NULL OR p_clearance > a.clearance THEN
        RETURN false;
    END IF;
    SELECT u.path INTO target FROM kntc.unit u WHERE u.id = p_unit_id;
    IF target IS NULL OR NOT (target <@ a.unit_path) THEN
        RETURN false;
    END IF;
    IF 'sysadmin' = ANY (a.roles) THEN
        RETURN true;
    END IF;
    IF NOT ('unit_admin' = ANY (a.roles)) OR 'sysadmin' = ANY (p_roles) THEN
        RETURN false;
    END IF;
    RETURN NOT (p_roles && ARRAY['head', 'unit_admin']) OR nlevel(target) > nlevel(a.unit_path);
END $$;

DROP POLICY account_admin ON kntc.account;
DROP POLICY account_admin_update ON kntc.account;
CREATE POLICY account_admin ON kntc.account FOR INSERT
    WITH CHECK (kntc.may_grant(unit_id, roles, clearance));
CREATE POLICY account_admin_update ON kntc.account FOR UPDATE
    USING (kntc.may_grant(unit_id, roles, clearance))
    WITH CHECK (kntc.may_grant(unit_id, roles, clearance));

-- Least privilege ---------------------------------------------------------------------------
REVOKE ALL ON FUNCTION kntc.throttle_state(text, text), kntc.throttle_hit(text, text), kntc.throttle_forgive_login(text),
    kntc.dedup_candidates(jsonb, text[], text[], integer[], text, text, integer),
    kntc.dedup_inquire(uuid, text, text), kntc.dedup_inquiries(integer), kntc.case_classification_guard(),
    kntc.may_grant(integer, text[], smallint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.throttle_state(text, text), kntc.throttle_hit(text, text),
    kntc.throttle_forgive_login(text),
    kntc.dedup_candidates(jsonb, text[], text[], integer[], text, text, integer),
    kntc.dedup_inquire(uuid, text, text), kntc.dedup_inquiries(integer),
    kntc.may_grant(integer, text[], smallint) TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
