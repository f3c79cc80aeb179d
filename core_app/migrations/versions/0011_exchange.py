"""The connection module: the systems of the Party, the National Assembly, the courts, the procuracies
and the Fatherland Front exchange cases with the national database as registered clients.

Why:
- A connected system acts as an officer of the unit it is registered for, at the clearance it was
  given: its own account (`exchange_client.account_id`, roles from its scopes) is what
  `kntc.actor()` returns for its access token, so row-level security, the duplicate check and the
  audit chain treat it exactly as they treat an officer. Its token is no session: `kntc.session_begin`
  never accepts it and the officer's API never sees it.
- The token is opaque and short-lived, stored only as a hash, and bound to the certificate the client
  presented when it got it (RFC 8705): `kntc.actor()` checks the token, the certificate thumbprint the
  application read from the TLS terminator, the credential and the client on every statement, so a
  revoked credential or client stops at the next request. Tokens are issued only by the login role
  (`kntc_auth`), as officers' sessions are: the application role cannot mint one.
- Rotation: a client holds several credentials (certificate thumbprints); a credential may carry an
  end (`not_after`), so old and new are valid together for the overlap the operator states.
- Every message in and out is kept with its SHA-256 in a hash chain per client (`exchange_log`),
  recomputed offline by `kntc exchange verify`.
- The change feed: each write to a case adds an event with the id of the transaction that wrote it
  (xid8). A reader delivers only events of transactions older than every transaction still running
  (`pg_snapshot_xmin`), in (xid, id) order: an id taken by a transaction that commits later can no
  longer be passed over.

Revision ID: 0011_exchange
Revises: 0010_account_lifecycle
"""

from alembic import op

revision = "0011_exchange"
down_revision = "0010_account_lifecycle"
branch_labels = None
depends_on = None

SQL = r"""
-- Clients and credentials ---------------------------------------------------------------------
CREATE TABLE kntc.exchange_client (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{2,40}$'),
    title           text NOT NULL CHECK (length(title) BETWEEN 2 AND 300),
    unit_id         integer NOT NULL REFERENCES kntc.unit(id),
    account_id      integer NOT NULL UNIQUE REFERENCES kntc.account(id),
    scopes          text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'submit', 'feed']),
    -- Requests a minute, counted in kntc.throttle like every other budget.
    rate_per_minute integer NOT NULL DEFAULT 600 CHECK (rate_per_minute BETWEEN 1 AND 100000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text
);

CREATE TABLE kntc.exchange_credential (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   integer NOT NULL REFERENCES kntc.exchange_client(id),
    -- SHA-256 of the registered certificate (DER): the client proves it holds the key in the TLS
    -- handshake; no certificate of ours is needed (RFC 8705, self_signed_tls_client_auth).
    thumbprint  bytea NOT NULL UNIQUE CHECK (octet_length(thumbprint) = 32),
    subject     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The end of a rotation's overlap: past it the credential no longer authenticates.
    not_after   timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX exchange_credential_client ON kntc.exchange_credential (client_id);

CREATE TABLE kntc.exchange_token (
    token_hash    bytea PRIMARY KEY,
    client_id     integer NOT NULL REFERENCES kntc.exchange_client(id),
    credential_id integer NOT NULL REFERENCES kntc.exchange_credential(id),
    thumbprint    bytea NOT NULL,
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    CONSTRAINT exchange_token_lifetime CHECK (expires_at <= created_at + interval '1 hour')
);
CREATE INDEX exchange_token_client ON kntc.exchange_token (client_id, expires_at);
REVOKE ALL ON kntc.exchange_client, kntc.exchange_credential, kntc.exchange_token FROM PUBLIC;

-- The live token of the transaction: the token's hash, the certificate the terminator saw, the
-- credential and the client all still valid. NULL otherwise.
CREATE FUNCTION kntc.exchange_token_row() RETURNS kntc.exchange_token
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT t.*
      FROM kntc.exchange_token t
      JOIN kntc.exchange_credential cr ON cr.id = t.credential_id AND cr.revoked_at IS NULL
                                       AND (cr.not_after IS NULL OR cr.not_after > now())
      JOIN kntc.exchange_client c ON c.id = t.client_id AND c.revoked_at IS NULL
     WHERE t.token_hash = sha256(convert_to(nullif(current_setting('kntc.exchange_token', true), ''), 'UTF8'))
       AND t.expires_at > now()
       AND t.thumbprint = (SELECT decode(x, 'hex') FROM (SELECT current_setting('kntc.exchange_cert', true) AS x) s
                            WHERE x ~ '^[0-9a-f]{64}$')
$$;

CREATE FUNCTION kntc.exchange_client_id() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT (kntc.exchange_token_row()).client_id
$$;

-- Who is acting: an officer's session as before, or else a connected system's token.
CREATE OR REPLACE FUNCTION kntc.actor() RETURNS kntc.actor
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    token text := nullif(current_setting('kntc.session_token', true), '');
    result kntc.actor;
BEGIN
    IF token IS NULL THEN
        IF nullif(current_setting('kntc.exchange_token', true), '') IS NULL THEN
            RETURN NULL;
        END IF;
        SELECT a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
          INTO result
          FROM kntc.exchange_client c
          JOIN kntc.account a ON a.id = c.account_id AND a.is_active
          JOIN kntc.unit u ON u.id = a.unit_id
          JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
         WHERE c.id = kntc.exchange_client_id();
        RETURN result;
    END IF;
    SELECT a.id, a.unit_id, u.path, s.path, a.roles, a.clearance
      INTO result
      FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
      JOIN kntc.unit u ON u.id = a.unit_id
      JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u)
     WHERE ss.token_hash = sha256(convert_to(token, 'UTF8'))
       AND ss.purpose = 'full'
       AND ss.expires_at > now()
       -- last_seen_at is written at most once a minute (session_begin): one minute of slack.
       AND ss.last_seen_at > now() - make_interval(secs => kntc.session_idle_ceiling() + 60);
    RETURN result;
END $$;

-- The request's gate (application role): 'live', 'wrong_certificate' or 'invalid' (unknown,
-- expired or revoked: the same answer), with what the application needs to know of the client.
CREATE FUNCTION kntc.exchange_begin(p_token text, p_cert text)
RETURNS TABLE (state text, client_id integer, client_name text, scopes text[], rate_per_minute integer,
               unit_id integer, unit_code text, account_id integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    t kntc.exchange_token;
BEGIN
    SELECT x.* INTO t FROM kntc.exchange_token x
      JOIN kntc.exchange_credential cr ON cr.id = x.credential_id AND cr.revoked_at IS NULL
                                       AND (cr.not_after IS NULL OR cr.not_after > now())
      JOIN kntc.exchange_client c ON c.id = x.client_id AND c.revoked_at IS NULL
     WHERE x.token_hash = sha256(convert_to(coalesce(p_token, ''), 'UTF8')) AND x.expires_at > now();
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'invalid'::text, NULL::integer, NULL::text, NULL::text[], NULL::integer,
                            NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;
    IF p_cert IS NULL OR p_cert !~ '^[0-9a-f]{64}$' OR t.thumbprint <> decode(p_cert, 'hex') THEN
        RETURN QUERY SELECT 'wrong_certificate'::text, NULL::integer, NULL::text, NULL::text[], NULL::integer,
                            NULL::integer, NULL::text, NULL::integer;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'live'::text, c.id, c.name, t.scopes, c.rate_per_minute, c.unit_id, u.code, c.account_id
      FROM kntc.exchange_client c JOIN kntc.unit u ON u.id = c.unit_id WHERE c.id = t.client_id;
END $$;

-- OAuth2 client credentials (login role only): a token for the client whose registered, valid
-- credential has this certificate's thumbprint, with the scopes asked for (all of the client's
-- when none are named). 'invalid_client' says nothing of which part was wrong.
CREATE FUNCTION kntc.exchange_token_issue(p_client text, p_cert text, p_token text, p_scopes text[],
                                          p_seconds integer)
RETURNS TABLE (outcome text, client_id integer, scopes text[], expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    c kntc.exchange_client;
    cred integer;
    granted text[];
    ends timestamptz := now() + make_interval(secs => least(greatest(coalesce(p_seconds, 600), 60), 3600));
BEGIN
    IF p_cert IS NULL OR p_cert !~ '^[0-9a-f]{64}$' THEN
        RETURN QUERY SELECT 'invalid_client'::text, NULL::integer, NULL::text[], NULL::timestamptz;
        RETURN;
    END IF;
    SELECT x.* INTO c FROM kntc.exchange_client x WHERE x.name = p_client AND x.revoked_at IS NULL;
    SELECT cr.id INTO cred FROM kntc.exchange_credential cr
     WHERE cr.client_id = c.id AND cr.thumbprint = decode(p_cert, 'hex') AND cr.revoked_at IS NULL
       AND (cr.not_after IS NULL OR cr.not_after > now());
    IF c.id IS NULL OR cred IS NULL THEN
        RETURN QUERY SELECT 'invalid_client'::text, NULL::integer, NULL::text[], NULL::timestamptz;
        RETURN;
    END IF;
    granted := CASE WHEN cardinality(coalesce(p_scopes, '{}')) = 0 THEN c.scopes ELSE p_scopes END;
    IF NOT granted <@ c.scopes THEN
        RETURN QUERY SELECT 'invalid_scope'::text, c.id, c.scopes, NULL::timestamptz;
        RETURN;
    END IF;
    DELETE FROM kntc.exchange_token x WHERE x.client_id = c.id AND x.expires_at < now();
    INSERT INTO kntc.exchange_token (token_hash, client_id, credential_id, thumbprint, scopes, expires_at)
    VALUES (sha256(convert_to(p_token, 'UTF8')), c.id, cred, decode(p_cert, 'hex'), granted, ends);
    RETURN QUERY SELECT 'issued'::text, c.id, granted, ends;
END $$;

-- Budgets of a connected system: its own rate (checked by the application against the count) and a
-- duplicate-check budget sized for a body's intake, still per client.
INSERT INTO kntc.throttle_rule VALUES
 ('exchange_minute',         60, 100000000, NULL, 0, 'requests of one connected system per minute (its own rate applies)'),
 ('exchange_dedup_minute',   60,      1200, NULL, 0, 'duplicate checks of one connected system per minute'),
 ('exchange_dedup_day',   86400,    200000, NULL, 0, 'duplicate checks of one connected system per day');

-- The duplicate check, unchanged but for the budget of a connected system.
CREATE OR REPLACE FUNCTION kntc.dedup_candidates(p_query jsonb, p_ids text[], p_names text[], p_units integer[],
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

-- Cases a client submitted, under its own id -----------------------------------------------------
CREATE TABLE kntc.exchange_case (
    client_id    integer NOT NULL REFERENCES kntc.exchange_client(id),
    external_id  text NOT NULL CHECK (external_id ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$'),
    case_id      uuid NOT NULL REFERENCES kntc.case_file(id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, external_id)
);
CREATE INDEX exchange_case_case ON kntc.exchange_case (case_id);

-- Idempotency keys: the first answer, kept a day, replayed for the same key and body.
CREATE TABLE kntc.exchange_idempotency (
    client_id      integer NOT NULL REFERENCES kntc.exchange_client(id),
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    route          text NOT NULL,
    request_sha256 bytea NOT NULL CHECK (octet_length(request_sha256) = 32),
    status         integer NOT NULL,
    response       bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, key)
);

ALTER TABLE kntc.exchange_case ENABLE ROW LEVEL SECURITY;
ALTER TABLE kntc.exchange_idempotency ENABLE ROW LEVEL SECURITY;
CREATE POLICY exchange_case_own ON kntc.exchange_case FOR ALL
    USING (client_id = (SELECT kntc.exchange_client_id())) WITH CHECK (client_id = (SELECT kntc.exchange_client_id()));
CREATE POLICY exchange_idempotency_own ON kntc.exchange_idempotency FOR ALL
    USING (client_id = (SELECT kntc.exchange_client_id())) WITH CHECK (client_id = (SELECT kntc.exchange_client_id()));

-- The change feed ------------------------------------------------------------------------------
CREATE TABLE kntc.exchange_event (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction: readers deliver only events of transactions older than any still running.
    xid      xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    case_id  uuid NOT NULL REFERENCES kntc.case_file(id) ON DELETE CASCADE,
    kind     text NOT NULL CHECK (kind IN ('created', 'changed')),
    status   text NOT NULL,
    version  integer NOT NULL
);
CREATE INDEX exchange_event_order ON kntc.exchange_event (xid, id);
CREATE INDEX exchange_event_case ON kntc.exchange_event (case_id);

CREATE FUNCTION kntc.exchange_event_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    INSERT INTO kntc.exchange_event (case_id, kind, status, version)
    VALUES (NEW.id, CASE WHEN TG_OP = 'INSERT' THEN 'created' ELSE 'changed' END, NEW.status, NEW.version);
    RETURN NULL;
END $$;
CREATE TRIGGER exchange_event AFTER INSERT OR UPDATE ON kntc.case_file
    FOR EACH ROW EXECUTE FUNCTION kntc.exchange_event_capture();

ALTER TABLE kntc.exchange_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY exchange_event_read ON kntc.exchange_event FOR SELECT
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id));

-- The exchange log: a hash chain per client --------------------------------------------------------
CREATE TABLE kntc.exchange_chain (
    client_id  integer PRIMARY KEY REFERENCES kntc.exchange_client(id),
    last_id    bigint NOT NULL DEFAULT 0,
    last_hash  bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
);
CREATE TABLE kntc.exchange_log (
    client_id   integer NOT NULL REFERENCES kntc.exchange_client(id),
    id          bigint NOT NULL,
    at          timestamptz NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('in', 'out')),
    message_id  uuid NOT NULL,
    route       text NOT NULL,
    status      integer,
    digest      bytea NOT NULL CHECK (octet_length(digest) = 32),
    -- The message itself; NULL for an answer that carries a credential (an access token).
    body        bytea,
    db_user     text NOT NULL DEFAULT session_user,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (client_id, id)
);

-- hash = sha256(prev_hash || the fields joined by U+001F); core_app/exchange/log.py builds the same
-- text to verify, never calling this function.
CREATE FUNCTION kntc.exchange_log_append(p_client_id integer, p_direction text, p_message_id uuid, p_route text,
                                         p_status integer, p_body bytea, p_keep_body boolean) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    head kntc.exchange_chain;
    ts timestamptz := clock_timestamp();
    d bytea := sha256(coalesce(p_body, ''::bytea));
    next_id bigint;
    h bytea;
BEGIN
    SELECT * INTO head FROM kntc.exchange_chain WHERE client_id = p_client_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no exchange chain for client %', p_client_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    next_id := head.last_id + 1;
    h := sha256(head.last_hash || convert_to(concat_ws(E'\x1f', next_id::text,
            ((extract(epoch FROM ts) * 1000000)::bigint)::text, p_client_id::text, p_direction, p_message_id::text,
            p_route, coalesce(p_status::text, ''), encode(d, 'hex'), session_user::text), 'UTF8'));
    INSERT INTO kntc.exchange_log (client_id, id, at, direction, message_id, route, status, digest, body,
                                   db_user, prev_hash, hash)
    VALUES (p_client_id, next_id, ts, p_direction, p_message_id, p_route, p_status, d,
            CASE WHEN p_keep_body THEN p_body END, session_user, head.last_hash, h);
    UPDATE kntc.exchange_chain SET last_id = next_id, last_hash = h WHERE client_id = p_client_id;
    RETURN next_id;
END $$;
CREATE TRIGGER exchange_log_protect BEFORE UPDATE OR DELETE ON kntc.exchange_log
    FOR EACH ROW EXECUTE FUNCTION kntc.audit_refuse_change();
CREATE TRIGGER exchange_log_no_truncate BEFORE TRUNCATE ON kntc.exchange_log
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_refuse_change();

-- Reads by connected systems, recorded with the client and the purpose it stated ------------------
ALTER TABLE kntc.access_log DROP CONSTRAINT access_log_kind_check;
ALTER TABLE kntc.access_log ADD CONSTRAINT access_log_kind_check CHECK (kind IN (
    'case_read', 'identity_read', 'export', 'attachment_download', 'declassify', 'login', 'login_failed',
    'logout', 'account_change', 'password_change', 'factor_change', 'session_end', 'exchange_read'));

CREATE FUNCTION kntc.record_exchange_read(p_case_ids uuid[], p_purpose text, p_detail jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    act kntc.actor := kntc.actor();
    c kntc.exchange_client;
    detail jsonb;
BEGIN
    SELECT * INTO c FROM kntc.exchange_client WHERE id = kntc.exchange_client_id();
    IF act.account_id IS NULL OR c.id IS NULL THEN
        RAISE EXCEPTION 'kntc.record_exchange_read: no connected system acting' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_purpose IS NULL OR length(btrim(p_purpose)) < 3 THEN
        RAISE EXCEPTION 'kntc.record_exchange_read: a purpose is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    detail := coalesce(p_detail, '{}') || jsonb_build_object('client', c.name, 'purpose', left(p_purpose, 500));
    IF cardinality(coalesce(p_case_ids, '{}')) = 0 THEN
        INSERT INTO kntc.access_log (kind, account_id, unit_id, client, detail)
        VALUES ('exchange_read', act.account_id, act.unit_id, 'exchange:' || c.name, detail);
    ELSE
        INSERT INTO kntc.access_log (kind, account_id, unit_id, case_id, client, detail)
        SELECT 'exchange_read', act.account_id, act.unit_id, x, 'exchange:' || c.name, detail
          FROM unnest(p_case_ids) x;
    END IF;
END $$;

-- Webhooks: the client's feed pushed to its URL, signed the Standard Webhooks way ------------------
-- The delivery state is the outbox: where each client's deliveries stand in its feed, how many
-- attempts failed and when to try again. It lives here, so a restart or a failover resumes it.
CREATE TABLE kntc.exchange_webhook (
    client_id   integer PRIMARY KEY REFERENCES kntc.exchange_client(id),
    url         text NOT NULL CHECK (length(url) <= 500 AND (url ~ '^https://[^\s]+$'
                                     OR url ~ '^http://(127\.0\.0\.1|\[::1\]|localhost)(:[0-9]+)?/[^\s]*$')),
    -- Sealed by the application (core_app.sealing) and bound to the client: a copy of the
    -- database does not sign.
    secret      bytea NOT NULL,
    cursor      text,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kntc.exchange_webhook FROM PUBLIC;

-- The dispatcher (login role) claims one due webhook for a minute (another dispatcher skips it; a
-- dispatcher that dies lets the claim lapse), with a feed token for one of the client's valid credentials.
CREATE FUNCTION kntc.exchange_webhook_claim(p_token text)
RETURNS TABLE (client_id integer, url text, secret bytea, cursor text, attempts integer, thumbprint text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    w kntc.exchange_webhook;
    cred kntc.exchange_credential;
BEGIN
    SELECT x.* INTO w FROM kntc.exchange_webhook x
      JOIN kntc.exchange_client c ON c.id = x.client_id AND c.revoked_at IS NULL AND 'feed' = ANY (c.scopes)
     WHERE x.next_at <= now() ORDER BY x.next_at LIMIT 1 FOR UPDATE OF x SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT cr.* INTO cred FROM kntc.exchange_credential cr
     WHERE cr.client_id = w.client_id AND cr.revoked_at IS NULL AND (cr.not_after IS NULL OR cr.not_after > now())
     ORDER BY cr.id DESC LIMIT 1;
    UPDATE kntc.exchange_webhook x SET next_at = now() + interval '1 minute', updated_at = now()
     WHERE x.client_id = w.client_id;
    IF cred.id IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO kntc.exchange_token (token_hash, client_id, credential_id, thumbprint, scopes, expires_at)
    VALUES (sha256(convert_to(p_token, 'UTF8')), w.client_id, cred.id, cred.thumbprint, ARRAY['feed'],
            now() + interval '2 minutes');
    RETURN QUERY SELECT w.client_id, w.url, w.secret, w.cursor, w.attempts, encode(cred.thumbprint, 'hex');
END $$;

-- After a delivery round: the cursor reached; on a failure the next try after 5, 10, 20 … seconds
-- (at most an hour), else after `p_idle_s` (0 when the feed has more).
CREATE FUNCTION kntc.exchange_webhook_done(p_client_id integer, p_cursor text, p_failed boolean, p_error text,
                                           p_idle_s integer)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE kntc.exchange_webhook
       SET cursor = coalesce(p_cursor, cursor),
           attempts = CASE WHEN p_failed THEN attempts + 1 ELSE 0 END,
           next_at = CASE WHEN p_failed THEN now() + make_interval(secs => least(5 * power(2, attempts), 3600))
                          ELSE now() + make_interval(secs => greatest(p_idle_s, 0)) END,
           last_error = CASE WHEN p_failed THEN left(p_error, 500) END,
           updated_at = now()
     WHERE client_id = p_client_id;
    DELETE FROM kntc.exchange_token WHERE client_id = p_client_id AND expires_at < now();
$$;

-- Least privilege ---------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE ON kntc.exchange_case TO kntc_app;
GRANT SELECT, INSERT, DELETE ON kntc.exchange_idempotency TO kntc_app;
GRANT SELECT ON kntc.exchange_event TO kntc_app;
-- Auditors verify the chain from the digests; the messages themselves stay with the owner.
GRANT SELECT (client_id, id, at, direction, message_id, route, status, digest, db_user, prev_hash, hash)
    ON kntc.exchange_log TO kntc_readonly;
GRANT SELECT ON kntc.exchange_chain TO kntc_readonly;
GRANT SELECT (id, name, title, unit_id, scopes, created_at, revoked_at) ON kntc.exchange_client TO kntc_readonly;
REVOKE ALL ON kntc.exchange_log, kntc.exchange_chain, kntc.exchange_event FROM PUBLIC;

REVOKE ALL ON FUNCTION kntc.exchange_token_row(), kntc.exchange_client_id(), kntc.exchange_begin(text, text),
    kntc.exchange_token_issue(text, text, text, text[], integer), kntc.exchange_event_capture(),
    kntc.exchange_log_append(integer, text, uuid, text, integer, bytea, boolean),
    kntc.record_exchange_read(uuid[], text, jsonb), kntc.exchange_webhook_claim(text),
    kntc.exchange_webhook_done(integer, text, boolean, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.exchange_webhook_claim(text), kntc.exchange_webhook_done(integer, text, boolean, text, integer)
    TO kntc_auth;
GRANT EXECUTE ON FUNCTION kntc.exchange_client_id(), kntc.exchange_begin(text, text),
    kntc.record_exchange_read(uuid[], text, jsonb) TO kntc_app;
GRANT EXECUTE ON FUNCTION kntc.exchange_client_id() TO kntc_readonly;
GRANT EXECUTE ON FUNCTION kntc.exchange_token_issue(text, text, text, text[], integer) TO kntc_auth;
GRANT EXECUTE ON FUNCTION kntc.exchange_log_append(integer, text, uuid, text, integer, bytea, boolean)
    TO kntc_app, kntc_auth;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
