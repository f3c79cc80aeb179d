-- GET /api/cases/{code}: what the endpoint sends, statement for statement (core_app/db.py acting()
-- then core_app/repo/cases.py get_case()). Variables: token, prefix, lo, hi (from bench_app).
\set n random(:lo, :hi)
BEGIN;
SELECT (a).account_id, (a).unit_id, (a).roles, (a).clearance, u.code AS unit_code, u.name AS unit_name,
       u.level AS unit_level
  FROM (SELECT set_config('kntc.session_token', :token, true)) s,
       LATERAL (SELECT kntc.actor() AS a WHERE s.set_config IS NOT NULL) x
  JOIN kntc.unit u ON u.id = (x.a).unit_id;
SELECT c.id, c.code, c.kind, c.subject, c.content, c.respondent, c.classification, c.denouncer_confidential,
       c.channel, c.status, c.complaint_round, c.is_complex, c.is_remote_area, c.received_on, c.accepted_on,
       c.resolved_on, c.closed_on, c.resolution_summary, c.published_result, c.version, c.created_at, c.updated_at,
       c.handling_unit_id, hu.code AS handling_unit, hu.name AS handling_unit_name,
       ru.code AS receiving_unit, ru.name AS receiving_unit_name
  FROM kntc.case_file c
  JOIN kntc.unit hu ON hu.id = c.handling_unit_id
  JOIN kntc.unit ru ON ru.id = c.receiving_unit_id
 WHERE c.code = :prefix || lpad(:n::text, 6, '0') \gset c_
SELECT p.id, p.role, p.party_kind, p.full_name, p.id_number, p.address, u.code AS address_unit, p.phone, p.email, p.identity_protected FROM kntc.party p LEFT JOIN kntc.unit u ON u.id = p.address_unit_id WHERE p.case_id = :c_id ORDER BY p.role, p.full_name;
SELECT p.id, p.received_on, p.channel, p.content, p.people_count, u.code AS unit, p.reception_id, p.created_at FROM kntc.petition p JOIN kntc.unit u ON u.id = p.unit_id WHERE p.case_id = :c_id ORDER BY p.created_at;
SELECT d.step, d.rule_code, r.legal_basis, r.description_vi, r.description_en, r.day_unit, d.starts_on, d.due_on, d.extensions, d.met_on, (d.met_on IS NULL AND d.due_on < current_date) AS overdue FROM kntc.case_deadline d JOIN kntc.deadline_rule r ON r.code = d.rule_code WHERE d.case_id = :c_id ORDER BY d.starts_on, d.step;
SELECT e.at, e.action, e.from_status, e.to_status, e.note, e.data, a.username AS actor, u.code AS unit FROM kntc.case_event e LEFT JOIN kntc.account a ON a.id = e.actor_id LEFT JOIN kntc.unit u ON u.id = e.unit_id WHERE e.case_id = :c_id ORDER BY e.id;
SELECT id, filename, content_type, size_bytes, encode(sha256, 'hex') AS sha256, uploaded_at FROM kntc.attachment WHERE case_id = :c_id ORDER BY uploaded_at;
SELECT a.username, a.full_name, ca.duty, ca.assigned_at FROM kntc.case_assignment ca JOIN kntc.account a ON a.id = ca.account_id WHERE ca.case_id = :c_id;
COMMIT;
