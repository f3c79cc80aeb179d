-- GET /api/cases?scope=unit&status=in_handling (the officer's inbox, first page of 50):
-- acting() then repo.cases.list_cases(). Variables: token.
BEGIN;
SELECT (a).account_id, (a).unit_id, (a).roles, (a).clearance, u.code AS unit_code, u.name AS unit_name,
       u.level AS unit_level
  FROM (SELECT set_config('kntc.session_token', :token, true)) s,
       LATERAL (SELECT kntc.actor() AS a WHERE s.set_config IS NOT NULL) x
  JOIN kntc.unit u ON u.id = (x.a).unit_id \gset a_
SELECT c.id, c.code, c.kind, c.subject, c.status, c.classification, c.received_on, c.version, hu.code AS handling_unit, hu.name AS handling_unit_name, (SELECT min(d.due_on) FROM kntc.case_deadline d WHERE d.case_id = c.id AND d.met_on IS NULL) AS next_due FROM kntc.case_file c JOIN kntc.unit hu ON hu.id = c.handling_unit_id WHERE c.status = 'in_handling' AND c.handling_unit_id = :a_unit_id ORDER BY c.received_on DESC, c.code DESC LIMIT 51 OFFSET 0;
COMMIT;
