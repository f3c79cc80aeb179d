"""Sessions opened only by the login role, bounded and recorded; an access log; the audit chain split
per unit group (no national lock) with heads that can be anchored outside the database; waits bounded.

Why:
- `kntc.session_open` and `kntc.login_lookup` were the application role's: its password alone could
  open a session for any account for any number of hours and read every password hash. They now
  belong to `kntc_auth`, a login role with no table privilege that only the login path uses; a
  session never outlives `kntc.session_max_hours()` (a constraint on the table, not only the
  function); every login, failed login and logout is written to `kntc.access_log`.
- Reads that matter (classified cases, protected identities, exports, attachment downloads) and
  every declassification are written to `kntc.access_log`, which the audit chain covers.
- The chain had one advisory lock for the whole country, held by every audited write until
  commit (an import held it for minutes). It is now 257 chains: chain 0 holds the history written
  before this revision and rows of no unit; unit u writes to chain 1 + u % 256, under its own lock.
  A transaction stays on the first chain it wrote to, so it takes one chain lock at most (no lock
  order, no deadlock between chains). Ids are gapless per chain; the primary key is (chain, id).
- `kntc.audit_head()` gives each chain's head, for `kntc audit anchor` to sign outside the database.
- `kntc.audit_drift()` lists rows whose current content is not their last audited image: a write
  made while an audit trigger was disabled, even if it was enabled again since.
- The database's own defaults bound an idle transaction and a lock wait for every session that does
  not set tighter ones (the application sets its own; pg_dump sets its own).

Revision ID: 0007_sessions_audit_waits
Revises: 0005_search_by_few_parties
"""

from alembic import op

revision = "0007_sessions_audit_waits"
down_revision = "0006_confidential_dedup"
branch_labels = None
depends_on = None

SQL = r"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kntc_auth') THEN
        RAISE EXCEPTION 'role kntc_auth is missing: create it (LOGIN, no other attribute) before migrating'
            USING HINT = 'the local cluster and the Ansible database role create it beside kntc_app';
    END IF;
    -- A safety net for sessions that set nothing tighter (psql by hand, a forgotten tool).
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L', current_database(), '10min');
    EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(), '1min');
END $$;
GRANT USAGE ON SCHEMA kntc TO kntc_auth;

-- Access log ---------------------------------------------------------------------------------
CREATE TABLE kntc.access_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text NOT NULL CHECK (kind IN ('case_read', 'identity_read', 'export', 'attachment_download',
                    'declassify', 'login', 'login_failed', 'logout')),
    account_id  integer,
    unit_id     integer,
    case_id     uuid,
    client      text CHECK (length(client) <= 100),
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX access_log_case ON kntc.access_log (case_id, at) WHERE case_id IS NOT NULL;
CREATE INDEX access_log_account ON kntc.access_log (account_id, at);

-- Sessions ------------------------------------------------------------------------------------
-- The longest a session may last, whatever the caller asks for.
CREATE FUNCTION kntc.session_max_hours() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 12 $$;

UPDATE kntc.session SET expires_at = created_at + make_interval(hours => kntc.session_max_hours())
 WHERE expires_at > created_at + make_interval(hours => kntc.session_max_hours());
ALTER TABLE kntc.session ADD CONSTRAINT session_lifetime
    CHECK (expires_at <= created_at + make_interval(hours => kntc.session_max_hours()));

DROP FUNCTION kntc.session_open(integer, text, integer);
CREATE FUNCTION kntc.session_open(p_account_id integer, p_token text, p_hours integer, p_client text)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    acct_unit integer;
    expires timestamptz;
BEGIN
    SELECT a.unit_id INTO acct_unit FROM kntc.account a WHERE a.id = p_account_id AND a.is_active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active account %', p_account_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF length(coalesce(p_token, '')) < 32 THEN
        RAISE EXCEPTION 'a session token has at least 32 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM kntc.session WHERE account_id = p_account_id AND expires_at < now();
    INSERT INTO kntc.session (token_hash, account_id, expires_at)
    VALUES (sha256(convert_to(p_token, 'UTF8')), p_account_id,
            now() + make_interval(hours => least(greatest(coalesce(p_hours, 1), 1), kntc.session_max_hours())))
    RETURNING expires_at INTO expires;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, client, detail)
    VALUES ('login', p_account_id, acct_unit, left(p_client, 100), jsonb_build_object('expires_at', expires));
    RETURN expires;
END $$;

CREATE FUNCTION kntc.record_login_failure(p_account_id integer, p_client text) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    -- The name typed is not kept: it may be a password typed in the wrong field.
    INSERT INTO kntc.access_log (kind, account_id, unit_id, client, detail)
    SELECT 'login_failed', p_account_id, (SELECT a.unit_id FROM kntc.account a WHERE a.id = p_account_id),
           left(p_client, 100), jsonb_build_object('known_account', p_account_id IS NOT NULL);
$$;

CREATE OR REPLACE FUNCTION kntc.session_close(p_token text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    acct integer;
BEGIN
    DELETE FROM kntc.session WHERE token_hash = sha256(convert_to(p_token, 'UTF8')) RETURNING account_id INTO acct;
    IF acct IS NOT NULL THEN
        INSERT INTO kntc.access_log (kind, account_id, unit_id)
        SELECT 'logout', a.id, a.unit_id FROM kntc.account a WHERE a.id = acct;
    END IF;
END $$;

-- The application role's password alone opens no session and reads no password hash.
REVOKE ALL ON FUNCTION kntc.login_lookup(text), kntc.login_result(integer, boolean, text) FROM PUBLIC, kntc_app;
REVOKE ALL ON FUNCTION kntc.session_open(integer, text, integer, text), kntc.record_login_failure(integer, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.login_lookup(text), kntc.login_result(integer, boolean, text),
    kntc.session_open(integer, text, integer, text), kntc.record_login_failure(integer, text),
    kntc.session_close(text) TO kntc_auth;
-- The login path counts failures per account and address (kntc.throttle) in the same transaction.
GRANT EXECUTE ON FUNCTION kntc.throttle_state(text, text), kntc.throttle_hit(text, text),
    kntc.throttle_forgive_login(text) TO kntc_auth;

-- Access records ------------------------------------------------------------------------------
-- What the application reports about an officer's reads; the officer comes from the session, never
-- from the caller.
CREATE FUNCTION kntc.record_access(p_kind text, p_case_id uuid, p_detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    act kntc.actor := kntc.actor();
BEGIN
    IF act.account_id IS NULL THEN
        RAISE EXCEPTION 'kntc.record_access: no live session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_kind NOT IN ('case_read', 'identity_read', 'export', 'attachment_download') THEN
        RAISE EXCEPTION 'kntc.record_access: unknown kind %', p_kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO kntc.access_log (kind, account_id, unit_id, case_id, detail)
    VALUES (p_kind, act.account_id, act.unit_id, p_case_id, coalesce(p_detail, '{}'));
END $$;

-- A lowered classification is recorded by the database, whoever lowered it and through whatever path.
CREATE FUNCTION kntc.record_declassification() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    act kntc.actor := kntc.actor();
BEGIN
    INSERT INTO kntc.access_log (kind, account_id, unit_id, case_id, detail)
    VALUES ('declassify', act.account_id, coalesce(act.unit_id, NEW.handling_unit_id), NEW.id,
            jsonb_build_object('from', OLD.classification, 'to', NEW.classification, 'db_user', session_user));
    RETURN NULL;
END $$;
CREATE TRIGGER case_declassified AFTER UPDATE OF classification ON kntc.case_file FOR EACH ROW
    WHEN (NEW.classification < OLD.classification) EXECUTE FUNCTION kntc.record_declassification();

REVOKE ALL ON FUNCTION kntc.record_access(text, uuid, jsonb), kntc.record_declassification() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.record_access(text, uuid, jsonb) TO kntc_app;
REVOKE ALL ON kntc.access_log FROM PUBLIC, kntc_app;
GRANT SELECT ON kntc.access_log TO kntc_readonly;

-- Audit chains ----------------------------------------------------------------------------------
CREATE FUNCTION kntc.audit_chain_count() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 256 $$;
CREATE FUNCTION kntc.audit_chain_of(p_unit integer) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_unit IS NULL THEN 0 ELSE 1 + p_unit % kntc.audit_chain_count() END::smallint
$$;

ALTER TABLE kntc.audit_log ADD COLUMN chain smallint NOT NULL DEFAULT 0 CHECK (chain BETWEEN 0 AND 256);
ALTER TABLE kntc.audit_log DROP CONSTRAINT audit_log_pkey, ADD PRIMARY KEY (chain, id);

CREATE OR REPLACE FUNCTION kntc.audit_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    act kntc.actor := kntc.actor();
    who text := session_user;
    ts timestamptz := clock_timestamp();
    held text := current_setting('kntc.audit_chain', true);
    ch smallint;
    keyn text;
    keyo text;
    q text;
    r record;
    i integer;
    tail_id bigint;
    tail_hash bytea;
    b jsonb;
    a jsonb;
    units integer[] := '{}';
    keys text[] := '{}';
    befores jsonb[] := '{}';
    afters jsonb[] := '{}';
    ids bigint[] := '{}';
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
BEGIN
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
    FOR r IN EXECUTE q LOOP
        -- A password hash is a secret, not history; that it changed shows in password_changed_at.
        b := r.b - 'password_hash';
        a := r.a - 'password_hash';
        keys := keys || r.k;
        befores := befores || b;
        afters := afters || a;
        units := units || coalesce(act.unit_id, (coalesce(a, b) ->> 'handling_unit_id')::integer,
                                   (coalesce(a, b) ->> 'unit_id')::integer);
    END LOOP;
    IF cardinality(keys) = 0 THEN
        RETURN NULL;
    END IF;
    -- One chain per transaction: the one it already writes to, else the acting unit's (or the first
    -- row's). Its lock is held until commit, so the chain stays linear; other chains do not wait.
    IF held ~ '^[0-9]{1,3}$' AND held::integer <= kntc.audit_chain_count() THEN
        ch := held::smallint;
    ELSE
        ch := kntc.audit_chain_of(coalesce(act.unit_id, units[1]));
        PERFORM set_config('kntc.audit_chain', ch::text, true);
    END IF;
    PERFORM pg_advisory_xact_lock(727001, ch);
    SELECT l.id, l.hash INTO tail_id, tail_hash FROM kntc.audit_log l WHERE l.chain = ch ORDER BY l.id DESC LIMIT 1;
    IF tail_id IS NULL THEN
        tail_id := 0;
        tail_hash := decode(repeat('00', 32), 'hex');
    END IF;
    FOR i IN 1 .. cardinality(keys) LOOP
        tail_id := tail_id + 1;
        ids := ids || tail_id;
        prevs := prevs || tail_hash;
        tail_hash := sha256(tail_hash || convert_to(kntc.audit_text(tail_id, ts, act.account_id, who, units[i],
                                                                    TG_TABLE_NAME, TG_OP, keys[i], befores[i],
                                                                    afters[i]), 'UTF8'));
        hashes := hashes || tail_hash;
    END LOOP;
    INSERT INTO kntc.audit_log (chain, id, at, account_id, db_user, unit_id, table_name, op, row_key, before, after,
                                prev_hash, hash)
    SELECT ch, x.id, ts, act.account_id, who, x.unit, TG_TABLE_NAME, TG_OP, x.k, x.b, x.a, x.p, x.h
      FROM unnest(ids, units, keys, befores, afters, prevs, hashes) AS x(id, unit, k, b, a, p, h);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION kntc.audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'kntc.% chỉ được ghi thêm / is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_protect BEFORE UPDATE OR DELETE ON kntc.access_log
    FOR EACH ROW EXECUTE FUNCTION kntc.audit_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON kntc.access_log
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_refuse_change();
CREATE TRIGGER audit_ins AFTER INSERT ON kntc.access_log REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_upd AFTER UPDATE ON kntc.access_log REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');
CREATE TRIGGER audit_del AFTER DELETE ON kntc.access_log REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION kntc.audit_capture('id');

-- The head of every chain, for `kntc audit anchor` to sign with a key the database never holds.
CREATE FUNCTION kntc.audit_head() RETURNS TABLE (chain smallint, id bigint, hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT c::smallint, h.id, h.hash
      FROM generate_series(0, kntc.audit_chain_count()) c,
           LATERAL (SELECT l.id, l.hash FROM kntc.audit_log l WHERE l.chain = c ORDER BY l.id DESC LIMIT 1) h
     ORDER BY 1
$$;

-- Rows whose current content is not their last audited image: written while an audit trigger was off.
-- Only the columns the image has are compared, so a column added later is not a difference.
CREATE FUNCTION kntc.audit_drift(p_limit integer DEFAULT 100)
RETURNS TABLE (table_name text, row_key text, problem text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('case_file', 'c.id::text'), ('party', 'c.id::text'),
                                   ('petition', 'c.id::text'), ('case_deadline', 'c.case_id::text || ''/'' || c.step::text'),
                                   ('account', 'c.id::text'), ('access_log', 'c.id::text')) v(tab, keyexpr) LOOP
        RETURN QUERY EXECUTE format(
            'WITH cur AS (SELECT %2$s AS k, to_jsonb(c) - ''password_hash'' AS j FROM kntc.%1$I c),
                  last AS (SELECT DISTINCT ON (l.row_key) l.row_key AS k, l.op, l.after AS j
                             FROM kntc.audit_log l WHERE l.table_name = %1$L
                            ORDER BY l.row_key, l.at DESC, l.id DESC)
             SELECT %1$L::text, coalesce(cur.k, last.k),
                    CASE WHEN last.k IS NULL THEN ''no audit record''
                         WHEN cur.k IS NULL AND last.op <> ''DELETE'' THEN ''deleted without an audit record''
                         ELSE ''changed without an audit record'' END
               FROM cur FULL JOIN last ON last.k = cur.k
              WHERE (cur.k IS NULL AND last.op <> ''DELETE'')
                 OR last.k IS NULL
                 OR (last.op = ''DELETE'' AND cur.k IS NOT NULL)
                 OR EXISTS (SELECT 1 FROM jsonb_each(last.j) e
                             WHERE cur.j ? e.key AND cur.j -> e.key <> e.value
                               -- a time is written in the writer''s time zone: compare instants
                               AND NOT (e.value #>> ''{}'' ~ %4$L AND cur.j ->> e.key ~ %4$L
                                        AND (e.value #>> ''{}'')::timestamptz = (cur.j ->> e.key)::timestamptz))
              LIMIT %3$s', t.tab, t.keyexpr, p_limit,
            '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?$');
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION kntc.audit_head(), kntc.audit_drift(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.audit_head(), kntc.audit_drift(integer) TO kntc_readonly;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
