"""Settings the database gives every connection of the case service, whatever the server's own
configuration: they travel with the schema (a migration), so the sites, a restored copy and the
local clusters all have them."""

from __future__ import annotations

import json

import psycopg


def test_no_statement_of_the_case_service_is_compiled_to_machine_code(pg_env: dict[str, str]) -> None:
    """Compiling (JIT) cost 13 ms for a 0.6 ms officer statement that row-level security made look
    costly to the planner; here every statement is made to look costly enough, and none is compiled."""
    for dsn in ("KNTC_DATABASE_URL", "KNTC_AUTH_DATABASE_URL", "KNTC_ADMIN_DATABASE_URL"):
        with psycopg.connect(pg_env[dsn], autocommit=True) as conn:
            assert conn.execute("SHOW jit").fetchone() == ("off",), dsn
            conn.execute("SET jit_above_cost = 0")
            [[plan]] = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) "
                                    "SELECT count(*) FROM generate_series(1, 1000) g WHERE g % 7 = 3").fetchall()
            doc = plan if isinstance(plan, list) else json.loads(plan)
            assert "JIT" not in doc[0], (dsn, doc[0].get("JIT"))
