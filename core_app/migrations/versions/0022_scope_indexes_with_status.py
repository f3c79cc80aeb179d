"""The case file's scope indexes carry its status: an officer's inbox of one status reads only its
own cases of that status.

Why: every read of a case file passes the reading policy, whose test is the handling or receiving
unit's path under the officer's scope (`<@`, GiST indexes on the two paths). An inbox asks for one
status as well, and the status was in no index the planner could join cheaply to the paths: it
read the whole national list of cases in that status from `case_handling_status` (whose first
column is the unit) and intersected it with the scope's bitmap. On the lab's 300,000 case files,
as `kntc_app` with a live session and warm caches, the area inbox of "resolved" cases:

| head of | before | after |
|---|---:|---:|
| a commune | 9–20 ms | 0.3–0.6 ms |
| a province | 16–26 ms | 3–8 ms |

(`EXPLAIN (ANALYZE)` on the DC leader; loadtests/CAPACITY.md, "Scope and status in one index").
The cost before grew with the nation's cases in that status, whatever the officer's scope; after,
with the cases of the scope in that status. A GiST index on (path, status) (btree_gist, created by
the first migration) answers the path alone as well as the path index did, so the two path indexes
are replaced rather than joined: a case's insert or status change maintains as many indexes as
before.

Built concurrently, outside the migration's transaction, so that officers keep writing while a
national database builds them (minutes at millions of case files); an index left invalid by an
interrupted build is dropped and built again when the migration is run again.

Revision ID: 0022_scope_indexes_with_status
Revises: 0021_no_jit_for_short_statements
"""

from alembic import op

revision = "0022_scope_indexes_with_status"
down_revision = "0021_no_jit_for_short_statements"
branch_labels = None
depends_on = None

NEW = {
    "case_handling_scope": "handling_unit_path, status",
    "case_receiving_scope": "receiving_unit_path, status",
}
OLD = ("case_handling_path", "case_receiving_path")

INVALID = """
SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = 'kntc'::regnamespace AND c.relname = %(name)s AND NOT i.indisvalid
"""


def upgrade() -> None:
    with op.get_context().autocommit_block():
        conn = op.get_bind()
        for name, columns in NEW.items():
            if conn.exec_driver_sql(INVALID, {"name": name}).first():
                op.execute(f"DROP INDEX CONCURRENTLY kntc.{name}")
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON kntc.case_file USING gist ({columns})")
        for name in OLD:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS kntc.{name}")


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
