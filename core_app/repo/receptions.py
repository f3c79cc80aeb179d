"""SQL for citizen receptions (form 03): record one, list them, prefill a petition from one.

Reads go through kntc.reception_entry: row-level security shows a reception only where the case
it led to is visible too, and the view hides a protected denouncer's identity from those who do
not handle the case (visitor fields None, `identity_protected` true).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from core_app.domain import workflow
from core_app.repo import keyset

# Who records and lists receptions, on the pages and through the API alike.
ROLES = ("reception", "head")

INSERT = """
INSERT INTO kntc.reception (unit_id, unit_path, officer_id, visitor_name, visitor_id_number, visitor_address,
    people_count, content, documents_received, prior_handling_agency, action_taken, notes)
SELECT %(unit_id)s, u.path, %(account_id)s, %(visitor_name)s, %(visitor_id_number)s, %(visitor_address)s,
    %(people_count)s, %(content)s, %(documents_received)s, %(prior_handling_agency)s, %(action_taken)s, %(notes)s
  FROM kntc.unit u WHERE u.id = %(unit_id)s
RETURNING id, received_at
"""

LIST = """
SELECT r.id, r.received_at, r.visitor_name, r.identity_protected, r.people_count, r.content,
       r.documents_received, r.action_taken, c.code AS case_code
  FROM kntc.reception_entry r LEFT JOIN kntc.case_file c ON c.id = r.case_id
 WHERE (%(unit)s::integer IS NULL OR r.unit_id = %(unit)s)
   AND (%(after_at)s::timestamptz IS NULL OR (r.received_at, r.id) < (%(after_at)s, %(after_id)s::uuid))
 ORDER BY r.received_at DESC, r.id DESC
 LIMIT %(limit)s
"""


async def record(conn: AsyncConnection[Any], actor: workflow.Actor, data: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.execute(INSERT, {**data, "unit_id": actor.unit_id, "account_id": actor.account_id})
    row = await cur.fetchone()
    assert row is not None  # the actor's own unit exists
    return row


async def list_receptions(conn: AsyncConnection[Any], per_page: int, after: str | None = None,
                          unit_id: int | None = None) -> dict[str, Any]:
    """Newest first; `after` is the cursor of the previous page; `unit_id` keeps one unit's."""
    key = keyset.decode(after, 2)
    cur = await conn.execute(LIST, {"unit": unit_id, "after_at": key[0] if key else None,
                                    "after_id": key[1] if key else None, "limit": per_page + 1})
    return keyset.page(await cur.fetchall(), per_page, "received_at", "id")


async def prefill(conn: AsyncConnection[Any], reception_id: str) -> dict[str, Any] | None:
    """A reception not yet recorded as a petition, for the petition form."""
    cur = await conn.execute("SELECT id, visitor_name, visitor_id_number, visitor_address, people_count, content "
                             "FROM kntc.reception_entry WHERE id = %s AND case_id IS NULL", (reception_id,))
    return await cur.fetchone()
