-- GET /api/cases/{code}: what the endpoint sends, statement for statement and round trip for round trip:
-- one call outside a transaction block (core_app/gate.py reading, core_app/repo/planned.py OfficerRead)
-- that runs the session statement, judges the API budget and reads the case file as one JSON document
-- (core_app/repo/cases.py CASE_FILE). Variables: token, key (the session's budget key), prefix, lo, hi.
\set n random(:lo, :hi)
SELECT * FROM kntc.planned_case_file_as_officer(:token, 1800, 'api_session', :key, 1,
                                                :prefix || lpad(:n::text, 6, '0'));
