"""A citizen's notification consent changed after reception, and deadlines recomputed after a correction.

Why:
- Consent is the citizen's to withdraw or give again, and the channel theirs to change, at any time
  (not only at reception). Two doors, both in the database, both writing one record
  (`kntc.notify_consent_change`, in the audit chain and shown on the case file):
  - the citizen, with the case code and the secret of the receipt (`kntc.public_notify_choice`):
    the same proof as the public lookup, and the same empty answer for a wrong code or a wrong
    secret; it returns which channels are possible and chosen, never an address;
  - an officer of the unit holding the case, on the citizen's request, with a reason
    (`kntc.notify_consent_set`): the application role has no UPDATE on the consent columns, so
    this function's checks (unit, clearance, a protected denouncer only for those handling the
    case) are the only way.
  Only channels with an address on file can be chosen: a new number or address is a correction of
  the party (kntc.correction_reason_required), not a consent.
- What is already queued for a channel the citizen no longer wants, or whose address was removed,
  is cancelled in the same transaction (`kntc.party_notify_cancel`), so it is never sent and the
  case file shows it cancelled at once. The worker's claim (0013) still re-checks at sending time.
- A correction of what a deadline is counted from (the kind, complexity, remote area, the day
  received) recomputes the case's open steps; each recomputed step is a row of
  `kntc.deadline_recompute` (before and after, the cause, who), shown on the case file and in the
  audit chain. The guard of 0012 refused any later due date without an extension decision; it now
  also accepts one written with its recompute row in the same transaction, as it does for an
  extension. Closed steps are never touched.

Revision ID: 0016_consent_and_recompute
Revises: 0015_reports
"""

from alembic import op

revision = "0016_consent_and_recompute"
down_revision = "0015_reports"
branch_labels = None
depends_on = None

SQL = r"""
-- Consent changes ---------------------------------------------------------------------------------
CREATE TABLE kntc.notify_consent_change (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id     uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    party_id    uuid NOT NULL REFERENCES kntc.party(id) ON DELETE CASCADE,
    before      text[] NOT NULL,
    after       text[] NOT NULL,
    source      text NOT NULL CHECK (source IN ('citizen', 'officer')),
    reason      text CHECK (length(reason) <= 2000),
    changed_by  integer REFERENCES kntc.account(id),
    unit_id     integer REFERENCES kntc.unit(id),
    cancelled   integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consent_change_who CHECK (
        (source = 'citizen' AND changed_by IS NULL)
        OR (source = 'officer' AND changed_by IS NOT NULL AND length(btrim(reason)) >= 10))
);
CREATE INDEX notify_consent_change_case ON kntc.notify_consent_change (case_id);
ALTER TABLE kntc.notify_consent_change ENABLE ROW LEVEL SECURITY;
-- Readable with the case; a protected denouncer's changes only by those who may read the party.
CREATE POLICY consent_change_read ON kntc.notify_consent_change FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.party p WHERE p.id = party_id));

-- Queued messages the party no longer wants (channel dropped, or its address removed) are cancelled.
CREATE FUNCTION kntc.party_notify_cancel() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    UPDATE kntc.notification n
       SET status = 'cancelled', next_at = now(),
           last_error = CASE WHEN n.channel = ANY (NEW.notify_channels) THEN 'address_removed'
                             ELSE 'consent_withdrawn' END
     WHERE n.party_id = NEW.id AND n.status = 'queued'
       AND (NOT n.channel = ANY (NEW.notify_channels)
            OR CASE n.channel WHEN 'sms' THEN NEW.phone ELSE NEW.email END IS NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER party_notify_cancel AFTER UPDATE OF notify_channels, phone, email ON kntc.party
    FOR EACH ROW WHEN (OLD.notify_channels IS DISTINCT FROM NEW.notify_channels
                       OR OLD.phone IS DISTINCT FROM NEW.phone OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION kntc.party_notify_cancel();

-- One party's consent set to p_channels (empty: withdrawn); the change row says by whom.
CREATE FUNCTION kntc.notify_consent_apply(p_party uuid, p_channels text[], p_source text, p_reason text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    p kntc.party;
    want text[];
    n integer;
BEGIN
    SELECT * INTO p FROM kntc.party WHERE id = p_party FOR UPDATE;
    want := ARRAY(SELECT DISTINCT c FROM unnest(coalesce(p_channels, '{}')) c ORDER BY c);
    IF NOT want <@ ARRAY['email', 'sms'] THEN
        RAISE EXCEPTION 'kênh chỉ là sms hoặc email / a channel is sms or email' USING ERRCODE = 'check_violation';
    END IF;
    IF ('sms' = ANY (want) AND p.phone IS NULL) OR ('email' = ANY (want) AND p.email IS NULL) THEN
        RAISE EXCEPTION 'chưa có số điện thoại hoặc thư điện tử cho kênh đã chọn / no phone number or e-mail address '
                        'on file for the channel chosen' USING ERRCODE = 'check_violation',
                        CONSTRAINT = 'consent_needs_address';
    END IF;
    IF want = p.notify_channels THEN
        RETURN want;  -- nothing changes: no record, the consent keeps its date
    END IF;
    UPDATE kntc.party SET notify_channels = want WHERE id = p.id;
    SELECT count(*) INTO n FROM kntc.notification x
     WHERE x.party_id = p.id AND x.status = 'cancelled' AND x.next_at = now();
    INSERT INTO kntc.notify_consent_change (case_id, party_id, before, after, source, reason, changed_by, unit_id,
                                            cancelled)
    VALUES (p.case_id, p.id, p.notify_channels, want, p_source, p_reason,
            CASE WHEN p_source = 'officer' THEN (kntc.actor()).account_id END,
            CASE WHEN p_source = 'officer' THEN (kntc.actor()).unit_id END, n);
    RETURN want;
END $$;

-- The citizen's door: the receipt's code and secret, as kntc.public_lookup. No row for a wrong code
-- or secret. p_channels NULL reads; otherwise every party of the case with an address for a chosen
-- channel gets that choice (the receipt is the case's, not one party's), and the others none.
CREATE FUNCTION kntc.public_notify_choice(p_code text, p_secret text, p_channels text[])
RETURNS TABLE (available text[], chosen text[], changed boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    cid uuid;
    p record;
    before text[];
    did boolean := false;
BEGIN
    SELECT c.id INTO cid FROM kntc.case_file c
     WHERE c.code = p_code AND c.lookup_secret_hash = sha256(convert_to(p_secret, 'UTF8'));
    IF cid IS NULL THEN
        RETURN;
    END IF;
    IF p_channels IS NOT NULL THEN
        IF NOT p_channels <@ ARRAY['email', 'sms'] THEN
            RAISE EXCEPTION 'kênh chỉ là sms hoặc email / a channel is sms or email'
                USING ERRCODE = 'check_violation';
        END IF;
        FOR p IN SELECT x.id, x.phone, x.email, x.notify_channels FROM kntc.party x
                  WHERE x.case_id = cid ORDER BY x.id FOR UPDATE LOOP
            before := p.notify_channels;
            IF kntc.notify_consent_apply(p.id, ARRAY(SELECT c FROM unnest(p_channels) c
                                                      WHERE CASE c WHEN 'sms' THEN p.phone ELSE p.email END
                                                            IS NOT NULL), 'citizen', NULL) <> before THEN
                did := true;
            END IF;
        END LOOP;
    END IF;
    RETURN QUERY
    SELECT ARRAY(SELECT ch FROM unnest(ARRAY['sms', 'email']) ch
                  WHERE EXISTS (SELECT 1 FROM kntc.party x WHERE x.case_id = cid
                                   AND CASE ch WHEN 'sms' THEN x.phone ELSE x.email END IS NOT NULL)),
           ARRAY(SELECT DISTINCT ch FROM kntc.party x CROSS JOIN LATERAL unnest(x.notify_channels) ch
                  WHERE x.case_id = cid ORDER BY ch),
           did;
END $$;

-- The officer's door: on the citizen's request, with a reason, by the unit holding the case, for a
-- party the officer may read.
CREATE FUNCTION kntc.notify_consent_set(p_party uuid, p_channels text[], p_reason text)
RETURNS text[]
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    p record;
BEGIN
    SELECT x.id, x.case_id, x.identity_protected, c.handling_unit_id, c.classification INTO p
      FROM kntc.party x JOIN kntc.case_file c ON c.id = x.case_id WHERE x.id = p_party;
    IF a.account_id IS NULL OR p.id IS NULL OR 'external_reader' = ANY (a.roles)
       OR p.handling_unit_id IS DISTINCT FROM a.unit_id OR p.classification > a.clearance
       OR (p.identity_protected AND NOT kntc.handles_case(p.case_id)) THEN
        RAISE EXCEPTION 'chỉ đơn vị đang giải quyết hồ sơ mới được thay đổi việc nhận thông báo / only the unit '
                        'holding the case may change how the citizen is notified'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF length(btrim(coalesce(p_reason, ''))) < 10 THEN
        RAISE EXCEPTION 'cần nêu lý do (yêu cầu của công dân), ít nhất 10 ký tự / a reason (the citizen''s request) '
                        'of 10 characters at least is required' USING ERRCODE = 'check_violation',
                        CONSTRAINT = 'consent_change_who';
    END IF;
    RETURN kntc.notify_consent_apply(p_party, p_channels, 'officer', btrim(p_reason));
END $$;

-- Deadline recomputation ----------------------------------------------------------------------------
CREATE TABLE kntc.deadline_recompute (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    case_id        uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    step           text NOT NULL,
    -- NULL: a step the corrected kind has and the old one had not (started as of its event).
    rule_before    text,
    version_before integer,
    starts_before  date,
    due_before     date,
    -- NULL: the step has no rule for the case as corrected (e.g. a transfer limit of a denunciation
    -- corrected to a complaint); it is ended, not counted.
    rule_after     text,
    version_after  integer,
    starts_after   date,
    due_after      date,
    cause          jsonb NOT NULL,
    reason         text CHECK (length(reason) <= 5000),
    changed_by     integer NOT NULL REFERENCES kntc.account(id),
    unit_id        integer NOT NULL REFERENCES kntc.unit(id),
    changed_on     date NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deadline_recompute_case ON kntc.deadline_recompute (case_id);
ALTER TABLE kntc.deadline_recompute ENABLE ROW LEVEL SECURITY;
CREATE POLICY recompute_read ON kntc.deadline_recompute FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));
CREATE POLICY recompute_write ON kntc.deadline_recompute FOR INSERT WITH CHECK (
    changed_by = (SELECT (kntc.actor()).account_id)
    AND unit_id = (SELECT (kntc.actor()).unit_id)
    AND EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id
                AND c.handling_unit_id = (SELECT (kntc.actor()).unit_id)));

-- As 0012's guard, and a later due date is also accepted with its recompute row of this transaction.
CREATE OR REPLACE FUNCTION kntc.case_deadline_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    allowed integer;
BEGIN
    IF NEW.starts_on IS DISTINCT FROM OLD.starts_on OR NEW.rule_code IS DISTINCT FROM OLD.rule_code THEN
        RETURN NEW;  -- the step started again (a forward, a second round, a corrected date): a new count
    END IF;
    IF NEW.extensions = OLD.extensions AND NEW.due_on > OLD.due_on AND EXISTS (
            SELECT 1 FROM kntc.deadline_recompute x
             WHERE x.case_id = NEW.case_id AND x.step = NEW.step AND x.due_after = NEW.due_on
               AND x.created_at = now()) THEN
        RETURN NEW;  -- recomputed from a corrected fact (complexity, remote area, kind)
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

-- Audit chain ------------------------------------------------------------------------------------------
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.notify_consent_change REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.deadline_recompute REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');

-- Least privilege --------------------------------------------------------------------------------------
REVOKE ALL ON kntc.notify_consent_change, kntc.deadline_recompute FROM PUBLIC;
GRANT SELECT ON kntc.notify_consent_change TO kntc_app, kntc_readonly;
GRANT SELECT, INSERT ON kntc.deadline_recompute TO kntc_app;
GRANT SELECT ON kntc.deadline_recompute TO kntc_readonly;
REVOKE ALL ON FUNCTION kntc.party_notify_cancel(), kntc.notify_consent_apply(uuid, text[], text, text),
    kntc.public_notify_choice(text, text, text[]), kntc.notify_consent_set(uuid, text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.public_notify_choice(text, text, text[]),
    kntc.notify_consent_set(uuid, text[], text) TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
