-- GET /api/search?q=bồi thường (first page of 20, no `after` cursor): one call outside a transaction block
-- that runs the session statement, judges the API budget, picks the ids (kntc.search_ids), reads their
-- rows through row-level security and makes the page's JSON (core_app/dedup/search.py SEARCH_PAGE).
-- Variables: token, key (the session's budget key).
SELECT * FROM kntc.planned_search_page_as_officer(:token, 1800, 'api_session', :key, 1, '%boi thuong%', NULL,
                                                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 20);
