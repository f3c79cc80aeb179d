"""The case list and the case file page: timeline, petitions, documents, deadlines, actions."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.responses import Response

from core_app import throttle
from core_app.api.schemas import AssignIn, CaseUpdateIn, PetitionIn, TransitionIn
from core_app.domain.workflow import ACTIONS, TERMINAL, Status, TransitionRefused
from core_app.gate import Actor
from core_app.repo import cases, stats
from core_app.web import export
from core_app.web import intake as intake_web
from core_app.web.base import NOT_FOUND, WebError, acting, field_errors, form_of, text
from core_app.web.corrections import field_options
from core_app.web.render import lang_of, page

router = APIRouter(prefix="/app/cases", include_in_schema=False)

LIST_COLUMNS = [("code", ("Mã hồ sơ", "Case code")), ("kind", ("Loại", "Kind")),
                ("subject", ("Nội dung chính", "Subject")), ("status", ("Trạng thái", "Status")),
                ("received_on", ("Ngày nhận", "Received")),
                ("handling_unit_name", ("Đơn vị giải quyết", "Handling unit")),
                ("next_due", ("Hạn gần nhất", "Next deadline"))]


def _date(v: str | None) -> date | None:
    try:
        return date.fromisoformat(v) if v else None
    except ValueError:
        return None


@router.get("")
async def list_cases(request: Request, status: str | None = None, kind: str | None = None,
                     received_from: str | None = None, received_to: str | None = None, scope: str = "area",
                     after: str | None = None, format: str | None = None, q: str | None = None) -> Response:
    code = (q or "").strip().upper()
    if code:
        # A code from a receipt or a phone call opens the case file directly.
        return RedirectResponse(f"/app/cases/{quote(code, safe='')}", status_code=303)
    filters = {"status": status or None, "kind": kind or None, "received_from": _date(received_from),
               "received_to": _date(received_to)}
    async with acting(request) as (conn, actor):
        mine = actor.unit_id if scope == "unit" else None
        try:
            if format in ("csv", "xlsx"):
                got = await cases.list_cases(conn, filters, 10_000, mine_only_unit=mine)
                await export.record(conn, "ho-so", got["data"])
                return export.table_response(request, "ho-so", LIST_COLUMNS, got["data"], format)
            got = await cases.list_cases(conn, filters, 50, after=after, mine_only_unit=mine)
        except cases.Invalid as exc:
            raise WebError(400, exc.vi, exc.en) from None
    return page(request, "cases.html", rows=got["data"], has_more=got["has_more"], next_cursor=got["next"],
                first_page=not after,
                filters={"status": status or "", "kind": kind or "", "received_from": received_from or "",
                         "received_to": received_to or "", "scope": scope})


def _available(case: dict[str, Any], actor: Actor) -> list[Any]:
    if Status(case["status"]) in TERMINAL or "external_reader" in actor.roles:
        return []
    if case["handling_unit_id"] != actor.unit_id:
        return []
    roles = actor.roles
    return [a for a in ACTIONS.values() if Status(case["status"]) in a.sources and roles & a.roles]


async def _case_page(request: Request, conn: Any, actor: Actor, code: str, status_code: int = 200,
                     **extra: Any) -> Response:
    try:
        case = await cases.get_case(conn, code)
    except cases.NotFound:
        raise NOT_FOUND from None
    officers: list[dict[str, Any]] = []
    if "head" in actor.roles and case["handling_unit_id"] == actor.unit_id:
        cur = await conn.execute("SELECT username, full_name, roles FROM kntc.account "
                                 "WHERE unit_id = %s AND is_active ORDER BY full_name", (actor.unit_id,))
        officers = await cur.fetchall()
    today = request.app.state.clock()
    cur = await conn.execute("SELECT step, overdue_cause FROM kntc.case_deadline WHERE case_id = %s", (case["id"],))
    causes = {r["step"]: r["overdue_cause"] for r in await cur.fetchall()}
    for d in case["deadlines"]:
        d["overdue_cause"] = causes.get(d["step"])
        d["days_left"] = None if d["met_on"] else (d["due_on"] - today).days
    ctx = {"case": case, "actions": _available(case, actor), "officers": officers,
           "holds": case["handling_unit_id"] == actor.unit_id and "external_reader" not in actor.roles,
           "action_error": None, "action_form": {}, "edit_errors": {}, "edit_form": {}, "upload_error": None,
           "assign_error": None, "deadline_error": None, "petition_errors": {},
           "petition_form": {"channel": "in_person", "people_count": "1"},
           "may_add_petition": bool({"reception", "handling", "head"} & actor.roles),
           "may_report": "external_reader" not in actor.roles, "report_error": None, "correct_error": None,
           "correct_form": {}, "consent_error": None, "correction_fields": field_options(case, lang_of(request))}
    ctx.update(extra)
    return page(request, "case.html", status_code=status_code, **ctx)


@router.get("/{code}")
async def case_file(request: Request, code: str) -> Response:
    async with acting(request) as (conn, actor):
        return await _case_page(request, conn, actor, code)


@router.post("/{code}/action")
async def take_action(request: Request, code: str) -> Response:
    form = await form_of(request)
    values = {k: text(form, k) for k in ("action", "version", "note", "summary", "published_result", "target_unit",
                                          "step", "level", "decision_ref", "received_on")}
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        try:
            body = TransitionIn.model_validate({k: v for k, v in values.items() if v is not None})
            params = body.model_dump(exclude={"action", "version"})
            async with conn.transaction():  # a savepoint: a refusal leaves the page readable
                book = await request.app.state.rulebooks.current(conn)
                await cases.transition(conn, actor, book, code, body.action, body.version, params,
                                       request.app.state.clock())
        except ValidationError as exc:
            errs = field_errors(exc)
            error = next(iter(errs.values()))
        except TransitionRefused as exc:
            error = (exc.vi, exc.en)
        except cases.Conflict:
            error = ("Hồ sơ vừa được người khác cập nhật; trang đã tải lại, hãy kiểm tra rồi thao tác lại.",
                     "Someone else has just changed this case: the page is reloaded, check it and act again.")
        except cases.Invalid as exc:
            error = (exc.vi, exc.en)
        except cases.NotFound:
            raise NOT_FOUND from None
        if error:
            return await _case_page(request, conn, actor, code, status_code=409, action_error=error,
                                    action_form=values)
    return RedirectResponse(f"/app/cases/{code}#timeline", status_code=303)


@router.post("/{code}/edit")
async def classify(request: Request, code: str) -> Response:
    """Classify and correct a case (complexity, remote area, secrecy level, subject) with a reason."""
    form = await form_of(request)
    values: dict[str, Any] = {k: text(form, k) for k in ("version", "subject", "respondent", "classification",
                                                          "reason")}
    values.update({k: form.get(k) == "on" for k in ("is_complex", "is_remote_area")})
    async with acting(request) as (conn, actor):
        errors: dict[str, tuple[str, str]] = {}
        try:
            body = CaseUpdateIn.model_validate({k: v for k, v in values.items() if v is not None})
            async with conn.transaction():
                book = await request.app.state.rulebooks.current(conn)
                await cases.update_case(conn, actor, code, body.version, body.model_dump(exclude={"version"}),
                                        book=book, today=request.app.state.clock())
        except ValidationError as exc:
            errors = field_errors(exc)
        except TransitionRefused as exc:
            errors = {"_form": (exc.vi, exc.en)}
        except cases.Invalid as exc:
            errors = {exc.field: (exc.vi, exc.en)}
        except cases.Conflict:
            errors = {"_form": ("Hồ sơ vừa được người khác cập nhật; hãy kiểm tra rồi sửa lại.",
                                "Someone else has just changed this case: check it and edit again.")}
        except cases.NotFound:
            raise NOT_FOUND from None
        if errors:
            return await _case_page(request, conn, actor, code, status_code=400, edit_errors=errors,
                                    edit_form=values)
    return RedirectResponse(f"/app/cases/{code}#timeline", status_code=303)


@router.post("/{code}/assign")
async def assign(request: Request, code: str) -> Response:
    form = await form_of(request)
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        try:
            body = AssignIn.model_validate({"username": text(form, "username") or "", "duty": text(form, "duty") or ""})
            async with conn.transaction():
                await cases.assign(conn, actor, code, body.username, body.duty)
        except ValidationError:
            error = ("Hãy chọn cán bộ và nhiệm vụ.", "Choose an officer and a duty.")
        except TransitionRefused as exc:
            error = (exc.vi, exc.en)
        except cases.Invalid as exc:
            error = (exc.vi, exc.en)
        except cases.NotFound:
            raise NOT_FOUND from None
        if error:
            return await _case_page(request, conn, actor, code, status_code=400, assign_error=error)
    return RedirectResponse(f"/app/cases/{code}#assign", status_code=303)


@router.post("/{code}/overdue-cause")
async def overdue_cause(request: Request, code: str) -> Response:
    form = await form_of(request)
    step, cause = text(form, "step") or "", (text(form, "cause") or "")[:2000]
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        if len(cause) < 3:
            error = ("Hãy ghi nguyên nhân quá hạn.", "Write down why it is late.")
        else:
            try:
                async with conn.transaction():
                    await stats.record_overdue_cause(conn, actor, code, step, cause, request.app.state.clock())
            except TransitionRefused as exc:
                error = (exc.vi, exc.en)
            except cases.Invalid as exc:
                error = (exc.vi, exc.en)
            except cases.NotFound:
                raise NOT_FOUND from None
        if error:
            return await _case_page(request, conn, actor, code, status_code=400, deadline_error=error)
    return RedirectResponse(f"/app/cases/{code}#deadlines", status_code=303)


@router.post("/{code}/petitions")
async def add_petition(request: Request, code: str) -> Response:
    """Another petition on the same matter (sent again, or to several bodies) joins this case file."""
    form = await form_of(request)
    values = {k: text(form, k) for k in ("channel", "content", "received_on", "people_count")}
    async with acting(request, "reception", "handling", "head") as (conn, actor):
        errors: dict[str, tuple[str, str]] = {}
        try:
            body = PetitionIn.model_validate({k: v for k, v in values.items() if v is not None})
            async with conn.transaction():
                # The officer chose this case file: the check still runs (on its parties and subject)
                # and the link is kept as the decision, as at intake.
                case = await cases.get_case(conn, code)
                found = await intake_web.run_check(conn, actor, {
                    "parties": [{k: p[k] for k in ("full_name", "id_number", "address_unit") if p.get(k)}
                                for p in case["parties"][:20]],
                    "subject": case["subject"], "respondent": case["respondent"]})
                await cases.add_petition(conn, actor, code, body.model_dump(), request.app.state.clock(),
                                         check_id=found["check_id"], note="linked on the case page")
        except ValidationError as exc:
            errors = field_errors(exc)
        except (TransitionRefused, cases.Invalid, throttle.Throttled) as exc:
            errors = {"_form": intake_web.said(exc)}
        except cases.NotFound:
            raise NOT_FOUND from None
        if errors:
            return await _case_page(request, conn, actor, code, status_code=400, petition_errors=errors,
                                    petition_form=values)
    return RedirectResponse(f"/app/cases/{code}#petitions", status_code=303)


@router.post("/{code}/upload")
async def upload(request: Request, code: str) -> Response:
    form = await form_of(request)
    file = form.get("file")
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        if not isinstance(file, UploadFile) or not file.filename:
            error = ("Hãy chọn tệp tài liệu.", "Choose a file.")
        else:
            data = await file.read(cases.MAX_ATTACHMENT + 1)
            if len(data) > cases.MAX_ATTACHMENT:
                error = ("Tệp quá lớn (tối đa 25 MB).", "File too large (25 MB at most).")
            else:
                name = file.filename.replace("/", "_").replace("\\", "_")[:255]
                try:
                    async with conn.transaction():
                            await cases.add_attachment(conn, actor, code, name,
                                                   file.content_type or "application/octet-stream", data)
                except TransitionRefused as exc:
                    error = (exc.vi, exc.en)
                except cases.NotFound:
                    raise NOT_FOUND from None
        if error:
            return await _case_page(request, conn, actor, code, status_code=400, upload_error=error)
    return RedirectResponse(f"/app/cases/{code}#documents", status_code=303)


@router.get("/{code}/files/{attachment_id}")
async def download(request: Request, code: str, attachment_id: str) -> Response:
    try:
        UUID(attachment_id)
    except ValueError:
        raise NOT_FOUND from None
    async with acting(request) as (conn, _):
        try:
            row = await cases.get_attachment(conn, code, attachment_id)
        except cases.NotFound:
            raise NOT_FOUND from None
    ascii_name = row["filename"].encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    return Response(row["data"], media_type=row["content_type"], headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(row['filename'])}",
        "X-Content-SHA256": row["sha256"], "Cache-Control": "no-store"})
