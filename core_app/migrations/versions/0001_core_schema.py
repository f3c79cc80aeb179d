"""Core schema: units, accounts, sessions, case files, petitions, workflow, deadlines, scope.

Revision ID: 0001_core
Revises:
"""

from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE EXTENSION IF NOT EXISTS ltree;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE SCHEMA kntc;
REVOKE ALL ON SCHEMA kntc FROM PUBLIC;

-- Units ------------------------------------------------------------------------------------
-- The hierarchy is data: the 2025 reform replaced 63 provinces / 696 districts / 10,035 wards
-- with 34 provinces / 3,321 communes, and cases since 2018 refer to the old units.
CREATE TABLE kntc.unit (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9][A-Z0-9.-]{1,40}$'),
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('nation', 'government_inspectorate', 'central_body',
                    'province', 'district', 'commune', 'inspectorate', 'party', 'people_council',
                    'court', 'procuracy', 'front')),
    level       text NOT NULL CHECK (level IN ('central', 'province', 'district', 'commune')),
    parent_id   integer REFERENCES kntc.unit(id),
    path        ltree NOT NULL,
    admin_code  text,              -- official GSO code of an administrative unit
    valid_from  date NOT NULL DEFAULT '2018-01-01',
    valid_to    date,              -- NULL: in force today
    successor_id integer REFERENCES kntc.unit(id),  -- legacy unit -> the current unit it became
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX unit_path_gist ON kntc.unit USING gist (path);
CREATE INDEX unit_parent ON kntc.unit (parent_id);
CREATE INDEX unit_name_trgm ON kntc.unit USING gin (name gin_trgm_ops);

-- Administrative units see their subtree; a specialised body (court, Party committee, ...)
-- reads the area of the administrative unit it belongs to.
CREATE FUNCTION kntc.scope_unit_id(u kntc.unit) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN u.kind IN ('nation', 'province', 'district', 'commune') OR u.parent_id IS NULL
                THEN u.id ELSE u.parent_id END
$$;

-- Accounts and sessions -------------------------------------------------------------------
CREATE TABLE kntc.account (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    full_name      text NOT NULL CHECK (length(full_name) BETWEEN 2 AND 200),
    unit_id        integer NOT NULL REFERENCES kntc.unit(id),
    roles          text[] NOT NULL CHECK (cardinality(roles) > 0 AND roles <@ ARRAY['reception',
                       'handling', 'resolution', 'head', 'unit_admin', 'external_reader', 'sysadmin']),
    clearance      smallint NOT NULL DEFAULT 0 CHECK (clearance BETWEEN 0 AND 2),
    password_hash  text NOT NULL,
    is_active      boolean NOT NULL DEFAULT true,
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- An external reader only reads: no other role may be combined with it.
    CHECK (NOT ('external_reader' = ANY (roles)) OR roles = ARRAY['external_reader'])
);
CREATE INDEX account_unit ON kntc.account (unit_id);

CREATE TABLE kntc.session (
    token_hash   bytea PRIMARY KEY,
    account_id   integer NOT NULL REFERENCES kntc.account(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX session_account ON kntc.session (account_id);

CREATE TYPE kntc.actor AS (
    account_id  integer,
    unit_id     integer,
    unit_path   ltree,
    scope_path  ltree,
    roles       text[],
    clearance   smallint
);

-- Who is acting: resolved from the session token the application puts in the transaction
-- (set_config('kntc.session_token', ..., true)). The token, not an account id, is what the
-- application passes, so the application role alone can read nothing without a live session.
CREATE FUNCTION kntc.actor() RETURNS kntc.actor
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
      FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
      JOIN kntc.unit u ON u.id = a.unit_id
      JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
     WHERE ss.token_hash = sha256(convert_to(nullif(current_setting('kntc.session_token', true), ''), 'UTF8'))
       AND ss.expires_at > now()
$$;

-- Case files ------------------------------------------------------------------------------
CREATE TABLE kntc.case_code_counter (
    unit_id   integer NOT NULL REFERENCES kntc.unit(id),
    year      integer NOT NULL,
    last_seq  integer NOT NULL,
    PRIMARY KEY (unit_id, year)
);

-- A row lock on (unit, year) makes the sequence gapless per unit and unique across every
-- application node; the code is unique nationwide because the unit code is.
CREATE FUNCTION kntc.next_case_code(p_unit_id integer, p_year integer) RETURNS text
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH n AS (
        INSERT INTO kntc.case_code_counter AS c (unit_id, year, last_seq) VALUES (p_unit_id, p_year, 1)
        ON CONFLICT (unit_id, year) DO UPDATE SET last_seq = c.last_seq + 1
        RETURNING last_seq
    )
    SELECT u.code || '-' || p_year || '-' || lpad(n.last_seq::text, 6, '0') FROM n, kntc.unit u WHERE u.id = p_unit_id
$$;

CREATE TABLE kntc.case_file (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code                text NOT NULL UNIQUE,
    kind                text NOT NULL CHECK (kind IN ('complaint', 'denunciation', 'recommendation', 'multi')),
    subject             text NOT NULL CHECK (length(subject) BETWEEN 3 AND 500),
    content             text NOT NULL CHECK (length(content) BETWEEN 1 AND 100000),
    respondent          text CHECK (length(respondent) <= 500),
    classification      smallint NOT NULL DEFAULT 0 CHECK (classification BETWEEN 0 AND 2),
    denouncer_confidential boolean NOT NULL DEFAULT false,
    channel             text NOT NULL CHECK (channel IN ('in_person', 'letter', 'email', 'fax', 'phone',
                            'online', 'transferred')),
    status              text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'in_handling',
                            'accepted', 'verifying', 'resolved', 'closed', 'guided', 'filed', 'returned')),
    complaint_round     smallint NOT NULL DEFAULT 1 CHECK (complaint_round IN (1, 2)),
    is_complex          boolean NOT NULL DEFAULT false,
    is_remote_area      boolean NOT NULL DEFAULT false,
    receiving_unit_id   integer NOT NULL REFERENCES kntc.unit(id),
    receiving_unit_path ltree NOT NULL,
    handling_unit_id    integer NOT NULL REFERENCES kntc.unit(id),
    handling_unit_path  ltree NOT NULL,
    received_on         date NOT NULL,
    accepted_on         date,
    resolved_on         date,
    closed_on           date,
    resolution_summary  text,
    published_result    text,
    lookup_secret_hash  bytea NOT NULL,
    version             integer NOT NULL DEFAULT 1,
    created_by          integer REFERENCES kntc.account(id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_handling_path ON kntc.case_file USING gist (handling_unit_path);
CREATE INDEX case_receiving_path ON kntc.case_file USING gist (receiving_unit_path);
CREATE INDEX case_handling_status ON kntc.case_file (handling_unit_id, status, received_on DESC);
CREATE INDEX case_received_on ON kntc.case_file (received_on DESC);

-- Paths follow the unit ids, so scope checks are one ltree comparison per row.
CREATE FUNCTION kntc.case_set_paths() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    SELECT path INTO NEW.receiving_unit_path FROM kntc.unit WHERE id = NEW.receiving_unit_id;
    SELECT path INTO NEW.handling_unit_path FROM kntc.unit WHERE id = NEW.handling_unit_id;
    RETURN NEW;
END $$;
CREATE TRIGGER case_paths BEFORE INSERT OR UPDATE OF receiving_unit_id, handling_unit_id
    ON kntc.case_file FOR EACH ROW EXECUTE FUNCTION kntc.case_set_paths();

CREATE TABLE kntc.case_assignment (
    case_id     uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    account_id  integer NOT NULL REFERENCES kntc.account(id),
    duty        text NOT NULL CHECK (duty IN ('handling', 'resolution', 'verification')),
    assigned_by integer REFERENCES kntc.account(id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, account_id, duty)
);
CREATE INDEX case_assignment_account ON kntc.case_assignment (account_id);

CREATE TABLE kntc.reception (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    unit_id             integer NOT NULL REFERENCES kntc.unit(id),
    unit_path           ltree NOT NULL,
    officer_id          integer NOT NULL REFERENCES kntc.account(id),
    received_at         timestamptz NOT NULL DEFAULT now(),
    visitor_name        text NOT NULL,
    visitor_id_number   text CHECK (visitor_id_number ~ '^[0-9]{12}$'),
    visitor_address     text,
    people_count        integer NOT NULL DEFAULT 1 CHECK (people_count BETWEEN 1 AND 10000),
    content             text NOT NULL,
    documents_received  text,
    prior_handling_agency text,
    action_taken        text CHECK (action_taken IN ('accepted', 'guided', 'transferred', 'recorded')),
    notes               text,
    case_id             uuid REFERENCES kntc.case_file(id)
);
CREATE INDEX reception_unit_path ON kntc.reception USING gist (unit_path);

CREATE TABLE kntc.party (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id         uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('complainant', 'denouncer', 'petitioner', 'representative')),
    party_kind      text NOT NULL DEFAULT 'person' CHECK (party_kind IN ('person', 'organisation')),
    full_name       text NOT NULL CHECK (length(full_name) BETWEEN 2 AND 300),
    id_number       text CHECK (id_number ~ '^[0-9]{12}$'),
    address         text,
    address_unit_id integer REFERENCES kntc.unit(id),
    phone           text CHECK (phone ~ '^\+?[0-9 .-]{6,20}$'),
    email           text CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    -- A confidential denouncer: only those handling the case may see who it is.
    identity_protected boolean NOT NULL DEFAULT false
);
CREATE INDEX party_case ON kntc.party (case_id);
CREATE INDEX party_id_number ON kntc.party (id_number) WHERE id_number IS NOT NULL;

CREATE TABLE kntc.petition (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id         uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    unit_id         integer NOT NULL REFERENCES kntc.unit(id),
    received_on     date NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('in_person', 'letter', 'email', 'fax', 'phone',
                        'online', 'transferred')),
    reception_id    uuid REFERENCES kntc.reception(id),
    sender_party_id uuid REFERENCES kntc.party(id),
    content         text NOT NULL,
    people_count    integer NOT NULL DEFAULT 1 CHECK (people_count BETWEEN 1 AND 10000),
    received_by     integer REFERENCES kntc.account(id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX petition_case ON kntc.petition (case_id);

CREATE TABLE kntc.attachment (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id      uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    petition_id  uuid REFERENCES kntc.petition(id),
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL,
    size_bytes   integer NOT NULL CHECK (size_bytes BETWEEN 0 AND 26214400),
    sha256       bytea NOT NULL,
    data         bytea NOT NULL,
    uploaded_by  integer REFERENCES kntc.account(id),
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    -- The stored checksum is the content's: a corrupted or swapped blob cannot be saved.
    CHECK (sha256 = sha256(data) AND size_bytes = octet_length(data))
);
CREATE INDEX attachment_case ON kntc.attachment (case_id);

-- The timeline of a matter; the application may add to it, never change it.
CREATE TABLE kntc.case_event (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    integer REFERENCES kntc.account(id),
    unit_id     integer REFERENCES kntc.unit(id),
    action      text NOT NULL,
    from_status text,
    to_status   text,
    note        text,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_event_case ON kntc.case_event (case_id, at);

-- Deadlines as data -------------------------------------------------------------------------
-- One row per statutory limit, so that a lawyer can correct a row without a code change.
CREATE TABLE kntc.deadline_rule (
    code            text PRIMARY KEY,
    case_kind       text NOT NULL CHECK (case_kind IN ('complaint', 'denunciation', 'recommendation', 'multi', 'any')),
    step            text NOT NULL CHECK (step IN ('accept', 'transfer', 'notify_acceptance', 'resolve', 'correct_data')),
    complaint_round smallint CHECK (complaint_round IN (1, 2)),
    days            integer NOT NULL CHECK (days > 0),
    day_unit        text NOT NULL CHECK (day_unit IN ('days', 'working_days')),
    complex_days    integer,
    remote_days     integer,
    remote_complex_days integer,
    extension_days  integer NOT NULL DEFAULT 0,
    max_extensions  integer NOT NULL DEFAULT 0,
    start_event     text NOT NULL CHECK (start_event IN ('receipt', 'acceptance', 'discovery')),
    legal_basis     text NOT NULL,
    description_vi  text NOT NULL,
    description_en  text NOT NULL,
    UNIQUE (case_kind, step, complaint_round)
);

-- Days the law's calendar treats differently from the holidays library (a moved working
-- day, an extra day off decided by the Government) are data too.
CREATE TABLE kntc.calendar_override (
    day         date PRIMARY KEY,
    is_working  boolean NOT NULL,
    note        text NOT NULL
);

CREATE TABLE kntc.case_deadline (
    case_id     uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    step        text NOT NULL,
    rule_code   text NOT NULL REFERENCES kntc.deadline_rule(code),
    starts_on   date NOT NULL,
    due_on      date NOT NULL,
    extensions  integer NOT NULL DEFAULT 0,
    met_on      date,
    overdue_cause text,
    PRIMARY KEY (case_id, step)
);
CREATE INDEX case_deadline_open ON kntc.case_deadline (due_on) WHERE met_on IS NULL;

INSERT INTO kntc.deadline_rule (code, case_kind, step, complaint_round, days, day_unit, complex_days,
    remote_days, remote_complex_days, extension_days, max_extensions, start_event, legal_basis,
    description_vi, description_en) VALUES
 ('KN1-ACCEPT', 'complaint', 'accept', 1, 10, 'days', NULL, NULL, NULL, 0, 0, 'receipt',
  'Luật Khiếu nại 2011, Điều 27',
  'Thụ lý khiếu nại lần đầu và thông báo bằng văn bản', 'Accept a first complaint and notify in writing'),
 ('KN2-ACCEPT', 'complaint', 'accept', 2, 10, 'days', NULL, NULL, NULL, 0, 0, 'receipt',
  'Luật Khiếu nại 2011, Điều 36',
  'Thụ lý khiếu nại lần hai và thông báo bằng văn bản', 'Accept a second complaint and notify in writing'),
 ('KN1-RESOLVE', 'complaint', 'resolve', 1, 30, 'days', 45, 45, 60, 0, 0, 'acceptance',
  'Luật Khiếu nại 2011, Điều 28',
  'Giải quyết khiếu nại lần đầu', 'Resolve a first complaint'),
 ('KN2-RESOLVE', 'complaint', 'resolve', 2, 45, 'days', 60, 60, 70, 0, 0, 'acceptance',
  'Luật Khiếu nại 2011, Điều 37',
  'Giải quyết khiếu nại lần hai', 'Resolve a second complaint'),
 ('TC-ACCEPT', 'denunciation', 'accept', NULL, 7, 'working_days', NULL, NULL, NULL, 3, 1, 'receipt',
  'Luật Tố cáo 2018, Điều 24 khoản 1',
  'Vào sổ, phân loại, kiểm tra điều kiện thụ lý tố cáo (gia hạn đến 10 ngày làm việc)',
  'Register, classify and check the conditions of a denunciation (extendable to 10 working days)'),
 ('TC-TRANSFER', 'denunciation', 'transfer', NULL, 5, 'working_days', NULL, NULL, NULL, 0, 0, 'receipt',
  'Luật Tố cáo 2018, Điều 24 khoản 2',
  'Chuyển tố cáo không thuộc thẩm quyền và thông báo cho người tố cáo',
  'Transfer a denunciation outside competence and notify the denouncer'),
 ('TC-NOTIFY', 'denunciation', 'notify_acceptance', NULL, 5, 'working_days', NULL, NULL, NULL, 0, 0, 'acceptance',
  'Luật Tố cáo 2018, Điều 29',
  'Thông báo việc thụ lý cho người tố cáo và người bị tố cáo',
  'Notify the denouncer and the denounced of acceptance'),
 ('TC-RESOLVE', 'denunciation', 'resolve', NULL, 30, 'days', NULL, NULL, NULL, 30, 2, 'acceptance',
  'Luật Tố cáo 2018, Điều 30',
  'Giải quyết tố cáo (gia hạn một lần 30 ngày, phức tạp; hai lần, đặc biệt phức tạp)',
  'Resolve a denunciation (+30 days once if complex, twice if especially complex)'),
 ('KNPA-ACCEPT', 'recommendation', 'accept', NULL, 10, 'working_days', NULL, NULL, NULL, 0, 0, 'receipt',
  'Thông tư 05/2021/TT-TTCP (xử lý đơn)',
  'Xử lý đơn kiến nghị, phản ánh', 'Handle a recommendation or feedback petition'),
 ('MULTI-ACCEPT', 'multi', 'accept', NULL, 10, 'working_days', NULL, NULL, NULL, 0, 0, 'receipt',
  'Thông tư 05/2021/TT-TTCP (xử lý đơn)',
  'Xử lý đơn có nhiều nội dung', 'Handle a petition with several contents'),
 ('DATA-CORRECT', 'any', 'correct_data', NULL, 5, 'working_days', NULL, NULL, NULL, 0, 0, 'discovery',
  'Kế hoạch triển khai CSDL quốc gia (Sóc Trăng), mục cập nhật dữ liệu',
  'Sửa dữ liệu thiếu, sai hoặc khác hồ sơ giấy', 'Correct incomplete or wrong data');

-- Public lookup ---------------------------------------------------------------------------
-- Citizens hold the case code and a secret from their receipt. Wrong code and wrong secret
-- give the same empty answer; nothing classified or personal is returned.
CREATE FUNCTION kntc.public_lookup(p_code text, p_secret text)
RETURNS TABLE (code text, kind text, status text, handling_unit text, received_on date,
               accepted_on date, resolved_on date, closed_on date, published_result text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT c.code, c.kind, c.status, u.name, c.received_on, c.accepted_on, c.resolved_on,
           c.closed_on, CASE WHEN c.classification = 0 THEN c.published_result END
      FROM kntc.case_file c JOIN kntc.unit u ON u.id = c.handling_unit_id
     WHERE c.code = p_code
       AND c.lookup_secret_hash = sha256(convert_to(p_secret, 'UTF8'))
$$;

-- Sessions are created and ended only through these functions; the application role cannot
-- read the session table, so a leaked database login does not reveal live tokens.
CREATE FUNCTION kntc.session_open(p_account_id integer, p_token text, p_hours integer)
RETURNS timestamptz
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DELETE FROM kntc.session WHERE account_id = p_account_id AND expires_at < now();
    INSERT INTO kntc.session (token_hash, account_id, expires_at)
    VALUES (sha256(convert_to(p_token, 'UTF8')), p_account_id, now() + make_interval(hours => p_hours))
    RETURNING expires_at;
$$;

CREATE FUNCTION kntc.session_close(p_token text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DELETE FROM kntc.session WHERE token_hash = sha256(convert_to(p_token, 'UTF8'));
$$;

-- Login needs the hash of one named account, nothing more.
CREATE FUNCTION kntc.login_lookup(p_username text)
RETURNS TABLE (account_id integer, password_hash text, is_active boolean, locked_until timestamptz,
               failed_logins integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT id, password_hash, is_active, locked_until, failed_logins FROM kntc.account WHERE username = p_username
$$;

CREATE FUNCTION kntc.login_result(p_account_id integer, p_ok boolean, p_new_hash text DEFAULT NULL)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE kntc.account
       SET failed_logins = CASE WHEN p_ok THEN 0 ELSE failed_logins + 1 END,
           -- Five failures in a row lock the account for 15 minutes.
           locked_until = CASE WHEN NOT p_ok AND failed_logins + 1 >= 5 THEN now() + interval '15 minutes'
                               WHEN p_ok THEN NULL ELSE locked_until END,
           password_hash = coalesce(p_new_hash, password_hash)
     WHERE id = p_account_id
$$;

-- Row-level security ------------------------------------------------------------------------
CREATE FUNCTION kntc.handles_case(p_case_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (
        SELECT 1 FROM kntc.case_file c, kntc.actor() a
         WHERE c.id = p_case_id
           AND (c.created_by = a.account_id
                OR (c.handling_unit_id = a.unit_id AND 'head' = ANY (a.roles))
                OR EXISTS (SELECT 1 FROM kntc.case_assignment ca
                            WHERE ca.case_id = c.id AND ca.account_id = a.account_id)))
$$;

ALTER TABLE kntc.case_file ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.party ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.petition ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.attachment ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.case_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.case_deadline ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.case_assignment ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.reception ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.account ENABLE ROW LEVEL SECURITY;

-- Read: the case's handling or receiving unit lies in the actor's area, and the actor's
-- clearance covers the case's classification.
CREATE POLICY case_read ON kntc.case_file FOR SELECT USING (
    classification <= (SELECT (kntc.actor()).clearance)
    AND (handling_unit_path <@ (SELECT (kntc.actor()).scope_path)
         OR receiving_unit_path <@ (SELECT (kntc.actor()).scope_path)));
-- Write: only officers of the unit that holds the case (never an external reader).
CREATE POLICY case_insert ON kntc.case_file FOR INSERT WITH CHECK (
    receiving_unit_id = (SELECT (kntc.actor()).unit_id)
    AND handling_unit_id = (SELECT (kntc.actor()).unit_id)
    AND classification <= (SELECT (kntc.actor()).clearance)
    AND NOT ('external_reader' = ANY ((SELECT (kntc.actor()).roles)::text[])));
CREATE POLICY case_update ON kntc.case_file FOR UPDATE USING (
    handling_unit_id = (SELECT (kntc.actor()).unit_id)
    AND classification <= (SELECT (kntc.actor()).clearance)
    AND NOT ('external_reader' = ANY ((SELECT (kntc.actor()).roles)::text[])))
    WITH CHECK (classification <= (SELECT (kntc.actor()).clearance));

-- Children of a case are visible exactly when the case is (the subquery is itself under RLS).
CREATE POLICY petition_read ON kntc.petition FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY petition_write ON kntc.petition FOR INSERT
    WITH CHECK (unit_id = (SELECT (kntc.actor()).unit_id));
CREATE POLICY attachment_read ON kntc.attachment FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY attachment_write ON kntc.attachment FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                        AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));
CREATE POLICY event_read ON kntc.case_event FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY event_write ON kntc.case_event FOR INSERT
    WITH CHECK (actor_id = (SELECT (kntc.actor()).account_id));
CREATE POLICY deadline_read ON kntc.case_deadline FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY deadline_write ON kntc.case_deadline FOR ALL
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                   AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)))
    WITH CHECK (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                   AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));
CREATE POLICY assignment_read ON kntc.case_assignment FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY assignment_write ON kntc.case_assignment FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                   AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));
-- A confidential denouncer's identity: only those handling that case.
CREATE POLICY party_read ON kntc.party FOR SELECT USING (
    EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id)
    AND (NOT identity_protected OR kntc.handles_case(case_id)));
CREATE POLICY party_write ON kntc.party FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                   AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));
CREATE POLICY reception_read ON kntc.reception FOR SELECT
    USING (unit_path <@ (SELECT (kntc.actor()).scope_path));
CREATE POLICY reception_write ON kntc.reception FOR INSERT
    WITH CHECK (unit_id = (SELECT (kntc.actor()).unit_id) AND officer_id = (SELECT (kntc.actor()).account_id));
CREATE POLICY reception_link ON kntc.reception FOR UPDATE
    USING (unit_id = (SELECT (kntc.actor()).unit_id));
-- Accounts: an officer sees the accounts of their area; unit administrators manage them.
CREATE POLICY account_read ON kntc.account FOR SELECT USING (
    id = (SELECT (kntc.actor()).account_id)
    OR unit_id IN (SELECT u.id FROM kntc.unit u WHERE u.path <@ (SELECT (kntc.actor()).scope_path)));
CREATE POLICY account_admin ON kntc.account FOR INSERT WITH CHECK (
    ('unit_admin' = ANY ((SELECT (kntc.actor()).roles)::text[]) OR 'sysadmin' = ANY ((SELECT (kntc.actor()).roles)::text[]))
    AND unit_id IN (SELECT u.id FROM kntc.unit u WHERE u.path <@ (SELECT (kntc.actor()).unit_path))
    AND clearance <= (SELECT (kntc.actor()).clearance));
CREATE POLICY account_admin_update ON kntc.account FOR UPDATE USING (
    ('unit_admin' = ANY ((SELECT (kntc.actor()).roles)::text[]) OR 'sysadmin' = ANY ((SELECT (kntc.actor()).roles)::text[]))
    AND unit_id IN (SELECT u.id FROM kntc.unit u WHERE u.path <@ (SELECT (kntc.actor()).unit_path)));

-- Least privilege -------------------------------------------------------------------------
GRANT USAGE ON SCHEMA kntc TO kntc_app, kntc_readonly;
GRANT SELECT ON kntc.unit, kntc.deadline_rule, kntc.calendar_override TO kntc_app, kntc_readonly;
GRANT SELECT, INSERT, UPDATE ON kntc.case_file TO kntc_app;
GRANT SELECT, INSERT ON kntc.petition, kntc.party, kntc.attachment, kntc.case_event, kntc.case_assignment TO kntc_app;
GRANT SELECT, INSERT, UPDATE ON kntc.reception TO kntc_app;
GRANT SELECT, INSERT, UPDATE ON kntc.case_deadline TO kntc_app;
GRANT SELECT (id, username, full_name, unit_id, roles, clearance, is_active, locked_until, created_at)
    ON kntc.account TO kntc_app;
GRANT INSERT (username, full_name, unit_id, roles, clearance, password_hash) ON kntc.account TO kntc_app;
GRANT UPDATE (full_name, roles, clearance, is_active, password_hash, failed_logins, locked_until,
              password_changed_at) ON kntc.account TO kntc_app;
REVOKE ALL ON FUNCTION kntc.actor(), kntc.next_case_code(integer, integer), kntc.public_lookup(text, text),
    kntc.session_open(integer, text, integer), kntc.session_close(text), kntc.login_lookup(text),
    kntc.login_result(integer, boolean, text), kntc.handles_case(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.actor(), kntc.next_case_code(integer, integer), kntc.public_lookup(text, text),
    kntc.session_open(integer, text, integer), kntc.session_close(text), kntc.login_lookup(text),
    kntc.login_result(integer, boolean, text), kntc.handles_case(uuid) TO kntc_app;
GRANT EXECUTE ON FUNCTION kntc.actor(), kntc.handles_case(uuid) TO kntc_readonly;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
