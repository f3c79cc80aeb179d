"""The reading policy's scope test and an inbox's status are answered by one index: an officer's
inbox of one status reads the cases of their scope in that status, not the nation's cases in it
(on 300,000 case files a commune head's inbox went from 9–20 ms to under 1 ms; loadtests/CAPACITY.md).
A test database is too small for the planner to choose as it does at national size, so the indexes
themselves are checked: what the planner can use, and what every write maintains."""

from __future__ import annotations

import psycopg

INDEXES = """
SELECT i.indexrelid::regclass::text AS name, am.amname AS am, i.indisvalid AS valid,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n)::text[] AS columns
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_am am ON am.oid = c.relam
 WHERE i.indrelid = 'kntc.case_file'::regclass
"""


def test_each_half_of_the_reading_policy_has_one_index_with_the_status(owner_conn: psycopg.Connection) -> None:
    indexes = owner_conn.execute(INDEXES).fetchall()
    for path in ("handling_unit_path", "receiving_unit_path"):
        # (an index on an expression, such as the subject's words, names no column)
        on_path = [i for i in indexes if i["columns"][:1] == [path]]
        # One GiST index leads with the path (the policy's `<@`) and carries the status beside it;
        # no second index on the path alone for every insert and status change to maintain.
        assert [(i["am"], i["valid"], i["columns"]) for i in on_path] == [("gist", True, [path, "status"])], on_path
