"""Officer screens by role: home, reception, recording a petition (with its receipt), work lists."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.responses import Response

from core_app import throttle
from core_app.api.schemas import CaseIn, ReceptionIn
from core_app.domain.workflow import TransitionRefused
from core_app.gate import Actor
from core_app.repo import accounts, cases, receptions, stats
from core_app.web import export, guard
from core_app.web import intake as intake_web
from core_app.web.base import WebError, acting, field_errors, form_of, text
from core_app.web.render import page

router = APIRouter(prefix="/app", include_in_schema=False)

RECENT = 30  # the unit's latest receptions under the form; the export takes more


RECEPTION_COLUMNS = [("received_at", ("Thời gian", "When")), ("visitor_name", ("Người đến", "Visitor")),
                     ("people_count", ("Số người", "People")), ("content", ("Nội dung", "Content")),
                     ("documents_received", ("Tài liệu nhận", "Documents received")),
                     ("case_code", ("Mã hồ sơ", "Case code"))]
WORK_COLUMNS = [("code", ("Mã hồ sơ", "Case code")), ("kind", ("Loại", "Kind")), ("subject", ("Trích yếu", "Subject")),
                ("status", ("Trạng thái", "Status")), ("received_on", ("Ngày nhận", "Received")),
                ("next_due", ("Hạn", "Due")), ("days_left", ("Số ngày còn lại", "Days left"))]
OVERDUE_COLUMNS = [("code", ("Mã hồ sơ", "Case code")), ("handling_unit_name", ("Đơn vị", "Unit")),
                   ("step", ("Bước", "Step")), ("rule_code", ("Quy định", "Rule")), ("due_on", ("Hạn", "Due")),
                   ("days_late", ("Số ngày chậm", "Days late")), ("overdue_cause", ("Nguyên nhân", "Cause"))]


def _days_left(rows: list[dict[str, Any]], today: Any) -> list[dict[str, Any]]:
    for r in rows:
        r["days_left"] = (r["next_due"] - today).days if r.get("next_due") else None
    return rows


@router.get("")
async def home(request: Request) -> Response:
    async with acting(request) as (conn, actor):
        today = request.app.state.clock()
        counts = await stats.status_counts_of_unit(conn, actor.unit_id)
        area = await stats.scope_unit(conn, actor.unit_id)
        overdue = await cases.overdue(conn, today, area["code"], limit=10)
        me = await accounts.get_account(conn, None)  # for the reminder of a second factor to enrol
    return page(request, "home.html", counts=counts, overdue=overdue, me=me)


# -- reception ------------------------------------------------------------------------------

def _visitor(name: str | None) -> str:
    # None: the case protects its denouncer and this officer does not handle it.
    return "(được bảo vệ / protected)" if name is None else name


@router.get("/reception")
async def reception_page(request: Request, format: str | None = None) -> Response:
    async with acting(request, *receptions.ROLES) as (conn, actor):
        exporting = format in ("csv", "xlsx")
        got = await receptions.list_receptions(conn, 5000 if exporting else RECENT, unit_id=actor.unit_id)
        if exporting:
            await export.record(conn, "tiep-cong-dan", got["data"])
    rows = got["data"]
    if exporting:
        return export.table_response(request, "tiep-cong-dan", RECEPTION_COLUMNS, rows, str(format),
                                     labels={"visitor_name": _visitor})
    return page(request, "reception.html", receptions=rows, form={"people_count": "1"}, errors={})


@router.post("/reception")
async def record_reception(request: Request) -> Response:
    form = await form_of(request)
    values = {k: text(form, k) for k in ("visitor_name", "visitor_id_number", "visitor_address", "people_count",
                                          "content", "documents_received", "prior_handling_agency",
                                          "action_taken", "notes")}
    async with acting(request, *receptions.ROLES) as (conn, actor):
        try:
            body = ReceptionIn.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            got = await receptions.list_receptions(conn, RECENT, unit_id=actor.unit_id)
            return page(request, "reception.html", status_code=400, receptions=got["data"], form=values,
                        errors=field_errors(exc))
        row = await receptions.record(conn, actor, body.model_dump())
    return RedirectResponse(f"/app/cases/new?reception={row['id']}", status_code=303)


# -- recording a petition -------------------------------------------------------------------

CASE_FIELDS = ("kind", "subject", "content", "respondent", "channel", "complaint_round", "classification",
               "received_on", "people_count", "reception_id", "decision_known_on")
FLAGS = ("is_complex", "is_remote_area", "denouncer_confidential")
PARTY_FIELDS = ("role", "party_kind", "full_name", "id_number", "address", "address_unit", "phone", "email")
# The citizen's consent to notifications and the channels chosen, ticked at reception.
PARTY_FLAGS = ("notify_consent", "notify_sms", "notify_email")


async def _reception_prefill(conn: Any, reception_id: str | None) -> dict[str, Any]:
    if not reception_id:
        return {}
    try:
        UUID(reception_id)
    except ValueError:  # not a reception id: nothing to prefill
        return {}
    r = await receptions.prefill(conn, reception_id)
    if r is None or r["visitor_name"] is None:
        return {}
    return {"reception_id": str(r["id"]), "party_full_name": r["visitor_name"],
            "party_id_number": r["visitor_id_number"] or "", "party_address": r["visitor_address"] or "",
            "people_count": str(r["people_count"]), "content": r["content"], "channel": "in_person"}


@router.get("/cases/new")
async def new_case_form(request: Request, reception: str | None = None) -> Response:
    async with acting(request, "reception", "handling", "head") as (conn, _):
        prefill = await _reception_prefill(conn, reception)
    form = {"kind": "complaint", "channel": "in_person", "complaint_round": "1", "classification": "0",
            "people_count": "1", "party_role": "complainant", **prefill}
    return page(request, "case_new.html", form=form, errors={})


@router.post("/cases/new")
async def record_case(request: Request) -> Response:
    """Two steps: the duplicate check on what was typed (shown with the petition kept in the form), then
    the officer's decision: a new case file, linked to an existing one, or held elsewhere."""
    form = await form_of(request)
    values: dict[str, Any] = {k: text(form, k) for k in CASE_FIELDS}
    values.update({f"party_{k}": text(form, f"party_{k}") for k in PARTY_FIELDS})
    values.update({k: form.get(k) == "on" for k in FLAGS})
    values.update({f"party_{k}": form.get(f"party_{k}") == "on" for k in PARTY_FLAGS})
    data = {k: v for k, v in values.items() if v is not None and not k.startswith("party_")}
    for k in ("complaint_round", "classification", "people_count"):
        if isinstance(data.get(k), str) and data[k].isdigit():
            data[k] = int(data[k])  # form fields are text; the schema's literals are numbers
    party = {k: values[f"party_{k}"] for k in PARTY_FIELDS if values[f"party_{k}"] is not None}
    if party.get("address_unit"):
        party["address_unit"] = party["address_unit"].upper()
    party["notify_consent"] = values["party_notify_consent"]
    party["notify_channels"] = [c for c in ("sms", "email") if values[f"party_notify_{c}"]]
    data["parties"] = [party]
    check_id, link = text(form, "dedup_check_id"), text(form, "link_case")
    decision = "linked" if link else text(form, "dedup_decision")
    async with acting(request, "reception", "handling", "head") as (conn, actor):
        errors: dict[str, tuple[str, str]] = {}
        try:
            body = CaseIn.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc, {f"parties.{k}": f"party_{k}" for k in (*PARTY_FIELDS, "notify_channels")})
        if errors:
            return page(request, "case_new.html", status_code=400, form=values, errors=errors)
        payload = body.model_dump()
        payload["parties"] = [p.model_dump() for p in body.parties]
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the form to show again
                if not check_id or decision not in ("new", "linked", "elsewhere"):
                    found = await intake_web.run_check(conn, actor, payload)
                    return page(request, "case_check.html", form=values, check=found, errors={})
                if decision == "linked":
                    await intake_web.link(conn, actor, check_id, str(link), payload, request.app.state.clock())
                    return RedirectResponse(f"/app/cases/{link}#petitions", status_code=303)
                if decision == "elsewhere":
                    await intake_web.elsewhere(conn, actor, check_id, text(form, "inquiry_handle"),
                                               text(form, "inquiry_reason"))
                    return page(request, "case_check.html", form=values, check=None, errors={}, elsewhere=True)
                payload["dedup_check_id"] = check_id
                payload["dedup_note"] = text(form, "dedup_note")
                made = await cases.create_case(conn, actor, await request.app.state.rulebooks.current(conn),
                                               payload, request.app.state.clock())
        except (cases.Invalid, TransitionRefused, cases.NotFound, throttle.Throttled) as exc:
            errors = {getattr(exc, "field", "_form") if isinstance(exc, cases.Invalid) else "_form":
                      intake_web.said(exc)}
            return page(request, "case_new.html", status_code=400 if isinstance(exc, cases.Invalid) else 409,
                        form=values, errors=errors)
    # The secret exists only now: hand it to the receipt page in a short-lived, path-bound cookie.
    resp = RedirectResponse(f"/app/receipt/{made['code']}", status_code=303)
    value = f"{made['code']}|{made['lookup_secret']}"
    guard.set_cookie(request, resp, guard.RECEIPT_COOKIE, value + "|" + guard.sign(request, "receipt", value),
                     max_age=900, path=f"/app/receipt/{made['code']}")
    return resp


@router.get("/receipt/{code}")
async def receipt(request: Request, code: str) -> Response:
    raw = request.cookies.get(guard.RECEIPT_COOKIE, "")
    parts = raw.split("|")
    secret = None
    if len(parts) == 3 and parts[0] == code and guard.signed(request, "receipt", f"{parts[0]}|{parts[1]}",
                                                               parts[2]):
        secret = parts[1]
    async with acting(request) as (conn, _):
        try:
            case = await cases.get_case(conn, code)
        except cases.NotFound:
            raise WebError(404, "Không tìm thấy hồ sơ.", "Case not found.") from None
    return page(request, "receipt.html", case=case, secret=secret)


# -- work lists -----------------------------------------------------------------------------

async def _unit_cases(conn: Any, actor: Actor, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for s in statuses:
        got = await cases.list_cases(conn, {"status": s}, 200, mine_only_unit=actor.unit_id)
        rows.extend(got["data"])
    rows.sort(key=lambda r: (r["next_due"] is None, r["next_due"] or r["received_on"]))
    return rows


@router.get("/inbox")
async def inbox(request: Request, format: str | None = None) -> Response:
    """Petition handling: what is waiting for a decision, the closest deadline first."""
    async with acting(request, "handling", "head", "reception") as (conn, actor):
        rows = await _unit_cases(conn, actor, ("received", "in_handling"))
        if format in ("csv", "xlsx"):
            await export.record(conn, "don-cho-xu-ly", rows)
    if format in ("csv", "xlsx"):
        return export.table_response(request, "don-cho-xu-ly", WORK_COLUMNS,
                                     _days_left(rows, request.app.state.clock()), format)
    return page(request, "worklist.html", rows=_days_left(rows, request.app.state.clock()),
                title=("Đơn chờ xử lý", "Petitions waiting for handling"), kind="inbox")


@router.get("/work")
async def work(request: Request, format: str | None = None) -> Response:
    """Resolution: cases accepted or under verification."""
    async with acting(request, "resolution", "head") as (conn, actor):
        rows = await _unit_cases(conn, actor, ("accepted", "verifying", "resolved"))
        if format in ("csv", "xlsx"):
            await export.record(conn, "dang-giai-quyet", rows)
    if format in ("csv", "xlsx"):
        return export.table_response(request, "dang-giai-quyet", WORK_COLUMNS,
                                     _days_left(rows, request.app.state.clock()), format)
    return page(request, "worklist.html", rows=_days_left(rows, request.app.state.clock()),
                title=("Vụ việc đang giải quyết", "Cases being resolved"), kind="work")


@router.get("/overview")
async def overview(request: Request, format: str | None = None) -> Response:
    """Head of unit: counts of the unit and below, the overdue list, who holds what."""
    async with acting(request, "head") as (conn, actor):
        today = request.app.state.clock()
        counts = await stats.status_counts_of_unit(conn, actor.unit_id)
        overdue = await cases.overdue(conn, today, actor.unit_code, limit=5000 if format else 200)
        if format in ("csv", "xlsx"):
            await export.record(conn, "qua-han", overdue)
            return export.table_response(request, "qua-han", OVERDUE_COLUMNS, overdue, format)
        waiting = await _unit_cases(conn, actor, ("received", "in_handling", "accepted", "verifying", "resolved"))
    return page(request, "overview.html", counts=counts, overdue=overdue, waiting=_days_left(waiting, today))
