-- GET /api/cases?scope=unit&status=in_handling (the officer's inbox, first page of 50): one call outside
-- a transaction block that runs the session statement, judges the API budget and makes the page's JSON
-- (core_app/repo/cases.py UNIT_INBOX_PAGE). Variables: token, key (the session's budget key).
SELECT * FROM kntc.planned_unit_inbox_page_as_officer(:token, 1800, 'api_session', :key, 1,
                                                      'in_handling', 50);
