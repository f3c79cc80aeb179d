"""The change feed of the cases a client is involved in (held or received by its unit, or submitted
by it, when the event was written), within what it may read now.

An event belongs to the units that held and received its case, and to the account that created it,
as they were when it was written (migration 0014): a case transferred to the client's unit reaches
its feed from the transfer on, and its earlier events stay with the units of their time.

Order is (xid, id): the writing transaction's id, then the event's. A page holds only events of
transactions older than the oldest one still running (`pg_snapshot_xmin`): a transaction that took
a smaller id but commits later is still running, so nothing after it is delivered before it is.
Delivery is at least once; each item carries the cursor that resumes right after it, so a consumer
that saves the cursor of the last item it processed misses nothing and sees nothing twice.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.exchange.gate import Client
from core_app.exchange.problems import Problem

# The client's events after the cursor, from the three indexes of migration 0014: the unit that held
# the case, the unit that received it when another held it, the account that created it when neither
# is that account's unit, each as they were when the event was written. The branches are disjoint;
# each reads its index in (xid, id) order from the cursor and stops at the limit (one query over the
# three would be an append the planner cannot merge in order: it would read them whole and sort).
# Row-level security on the event (the case is readable now, checked per event: 0014) applies within
# each branch, so a hidden case never takes a place.
_AFTER = "(e.xid, e.id) > (%(xid)s::xid8, %(id)s::bigint) AND e.xid < pg_snapshot_xmin(pg_current_snapshot())"
_BRANCH = """(SELECT e.id, e.case_id, e.xid, e.at, e.kind, e.status, e.version FROM kntc.exchange_event e
          WHERE {who} AND {after} ORDER BY e.xid, e.id LIMIT %(limit)s)"""
_WHO = (
    "e.handling_unit_id = %(unit)s",
    "e.receiving_unit_id = %(unit)s AND e.receiving_unit_id <> e.handling_unit_id",
    "e.creator_elsewhere = %(account)s AND e.handling_unit_id <> %(unit)s AND e.receiving_unit_id <> %(unit)s",
)
PAGE = f"""
SELECT e.id, e.case_id, e.xid::text AS xid, e.at, e.kind, e.status, e.version, c.code AS case_code, x.external_id
  FROM ({" UNION ALL ".join(_BRANCH.format(who=w, after=_AFTER) for w in _WHO)}) e
  JOIN kntc.case_file c ON c.id = e.case_id
  LEFT JOIN kntc.exchange_case x ON x.case_id = e.case_id AND x.client_id = %(client)s
 ORDER BY e.xid, e.id
 LIMIT %(limit)s
"""
_CURSOR = re.compile(r"^v1\.([0-9]{1,20})\.([0-9]{1,19})$")


def encode(xid: str | int, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1.{xid}.{event_id}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> tuple[str, int]:
    if not cursor:
        return "0", 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        text = ""
    m = _CURSOR.match(text)
    if not m or int(m.group(1)) >= 2**64 or int(m.group(2)) >= 2**63:
        raise Problem(
            400, "invalid_cursor", "not a cursor this feed gave: resume from a saved one, or start without one"
        )
    return m.group(1), int(m.group(2))


async def page(
    conn: AsyncConnection[Any], client: Client, cursor: str | None, limit: int, purpose: str
) -> dict[str, Any]:
    xid, event_id = decode(cursor)
    cur = await conn.execute(
        PAGE,
        {
            "client": client.id,
            "xid": xid,
            "id": event_id,
            "unit": client.unit_id,
            "account": client.account_id,
            "limit": limit,
        },
    )
    rows = await cur.fetchall()
    if rows:
        await conn.execute(
            "SELECT kntc.record_exchange_read(%s, %s, %s)",
            (sorted({r["case_id"] for r in rows}), purpose, Jsonb({"what": "feed"})),
        )
    items = [
        {
            "cursor": encode(r["xid"], r["id"]),
            "event": r["kind"],
            "at": r["at"],
            "case_code": r["case_code"],
            "external_id": r["external_id"],
            "status": r["status"],
            "version": r["version"],
        }
        for r in rows
    ]
    return {
        "items": items,
        "next_cursor": items[-1]["cursor"] if items else (cursor or encode(0, 0)),
        "has_more": len(items) == limit,
    }
