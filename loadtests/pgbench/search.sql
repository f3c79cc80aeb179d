-- GET /api/search?q=bồi thường (first page of 20, no `after` cursor): acting() then core_app/dedup/search.py search():
-- the ids from kntc.search_ids, then the rows through row-level security. The endpoint carries the
-- ids to the second query in Python; here array_agg + \gset carry them. Variables: token.
BEGIN;
SELECT (a).account_id, (a).unit_id, (a).roles, (a).clearance, u.code AS unit_code, u.name AS unit_name,
       u.level AS unit_level
  FROM (SELECT set_config('kntc.session_token', :token, true)) s,
       LATERAL (SELECT kntc.actor() AS a WHERE s.set_config IS NOT NULL) x
  JOIN kntc.unit u ON u.id = (x.a).unit_id;
SELECT coalesce(array_agg(id), '{}') AS ids FROM kntc.search_ids('%boi thuong%', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 21, NULL, NULL) \gset s_
SELECT c.code, c.kind, c.status, c.subject, c.respondent, c.classification, c.received_on, hu.code AS handling_unit, hu.name AS handling_unit_name FROM kntc.case_file c JOIN kntc.unit hu ON hu.id = c.handling_unit_id WHERE c.id = ANY (:s_ids::uuid[]) ORDER BY c.received_on DESC, c.code DESC;
COMMIT;
