"""The change feed reads a client's own events, not the country's.

Why:
- `GET /api/v1/feed` joined every event after the cursor to its case and kept those of the client's
  unit (held or received there, or submitted by the client). Depending on the estimates the plan
  either walked every event after the cursor nationwide (a body that polls once an hour at the peak
  of 60 submissions a second reads 216,000 events to return its own), or every case of the client's
  area under row-level security with all their events, sorted, for each page (10,756 cases of
  Hà Nội on a 300,000-case data set to return 100; loadtests/CAPACITY.md §8).
- Each event now carries the units that held and received its case, and the account that created
  it when that account's unit is neither (a body's own case moved away), as they were when it was
  written, with an index per role ordered like the feed (xid, id): a
  page is the merge of three index ranges from the cursor, and stops at its limit.
- The columns are filled by a trigger of their own on `kntc.exchange_event` (the row the event is
  about was written by the same statement), so `kntc.exchange_event_capture` stays as 0011 wrote it.
- Row-level security on the event (its case is readable) was free to become a hash of every case the
  client may read, built for each page: the planner estimates the client's area at 3,000 cases
  whatever it is, and the Inspectorate's is the country (316,000 on the benchmark's data, 757 ms a
  page). `OFFSET 0` in the policy's subquery (no change of meaning) keeps it one lookup per event.
- An event belongs to the case's units at the time it was written: a case transferred to a unit
  reaches its feed from the transfer on (the transfer is an event of the new unit); events from
  before it stay with the units of their time. Row-level security still decides, when a page is
  read, whether the case may be read at all.
- The receiving-unit and creator indexes hold only the few events whose case was received, or
  created, in another unit than the one holding it (transfers, forwarded petitions); the first
  range covers the rest, so no range reads the client's own events twice.

Revision ID: 0014_exchange_feed_index
Revises: 0012_officer_work
"""

from alembic import op

revision = "0014_exchange_feed_index"
down_revision = "0013_notifications"
branch_labels = None
depends_on = None

SQL = r"""
ALTER TABLE kntc.exchange_event
    ADD COLUMN handling_unit_id  integer,
    ADD COLUMN receiving_unit_id integer,
    -- Who created the case, only when that account's unit neither holds nor received it (a connected
    -- system's own case transferred away): the other two indexes find the rest.
    ADD COLUMN creator_elsewhere integer;

-- Events written before this migration take their case's units of today.
UPDATE kntc.exchange_event e
   SET handling_unit_id = c.handling_unit_id, receiving_unit_id = c.receiving_unit_id,
       creator_elsewhere = CASE WHEN a.unit_id <> c.handling_unit_id AND a.unit_id <> c.receiving_unit_id
                                THEN c.created_by END
  FROM kntc.case_file c LEFT JOIN kntc.account a ON a.id = c.created_by
 WHERE c.id = e.case_id;

ALTER TABLE kntc.exchange_event
    ALTER COLUMN handling_unit_id SET NOT NULL,
    ALTER COLUMN receiving_unit_id SET NOT NULL;

CREATE FUNCTION kntc.exchange_event_units() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    SELECT c.handling_unit_id, c.receiving_unit_id,
           CASE WHEN a.unit_id <> c.handling_unit_id AND a.unit_id <> c.receiving_unit_id THEN c.created_by END
      INTO NEW.handling_unit_id, NEW.receiving_unit_id, NEW.creator_elsewhere
      FROM kntc.case_file c LEFT JOIN kntc.account a ON a.id = c.created_by
     WHERE c.id = NEW.case_id;
    RETURN NEW;
END $$;
CREATE TRIGGER exchange_event_units BEFORE INSERT ON kntc.exchange_event
    FOR EACH ROW EXECUTE FUNCTION kntc.exchange_event_units();
REVOKE ALL ON FUNCTION kntc.exchange_event_units() FROM PUBLIC;

CREATE INDEX exchange_event_handling ON kntc.exchange_event (handling_unit_id, xid, id);
CREATE INDEX exchange_event_receiving ON kntc.exchange_event (receiving_unit_id, xid, id)
    WHERE receiving_unit_id <> handling_unit_id;
CREATE INDEX exchange_event_creator ON kntc.exchange_event (creator_elsewhere, xid, id)
    WHERE creator_elsewhere IS NOT NULL;
-- The same check, kept one per event: the planner otherwise may build a hash of every readable case
-- of the client's area once per page, having guessed the area from a parameter it cannot see (3,000
-- cases where the centre's is the whole country).
ALTER POLICY exchange_event_read ON kntc.exchange_event
    USING (EXISTS (SELECT 1 FROM kntc.case_file c WHERE c.id = case_id OFFSET 0));
-- Its work is theirs now; left in place, a stale estimate of how few events follow a cursor would
-- still make the planner walk the whole country's events from it.
DROP INDEX kntc.exchange_event_order;
ANALYZE kntc.exchange_event;
"""


def upgrade() -> None:
    op.execute(SQL)


def downgrade() -> None:
    raise NotImplementedError("forward-only: restore from backup to go back")
