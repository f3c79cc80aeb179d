"""Receptions follow the case rules; a session ends after it sits idle, for the API as for the pages.

- kntc.reception: a row linked to a case is visible only when that case is (scope and clearance,
  through the case's own policy); external readers see no reception at all.
- The visitor's identity (name, ID number, address) is no longer readable from the table by the
  application role: it comes through kntc.reception_entry, which hides it when the linked case
  protects its denouncer and the reader does not handle that case (as kntc.party does).
- kntc.session.last_seen_at: the last request of a session, kept in the database so that every
  worker and every application host applies the same idle limit. kntc.session_begin() checks it
  at the start of each request and writes it at most once a minute.

Revision ID: 0008_reception_scope
Revises: 0005_search_by_few_parties
"""

from alembic import op

revision = "0008_reception_scope"
down_revision = "0007_sessions_audit_waits"
branch_labels = None
depends_on = None

SQL = r"""
-- Idle sessions -------------------------------------------------------------------------------
ALTER TABLE kntc.session ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();

-- The database's own ceiling: the application may be stricter (KNTC_IDLE_SECONDS), never looser.
CREATE FUNCTION kntc.session_idle_ceiling() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1800 $$;

-- 'live', 'idle' (the application then closes the session) or 'expired' (no such live session).
-- The write is rare on purpose: one row update a minute per session, not one per request; with
-- a short limit (tests) it is written after a tenth of the limit so activity still counts.
CREATE FUNCTION kntc.session_begin(p_token text, p_idle_seconds integer) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    h bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
    idle integer := least(p_idle_seconds, kntc.session_idle_ceiling());
    seen timestamptz;
BEGIN
    SELECT ss.last_seen_at INTO seen FROM kntc.session ss WHERE ss.token_hash = h AND ss.expires_at > now();
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
    RETURN 'live';
END $$;
REVOKE ALL ON FUNCTION kntc.session_idle_ceiling() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.session_idle_ceiling() TO kntc_app, kntc_readonly;

REVOKE ALL ON FUNCTION kntc.session_begin(text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.session_begin(text, integer) TO kntc_app;

-- Receptions: rows ------------------------------------------------------------------------------
DROP POLICY reception_read ON kntc.reception;
CREATE POLICY reception_read ON kntc.reception FOR SELECT USING (
    unit_path <@ (SELECT (kntc.actor()).scope_path)
    AND NOT ('external_reader' = ANY ((SELECT (kntc.actor()).roles)::text[]))
    -- The subquery is itself under the case's policy: the same scope and clearance.
    AND (case_id IS NULL OR EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id)));

-- Receptions: the visitor's identity --------------------------------------------------------------
REVOKE SELECT ON kntc.reception FROM kntc_app;
GRANT SELECT (id, unit_id, unit_path, officer_id, received_at, people_count, content, documents_received,
              prior_handling_agency, action_taken, notes, case_id) ON kntc.reception TO kntc_app;

-- Runs as the owner (row-level security does not apply to it), so it repeats the row rule above
-- and the case's read rule, then hides a protected denouncer's identity from those who do not
-- handle the case.
-- PL/pgSQL keeps its plan for the session (see 0003); it is called once per listed row.
CREATE FUNCTION kntc.reception_visitor(p_id uuid)
RETURNS TABLE (visitor_name text, visitor_id_number text, visitor_address text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    RETURN QUERY
    SELECT r.visitor_name, r.visitor_id_number, r.visitor_address
      FROM kntc.reception r, kntc.actor() a
     WHERE r.id = p_id
       AND r.unit_path <@ a.scope_path
       AND NOT ('external_reader' = ANY (a.roles))
       AND (r.case_id IS NULL OR EXISTS (
            SELECT 1 FROM kntc.case_file c
             WHERE c.id = r.case_id
               AND c.classification <= a.clearance
               AND (c.handling_unit_path <@ a.scope_path OR c.receiving_unit_path <@ a.scope_path)
               AND (NOT c.denouncer_confidential OR kntc.handles_case(c.id))));
END $$;
REVOKE ALL ON FUNCTION kntc.reception_visitor(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.reception_visitor(uuid) TO kntc_app;

-- What the application reads: the rows the reader may see (the invoker's row-level security),
-- the identity only where it may be shown. No security_barrier: the view never reads the base
-- identity columns, and filters (a unit, a page cursor) must reach the index.
CREATE VIEW kntc.reception_entry WITH (security_invoker = true) AS
SELECT r.id, r.unit_id, r.officer_id, r.received_at, v.visitor_name, v.visitor_id_number, v.visitor_address,
       v.visitor_name IS NULL AS identity_protected, r.people_count, r.content, r.documents_received,
       r.prior_handling_agency, r.action_taken, r.notes, r.case_id
  FROM kntc.reception r
  LEFT JOIN LATERAL kntc.reception_visitor(r.id) v ON true;
GRANT SELECT ON kntc.reception_entry TO kntc_app;

-- Keyset paging of the newest receptions of an area, and of one unit (the reception page).
CREATE INDEX reception_received ON kntc.reception (received_at DESC, id DESC);
CREATE INDEX reception_unit_received ON kntc.reception (unit_id, received_at DESC, id DESC);
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
