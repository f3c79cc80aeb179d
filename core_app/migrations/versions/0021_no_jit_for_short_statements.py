"""The database compiles no statement to machine code (JIT): its statements are short.

Why: PostgreSQL compiles a statement with LLVM when the planner's cost estimate passes
`jit_above_cost` (100,000). Under row-level security the estimates of the officers' statements
are far above what they do: the overdue list of a district head on 300,000 case files was
estimated at 109,443 and ran in 0.6 ms, after 13 ms of compiling 53 functions, for every call
(the lab's leader, `EXPLAIN (ANALYZE)` as `kntc_app`; loadtests/CAPACITY.md, "Compiled for
nothing"). The same held for the duplicate check, search and the inbox: the busy day's costliest
statements on the leader were those compiled ones. The case service runs short statements many
times, which compiling never pays for; a long report that would gain from it can turn it on for
its own transaction (`SET LOCAL jit = on`).

A database setting, so that every copy of the schema has it (the sites, a restored copy, the
local and benchmark clusters) and the major upgrade carries it (`dr/upgrade.py` copies the
database's settings). It applies to each connection opened after it: the pools' connections
take it as they are renewed.

Revision ID: 0021_no_jit_for_short_statements
Revises: 0020_actor_once_per_transaction
"""

from alembic import op

revision = "0021_no_jit_for_short_statements"
down_revision = "0020_actor_once_per_transaction"
branch_labels = None
depends_on = None

SQL = r"""
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
END $$;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
