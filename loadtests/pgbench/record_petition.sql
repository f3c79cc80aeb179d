-- An intake: POST /api/dedup/check, then POST /api/cases under that check (record a petition with one
-- complainant, a new matter): acting() then intake.check(), acting() then repo.cases.create_case().
-- The lookup secret's hash is computed in Python by the endpoint; here the database draws it.
-- Each transaction is a new complainant (a common name, an identity number of their own), as in
-- the HTTP bench: the same person every time made the check score all of that person's earlier cases.
-- Variables: token, key. The complainant's name is drawn by the server: pgbench's \set draws numbers only.
\set sur random(1, 10)
\set mid random(1, 8)
\set giv random(1, 16)
\set idn random(1, 999999999999)
-- (BEGIN and the session statement, kept as a_*: put here by loadtests/bench_scripts.py)
SELECT (ARRAY['Nguyễn','Trần','Lê','Phạm','Hoàng','Phan','Vũ','Đặng','Bùi','Đỗ'])[:sur] || ' ' ||
       (ARRAY['Văn','Thị','Hữu','Đức','Minh','Ngọc','Thanh','Quốc'])[:mid] || ' ' ||
       (ARRAY['An','Bình','Dũng','Hải','Hùng','Lan','Linh','Mai','Nam','Hoa','Hương','Sơn','Tâm','Thảo','Trang','Tuấn'])[:giv]
         AS who_name, lpad(:idn::text, 12, '0') AS who_idn \gset a_
SELECT check_id FROM kntc.dedup_candidates(jsonb_build_object('parties', jsonb_build_array(jsonb_build_object('full_name', :a_who_name::text, 'id_number', :a_who_idn::text))), ARRAY[:a_who_idn::text], '{}', '{}', 'Khiếu nại quyết định thu hồi đất (pgbench)', 'UBND phường', 10, '{}') LIMIT 1 \gset c_
INSERT INTO kntc.case_file (code, kind, subject, content, respondent, classification, denouncer_confidential, channel, complaint_round, is_complex, is_remote_area, receiving_unit_id, handling_unit_id, received_on, lookup_secret_hash, created_by) VALUES (kntc.next_case_code(:a_unit_id, extract(year FROM current_date)::int), 'complaint', 'Khiếu nại quyết định thu hồi đất (pgbench)', 'Tôi không đồng ý với mức bồi thường khi thu hồi đất ở.', 'UBND phường', 0, false, 'in_person', 1, false, false, :a_unit_id, :a_unit_id, current_date, sha256(gen_random_bytes(15)), :a_account_id) RETURNING id, code, version \gset k_
INSERT INTO kntc.party (case_id, role, party_kind, full_name, id_number, address, address_unit_id, phone, email, identity_protected) VALUES (:k_id, 'complainant', 'person', :a_who_name::text, :a_who_idn::text, 'Số 1 phố Đội Cấn', (SELECT id FROM kntc.unit WHERE code = :a_unit_code), NULL, NULL, false) RETURNING id \gset p_
INSERT INTO kntc.petition (case_id, unit_id, received_on, channel, reception_id, sender_party_id, content, people_count, received_by, intake_check_id) VALUES (:k_id, :a_unit_id, current_date, 'in_person', NULL, :p_id, 'Tôi không đồng ý với mức bồi thường khi thu hồi đất ở.', 1, :a_account_id, :c_check_id::uuid) RETURNING id;
INSERT INTO kntc.dedup_decision (check_id, account_id, unit_id, unit_path, decision, case_id) SELECT :c_check_id::uuid, :a_account_id, u.id, u.path, 'new', :k_id FROM kntc.unit u WHERE u.id = :a_unit_id;
SELECT stamp FROM kntc.rulebook_stamp;
INSERT INTO kntc.case_deadline (case_id, step, rule_code, rule_version, starts_on, due_on) VALUES (:k_id, 'accept', 'KN1-ACCEPT', 1, current_date, current_date + 10) ON CONFLICT (case_id, step) DO UPDATE SET rule_code = EXCLUDED.rule_code, rule_version = EXCLUDED.rule_version, starts_on = EXCLUDED.starts_on, due_on = EXCLUDED.due_on, extensions = 0, met_on = NULL, ended_by = NULL;
INSERT INTO kntc.case_event (case_id, actor_id, unit_id, action, from_status, to_status, note, data) VALUES (:k_id, :a_account_id, :a_unit_id, 'receive', NULL, 'received', NULL, '{"channel": "in_person"}');
COMMIT;
