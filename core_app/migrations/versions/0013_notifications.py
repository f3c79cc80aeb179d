"""Citizen notifications by SMS and e-mail through an outbox in the database, and the SMS lookup.

Why:
- The outbox row is written by a trigger on the case's timeline (`kntc.case_event`), in the
  transaction that records the change: a change that rolls back queues nothing, and a queued
  notification is as durable as the change itself (replicated, backed up, still there after a
  failover). Every path that changes a case writes its timeline (the officers' pages and API, the
  exchange API, a second round), so none of them can forget to notify.
- Only citizens who agreed are notified, by the channels they chose, recorded on the party at
  reception with the moment it was recorded and the officer (`notify_channels`,
  `notify_consent_at`, `notify_consent_by`, stamped by the database, not the caller).
- What a message may say is decided here, once: the case code, the event, the handling unit's
  name and a date (`facts`). The subject, content, respondent, parties and results never enter the
  outbox, so no template can leak them. The destination is not copied into the outbox either: it is
  read from the party when the message is sent (a corrected number is used, a withdrawn consent
  cancels), and kept as sent (`sent_to`) for a dispute.
- Delivery is exactly once for SMS: a worker claims due rows with FOR UPDATE SKIP LOCKED and a lease
  (`next_at`), and sends each under its row id, which the gateway contract obliges the provider to
  deduplicate on (runbooks/sms-gateway.md). A worker killed while sending leaves the row to be
  claimed again after the lease, and the resend is recognised as the same message. The id is a
  UUID: a database restored to an earlier point would reissue a sequence's numbers, never these.
- The worker acts as the login role (`kntc_auth`), which reads the destination through
  `kntc.notify_claim` only; the application role sees a notification's status, never its address
  nor its text, and only for cases it may read (row-level security as for the timeline).
- Delivery reports and the citizen's SMS lookup arrive from the gateway signed (HMAC-SHA256 over
  the id, the timestamp and the body, the Standard Webhooks way); each callback id is accepted once
  (`kntc.sms_callback_seen`), so a recorded callback replayed within the timestamp window is refused.

Revision ID: 0013_notifications
Revises: 0012_officer_work
"""

from alembic import op

revision = "0013_notifications"
down_revision = "0012_officer_work"
branch_labels = None
depends_on = None

SQL = r"""
-- Consent and channels, on the party -----------------------------------------------------------
ALTER TABLE kntc.party
    ADD COLUMN notify_channels text[] NOT NULL DEFAULT '{}'
        CHECK (notify_channels <@ ARRAY['sms', 'email'] AND cardinality(notify_channels) <= 2),
    ADD COLUMN notify_consent_at timestamptz,
    ADD COLUMN notify_consent_by integer REFERENCES kntc.account(id),
    ADD CONSTRAINT party_notify_consent CHECK ((cardinality(notify_channels) = 0) = (notify_consent_at IS NULL));

-- When and by whom the choice was recorded is the database's to say: the caller cannot backdate it.
CREATE FUNCTION kntc.party_notify_stamp() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.notify_channels IS NOT DISTINCT FROM OLD.notify_channels THEN
        NEW.notify_consent_at := OLD.notify_consent_at;
        NEW.notify_consent_by := OLD.notify_consent_by;
    ELSIF cardinality(NEW.notify_channels) = 0 THEN
        NEW.notify_consent_at := NULL;
        NEW.notify_consent_by := NULL;
    ELSE
        NEW.notify_channels := ARRAY(SELECT DISTINCT c FROM unnest(NEW.notify_channels) c ORDER BY c);
        NEW.notify_consent_at := now();
        NEW.notify_consent_by := (kntc.actor()).account_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER party_notify_stamp BEFORE INSERT OR UPDATE OF notify_channels, notify_consent_at, notify_consent_by
    ON kntc.party FOR EACH ROW EXECUTE FUNCTION kntc.party_notify_stamp();

-- The outbox ------------------------------------------------------------------------------------
CREATE TABLE kntc.notification (
    -- Also the message's idempotency key at the SMS gateway and its e-mail Message-ID.
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id         bigint NOT NULL REFERENCES kntc.case_event(id) ON DELETE CASCADE,
    case_id          uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    party_id         uuid NOT NULL REFERENCES kntc.party(id) ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('sms', 'email')),
    event            text NOT NULL CHECK (event IN ('received', 'accepted', 'transferred', 'extended', 'resolved')),
    -- Everything a message may say: {code, unit, on, due_on?, step?}. Built by kntc.notify_capture
    -- from a fixed list of fields; nothing else of the case reaches the outbox.
    facts            jsonb NOT NULL,
    -- queued (waiting, or leased to a worker until next_at), sent (the gateway or the SMTP server
    -- took it), delivered (the provider's delivery report), failed (given up, or the report said
    -- so), cancelled (consent withdrawn or the contact removed before it was sent).
    status           text NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'sent', 'delivered', 'failed', 'cancelled')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at          timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    sent_at          timestamptz,
    reported_at      timestamptz,
    -- A short code of what went wrong (never a server's text, which may echo an address).
    last_error       text CHECK (length(last_error) <= 200),
    provider_id      text CHECK (length(provider_id) <= 100),
    sent_to          text CHECK (length(sent_to) <= 320),
    body             text,
    UNIQUE (event_id, party_id, channel)
);
CREATE INDEX notification_due ON kntc.notification (next_at) WHERE status = 'queued';
CREATE INDEX notification_case ON kntc.notification (case_id);
CREATE INDEX notification_party ON kntc.notification (party_id);

-- Which timeline actions notify, and what they may say. A fact is read from the case as it stands
-- after the change (the new unit of a transfer, the date of acceptance), not from the event's data,
-- which the application writes: an event that did not happen sends nothing.
CREATE FUNCTION kntc.notify_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    ev text;
    c record;
    ext record;
    facts jsonb;
    day date := (NEW.at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date;
BEGIN
    ev := CASE NEW.action
              WHEN 'receive' THEN 'received'
              WHEN 'second_round' THEN 'received'
              WHEN 'accept' THEN 'accepted'
              WHEN 'forward' THEN 'transferred'
              WHEN 'extend' THEN 'extended'
              WHEN 'resolve' THEN 'resolved'
              -- A connected system reports the results its own body reached.
              WHEN 'exchange_update' THEN CASE WHEN NEW.to_status IS DISTINCT FROM NEW.from_status
                                               THEN CASE NEW.to_status WHEN 'accepted' THEN 'accepted'
                                                                       WHEN 'resolved' THEN 'resolved' END END
          END;
    IF ev IS NULL OR NOT EXISTS (SELECT 1 FROM kntc.party p WHERE p.case_id = NEW.case_id
                                  AND cardinality(p.notify_channels) > 0) THEN
        RETURN NULL;
    END IF;
    SELECT cf.code, cf.status, cf.received_on, cf.accepted_on, cf.resolved_on, u.name AS unit_name INTO c
      FROM kntc.case_file cf JOIN kntc.unit u ON u.id = cf.handling_unit_id WHERE cf.id = NEW.case_id;
    facts := jsonb_build_object('code', c.code, 'unit', c.unit_name);
    IF ev = 'received' THEN
        facts := facts || jsonb_build_object('on', CASE WHEN NEW.action = 'second_round' THEN day ELSE c.received_on END);
    ELSIF ev = 'accepted' THEN
        IF c.accepted_on IS NULL THEN RETURN NULL; END IF;
        facts := facts || jsonb_build_object('on', c.accepted_on);
    ELSIF ev = 'resolved' THEN
        IF c.resolved_on IS NULL THEN RETURN NULL; END IF;
        facts := facts || jsonb_build_object('on', c.resolved_on);
    ELSIF ev = 'transferred' THEN
        facts := facts || jsonb_build_object('on', day);
    ELSIF ev = 'extended' THEN
        -- The head's decision written in this very transaction (kntc.case_deadline_guard holds the
        -- due date to it).
        SELECT e.step, e.new_due_on INTO ext FROM kntc.deadline_extension e
         WHERE e.case_id = NEW.case_id AND e.created_at = now() ORDER BY e.extension_no DESC LIMIT 1;
        IF ext.step IS NULL THEN RETURN NULL; END IF;
        facts := facts || jsonb_build_object('on', day, 'due_on', ext.new_due_on,
                                             'step', split_part(ext.step, '.', 1));
    END IF;
    INSERT INTO kntc.notification (event_id, case_id, party_id, channel, event, facts)
    SELECT NEW.id, NEW.case_id, p.id, ch, ev, facts
      FROM kntc.party p CROSS JOIN LATERAL unnest(p.notify_channels) ch
     WHERE p.case_id = NEW.case_id AND p.notify_consent_at IS NOT NULL
       AND CASE ch WHEN 'sms' THEN p.phone IS NOT NULL WHEN 'email' THEN p.email IS NOT NULL END;
    RETURN NULL;
END $$;
CREATE TRIGGER notify_capture AFTER INSERT ON kntc.case_event
    FOR EACH ROW EXECUTE FUNCTION kntc.notify_capture();

-- Officers see how delivery stands on a case they may read: status columns only.
ALTER TABLE kntc.notification ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_read ON kntc.notification FOR SELECT TO kntc_app
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));

-- The worker (login role): claim due rows of the channels it can send, for a lease. A claimed row whose party withdrew consent
-- for the channel, or lost the address, is cancelled instead of returned.
CREATE FUNCTION kntc.notify_claim(p_limit integer, p_lease_s integer, p_channels text[])
RETURNS TABLE (id uuid, channel text, event text, facts jsonb, destination text, attempts integer,
               created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    ids uuid[];
BEGIN
    WITH due AS (
        SELECT n.id FROM kntc.notification n
         WHERE n.status = 'queued' AND n.next_at <= now() AND n.channel = ANY (p_channels)
         ORDER BY n.next_at
         LIMIT least(greatest(coalesce(p_limit, 1), 1), 500)
         FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE kntc.notification n
           SET attempts = n.attempts + 1, last_attempt_at = now(),
               next_at = now() + make_interval(secs => least(greatest(coalesce(p_lease_s, 60), 5), 3600))
          FROM due WHERE n.id = due.id
        RETURNING n.id
    )
    SELECT array_agg(x.id) INTO ids FROM claimed x;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    UPDATE kntc.notification n SET status = 'cancelled', next_at = now(), last_error = 'no_consent_or_address'
      FROM kntc.party p
     WHERE n.id = ANY (ids) AND p.id = n.party_id
       AND (NOT n.channel = ANY (p.notify_channels) OR p.notify_consent_at IS NULL
            OR CASE n.channel WHEN 'sms' THEN p.phone ELSE p.email END IS NULL);
    RETURN QUERY
    SELECT n.id, n.channel, n.event, n.facts, CASE n.channel WHEN 'sms' THEN p.phone ELSE p.email END,
           n.attempts, n.created_at
      FROM kntc.notification n JOIN kntc.party p ON p.id = n.party_id
     WHERE n.id = ANY (ids) AND n.status = 'queued'
     ORDER BY n.next_at, n.id;
END $$;

-- The worker's outcome of one attempt: 'sent' (with the provider's id, the address used and the
-- text), 'retry' (after 30 s, 60 s, 2 min … at most an hour, or the gateway's Retry-After; failed
-- after p_max_attempts), 'failed' (a permanent refusal). Applies only to the attempt it claimed: a
-- worker whose lease ran out and whose row another worker took changes nothing.
CREATE FUNCTION kntc.notify_done(p_id uuid, p_attempt integer, p_outcome text, p_provider_id text,
                                 p_sent_to text, p_body text, p_error text, p_retry_after_s integer,
                                 p_max_attempts integer)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    result text;
BEGIN
    IF p_outcome NOT IN ('sent', 'retry', 'failed') THEN
        RAISE EXCEPTION 'notify_done: outcome must be sent, retry or failed' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE kntc.notification n SET
        status = CASE WHEN p_outcome = 'sent' THEN 'sent'
                      WHEN p_outcome = 'failed' OR n.attempts >= least(greatest(coalesce(p_max_attempts, 10), 1), 50)
                      THEN 'failed' ELSE 'queued' END,
        sent_at = CASE WHEN p_outcome = 'sent' THEN now() END,
        provider_id = CASE WHEN p_outcome = 'sent' THEN left(p_provider_id, 100) END,
        sent_to = CASE WHEN p_outcome = 'sent' THEN left(p_sent_to, 320) END,
        body = CASE WHEN p_outcome = 'sent' THEN p_body END,
        last_error = CASE WHEN p_outcome = 'sent' THEN NULL ELSE left(coalesce(p_error, 'error'), 200) END,
        next_at = CASE WHEN p_outcome = 'retry'
                       THEN now() + make_interval(secs => least(greatest(coalesce(p_retry_after_s, 0),
                                                                        30 * power(2, least(n.attempts, 12) - 1)),
                                                               3600))
                       ELSE now() END
     WHERE n.id = p_id AND n.attempts = p_attempt AND n.status = 'queued'
    RETURNING n.status INTO result;
    RETURN result;
END $$;

-- A delivery report from the gateway (signature checked by the application): only for a message
-- the worker recorded as sent under that provider id, which the application role cannot read, so
-- the role alone cannot mark a queued message failed and stop it.
CREATE FUNCTION kntc.notify_report(p_id uuid, p_provider_id text, p_delivered boolean, p_error text)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH r AS (
        UPDATE kntc.notification n
           SET status = CASE WHEN p_delivered THEN 'delivered' ELSE 'failed' END, reported_at = now(),
               last_error = CASE WHEN p_delivered THEN NULL ELSE left(coalesce(p_error, 'not_delivered'), 200) END
         WHERE n.id = p_id AND n.channel = 'sms' AND n.status IN ('sent', 'delivered', 'failed')
           AND n.sent_at IS NOT NULL AND n.provider_id = p_provider_id
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM r)
$$;

-- How the queue stands, for operators and monitoring (no row, no address).
CREATE FUNCTION kntc.notify_queue_state()
RETURNS TABLE (channel text, status text, messages bigint, due bigint, oldest_due timestamptz,
               most_attempts integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT n.channel, n.status, count(*), count(*) FILTER (WHERE n.status = 'queued' AND n.next_at <= now()),
           min(n.next_at) FILTER (WHERE n.status = 'queued'), max(n.attempts)
      FROM kntc.notification n GROUP BY n.channel, n.status ORDER BY 1, 2
$$;

-- Callbacks from the SMS gateway: each id once. Kept an hour, well past the 5-minute window in
-- which a timestamp is accepted; logged (not UNLOGGED), so a failover does not reopen a replay.
CREATE TABLE kntc.sms_callback_seen (
    callback_id  text PRIMARY KEY CHECK (length(callback_id) BETWEEN 1 AND 200),
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_callback_seen_at ON kntc.sms_callback_seen (at);

CREATE FUNCTION kntc.sms_callback_first(p_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF random() < 0.01 THEN
        DELETE FROM kntc.sms_callback_seen WHERE at < now() - interval '1 hour';
    END IF;
    INSERT INTO kntc.sms_callback_seen (callback_id) VALUES (p_id) ON CONFLICT DO NOTHING;
    RETURN FOUND;
END $$;

-- The SMS lookup's own budget: lookups a phone number sends, whatever their outcome (each reply is
-- a paid message); failures are counted as the web lookup's are (lookup_fail, keyed by the number).
INSERT INTO kntc.throttle_rule VALUES
 ('sms_lookup_sender', 3600, 10, NULL, 0, 'SMS lookups from one phone number per hour');

-- Least privilege ---------------------------------------------------------------------------------
REVOKE ALL ON kntc.notification, kntc.sms_callback_seen FROM PUBLIC;
GRANT SELECT (id, case_id, party_id, channel, event, status, attempts, next_at, created_at, last_attempt_at,
              sent_at, reported_at, last_error) ON kntc.notification TO kntc_app;
REVOKE ALL ON FUNCTION kntc.party_notify_stamp(), kntc.notify_capture(), kntc.notify_claim(integer, integer, text[]),
    kntc.notify_done(uuid, integer, text, text, text, text, text, integer, integer),
    kntc.notify_report(uuid, text, boolean, text), kntc.notify_queue_state(), kntc.sms_callback_first(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.notify_claim(integer, integer, text[]),
    kntc.notify_done(uuid, integer, text, text, text, text, text, integer, integer) TO kntc_auth;
GRANT EXECUTE ON FUNCTION kntc.notify_report(uuid, text, boolean, text), kntc.sms_callback_first(text) TO kntc_app;
GRANT EXECUTE ON FUNCTION kntc.notify_queue_state() TO kntc_readonly, kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
