"""Accounts for the whole country: contacts, first-login setup, second factors, the lifecycle, sessions.

Why:
- Accounts are created a province at a time from rosters, with one-time initial passwords: an
  account on such a password (`must_change_password`) gets a *setup* session, in which the
  officer can change the password (and enrol a second factor) and nothing else: `kntc.actor()`
  knows only full sessions, so row-level security gives a setup session nothing at all.
- A second factor (TOTP) is required of administrators and of every account cleared for classified
  content (`kntc.factor_required`). Its secret, encrypted by the application, lives in
  `kntc.account_factor`, which no role but the login role reads, and only through functions. The
  accounts that exist today get a grace period (`factor_due_at`) to enrol; past it, or without
  one, such an account without a factor cannot log in until an administrator resets it.
- Disabling, re-enabling, changing roles, unit or clearance, resetting a password or a factor and
  ending sessions go through one function, `kntc.account_admin`, which applies the granting rule
  (`kntc.may_grant`) to the account as it is and as it becomes, requires a reason, ends sessions
  whose powers changed, and writes who, what, why to the access log (the audit chain covers both
  the account row and that entry).
- Sessions record the client address and a purpose; officers and their administrators can list
  and end them.

Revision ID: 0010_account_lifecycle
Revises: 0009_search_keyset
"""

from alembic import op

revision = "0010_account_lifecycle"
down_revision = "0009_search_keyset"
branch_labels = None
depends_on = None

SQL = r"""
-- Accounts ------------------------------------------------------------------------------------
ALTER TABLE kntc.account
    ADD COLUMN email text CHECK (email ~ '^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$' AND length(email) <= 254),
    ADD COLUMN phone text CHECK (phone ~ '^\+[0-9]{8,15}$'),
    ADD COLUMN must_change_password boolean NOT NULL DEFAULT false,
    ADD COLUMN last_login_at timestamptz,
    ADD COLUMN factor_enrolled_at timestamptz,
    ADD COLUMN factor_due_at timestamptz;
CREATE INDEX account_last_login ON kntc.account (unit_id, last_login_at);
CREATE INDEX account_full_name ON kntc.account (unit_id, lower(full_name));

-- Who must hold a second factor: whoever administers accounts or reads classified content.
CREATE FUNCTION kntc.factor_required(p_roles text[], p_clearance smallint) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_clearance > 0 OR p_roles && ARRAY['unit_admin', 'sysadmin']
$$;

-- The accounts of today were made before factors existed: they have two weeks to enrol.
UPDATE kntc.account SET factor_due_at = now() + interval '14 days'
 WHERE kntc.factor_required(roles, clearance);

CREATE TABLE kntc.account_factor (
    account_id      integer PRIMARY KEY REFERENCES kntc.account(id) ON DELETE CASCADE,
    -- Encrypted by the application (AES-GCM, a key derived from its secret): a copy of the
    -- database alone does not give the codes.
    secret          bytea,
    pending_secret  bytea,
    -- The last 30-second step accepted: a code is good once (RFC 6238, section 5.2).
    last_step       bigint NOT NULL DEFAULT 0,
    -- SHA-256 of the unused recovery codes (each 80 random bits: no work factor is needed).
    recovery        bytea[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kntc.account_factor FROM PUBLIC;

-- Sessions ------------------------------------------------------------------------------------
ALTER TABLE kntc.session
    ADD COLUMN purpose text NOT NULL DEFAULT 'full' CHECK (purpose IN ('full', 'setup')),
    ADD COLUMN client text CHECK (length(client) <= 100);

-- Only a full session acts: a setup session (initial password, factor to enrol) reads nothing.
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
       AND ss.purpose = 'full'
       AND ss.expires_at > now()
       -- last_seen_at is written at most once a minute (session_begin): one minute of slack.
       AND ss.last_seen_at > now() - make_interval(secs => kntc.session_idle_ceiling() + 60);
    RETURN result;
END $$;

-- 'live', 'setup' (only the setup steps may use it), 'idle' or 'expired'.
CREATE OR REPLACE FUNCTION kntc.session_begin(p_token text, p_idle_seconds integer) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    h bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
    idle integer := least(p_idle_seconds, kntc.session_idle_ceiling());
    seen timestamptz;
    kind text;
BEGIN
    SELECT ss.last_seen_at, ss.purpose INTO seen, kind FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
     WHERE ss.token_hash = h AND ss.expires_at > now();
    IF NOT FOUND THEN
        RETURN 'expired';
    END IF;
    IF seen < now() - make_interval(secs => idle) THEN
        RETURN 'idle';
    END IF;
    IF seen < now() - make_interval(secs => least(60.0, idle / 10.0)) THEN
        -- Two requests of one session at once: one writes, the other does not wait for it (the
        -- row lock lasts until the writing request commits).
        UPDATE kntc.session SET last_seen_at = now()
         WHERE token_hash = (SELECT ss.token_hash FROM kntc.session ss WHERE ss.token_hash = h
                              FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN CASE WHEN kind = 'setup' THEN 'setup' ELSE 'live' END;
END $$;

-- Login -------------------------------------------------------------------------------------
DROP FUNCTION kntc.login_lookup(text);
CREATE FUNCTION kntc.login_lookup(p_username text)
RETURNS TABLE (account_id integer, password_hash text, is_active boolean, locked_until timestamptz,
               failed_logins integer, must_change_password boolean, factor_required boolean,
               factor_due_at timestamptz, factor_secret bytea, factor_last_step bigint, factor_recovery bytea[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT a.id, a.password_hash, a.is_active, a.locked_until, a.failed_logins, a.must_change_password,
           kntc.factor_required(a.roles, a.clearance), a.factor_due_at, f.secret, f.last_step, f.recovery
      FROM kntc.account a LEFT JOIN kntc.account_factor f ON f.account_id = a.id
     WHERE a.username = p_username
$$;

-- A code or a recovery code was accepted at login: neither is good twice.
CREATE FUNCTION kntc.factor_used(p_account_id integer, p_step bigint, p_recovery bytea) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF p_recovery IS NOT NULL THEN
        UPDATE kntc.account_factor SET recovery = array_remove(recovery, p_recovery), updated_at = now()
         WHERE account_id = p_account_id AND p_recovery = ANY (recovery);
    ELSE
        -- Two logins racing with one code: the row lock lets one of them through.
        UPDATE kntc.account_factor SET last_step = p_step, updated_at = now()
         WHERE account_id = p_account_id AND last_step < p_step;
    END IF;
    RETURN FOUND;
END $$;

DROP FUNCTION kntc.session_open(integer, text, integer, text);
CREATE FUNCTION kntc.session_open(p_account_id integer, p_token text, p_hours integer, p_client text,
                                  p_purpose text)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    acct kntc.account;
    expires timestamptz;
BEGIN
    SELECT * INTO acct FROM kntc.account a WHERE a.id = p_account_id AND a.is_active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active account %', p_account_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF length(coalesce(p_token, '')) < 32 THEN
        RAISE EXCEPTION 'a session token has at least 32 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The caller cannot open a full session the account is not entitled to.
    IF p_purpose = 'full' AND (acct.must_change_password OR (
            kntc.factor_required(acct.roles, acct.clearance) AND acct.factor_enrolled_at IS NULL
            AND coalesce(acct.factor_due_at < now(), true))) THEN
        RAISE EXCEPTION 'account % needs its setup first', p_account_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM kntc.session WHERE account_id = p_account_id AND expires_at < now();
    INSERT INTO kntc.session (token_hash, account_id, expires_at, purpose, client)
    VALUES (sha256(convert_to(p_token, 'UTF8')), p_account_id,
            now() + make_interval(hours => CASE WHEN p_purpose = 'setup' THEN 1 ELSE
                                  least(greatest(coalesce(p_hours, 1), 1), kntc.session_max_hours()) END),
            p_purpose, left(p_client, 100))
    RETURNING expires_at INTO expires;
    UPDATE kntc.account SET last_login_at = now() WHERE id = p_account_id;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, client, detail)
    VALUES ('login', p_account_id, acct.unit_id, left(p_client, 100),
            jsonb_build_object('expires_at', expires, 'purpose', p_purpose));
    RETURN expires;
END $$;

-- The officer's own steps (login role, by session token) --------------------------------------
ALTER TABLE kntc.access_log DROP CONSTRAINT access_log_kind_check;
ALTER TABLE kntc.access_log ADD CONSTRAINT access_log_kind_check CHECK (kind IN (
    'case_read', 'identity_read', 'export', 'attachment_download', 'declassify', 'login', 'login_failed',
    'logout', 'account_change', 'password_change', 'factor_change', 'session_end'));

-- The account behind a live session of either purpose, with what its setup still needs.
CREATE FUNCTION kntc.session_account(p_token text)
RETURNS TABLE (account_id integer, username text, full_name text, purpose text, password_hash text,
               must_change_password boolean, factor_required boolean, factor_enrolled boolean,
               factor_due_at timestamptz, factor_secret bytea, factor_pending bytea, factor_last_step bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT a.id, a.username, a.full_name, ss.purpose, a.password_hash, a.must_change_password,
           kntc.factor_required(a.roles, a.clearance), a.factor_enrolled_at IS NOT NULL, a.factor_due_at,
           f.secret, f.pending_secret, coalesce(f.last_step, 0)
      FROM kntc.session ss
      JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
      LEFT JOIN kntc.account_factor f ON f.account_id = a.id
     WHERE ss.token_hash = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
       AND ss.expires_at > now()
       AND ss.last_seen_at > now() - make_interval(secs => kntc.session_idle_ceiling() + 60)
$$;

-- A setup session becomes a full one once nothing is left to set up.
CREATE FUNCTION kntc.session_promote(p_token text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    h bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
    acct kntc.account;
BEGIN
    SELECT a.* INTO acct FROM kntc.session ss JOIN kntc.account a ON a.id = ss.account_id
     WHERE ss.token_hash = h AND ss.expires_at > now();
    IF NOT FOUND THEN
        RETURN 'expired';
    END IF;
    IF acct.must_change_password OR (kntc.factor_required(acct.roles, acct.clearance)
                                     AND acct.factor_enrolled_at IS NULL) THEN
        RETURN 'setup';
    END IF;
    UPDATE kntc.session SET purpose = 'full', last_seen_at = now() WHERE token_hash = h AND purpose = 'setup';
    RETURN 'full';
END $$;

-- The officer's new password (the application checked the current one and the policy). Every
-- other session of the account ends: whoever knew the old password is out.
CREATE FUNCTION kntc.password_set(p_token text, p_new_hash text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    h bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
    acct kntc.account;
    ended integer;
BEGIN
    SELECT a.* INTO acct FROM kntc.session ss JOIN kntc.account a ON a.id = ss.account_id AND a.is_active
     WHERE ss.token_hash = h AND ss.expires_at > now();
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_new_hash !~ '^\$argon2id\$' THEN
        RAISE EXCEPTION 'an argon2id hash is expected' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE kntc.account SET password_hash = p_new_hash, must_change_password = false,
           password_changed_at = now(), failed_logins = 0 WHERE id = acct.id;
    DELETE FROM kntc.session WHERE account_id = acct.id AND token_hash <> h;
    GET DIAGNOSTICS ended = ROW_COUNT;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, detail)
    VALUES ('password_change', acct.id, acct.unit_id,
            jsonb_build_object('by', 'self', 'was_initial', acct.must_change_password, 'sessions_ended', ended));
    RETURN kntc.session_promote(p_token);
END $$;

-- Enrolment: a pending secret first, made current only by a code it produced.
CREATE FUNCTION kntc.factor_begin(p_token text, p_secret bytea) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    acct integer;
BEGIN
    SELECT s.account_id INTO acct FROM kntc.session_account(p_token) s;
    IF acct IS NULL THEN
        RAISE EXCEPTION 'no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO kntc.account_factor (account_id, pending_secret) VALUES (acct, p_secret)
    ON CONFLICT (account_id) DO UPDATE SET pending_secret = excluded.pending_secret, updated_at = now();
END $$;

CREATE FUNCTION kntc.factor_confirm(p_token text, p_step bigint, p_recovery bytea[]) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    acct kntc.account;
    replaced boolean;
BEGIN
    SELECT a.* INTO acct FROM kntc.account a WHERE a.id = (SELECT s.account_id FROM kntc.session_account(p_token) s);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    replaced := acct.factor_enrolled_at IS NOT NULL;
    UPDATE kntc.account_factor SET secret = pending_secret, pending_secret = NULL, last_step = p_step,
           recovery = p_recovery, updated_at = now()
     WHERE account_id = acct.id AND pending_secret IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no enrolment under way' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE kntc.account SET factor_enrolled_at = now() WHERE id = acct.id;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, detail)
    VALUES ('factor_change', acct.id, acct.unit_id,
            jsonb_build_object('action', CASE WHEN replaced THEN 'replace' ELSE 'enrol' END, 'by', 'self',
                               'recovery_codes', cardinality(p_recovery)));
    RETURN kntc.session_promote(p_token);
END $$;

-- Sessions, listed and ended ------------------------------------------------------------------
-- p_username NULL: the caller's own; otherwise an account the acting administrator may manage.
-- A session is named by a handle derived from its token's hash, never by the token.
CREATE FUNCTION kntc.account_sessions(p_username text)
RETURNS TABLE (handle text, created_at timestamptz, last_seen_at timestamptz, expires_at timestamptz,
               client text, purpose text, current boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    target kntc.account;
    mine bytea := sha256(convert_to(coalesce(current_setting('kntc.session_token', true), ''), 'UTF8'));
BEGIN
    IF a.account_id IS NULL THEN
        RAISE EXCEPTION 'no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_username IS NULL THEN
        SELECT * INTO target FROM kntc.account WHERE id = a.account_id;
    ELSE
        SELECT * INTO target FROM kntc.account WHERE username = lower(btrim(p_username));
        IF NOT FOUND OR NOT (a.roles && ARRAY['unit_admin', 'sysadmin'])
           OR NOT kntc.may_grant(target.unit_id, target.roles, target.clearance) THEN
            RAISE EXCEPTION 'no such account among those you manage' USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    RETURN QUERY
        SELECT encode(substr(ss.token_hash, 1, 9), 'hex'), ss.created_at, ss.last_seen_at, ss.expires_at,
               ss.client, ss.purpose, ss.token_hash = mine
          FROM kntc.session ss WHERE ss.account_id = target.id AND ss.expires_at > now()
         ORDER BY ss.created_at DESC;
END $$;

CREATE FUNCTION kntc.session_end(p_handle text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    ended integer;
BEGIN
    IF a.account_id IS NULL THEN
        RAISE EXCEPTION 'no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM kntc.session WHERE account_id = a.account_id AND p_handle ~ '^[0-9a-f]{18}$'
       AND substr(token_hash, 1, 9) = decode(p_handle, 'hex');
    GET DIAGNOSTICS ended = ROW_COUNT;
    IF ended > 0 THEN
        INSERT INTO kntc.access_log (kind, account_id, unit_id, detail)
        VALUES ('session_end', a.account_id, a.unit_id, jsonb_build_object('by', 'self', 'handle', p_handle));
    END IF;
    RETURN ended;
END $$;

-- Administration ----------------------------------------------------------------------------
-- Who connects as the schema's owner is the operator (the `kntc` commands on the migrate host).
CREATE FUNCTION kntc.is_operator() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog AS $$
    SELECT pg_has_role(session_user, (SELECT nspowner FROM pg_namespace WHERE nspname = 'kntc'), 'MEMBER')
$$;

-- The one door for changing an account. The acting administrator must be allowed to grant what
-- the account has and what it gets (kntc.may_grant); the operator may do anything. Every change
-- needs a reason; every change that alters what the account may see or who may use it ends its
-- sessions at once.
CREATE FUNCTION kntc.account_admin(p_username text, p_action text, p_reason text, p_args jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    operator boolean := a.account_id IS NULL AND kntc.is_operator();
    t kntc.account;
    unit_code text;
    new_unit integer;
    new_roles text[];
    new_clearance smallint;
    ended integer := 0;
    detail jsonb;
BEGIN
    IF NOT operator AND (a.account_id IS NULL OR NOT (a.roles && ARRAY['unit_admin', 'sysadmin'])) THEN
        RAISE EXCEPTION 'only an administrator changes accounts' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF length(btrim(coalesce(p_reason, ''))) NOT BETWEEN 5 AND 500 THEN
        RAISE EXCEPTION 'a reason (5 to 500 characters) is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO t FROM kntc.account WHERE username = lower(btrim(p_username)) FOR UPDATE;
    -- An account outside the administrator's reach gets the same answer as one that does not exist.
    IF NOT FOUND OR (NOT operator AND NOT kntc.may_grant(t.unit_id, t.roles, t.clearance)) THEN
        RAISE EXCEPTION 'no such account among those you manage' USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT operator AND t.id = a.account_id AND p_action <> 'end_sessions' THEN
        RAISE EXCEPTION 'administrators do not change their own account: another administrator does'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT u.code INTO unit_code FROM kntc.unit u WHERE u.id = t.unit_id;
    new_unit := t.unit_id;
    new_roles := t.roles;
    new_clearance := t.clearance;
    CASE p_action
    WHEN 'disable' THEN
        UPDATE kntc.account SET is_active = false WHERE id = t.id;
    WHEN 'enable' THEN
        UPDATE kntc.account SET is_active = true, failed_logins = 0, locked_until = NULL WHERE id = t.id;
    WHEN 'set_roles' THEN
        new_roles := ARRAY(SELECT DISTINCT r FROM jsonb_array_elements_text(coalesce(p_args->'roles', '[]')) r
                           ORDER BY 1);
    WHEN 'set_unit' THEN
        SELECT u.id INTO new_unit FROM kntc.unit u WHERE u.code = upper(btrim(p_args->>'unit')) AND u.valid_to IS NULL;
        IF new_unit IS NULL THEN
            RAISE EXCEPTION 'no current unit with code %', p_args->>'unit' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    WHEN 'set_clearance' THEN
        new_clearance := (p_args->>'clearance')::smallint;
    WHEN 'reset_password', 'reset_factor' THEN
        IF coalesce(p_args->>'password_hash', '') !~ '^\$argon2id\$' THEN
            RAISE EXCEPTION 'an argon2id hash of a new initial password is expected'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- A reset factor is enrolled again at the next login, which the new initial password opens.
        IF p_action = 'reset_factor' THEN
            DELETE FROM kntc.account_factor WHERE account_id = t.id;
            UPDATE kntc.account SET factor_enrolled_at = NULL WHERE id = t.id;
        END IF;
        UPDATE kntc.account SET password_hash = p_args->>'password_hash', must_change_password = true,
               password_changed_at = now(), failed_logins = 0, locked_until = NULL WHERE id = t.id;
    WHEN 'end_sessions' THEN
        NULL;
    ELSE
        RAISE EXCEPTION 'unknown action %', p_action USING ERRCODE = 'invalid_parameter_value';
    END CASE;
    IF p_action IN ('set_roles', 'set_unit', 'set_clearance') THEN
        IF NOT operator AND NOT kntc.may_grant(new_unit, new_roles, new_clearance) THEN
            RAISE EXCEPTION 'grant refused' USING ERRCODE = 'insufficient_privilege', HINT = 'grant_refused';
        END IF;
        UPDATE kntc.account SET unit_id = new_unit, roles = new_roles, clearance = new_clearance WHERE id = t.id;
    END IF;
    IF p_action <> 'enable' AND NOT (p_action = 'set_clearance' AND new_clearance >= t.clearance)
       AND NOT (p_action = 'set_roles' AND new_roles @> t.roles) THEN
        DELETE FROM kntc.session WHERE account_id = t.id;
        GET DIAGNOSTICS ended = ROW_COUNT;
    END IF;
    detail := jsonb_build_object(
        'action', p_action, 'target', t.username, 'target_id', t.id, 'reason', btrim(p_reason),
        'before', jsonb_build_object('unit', unit_code, 'roles', t.roles, 'clearance', t.clearance,
                                     'is_active', t.is_active),
        'after', jsonb_build_object('unit', (SELECT u.code FROM kntc.unit u WHERE u.id = new_unit),
                                    'roles', new_roles, 'clearance', new_clearance,
                                    'is_active', CASE p_action WHEN 'disable' THEN false WHEN 'enable' THEN true
                                                 ELSE t.is_active END),
        'sessions_ended', ended);
    IF operator THEN
        detail := detail || jsonb_build_object('operator', coalesce(p_args->>'operator', session_user::text));
    END IF;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, detail)
    VALUES ('account_change', a.account_id, coalesce(a.unit_id, t.unit_id), detail);
    RETURN detail;
END $$;

-- A roster import, recorded once (each account it creates is in the audit chain already).
CREATE FUNCTION kntc.record_account_import(p_count integer, p_file_sha256 text, p_reason text, p_by text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    operator boolean := a.account_id IS NULL AND kntc.is_operator();
BEGIN
    IF NOT operator AND (a.account_id IS NULL OR NOT (a.roles && ARRAY['unit_admin', 'sysadmin'])) THEN
        RAISE EXCEPTION 'only an administrator imports accounts' USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, detail)
    VALUES ('account_change', a.account_id, a.unit_id,
            jsonb_build_object('action', 'import', 'count', p_count, 'file_sha256', p_file_sha256,
                               'reason', p_reason, 'by', coalesce(p_by, session_user::text)));
END $$;

-- Which of these usernames exist anywhere: a roster's usernames must be new, and an administrator
-- sees only the accounts of their area. It says no more than a refused INSERT would.
CREATE FUNCTION kntc.usernames_taken(p_names text[]) RETURNS SETOF text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
BEGIN
    IF NOT (a.account_id IS NULL AND kntc.is_operator()) AND NOT coalesce(a.roles && ARRAY['unit_admin', 'sysadmin'],
                                                                        false) THEN
        RAISE EXCEPTION 'only an administrator imports accounts' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY SELECT acc.username FROM kntc.account acc WHERE acc.username = ANY (p_names);
END $$;

-- The initial passwords of an import made in the web pages: sealed by the application, for the
-- administrator who imported, downloadable once within a day.
CREATE TABLE kntc.roster_delivery (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id  integer NOT NULL REFERENCES kntc.account(id) ON DELETE CASCADE,
    sealed      bytea NOT NULL,
    expires_at  timestamptz NOT NULL DEFAULT now() + interval '1 day'
);
REVOKE ALL ON kntc.roster_delivery FROM PUBLIC;

CREATE FUNCTION kntc.delivery_put(p_sealed bytea) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a kntc.actor := kntc.actor();
    id uuid;
BEGIN
    IF a.account_id IS NULL THEN
        RAISE EXCEPTION 'no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM kntc.roster_delivery d WHERE d.expires_at < now();
    INSERT INTO kntc.roster_delivery (account_id, sealed) VALUES (a.account_id, p_sealed) RETURNING roster_delivery.id
      INTO id;
    RETURN id;
END $$;

CREATE FUNCTION kntc.delivery_take(p_id uuid) RETURNS bytea
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    DELETE FROM kntc.roster_delivery d
     WHERE d.id = p_id AND d.account_id = (kntc.actor()).account_id AND d.expires_at > now()
    RETURNING d.sealed
$$;

-- What an administrator named by account id may grant (the operator's import acting for one).
CREATE FUNCTION kntc.may_grant_as(p_admin integer, p_unit_id integer, p_roles text[], p_clearance smallint)
RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    a record;
    target ltree;
BEGIN
    SELECT acc.roles, acc.clearance, u.path AS unit_path INTO a
      FROM kntc.account acc JOIN kntc.unit u ON u.id = acc.unit_id WHERE acc.id = p_admin AND acc.is_active;
    IF NOT FOUND OR p_clearance > a.clearance THEN
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

-- One rule, two doors: the acting officer's grant is the same test with their own account.
CREATE OR REPLACE FUNCTION kntc.may_grant(p_unit_id integer, p_roles text[], p_clearance smallint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT coalesce(kntc.may_grant_as((kntc.actor()).account_id, p_unit_id, p_roles, p_clearance), false)
$$;

-- Least privilege -----------------------------------------------------------------------------
GRANT SELECT (email, phone, must_change_password, last_login_at, factor_enrolled_at, factor_due_at,
              password_changed_at) ON kntc.account TO kntc_app;
GRANT INSERT (email, phone, must_change_password) ON kntc.account TO kntc_app;
-- Every change to an existing account goes through kntc.account_admin now.
REVOKE UPDATE ON kntc.account FROM kntc_app;

REVOKE ALL ON FUNCTION kntc.factor_required(text[], smallint), kntc.factor_used(integer, bigint, bytea),
    kntc.session_open(integer, text, integer, text, text), kntc.login_lookup(text),
    kntc.session_account(text), kntc.session_promote(text), kntc.password_set(text, text),
    kntc.factor_begin(text, bytea), kntc.factor_confirm(text, bigint, bytea[]),
    kntc.account_sessions(text), kntc.session_end(text), kntc.is_operator(),
    kntc.account_admin(text, text, text, jsonb), kntc.record_account_import(integer, text, text, text),
    kntc.may_grant_as(integer, integer, text[], smallint), kntc.usernames_taken(text[]),
    kntc.delivery_put(bytea), kntc.delivery_take(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.factor_required(text[], smallint) TO kntc_app, kntc_auth, kntc_readonly;
GRANT EXECUTE ON FUNCTION kntc.login_lookup(text), kntc.factor_used(integer, bigint, bytea),
    kntc.session_open(integer, text, integer, text, text), kntc.session_account(text), kntc.session_promote(text),
    kntc.password_set(text, text), kntc.factor_begin(text, bytea), kntc.factor_confirm(text, bigint, bytea[])
    TO kntc_auth;
GRANT EXECUTE ON FUNCTION kntc.account_sessions(text), kntc.session_end(text), kntc.account_admin(text, text, text, jsonb),
    kntc.record_account_import(integer, text, text, text), kntc.is_operator(), kntc.usernames_taken(text[]),
    kntc.delivery_put(bytea), kntc.delivery_take(uuid) TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
