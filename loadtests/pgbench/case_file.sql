-- GET /api/cases/{code}: what the endpoint sends, statement for statement and round trip for round trip
-- (core_app/db.py acting(), then core_app/repo/cases.py get_case(): the case row, then its parts in one
-- pipeline). Variables: token, prefix, lo, hi (from bench_app).
\set n random(:lo, :hi)
\startpipeline
BEGIN;
SELECT s.state, (x.a).account_id, (x.a).unit_id, (x.a).roles, (x.a).clearance, u.code AS unit_code,
       u.name AS unit_name, u.level AS unit_level
  FROM (SELECT set_config('kntc.session_token', :token, true) AS cfg, kntc.session_begin(:token, 1800) AS state) s
  LEFT JOIN LATERAL (SELECT kntc.actor() AS a WHERE s.state = 'live' AND s.cfg IS NOT NULL) x ON true
  LEFT JOIN kntc.unit u ON u.id = (x.a).unit_id;
\endpipeline
SELECT c.id, c.code, c.kind, c.subject, c.content, c.respondent, c.classification, c.denouncer_confidential,
       c.channel, c.status, c.complaint_round, c.is_complex, c.is_remote_area, c.received_on, c.accepted_on,
       c.resolved_on, c.closed_on, c.resolution_summary, c.published_result, c.version, c.created_at, c.updated_at,
       c.decision_known_on, c.handling_unit_id, hu.code AS handling_unit, hu.name AS handling_unit_name,
       ru.code AS receiving_unit, ru.name AS receiving_unit_name
  FROM kntc.case_file c
  JOIN kntc.unit hu ON hu.id = c.handling_unit_id
  JOIN kntc.unit ru ON ru.id = c.receiving_unit_id
 WHERE c.code = :prefix || lpad(:n::text, 6, '0') \gset c_
\startpipeline
SELECT p.id, p.role, p.party_kind, p.full_name, p.id_number, p.address, u.code AS address_unit, u.name AS address_unit_name, w.code AS address_unit_written, w.name AS address_unit_written_name, p.phone, p.email, p.identity_protected, p.notify_channels, p.notify_consent_at FROM kntc.party p LEFT JOIN kntc.unit u ON u.id = p.address_unit_id LEFT JOIN kntc.unit w ON w.id = p.address_unit_written_id WHERE p.case_id = :c_id ORDER BY p.role, p.full_name;
SELECT p.id, p.received_on, p.channel, p.content, p.people_count, u.code AS unit, p.reception_id, p.created_at FROM kntc.petition p JOIN kntc.unit u ON u.id = p.unit_id WHERE p.case_id = :c_id ORDER BY p.created_at;
SELECT d.step, d.rule_code, r.legal_basis, r.description_vi, r.description_en, r.day_unit, d.starts_on, d.due_on, d.extensions, d.met_on, d.ended_by, d.rule_version, (d.met_on IS NULL AND d.due_on < current_date) AS overdue FROM kntc.case_deadline d JOIN kntc.deadline_rule r ON r.code = d.rule_code WHERE d.case_id = :c_id ORDER BY d.starts_on, d.step;
SELECT e.at, e.action, e.from_status, e.to_status, e.note, e.data, a.username AS actor, u.code AS unit FROM kntc.case_event e LEFT JOIN kntc.account a ON a.id = e.actor_id LEFT JOIN kntc.unit u ON u.id = e.unit_id WHERE e.case_id = :c_id ORDER BY e.id;
SELECT id, filename, content_type, size_bytes, encode(sha256, 'hex') AS sha256, uploaded_at FROM kntc.attachment WHERE case_id = :c_id ORDER BY uploaded_at;
SELECT a.username, a.full_name, ca.duty, ca.assigned_at FROM kntc.case_assignment ca JOIN kntc.account a ON a.id = ca.account_id WHERE ca.case_id = :c_id;
SELECT d.decision, d.decided_at, d.note, d.source, a.username AS decided_by, coalesce((SELECT jsonb_agg(CASE WHEN e ? 'held_elsewhere' OR NOT EXISTS (SELECT 1 FROM kntc.case_file v WHERE v.code = e ->> 'case_code') THEN '{"held_elsewhere": true}'::jsonb ELSE e END) FROM jsonb_array_elements(c.candidates) e), '[]') AS proposed FROM kntc.dedup_decision d JOIN kntc.dedup_check c ON c.id = d.check_id LEFT JOIN kntc.account a ON a.id = d.account_id WHERE d.case_id = :c_id ORDER BY d.decided_at;
SELECT step, extension_no, days, level, reason, decision_ref, a.username AS approved_by, approved_on, old_due_on, new_due_on FROM kntc.deadline_extension e LEFT JOIN kntc.account a ON a.id = e.approved_by WHERE e.case_id = :c_id ORDER BY e.created_at;
SELECT d.id, d.description, d.field, d.reported_on, d.due_on, d.status, d.corrected_on, ru.code AS reporter_unit FROM kntc.discrepancy d JOIN kntc.unit ru ON ru.id = d.reporter_unit_id WHERE d.case_id = :c_id ORDER BY d.reported_on, d.created_at;
SELECT n.id, n.channel, n.event, n.status, n.attempts, n.created_at, n.last_attempt_at, n.sent_at, n.reported_at, CASE WHEN n.status = 'queued' THEN n.next_at END AS next_at, n.last_error, p.role AS party_role, p.full_name AS party_name FROM kntc.notification n LEFT JOIN kntc.party p ON p.id = n.party_id WHERE n.case_id = :c_id ORDER BY n.created_at, n.event, n.channel, n.id;
\endpipeline
COMMIT;
