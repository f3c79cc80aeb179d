"""SQL for case files, their petitions, parties, deadlines and timeline (one place for it).

Every function runs inside the caller's `Database.acting()` transaction, so row-level security
decides what exists: a case outside the officer's scope is simply not found.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any
from uuid import UUID

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.dedup import decisions
from core_app.dedup import units as unit_codes
from core_app.domain import workflow
from core_app.repo import deadline_steps as steps
from core_app.repo import notifications
from core_app.repo.planned import Planned
from core_app.repo.rules import RuleBook, load_rulebook
from core_app.security import new_lookup_secret, normalise_lookup_secret

__all__ = ["RuleBook", "load_rulebook"]  # where the routes and the demo have always found them

# The database refuses larger attachments too (kntc.attachment.size_bytes).
MAX_ATTACHMENT = 25 * 1024 * 1024


class NotFound(Exception):
    pass


class Conflict(Exception):
    """The case changed since the client read it (optimistic concurrency)."""

    def __init__(self, current_version: int) -> None:
        super().__init__(current_version)
        self.current_version = current_version


class Invalid(Exception):
    def __init__(self, field: str, vi: str, en: str) -> None:
        super().__init__(en)
        self.field, self.vi, self.en = field, vi, en


def _secret_hash(secret: str) -> bytes:
    return hashlib.sha256(normalise_lookup_secret(secret).encode()).digest()


INSERT_CASE = """
INSERT INTO kntc.case_file (code, kind, subject, content, respondent, classification, denouncer_confidential,
    channel, complaint_round, is_complex, is_remote_area, receiving_unit_id, handling_unit_id, received_on,
    lookup_secret_hash, created_by, decision_known_on)
VALUES (kntc.next_case_code(%(unit_id)s, %(year)s), %(kind)s, %(subject)s, %(content)s, %(respondent)s,
    %(classification)s, %(denouncer_confidential)s, %(channel)s, %(complaint_round)s, %(is_complex)s,
    %(is_remote_area)s, %(unit_id)s, %(unit_id)s, %(received_on)s, %(secret_hash)s, %(actor_id)s,
    %(decision_known_on)s)
RETURNING id, code, version
"""

# The party and the petition are written by every intake: planned once per server connection
# (core_app/repo/planned.py), as the statements' row-level-security checks cost more to plan than to run.
INSERT_PARTY = Planned(
    "party_insert",
    params=(("case_id", "uuid"), ("role", "text"), ("party_kind", "text"), ("full_name", "text"),
            ("id_number", "text"), ("address", "text"), ("address_unit_id", "integer"),
            ("address_unit_written_id", "integer"), ("phone", "text"), ("email", "text"),
            ("identity_protected", "boolean"), ("notify_channels", "text[]")),
    returns=(("id", "uuid"),),
    volatility="VOLATILE",
    sql="""
INSERT INTO kntc.party (case_id, role, party_kind, full_name, id_number, address, address_unit_id,
    address_unit_written_id, phone, email, identity_protected, notify_channels)
VALUES (%(case_id)s, %(role)s, %(party_kind)s, %(full_name)s, %(id_number)s, %(address)s, %(address_unit_id)s,
    %(address_unit_written_id)s, %(phone)s, %(email)s, %(identity_protected)s, %(notify_channels)s)
RETURNING id
""")

INSERT_PETITION = Planned(
    "petition_insert",
    params=(("case_id", "uuid"), ("unit_id", "integer"), ("received_on", "date"), ("channel", "text"),
            ("reception_id", "uuid"), ("sender_party_id", "uuid"), ("content", "text"), ("people_count", "integer"),
            ("actor_id", "integer"), ("check_id", "uuid")),
    returns=(("id", "uuid"),),
    volatility="VOLATILE",
    sql="""
INSERT INTO kntc.petition (case_id, unit_id, received_on, channel, reception_id, sender_party_id, content,
    people_count, received_by, intake_check_id)
VALUES (%(case_id)s, %(unit_id)s, %(received_on)s, %(channel)s, %(reception_id)s, %(sender_party_id)s,
    %(content)s, %(people_count)s, %(actor_id)s, %(check_id)s)
RETURNING id
""")

INSERT_EVENT = """
INSERT INTO kntc.case_event (case_id, actor_id, unit_id, action, from_status, to_status, note, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""

async def _event(conn: AsyncConnection[Any], case_id: Any, actor: workflow.Actor, action: str,
                 from_status: str | None, to_status: str | None, note: str | None = None,
                 data: dict[str, Any] | None = None) -> None:
    await conn.execute(INSERT_EVENT, (case_id, actor.account_id, actor.unit_id, action, from_status,
                                      to_status, note, Jsonb(data or {})))


async def unit_id_by_code(conn: AsyncConnection[Any], code: str) -> int | None:
    cur = await conn.execute("SELECT id FROM kntc.unit WHERE code = %s AND valid_to IS NULL", (code,))
    row = await cur.fetchone()
    return row["id"] if row else None


FILING_LATE = ("Đơn đến sau thời hiệu ({basis}: hạn {due}). Nếu có lý do chính đáng (ốm đau, thiên tai, "
               "địch họa...), ghi rõ khi xử lý đơn.",
               "The petition arrives after the filing limit ({basis}: due {due}). If there was a lawful obstacle "
               "(illness, natural disaster...), record it when handling the petition.")


async def create_case(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, data: dict[str, Any],
                      today: date) -> dict[str, Any]:
    """Record a petition as a new case file, under the officer's duplicate check (`dedup_check_id`),
    confirmed new; returns its code and the citizen's lookup secret."""
    if data["classification"] > actor.clearance:
        raise Invalid("classification", "Không thể lập hồ sơ mật vượt quá mức được tiếp cận của tài khoản.",
                      "you cannot record a case classified above your own clearance")
    received_on: date = data.get("received_on") or today
    if received_on > today:
        raise Invalid("received_on", "Ngày nhận không thể ở tương lai.", "the date received cannot be in the future")
    known_on: date | None = data.get("decision_known_on")
    if known_on and known_on > received_on:
        raise Invalid("decision_known_on", "Ngày biết quyết định không thể sau ngày nhận đơn.",
                      "the day the decision became known cannot be after the day received")
    parties = data.get("parties") or []
    written = await unit_codes.resolve_written(conn, [p["address_unit"] for p in parties if p.get("address_unit")])
    for i, p in enumerate(parties):
        if p.get("address_unit") and written[p["address_unit"]] is None:
            raise Invalid(f"parties.{i}.address_unit",
                          f"Không có đơn vị hành chính mã {p['address_unit']} (hiện hành hoặc trước 2025).",
                          f"no unit with code {p['address_unit']!r}, current or from before the 2025 reform")
    check = await decisions.claim(conn, actor, data.get("dedup_check_id"), parties)
    secret = new_lookup_secret()
    params = {**data, "unit_id": actor.unit_id, "year": received_on.year, "received_on": received_on,
              "secret_hash": _secret_hash(secret), "actor_id": actor.account_id, "decision_known_on": known_on}
    cur = await conn.execute(INSERT_CASE, params)
    case = await cur.fetchone()
    assert case is not None
    case_id = case["id"]
    sender_id = None
    for i, p in enumerate(parties):
        protected = bool(data["denouncer_confidential"] and p["role"] == "denouncer")
        unit = written.get(p.get("address_unit") or "")
        # The channels the citizen agreed to be notified by; the database stamps when and by whom.
        channels = list(p.get("notify_channels") or []) if p.get("notify_consent") else []
        cur = await conn.execute(INSERT_PARTY.call, {**p, "case_id": case_id, "identity_protected": protected,
                                                "address_unit_id": unit[0] if unit else None,
                                                "address_unit_written_id": unit[1] if unit else None,
                                                "notify_channels": channels})
        row = await cur.fetchone()
        if i == 0 and row:
            sender_id = row["id"]
    await conn.execute(INSERT_PETITION.call, {
        "case_id": case_id, "unit_id": actor.unit_id, "received_on": received_on, "channel": data["channel"],
        "reception_id": data.get("reception_id"), "sender_party_id": sender_id,
        "content": data["content"], "people_count": data.get("people_count") or 1,
        "actor_id": actor.account_id, "check_id": check["id"]})
    await decisions.record(conn, actor, check["id"], "new", case_id=case_id, note=data.get("dedup_note"))
    if data.get("reception_id"):
        await conn.execute("UPDATE kntc.reception SET case_id = %s, action_taken = 'recorded' WHERE id = %s",
                           (case_id, data["reception_id"]))
    full = {"id": case_id, "kind": data["kind"], "complaint_round": data["complaint_round"],
            "is_complex": data["is_complex"], "is_remote_area": data["is_remote_area"]}
    answer: dict[str, Any] = {}
    if known_on:
        # The citizen's own limit: started when they learnt of the decision, ended by this receipt.
        event = "known" if data["complaint_round"] == 1 else "first_decision"
        for f in await steps.start(conn, book, full, event, known_on):
            answer["filing"] = {"rule": f["code"], "due_on": f["due_on"], "late": received_on > f["due_on"],
                                "legal_basis": f["legal_basis"]}
            if received_on > f["due_on"]:
                vi, en = FILING_LATE
                answer["filing"]["message"] = vi.format(basis=f["legal_basis"], due=f["due_on"])
                answer["filing"]["message_en"] = en.format(basis=f["legal_basis"], due=f["due_on"])
        await steps.end(conn, case_id, "receipt", received_on)
    await steps.start(conn, book, full, "receipt", received_on)
    await _event(conn, case_id, actor, "receive", None, workflow.Status.RECEIVED,
                 data={"channel": data["channel"], "dedup_check": str(check["id"])})
    return {"id": str(case_id), "code": case["code"], "version": case["version"], "lookup_secret": secret,
            "dedup_decision": "new", **answer}


CASE_COLUMNS = """
c.id, c.code, c.kind, c.subject, c.content, c.respondent, c.classification, c.denouncer_confidential,
c.channel, c.status, c.complaint_round, c.is_complex, c.is_remote_area, c.received_on, c.accepted_on,
c.resolved_on, c.closed_on, c.resolution_summary, c.published_result, c.version, c.created_at, c.updated_at,
c.decision_known_on,
c.handling_unit_id, hu.code AS handling_unit, hu.name AS handling_unit_name,
ru.code AS receiving_unit, ru.name AS receiving_unit_name
"""

GET_CASE = f"""
SELECT {CASE_COLUMNS}
  FROM kntc.case_file c
  JOIN kntc.unit hu ON hu.id = c.handling_unit_id
  JOIN kntc.unit ru ON ru.id = c.receiving_unit_id
 WHERE c.code = %s
"""
# The case row every change of a case reads first, by its code: planned once per server connection.
CASE_ROW = Planned(
    "case_row", params=(("code", "text"),),
    returns=(("id", "uuid"), ("code", "text"), ("kind", "text"), ("subject", "text"), ("content", "text"),
             ("respondent", "text"), ("classification", "smallint"), ("denouncer_confidential", "boolean"),
             ("channel", "text"), ("status", "text"), ("complaint_round", "smallint"), ("is_complex", "boolean"),
             ("is_remote_area", "boolean"), ("received_on", "date"), ("accepted_on", "date"),
             ("resolved_on", "date"), ("closed_on", "date"), ("resolution_summary", "text"),
             ("published_result", "text"), ("version", "integer"), ("created_at", "timestamptz"),
             ("updated_at", "timestamptz"), ("decision_known_on", "date"), ("handling_unit_id", "integer"),
             ("handling_unit", "text"), ("handling_unit_name", "text"), ("receiving_unit", "text"),
             ("receiving_unit_name", "text")),
    sql=GET_CASE)


# The case file's parts, by the key the answer carries them under; each is read under row-level
# security (a part of a case the officer may not open is not there).
CASE_PARTS = {
    "parties": (
        "SELECT p.id, p.role, p.party_kind, p.full_name, p.id_number, p.address, u.code AS address_unit, "
        "u.name AS address_unit_name, w.code AS address_unit_written, w.name AS address_unit_written_name, "
        "p.phone, p.email, p.identity_protected, p.notify_channels, p.notify_consent_at FROM kntc.party p "
        "LEFT JOIN kntc.unit u ON u.id = p.address_unit_id "
        "LEFT JOIN kntc.unit w ON w.id = p.address_unit_written_id "
        "WHERE p.case_id = %s ORDER BY p.role, p.full_name"),
    "petitions": (
        "SELECT p.id, p.received_on, p.channel, p.content, p.people_count, u.code AS unit, p.reception_id, "
        "p.created_at FROM kntc.petition p JOIN kntc.unit u ON u.id = p.unit_id WHERE p.case_id = %s "
        "ORDER BY p.created_at"),
    "deadlines": (
        "SELECT d.step, d.rule_code, r.legal_basis, r.description_vi, r.description_en, r.day_unit, "
        "d.starts_on, d.due_on, d.extensions, d.met_on, d.ended_by, d.rule_version, "
        # The service's day is Vietnam's, not the database server's (UTC): from 17:00 UTC on, a step
        # due today in Vietnam is already late.
        "(d.met_on IS NULL AND d.due_on < (now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date) AS overdue "
        "FROM kntc.case_deadline d JOIN kntc.deadline_rule r ON r.code = d.rule_code "
        "WHERE d.case_id = %s ORDER BY d.starts_on, d.step"),
    "timeline": (
        "SELECT e.at, e.action, e.from_status, e.to_status, e.note, e.data, a.username AS actor, "
        "u.code AS unit FROM kntc.case_event e LEFT JOIN kntc.account a ON a.id = e.actor_id "
        "LEFT JOIN kntc.unit u ON u.id = e.unit_id WHERE e.case_id = %s ORDER BY e.id"),
    "attachments": (
        "SELECT id, filename, content_type, size_bytes, encode(sha256, 'hex') AS sha256, uploaded_at "
        "FROM kntc.attachment WHERE case_id = %s ORDER BY uploaded_at"),
    "assignments": (
        "SELECT a.username, a.full_name, ca.duty, ca.assigned_at FROM kntc.case_assignment ca "
        "JOIN kntc.account a ON a.id = ca.account_id WHERE ca.case_id = %s"),
    "intake": decisions.OF_CASE,
    "extensions": (
        "SELECT step, extension_no, days, level, reason, decision_ref, a.username AS approved_by, approved_on, "
        "old_due_on, new_due_on FROM kntc.deadline_extension e LEFT JOIN kntc.account a ON a.id = e.approved_by "
        "WHERE e.case_id = %s ORDER BY e.created_at"),
    "discrepancies": (
        "SELECT d.id, d.description, d.field, d.reported_on, d.due_on, d.status, d.corrected_on, "
        "ru.code AS reporter_unit FROM kntc.discrepancy d JOIN kntc.unit ru ON ru.id = d.reporter_unit_id "
        "WHERE d.case_id = %s ORDER BY d.reported_on, d.created_at"),
    "recomputed": (
        "SELECT x.step, x.rule_before, x.starts_before, x.due_before, x.rule_after, x.starts_after, x.due_after, "
        "x.cause, x.reason, x.changed_on, a.username AS changed_by FROM kntc.deadline_recompute x "
        "LEFT JOIN kntc.account a ON a.id = x.changed_by WHERE x.case_id = %s ORDER BY x.created_at, x.step"),
    "notifications": notifications.OF_CASE,
    "consent_changes": notifications.CONSENT_CHANGES,
}


def _case_file_json() -> str:
    """The case file as one JSON document built by one statement: the case row and each part of
    CASE_PARTS as a subquery on it, every one under row-level security as when read apart. The parts
    name the case `the_case`, which none of them uses for its own tables (`c` is a check in one)."""
    parts = ",\n".join(
        f"'{name}', coalesce((SELECT jsonb_agg(x) FROM ({sql.replace('%s', 'the_case.id')}) x), '[]')"
        for name, sql in CASE_PARTS.items())
    return f"""
SELECT c.id, c.classification,
       (SELECT array_agg(p.id::text) FROM kntc.party p WHERE p.case_id = c.id AND p.identity_protected) AS protected,
       ((SELECT to_jsonb(h) FROM (SELECT {CASE_COLUMNS}) h) || jsonb_build_object(
           'hidden_parties', c.denouncer_confidential AND NOT EXISTS (
               SELECT 1 FROM kntc.party p WHERE p.case_id = c.id AND p.role = 'denouncer'),
           {parts}))::text AS body
  FROM kntc.case_file c
  JOIN kntc.unit hu ON hu.id = c.handling_unit_id
  JOIN kntc.unit ru ON ru.id = c.receiving_unit_id
 CROSS JOIN LATERAL (SELECT c.id) the_case
 WHERE c.code = %s
"""


CASE_FILE_JSON = _case_file_json()
# Planned once per server connection (core_app/repo/planned.py): its fourteen parts took longer to
# plan than to run.
CASE_FILE = Planned("case_file", params=(("code", "text"),),
                    returns=(("id", "uuid"), ("classification", "smallint"), ("protected", "text[]"),
                             ("body", "text")),
                    sql=CASE_FILE_JSON)


async def _locked(conn: AsyncConnection[Any], code: str, version: int) -> dict[str, Any]:
    """The case row, locked; refuses when it changed since the client read it.

    The visibility check runs first without a lock: SELECT ... FOR UPDATE applies the UPDATE
    policy too, and an officer who may read but not change the case must hear why, not 404.
    """
    case = await get_case(conn, code, details=False)
    cur = await conn.execute("SELECT version FROM kntc.case_file WHERE id = %s FOR UPDATE", (case["id"],))
    locked = await cur.fetchone()
    if locked is None:
        if case["version"] != version:
            raise Conflict(case["version"])
        return case
    if locked["version"] != version:
        raise Conflict(locked["version"])
    if locked["version"] != case["version"]:
        case = await get_case(conn, code, details=False)
    return case


async def get_case(conn: AsyncConnection[Any], code: str, *, details: bool = True) -> dict[str, Any]:
    """The case row; with `details`, the whole case file as the pages use it: the API's document
    (one planned statement), its values typed as psycopg types them when the parts are read apart."""
    if details:
        return _from_document(await _case_file_read(conn, code))
    cur = await conn.execute(CASE_ROW.call, (code,))
    case = await cur.fetchone()
    if case is None:
        raise NotFound(code)
    return case


# The document's values JSON carries as text, by the names the case file gives its columns; the
# pages format the dates and count days with them.
_DATE_COLUMNS = frozenset({"starts_before", "due_before", "starts_after", "due_after"})


def _typed(column: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if column.endswith("_on") or column in _DATE_COLUMNS:
        return date.fromisoformat(value)
    if column == "at" or column.endswith("_at"):
        return datetime.fromisoformat(value)
    if column == "id" or column.endswith("_id"):
        try:
            return UUID(value)
        except ValueError:
            return value
    return value


def _from_document(body: str) -> dict[str, Any]:
    """The case file's JSON document as get_case has always answered it: the case's columns and
    each part's rows typed (values inside a row's own JSON, such as an event's data, stay JSON)."""
    doc = orjson.loads(body)
    case = {k: _typed(k, v) for k, v in doc.items()}
    for name in CASE_PARTS:
        case[name] = [{k: _typed(k, v) for k, v in r.items()} for r in doc[name]]
    return case


async def case_file_json(conn: AsyncConnection[Any], code: str) -> bytes:
    """The case file as the API answers it, in one statement and as JSON text made by the database:
    no row is turned into Python objects and back. The same reads are recorded as get_case's."""
    return (await _case_file_read(conn, code)).encode()


async def _case_file_read(conn: AsyncConnection[Any], code: str) -> str:
    """The case file's JSON document, its read recorded as a classified case or a protected
    identity requires; NotFound when the officer may not read the case."""
    cur = await conn.execute(CASE_FILE.call, (code,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(code)
    await _record_access(conn, row["id"], row["classification"], row["protected"] or [])
    return row["body"]


async def _record_access(conn: AsyncConnection[Any], case_id: Any, classification: int, protected: list[str]) -> None:
    if classification > 0:
        await conn.execute("SELECT kntc.record_access('case_read', %s, %s)",
                           (case_id, Jsonb({"classification": classification})))
    if protected:
        await conn.execute("SELECT kntc.record_access('identity_read', %s, %s)",
                           (case_id, Jsonb({"parties": protected})))


LIST_FILTERS = {
    "status": "c.status = %(status)s",
    "kind": "c.kind = %(kind)s",
    "unit": "hu.code = %(unit)s",
    "received_from": "c.received_on >= %(received_from)s",
    "received_to": "c.received_on <= %(received_to)s",
}


def _list_sql(where: list[str]) -> str:
    """The work list, newest first, with the conditions of `where` (psycopg placeholders by name)."""
    return (
        "SELECT c.id, c.code, c.kind, c.subject, c.status, c.classification, c.received_on, c.version, "
        "hu.code AS handling_unit, hu.name AS handling_unit_name, "
        "(SELECT min(d.due_on) FROM kntc.case_deadline d WHERE d.case_id = c.id AND d.met_on IS NULL) AS next_due "
        "FROM kntc.case_file c JOIN kntc.unit hu ON hu.id = c.handling_unit_id "
        + ("WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.received_on DESC, c.code DESC LIMIT %(limit)s"
    )


# The first page of a unit's cases in one status: the officer's inbox and home page, the list the
# busy day calls most. Its best plan is the same for every unit and status (the index on the
# handling unit, status and date), so it is planned once per server connection; the other shapes
# of the list (a whole area, a filter, a later page) are planned for their values at each call.
UNIT_INBOX = Planned(
    "unit_inbox", params=(("status", "text"), ("mine", "integer"), ("limit", "integer")),
    returns=(("id", "uuid"), ("code", "text"), ("kind", "text"), ("subject", "text"), ("status", "text"),
             ("classification", "smallint"), ("received_on", "date"), ("version", "integer"),
             ("handling_unit", "text"), ("handling_unit_name", "text"), ("next_due", "date")),
    sql=_list_sql([LIST_FILTERS["status"], "c.handling_unit_id = %(mine)s"]))


async def list_cases(conn: AsyncConnection[Any], filters: dict[str, Any], per_page: int,
                     *, after: str | None = None, mine_only_unit: int | None = None) -> dict[str, Any]:
    """Newest first; `after` is the `next` cursor of the previous page (keyset paging)."""
    from core_app.repo import keyset  # keyset reports a bad cursor with this module's Invalid

    given = [k for k, v in filters.items() if v is not None and k in LIST_FILTERS]
    key = keyset.decode(after, 2)
    if given == ["status"] and mine_only_unit is not None and not key:
        cur = await conn.execute(UNIT_INBOX.call, {"status": filters["status"], "mine": mine_only_unit,
                                                   "limit": per_page + 1})
        return keyset.page(await cur.fetchall(), per_page, "received_on", "code")
    where = [LIST_FILTERS[k] for k in given]
    if mine_only_unit is not None:
        where.append("c.handling_unit_id = %(mine)s")
    if key:
        where.append("(c.received_on, c.code) < (%(after_on)s::date, %(after_code)s)")
    params = {**filters, "mine": mine_only_unit, "limit": per_page + 1,
              "after_on": key[0] if key else None, "after_code": key[1] if key else None}
    cur = await conn.execute(_list_sql(where), params)
    return keyset.page(await cur.fetchall(), per_page, "received_on", "code")


async def transition(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, code: str,
                     action_name: str, version: int, params: dict[str, Any], today: date) -> dict[str, Any]:
    case = await _locked(conn, code, version)
    action = workflow.check(action_name, case["status"], actor, case["handling_unit_id"], params)
    target = action.target
    sets: dict[str, Any] = {}
    data: dict[str, Any] = {}
    # Steps are written before the case row: a forward or a second round hands the case to another
    # unit, after which this unit may no longer write its steps.
    if action.name == "accept":
        sets["accepted_on"] = today
        await steps.end(conn, case["id"], "accept", today)
        await steps.start(conn, book, case, "acceptance", today)
    elif action.name == "forward":
        target_id = await unit_id_by_code(conn, params["target_unit"])
        if target_id is None:
            raise Invalid("target_unit", "Không tìm thấy đơn vị nhận (mã đơn vị hiện hành).",
                          f"no current unit with code {params['target_unit']!r}")
        if target_id == case["handling_unit_id"]:
            raise Invalid("target_unit", "Không thể chuyển đơn cho chính đơn vị mình.",
                          "a case cannot be forwarded to the unit that already holds it")
        sets["handling_unit_id"] = target_id
        data["to_unit"] = params["target_unit"]
        await steps.end(conn, case["id"], "forward", today)
        # The competent unit's own limits start when it receives the petition.
        await steps.start(conn, book, case, "receipt", today)
    elif action.name in ("guide", "file_away", "return"):
        await steps.end(conn, case["id"], action.name, today)
    elif action.name == "notify_acceptance":
        if case["kind"] not in ("denunciation", "multi"):
            raise workflow.TransitionRefused(
                "not_applicable", "Thông báo thụ lý theo Điều 29 Luật Tố cáo chỉ áp dụng cho đơn tố cáo.",
                "the notice of acceptance (Denunciations Law art. 29) applies to denunciations only")
        await steps.end(conn, case["id"], "notify_acceptance", today)
    elif action.name == "extend":
        data.update(await steps.extend(conn, actor, book, case, params, today))
    elif action.name == "resolve":
        sets["resolved_on"] = today
        sets["resolution_summary"] = params["summary"]
        if params.get("published_result"):
            sets["published_result"] = params["published_result"]
        await steps.end(conn, case["id"], "resolve", today)
    elif action.name == "close":
        sets["closed_on"] = today
    elif action.name == "second_round":
        data.update(await _second_round(conn, book, case, params, today, sets))
    if target is not None:
        sets["status"] = str(target)
    sets_sql = ", ".join(f"{k} = %({k})s" for k in sets)
    await conn.execute(
        f"UPDATE kntc.case_file SET {sets_sql + ', ' if sets_sql else ''}version = version + 1, updated_at = now() "
        "WHERE id = %(id)s", {**sets, "id": case["id"]})
    await _event(conn, case["id"], actor, action.name, case["status"], str(target) if target else case["status"],
                 params.get("note") or params.get("summary"), data)
    return {"code": code, "status": sets.get("status", case["status"]), "version": case["version"] + 1,
            "action": action.name, **data}


async def _second_round(conn: AsyncConnection[Any], book: RuleBook, case: dict[str, Any], params: dict[str, Any],
                        today: date, sets: dict[str, Any]) -> dict[str, Any]:
    """A complainant who disagrees with the first decision complains again: the same case file goes to
    the competent unit (Complaints Law 2011, arts. 33 and 36-37), its first round kept on the timeline."""
    if case["kind"] != "complaint" or case["complaint_round"] != 1:
        raise workflow.TransitionRefused(
            "not_applicable", "Chỉ khiếu nại đã giải quyết lần đầu mới có thể khiếu nại lần hai.",
            "only a complaint resolved in its first round can go to a second round")
    target_id = await unit_id_by_code(conn, params["target_unit"])
    if target_id is None:
        raise Invalid("target_unit", "Không tìm thấy đơn vị giải quyết lần hai (mã đơn vị hiện hành).",
                      f"no current unit with code {params['target_unit']!r}")
    received: date = params.get("received_on") or today
    first_decision: date = case["resolved_on"] or today
    if received > today or received < first_decision:
        raise Invalid("received_on", "Ngày nhận đơn lần hai phải từ ngày có quyết định lần đầu đến hôm nay.",
                      "the second complaint's date must lie between the first decision and today")
    second = {**case, "complaint_round": 2}
    filing = await steps.start(conn, book, second, "first_decision", first_decision)
    await steps.end(conn, case["id"], "receipt", received)
    await steps.start(conn, book, second, "receipt", received)
    sets.update({"complaint_round": 2, "handling_unit_id": target_id, "accepted_on": None, "resolved_on": None,
                 "closed_on": None, "resolution_summary": None})
    late = bool(filing) and received > filing[0]["due_on"]
    return {"to_unit": params["target_unit"], "first_round": {
        "accepted_on": case["accepted_on"].isoformat() if case["accepted_on"] else None,
        "resolved_on": first_decision.isoformat(), "resolution_summary": case["resolution_summary"]},
        "second_round_received_on": received.isoformat(), "filing_late": late}


UPDATABLE = ("subject", "content", "respondent", "classification", "is_complex", "is_remote_area", "kind", "channel",
             "received_on", "decision_known_on")
NULLABLE = ("respondent", "decision_known_on")


def _plain(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in changes.items()}


async def update_case(conn: AsyncConnection[Any], actor: workflow.Actor, code: str, version: int,
                      changes: dict[str, Any], *, book: RuleBook, today: date,
                      allow_null: bool = False) -> dict[str, Any]:
    """Change recorded fields of the case; `allow_null` (a correction) may also empty an optional one.
    A change to what a deadline is counted from recomputes the case's open steps (deadline_steps.recompute)."""
    case = await _locked(conn, code, version)
    if case["handling_unit_id"] != actor.unit_id or "external_reader" in actor.roles:
        raise workflow.TransitionRefused("wrong_unit", "Chỉ đơn vị đang giải quyết hồ sơ mới được sửa hồ sơ.",
                                         "only officers of the unit that holds the case file may edit it")
    reason = changes.get("reason")
    changes = {k: v for k, v in changes.items()
               if k in UPDATABLE and (v is not None or (allow_null and k in NULLABLE))}
    if not changes:
        raise Invalid("body", "Không có thông tin nào để sửa.", "nothing to change")
    if changes.get("classification", 0) > actor.clearance:
        raise Invalid("classification", "Không thể đặt mức mật cao hơn mức được tiếp cận.",
                      "you cannot classify above your own clearance")
    if changes.get("classification", case["classification"]) < case["classification"]:
        # Lowering is the head's decision, with the reason on the timeline; the database holds the
        # same rule (kntc.case_classification_guard) and reads the reason from kntc.change_reason.
        if "head" not in actor.roles:
            raise workflow.TransitionRefused("role_not_allowed",
                                             "Chỉ thủ trưởng đơn vị đang giữ hồ sơ mới được giảm độ mật.",
                                             "only the head of the unit holding the case may lower its classification")
        if not reason:
            raise Invalid("reason", "Cần nêu lý do giảm độ mật.", "a reason is required to lower the classification")
        await conn.execute("SELECT set_config('kntc.change_reason', %s, true)", (reason,))
    before = {k: case[k] for k in changes}
    sets_sql = ", ".join(f"{k} = %({k})s" for k in changes)
    if "received_on" in changes and changes["received_on"] > today:
        raise Invalid("received_on", "Ngày nhận không thể ở tương lai.", "the date received cannot be in the future")
    await conn.execute(f"UPDATE kntc.case_file SET {sets_sql}, version = version + 1, updated_at = now() "
                       "WHERE id = %(id)s", {**changes, "id": case["id"]})
    recomputed = await steps.recompute(conn, actor, book, case, changes, reason, today)
    data: dict[str, Any] = {"before": _plain(before), "after": _plain(changes)}
    if recomputed:
        data["deadlines_recomputed"] = [steps.plain(r) for r in recomputed]
    await _event(conn, case["id"], actor, "edit", case["status"], case["status"], reason, data)
    return {"code": code, "version": case["version"] + 1,
            "deadlines_recomputed": [steps.plain(r) for r in recomputed]}


async def add_petition(conn: AsyncConnection[Any], actor: workflow.Actor, code: str, data: dict[str, Any],
                       today: date, *, check_id: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Another petition on the same matter joins the case: linked under the officer's duplicate check."""
    case = await get_case(conn, code, details=False)
    received_on = data.get("received_on") or today
    if received_on > today:
        raise Invalid("received_on", "Ngày nhận không thể ở tương lai.", "the date received cannot be in the future")
    check = await decisions.claim(conn, actor, check_id or data.get("dedup_check_id"))
    cur = await conn.execute(INSERT_PETITION.call, {
        "case_id": case["id"], "unit_id": actor.unit_id, "received_on": received_on,
        "channel": data["channel"], "reception_id": data.get("reception_id"), "sender_party_id": None,
        "content": data["content"], "people_count": data.get("people_count") or 1,
        "actor_id": actor.account_id, "check_id": check["id"]})
    row = await cur.fetchone()
    assert row is not None
    await decisions.record(conn, actor, check["id"], "linked", case_id=case["id"], petition_id=row["id"],
                           note=note)
    await _event(conn, case["id"], actor, "add_petition", case["status"], case["status"], None,
                 {"petition_id": str(row["id"]), "dedup_check": str(check["id"])})
    return {"id": str(row["id"]), "case": code, "dedup_decision": "linked"}


async def assign(conn: AsyncConnection[Any], actor: workflow.Actor, code: str, username: str, duty: str) -> None:
    case = await get_case(conn, code, details=False)
    if "head" not in actor.roles or case["handling_unit_id"] != actor.unit_id:
        raise workflow.TransitionRefused("role_not_allowed",
                                         "Chỉ thủ trưởng đơn vị đang giải quyết mới được phân công.",
                                         "only the head of the unit holding the case may assign it")
    cur = await conn.execute("SELECT id FROM kntc.account WHERE username = %s AND unit_id = %s AND is_active",
                             (username, actor.unit_id))
    acc = await cur.fetchone()
    if acc is None:
        raise Invalid("username", "Không có cán bộ này trong đơn vị.", f"no active officer {username!r} in your unit")
    await conn.execute("INSERT INTO kntc.case_assignment (case_id, account_id, duty, assigned_by) "
                       "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                       (case["id"], acc["id"], duty, actor.account_id))
    await _event(conn, case["id"], actor, "assign", case["status"], case["status"], None,
                 {"username": username, "duty": duty})


async def add_attachment(conn: AsyncConnection[Any], actor: workflow.Actor, code: str, filename: str,
                         content_type: str, data: bytes) -> dict[str, Any]:
    case = await get_case(conn, code, details=False)
    if case["handling_unit_id"] != actor.unit_id:
        raise workflow.TransitionRefused("wrong_unit", "Chỉ đơn vị đang giải quyết mới được đính kèm tài liệu.",
                                         "only the unit holding the case may attach documents")
    digest = hashlib.sha256(data).digest()
    cur = await conn.execute(
        "INSERT INTO kntc.attachment (case_id, filename, content_type, size_bytes, sha256, data, uploaded_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (case["id"], filename, content_type, len(data), digest, data, actor.account_id))
    row = await cur.fetchone()
    await _event(conn, case["id"], actor, "attach", case["status"], case["status"], filename,
                 {"sha256": digest.hex(), "size": len(data)})
    return {"id": str(row["id"]) if row else None, "sha256": digest.hex(), "size_bytes": len(data)}


async def get_attachment(conn: AsyncConnection[Any], code: str, attachment_id: str) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT a.filename, a.content_type, a.data, encode(a.sha256, 'hex') AS sha256, a.case_id "
        "FROM kntc.attachment a "
        "JOIN kntc.case_file c ON c.id = a.case_id WHERE c.code = %s AND a.id = %s", (code, attachment_id))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(attachment_id)
    await conn.execute("SELECT kntc.record_access('attachment_download', %s, %s)",
                       (row["case_id"], Jsonb({"attachment_id": attachment_id, "sha256": row["sha256"]})))
    return row


# kntc.overdue_steps picks the page's steps with the officer's area written in (migration 0023 says
# why); the rows are read here through row-level security, which stays the guard. The statement's
# plan does not depend on its values (the function hands it at most a page of steps), so it is
# planned once per server connection.
OVERDUE = Planned(
    "overdue", params=(("today", "date"), ("unit", "text"), ("limit", "integer")),
    returns=(("code", "text"), ("kind", "text"), ("status", "text"), ("subject", "text"),
             ("handling_unit", "text"), ("handling_unit_name", "text"), ("step", "text"), ("rule_code", "text"),
             ("due_on", "date"), ("days_late", "integer"), ("overdue_cause", "text")),
    sql="""
SELECT c.code, c.kind, c.status, c.subject, hu.code AS handling_unit, hu.name AS handling_unit_name,
       d.step, d.rule_code, d.due_on, %(today)s::date - d.due_on AS days_late, d.overdue_cause
  FROM kntc.overdue_steps(%(today)s, %(unit)s, %(limit)s) o
  JOIN kntc.case_deadline d ON d.case_id = o.case_id AND d.step = o.step
  JOIN kntc.case_file c ON c.id = d.case_id
  JOIN kntc.unit hu ON hu.id = c.handling_unit_id
 WHERE d.met_on IS NULL AND d.due_on < %(today)s
 ORDER BY d.due_on, c.code
""")


async def overdue(conn: AsyncConnection[Any], today: date, unit: str | None, limit: int = 500) -> list[dict[str, Any]]:
    cur = await conn.execute(OVERDUE.call, {"today": today, "unit": unit, "limit": limit})
    return await cur.fetchall()


async def public_lookup(conn: AsyncConnection[Any], code: str, secret: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM kntc.public_lookup(%s, %s)",
                             (code.strip().upper(), normalise_lookup_secret(secret)))
    return await cur.fetchone()
