-- POST /api/cases (record a petition with one complainant): acting() then repo.cases.create_case().
-- The lookup secret's hash is computed in Python by the endpoint; here the database draws it.
-- Variables: token.
BEGIN;
SELECT (a).account_id, (a).unit_id, (a).roles, (a).clearance, u.code AS unit_code, u.name AS unit_name,
       u.level AS unit_level
  FROM (SELECT set_config('kntc.session_token', :token, true)) s,
       LATERAL (SELECT kntc.actor() AS a WHERE s.set_config IS NOT NULL) x
  JOIN kntc.unit u ON u.id = (x.a).unit_id \gset a_
INSERT INTO kntc.case_file (code, kind, subject, content, respondent, classification, denouncer_confidential, channel, complaint_round, is_complex, is_remote_area, receiving_unit_id, handling_unit_id, received_on, lookup_secret_hash, created_by) VALUES (kntc.next_case_code(:a_unit_id, extract(year FROM current_date)::int), 'complaint', 'Khiếu nại quyết định thu hồi đất (pgbench)', 'Tôi không đồng ý với mức bồi thường khi thu hồi đất ở.', 'UBND phường', 0, false, 'in_person', 1, false, false, :a_unit_id, :a_unit_id, current_date, sha256(gen_random_bytes(15)), :a_account_id) RETURNING id, code, version \gset k_
INSERT INTO kntc.party (case_id, role, party_kind, full_name, id_number, address, address_unit_id, phone, email, identity_protected) VALUES (:k_id, 'complainant', 'person', 'Nguyễn Văn An', '001089000123', 'Số 1 phố Đội Cấn', (SELECT id FROM kntc.unit WHERE code = :a_unit_code), NULL, NULL, false) RETURNING id \gset p_
INSERT INTO kntc.petition (case_id, unit_id, received_on, channel, reception_id, sender_party_id, content, people_count, received_by) VALUES (:k_id, :a_unit_id, current_date, 'in_person', NULL, :p_id, 'Tôi không đồng ý với mức bồi thường khi thu hồi đất ở.', 1, :a_account_id) RETURNING id;
INSERT INTO kntc.case_deadline (case_id, step, rule_code, starts_on, due_on) VALUES (:k_id, 'accept', 'KN1-ACCEPT', current_date, current_date + 10) ON CONFLICT (case_id, step) DO UPDATE SET rule_code = EXCLUDED.rule_code, starts_on = EXCLUDED.starts_on, due_on = EXCLUDED.due_on, extensions = 0, met_on = NULL;
INSERT INTO kntc.case_event (case_id, actor_id, unit_id, action, from_status, to_status, note, data) VALUES (:k_id, :a_account_id, :a_unit_id, 'receive', NULL, 'received', NULL, '{"channel": "in_person"}');
COMMIT;
