"""Officers' search: every filter optional, Vietnamese text with or without diacritics.

Two steps. kntc.search_ids picks the ids: it writes the officer's scope into the query as a
constant so that PostgreSQL plans a commune's search differently from the nation's (behind
row-level security the scope is a run-time value it cannot see). The rows are then read
through row-level security as everywhere else, which stays the guard: an id the officer may
not see does not come back.

Text filters compare the stored kntc.norm() forms (subject_norm, respondent_norm, name_norm):
subject and respondent anywhere in the text (trigram indexes; a subject phrase with a rare whole
word between its first and last starts from the words' index, migration 0026), a person's name from its
beginning, surname first (a btree prefix range; see migration 0002 for why). Free text
searches the subject (the summary an officer writes at intake), not the full content: a
trigram index over every petition's full text doubles the cost of each insert at national
scale for little gain in finding a case.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from core_app.dedup.normalise import norm
from core_app.repo import keyset
from core_app.repo.planned import Planned


def _like(text: str | None, *, prefix: bool = False) -> str | None:
    text = norm(text) if text else None
    if not text:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if prefix else f"%{escaped}%"


IDS = """
SELECT id FROM kntc.search_ids(%(q)s, %(code)s, %(person)s, %(id_number)s, %(respondent)s, %(unit)s, %(kind)s,
                               %(status)s, %(received_from)s, %(received_to)s, %(limit)s, %(after_received)s,
                               %(after_code)s)
"""
# The page's rows by their ids: one plan serves every page (the primary key), while row-level security
# judging each row made planning cost as much as the read. Kept from the first call: the estimates
# vary with the number of ids, which would have PL/pgSQL plan each page anew.
ROWS = Planned(
    "search_rows", params=(("ids", "uuid[]"),), generic=True,
    returns=(("code", "text"), ("kind", "text"), ("status", "text"), ("subject", "text"), ("respondent", "text"),
             ("classification", "smallint"), ("received_on", "date"), ("handling_unit", "text"),
             ("handling_unit_name", "text")),
    sql="""
SELECT c.code, c.kind, c.status, c.subject, c.respondent, c.classification, c.received_on,
       hu.code AS handling_unit, hu.name AS handling_unit_name
  FROM kntc.case_file c JOIN kntc.unit hu ON hu.id = c.handling_unit_id
 WHERE c.id = ANY (%(ids)s)
 ORDER BY c.received_on DESC, c.code DESC
""")


def params(filters: dict[str, Any], after: str | None, per_page: int) -> dict[str, Any]:
    key = keyset.decode(after, 2)
    code = (filters.get("code") or "").strip().upper() or None
    unit = (filters.get("unit") or "").strip().upper() or None
    return {"q": _like(filters.get("q")), "respondent": _like(filters.get("respondent")),
            "person": _like(filters.get("person"), prefix=True), "code": code, "unit": unit,
            "id_number": filters.get("id_number"), "kind": filters.get("kind"), "status": filters.get("status"),
            "received_from": filters.get("received_from"), "received_to": filters.get("received_to"),
            "limit": per_page + 1, "after_received": key[0] if key else None, "after_code": key[1] if key else None}


async def search(conn: AsyncConnection[Any], filters: dict[str, Any], after: str | None,
                 per_page: int) -> dict[str, Any]:
    """One page of cases, newest first; `after` is the previous page's `next` cursor."""
    cur = await conn.execute(IDS, params(filters, after, per_page))
    ids = [r["id"] for r in await cur.fetchall()]
    rows: list[dict[str, Any]] = []
    if ids:
        cur = await conn.execute(ROWS.call, {"ids": ids})
        rows = await cur.fetchall()
    # The ids of the page and one more, so the cursor is the last row shown.
    return keyset.page(rows, per_page, "received_on", "code")
