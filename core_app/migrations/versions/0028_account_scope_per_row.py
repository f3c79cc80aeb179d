"""An account is judged in the reader's area by its own unit, not by a table of the area's units.

Why: `account_read` kept an account when its unit was among the units of the reader's area, written
`unit_id IN (SELECT u.id FROM kntc.unit u WHERE u.path <@ scope)`. PostgreSQL runs that as a hashed
sub-plan: every statement that joins an account (a case file's timeline, its assignments, intake
decisions and extensions; the directory) first reads and hashes every unit of the area, once per
reference. A commune's area is a few units; a province's hundreds; the country's all 24,318. On the
bench cluster (`make bench-app`'s case file script, pgbench, 16 clients) a case file read by an
officer of the Government Inspectorate ran at 77 transactions a second against 909 for a ward
officer's, and a province head's at 773 (loadtests/CAPACITY.md, "An account judged by its own
unit").

Written `EXISTS (SELECT 1 FROM kntc.unit u WHERE u.id = account.unit_id AND u.path <@ scope)`, the
check is one look-up of the account's own unit by its key, whatever the area's size: the same case
file then ran at 955, 992 and 962 a second for the three. Which accounts are visible does not change:
a unit is in the area exactly when its path is under the area's.

A list of the whole area read in another order (the directory, by unit code and username) would now
check its accounts one by one until a page fills; the directory states the area in its own
condition (core_app/repo/accounts.py), so it starts from the area's units instead.

Revision ID: 0028_account_scope_per_row
Revises: 0027_session_in_one_lookup
"""

from alembic import op

revision = "0028_account_scope_per_row"
down_revision = "0027_session_in_one_lookup"
branch_labels = None
depends_on = None

SQL = r"""
ALTER POLICY account_read ON kntc.account USING (
    id = (SELECT (kntc.actor()).account_id)
    OR EXISTS (SELECT 1 FROM kntc.unit u
                WHERE u.id = account.unit_id AND u.path <@ (SELECT (kntc.actor()).scope_path)));
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
