"""Periodic reports: the indexes a unit's report reads by.

Why: a report counts, per unit below the one reported on, the petitions it received in the period
and the handling decisions it took in the period (core_app/repo/reports.py). Neither table had an
index by unit: a commune's report of petitions scanned every petition in the country (3 s at a
million case files, `make bench-reports`); with these, 13 ms.

- `kntc.petition (unit_id, received_on)`: the petitions a unit received in a range of days.
- `kntc.case_event (unit_id, at)` for the handling decisions only (accept, forward, guide, keep on
  file, return): the decisions a unit took in a range of time; the rest of the timeline is not in it.

Both are plain CREATE INDEX: writes to the two tables wait while they build (about 6 s for both at a
million case files here).

Revision ID: 0015_reports
Revises: 0014_exchange_feed_index
"""

from alembic import op

revision = "0015_reports"
down_revision = "0014_exchange_feed_index"
branch_labels = None
depends_on = None

SQL = r"""
CREATE INDEX petition_unit_received ON kntc.petition (unit_id, received_on);
CREATE INDEX case_event_decision ON kntc.case_event (unit_id, at)
    WHERE action IN ('accept', 'forward', 'guide', 'file_away', 'return');
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
