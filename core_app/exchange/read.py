"""Search and fetch for a connected system, within its unit's scope and clearance (row-level
security), never showing a protected denouncer's identity, every read recorded with the client and
the purpose it stated (`kntc.record_exchange_read`, in the access log the audit chain covers)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.dedup import search as finder
from core_app.exchange.problems import Problem
from core_app.repo.cases import GET_CASE, NotFound

PURPOSE_HEADER = "purpose"

PARTIES = """
SELECT p.role, p.party_kind, p.full_name, p.id_number, p.address, u.code AS address_unit
  FROM kntc.party p LEFT JOIN kntc.unit u ON u.id = p.address_unit_id
 WHERE p.case_id = %s AND NOT p.identity_protected
 ORDER BY p.role, p.full_name
"""
PROTECTED = "SELECT count(*) > 0 AS any FROM kntc.case_file c WHERE c.id = %s AND c.denouncer_confidential"
PETITIONS = """
SELECT p.received_on, p.channel, p.content, p.people_count, u.code AS unit
  FROM kntc.petition p JOIN kntc.unit u ON u.id = p.unit_id WHERE p.case_id = %s ORDER BY p.created_at
"""
EVENTS = """
SELECT e.at, e.action, e.from_status, e.to_status, u.code AS unit
  FROM kntc.case_event e LEFT JOIN kntc.unit u ON u.id = e.unit_id WHERE e.case_id = %s ORDER BY e.id
"""
EXTERNAL = "SELECT external_id FROM kntc.exchange_case WHERE case_id = %s"
IDS = "SELECT id FROM kntc.case_file WHERE code = ANY (%s)"

SHOWN = (
    "code",
    "kind",
    "subject",
    "content",
    "respondent",
    "classification",
    "denouncer_confidential",
    "channel",
    "status",
    "complaint_round",
    "received_on",
    "accepted_on",
    "resolved_on",
    "closed_on",
    "resolution_summary",
    "version",
    "updated_at",
    "handling_unit",
    "handling_unit_name",
    "receiving_unit",
    "receiving_unit_name",
)


def purpose_of(headers: Any) -> str:
    """The stated purpose; a header is ASCII, so Vietnamese text comes percent-encoded (UTF-8)."""
    purpose = unquote(headers.get(PURPOSE_HEADER) or "", errors="strict").strip() if _utf8(headers) else ""
    if len(purpose) < 3 or len(purpose) > 500 or not purpose.isprintable():
        raise Problem(
            400,
            "purpose_required",
            "every read states its purpose in a Purpose header (3 to 500 "
            "printable characters, e.g. a case reference of yours)",
        )
    return purpose


def _utf8(headers: Any) -> bool:
    try:
        unquote(headers.get(PURPOSE_HEADER) or "", errors="strict")
    except UnicodeDecodeError:
        return False
    return True


async def fetch(conn: AsyncConnection[Any], code: str, purpose: str) -> dict[str, Any]:
    cur = await conn.execute(GET_CASE, (code,))
    case = await cur.fetchone()
    if case is None:
        raise NotFound(code)
    cid = case["id"]
    out: dict[str, Any] = {k: case[k] for k in SHOWN}
    out["parties"] = await (await conn.execute(PARTIES, (cid,))).fetchall()
    # That a denouncer asked for protection is shown; who it is never is, to any connected system.
    out["protected_parties"] = case["denouncer_confidential"]
    out["petitions"] = await (await conn.execute(PETITIONS, (cid,))).fetchall()
    out["timeline"] = await (await conn.execute(EVENTS, (cid,))).fetchall()
    ext = await (await conn.execute(EXTERNAL, (cid,))).fetchone()
    out["external_id"] = ext["external_id"] if ext else None
    await conn.execute("SELECT kntc.record_exchange_read(%s, %s, %s)", ([cid], purpose, Jsonb({"what": "fetch"})))
    if case["classification"] > 0:
        await conn.execute(
            "SELECT kntc.record_access('case_read', %s, %s)",
            (cid, Jsonb({"classification": case["classification"], "via": "exchange"})),
        )
    return out


async def search(
    conn: AsyncConnection[Any], filters: dict[str, Any], after: str | None, per_page: int, purpose: str
) -> dict[str, Any]:
    page = await finder.search(conn, filters, after, per_page)
    codes = [r["code"] for r in page["data"]]
    ids = [r["id"] for r in await (await conn.execute(IDS, (codes,))).fetchall()] if codes else []
    shown = {k: v for k, v in filters.items() if v is not None}
    await conn.execute(
        "SELECT kntc.record_exchange_read(%s, %s, %s)",
        (ids, purpose, Jsonb({"what": "search", "filters": shown, "count": len(ids)}, dumps=_dumps)),
    )
    return page


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str, ensure_ascii=False)
