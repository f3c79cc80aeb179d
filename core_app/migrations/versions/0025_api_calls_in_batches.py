"""A session's API calls are counted by each app process and added to the shared counter in batches.

Why: every officer's call added one to its session's counter (`kntc.throttle_hit` beside the session
check), an UPDATE of `kntc.throttle` that gave each read a transaction id of its own and made about
half the cost of the statement every request runs first (`loadtests/CAPACITY.md` §12, "The API
budget counted in batches"). Each app process now counts its calls in memory and adds them here every
quarter of a second, one transaction for all its sessions (`kntc.throttle_add`); a call is judged
by what the shared counter holds plus what this process has not yet added (`kntc.throttle_allows`),
a read. One process never lets a session past its budget (a call judged while the process adds a
batch may be refused that batch early); a session whose calls several processes serve at once may
pass its budget by what the others counted in the last quarter second.

Revision ID: 0025_api_calls_in_batches
Revises: 0024_search_scope_by_path
"""

from alembic import op

revision = "0025_api_calls_in_batches"
down_revision = "0024_search_scope_by_path"
branch_labels = None
depends_on = None

SQL = r"""
-- Add the calls an app process counted, every key of one purpose at once. Only the API budgets may
-- be added to this way: the login budgets count one failure at a time (kntc.throttle_hit), so the
-- application's role cannot spend an officer's login budget in one call.
CREATE FUNCTION kntc.throttle_add(p_purpose text, p_keys text[], p_counts integer[])
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    w integer;
    cur timestamptz;
BEGIN
    IF p_purpose NOT IN ('api_session', 'api_address') THEN
        RAISE EXCEPTION 'only the API budgets are added in batches, not %', p_purpose
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF cardinality(p_keys) IS DISTINCT FROM cardinality(p_counts)
       OR EXISTS (SELECT 1 FROM unnest(p_counts) n WHERE n IS NULL OR n < 1 OR n > 100000) THEN
        RAISE EXCEPTION 'one count from 1 to 100000 for each key' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT x.window_s INTO STRICT w FROM kntc.throttle_rule x WHERE x.purpose = p_purpose;
    cur := to_timestamp(floor(extract(epoch FROM now()) / w) * w);
    -- In the order of the keys: two processes adding the same sessions lock their rows in one order.
    INSERT INTO kntc.throttle AS x (purpose, key, window_start, hits, prev_hits, last_at)
    SELECT p_purpose, k.key, cur, k.n, 0, clock_timestamp()
      FROM (SELECT u.key, sum(u.n)::integer AS n FROM unnest(p_keys, p_counts) AS u(key, n)
             GROUP BY u.key ORDER BY u.key) k
    ON CONFLICT (purpose, key) DO UPDATE SET
        hits = CASE WHEN x.window_start = cur THEN x.hits + excluded.hits ELSE excluded.hits END,
        prev_hits = CASE WHEN x.window_start = cur THEN x.prev_hits
                         WHEN x.window_start = cur - make_interval(secs => w) THEN x.hits ELSE 0 END,
        window_start = cur, last_at = clock_timestamp();
END $$;

-- Whether `p_more` calls not yet added (this one among them) keep the key within its budget: the
-- window's arithmetic of kntc.throttle_hit, read only.
CREATE FUNCTION kntc.throttle_allows(p_purpose text, p_key text, p_more integer)
RETURNS TABLE (allowed boolean, retry_after_s integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
DECLARE
    w integer;
    lim integer;
    cur timestamptz;
    t_start timestamptz;
    t_hits integer;
    t_prev integer;
    n integer := 0;
BEGIN
    SELECT x.window_s, x.max_hits INTO STRICT w, lim FROM kntc.throttle_rule x WHERE x.purpose = p_purpose;
    cur := to_timestamp(floor(extract(epoch FROM now()) / w) * w);
    SELECT x.window_start, x.hits, x.prev_hits INTO t_start, t_hits, t_prev
      FROM kntc.throttle x WHERE x.purpose = p_purpose AND x.key = p_key;
    -- As the next hit would find the row: this window's hits, or the last window's as the previous.
    n := CASE WHEN t_start = cur THEN t_hits
              ELSE 0 END
         + floor(CASE WHEN t_start = cur THEN t_prev
                      WHEN t_start = cur - make_interval(secs => w) THEN t_hits ELSE 0 END
                 * (1 - extract(epoch FROM now() - cur) / w))::integer
         + greatest(p_more, 0);
    allowed := n <= lim;
    retry_after_s := CASE WHEN n <= lim THEN 0
                          ELSE ceil(extract(epoch FROM cur + make_interval(secs => w) - now()))::integer END;
    RETURN NEXT;
END $$;

REVOKE ALL ON FUNCTION kntc.throttle_add(text, text[], integer[]), kntc.throttle_allows(text, text, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kntc.throttle_add(text, text[], integer[]), kntc.throttle_allows(text, text, integer)
    TO kntc_app;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
