"""Officers' search: every filter optional, Vietnamese text with or without diacritics.

Row-level security does the scoping: the query never names the officer's area, so a case
outside it simply does not exist here. Text filters compare the stored kntc.norm() forms
(subject_norm, respondent_norm, name_norm), which the trigram indexes of migration 0002 serve.
Free text searches the subject (the summary an officer writes at intake), not the full
content: a trigram index over every petition's full text doubles the cost of each insert at
national scale for little gain in finding a case.
"""

from __future__ import annotations

import re
from typing import Any

from psycopg import AsyncConnection

from core_app.dedup.normalise import norm

_FULL_CODE = re.compile(r"^[A-Z0-9][A-Z0-9.-]*-[0-9]{4}-[0-9]{6}$")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def build(filters: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """WHERE clauses and parameters for the given filters (None means not filtered)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    code = (filters.get("code") or "").strip().upper()
    if code:
        if _FULL_CODE.match(code):
            where.append("c.code = %(code)s")
            params["code"] = code
        else:
            where.append("c.code LIKE %(code)s")
            params["code"] = code.replace("%", "").replace("_", "\\_") + "%"
    if filters.get("q"):
        where.append("c.subject_norm LIKE %(q)s")
        params["q"] = _like(norm(filters["q"]) or "")
    if filters.get("respondent"):
        where.append("c.respondent_norm LIKE %(respondent)s")
        params["respondent"] = _like(norm(filters["respondent"]) or "")
    if filters.get("person"):
        where.append("EXISTS (SELECT 1 FROM kntc.party p WHERE p.case_id = c.id "
                     "AND p.name_norm LIKE %(person)s)")
        params["person"] = _like(norm(filters["person"]) or "")
    if filters.get("id_number"):
        where.append("EXISTS (SELECT 1 FROM kntc.party p WHERE p.case_id = c.id AND p.id_number = %(id_number)s)")
        params["id_number"] = filters["id_number"]
    if filters.get("unit"):
        where.append("(c.handling_unit_path <@ (SELECT path FROM kntc.unit WHERE code = %(unit)s) "
                     "OR c.receiving_unit_path <@ (SELECT path FROM kntc.unit WHERE code = %(unit)s))")
        params["unit"] = filters["unit"].strip().upper()
    for key in ("kind", "status"):
        if filters.get(key):
            where.append(f"c.{key} = %({key})s")
            params[key] = filters[key]
    if filters.get("received_from"):
        where.append("c.received_on >= %(received_from)s")
        params["received_from"] = filters["received_from"]
    if filters.get("received_to"):
        where.append("c.received_on <= %(received_to)s")
        params["received_to"] = filters["received_to"]
    return where, params


async def search(conn: AsyncConnection[Any], filters: dict[str, Any], page: int, per_page: int) -> dict[str, Any]:
    where, params = build(filters)
    params.update(limit=per_page + 1, offset=(page - 1) * per_page)
    sql = (
        "SELECT c.code, c.kind, c.status, c.subject, c.respondent, c.classification, c.received_on, "
        "hu.code AS handling_unit, hu.name AS handling_unit_name "
        "FROM kntc.case_file c JOIN kntc.unit hu ON hu.id = c.handling_unit_id "
        + ("WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.received_on DESC, c.code DESC LIMIT %(limit)s OFFSET %(offset)s"
    )
    cur = await conn.execute(sql, params)
    rows = await cur.fetchall()
    return {"data": rows[:per_page], "page": page, "per_page": per_page, "has_more": len(rows) > per_page}
