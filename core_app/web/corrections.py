"""Corrections on screen: report a discrepancy, correct any recorded field with a reason, and the
unit's late corrections (the 5-working-day duty, rule DATA-CORRECT)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app.dedup import corrections
from core_app.domain.workflow import TransitionRefused
from core_app.repo import cases
from core_app.web.base import NOT_FOUND, WebError, acting, form_of, text
from core_app.web.render import page

router = APIRouter(prefix="/app", include_in_schema=False)


def field_options(case: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """Every correctable field of this case as (form value, label): 'case:subject',
    'party:<id>:full_name', 'petition:<id>:content'."""
    en = lang == "en"
    out = [(f"case::{f}", (spec[2] if en else spec[1])) for f, spec in corrections.FIELDS["case"].items()]
    for p in case.get("parties") or []:
        who = p["full_name"]
        out += [(f"party:{p['id']}:{f}", f"{who} — {spec[2] if en else spec[1]}")
                for f, spec in corrections.FIELDS["party"].items()]
    for i, pt in enumerate(case.get("petitions") or [], 1):
        label = f"{'Petition' if en else 'Đơn'} {i}"
        out += [(f"petition:{pt['id']}:{f}", f"{label} — {spec[2] if en else spec[1]}")
                for f, spec in corrections.FIELDS["petition"].items()]
    return out


async def _back(request: Request, conn: Any, actor: Any, code: str, **errors: Any) -> Response:
    from core_app.web.cases import _case_page

    return await _case_page(request, conn, actor, code, status_code=400, **errors)


@router.post("/cases/{code}/discrepancies")
async def report(request: Request, code: str) -> Response:
    form = await form_of(request)
    description, field = text(form, "description") or "", text(form, "field")
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        if len(description) < 3:
            error = ("Hãy mô tả dữ liệu sai, thiếu hoặc khác hồ sơ giấy.",
                     "Describe the data that is wrong, missing or differs from the paper file.")
        else:
            try:
                async with conn.transaction():
                    book = await request.app.state.rulebooks.current(conn)
                    await corrections.report(conn, actor, book, code,
                                             {"description": description[:5000], "field": (field or "")[:100] or None},
                                             request.app.state.clock())
            except (cases.Invalid, TransitionRefused) as exc:
                error = (exc.vi, exc.en)
            except cases.NotFound:
                raise NOT_FOUND from None
        if error:
            return await _back(request, conn, actor, code, report_error=error)
    return RedirectResponse(f"/app/cases/{code}#corrections", status_code=303)


@router.post("/cases/{code}/corrections")
async def correct(request: Request, code: str) -> Response:
    form = await form_of(request)
    target, _, rest = (text(form, "field") or "").partition(":")
    target_id, _, field = rest.partition(":")
    data = {"target": target, "target_id": target_id or None, "field": field, "value": text(form, "value"),
            "reason": text(form, "reason") or "", "discrepancy_id": text(form, "discrepancy_id"),
            "version": int(v) if (v := text(form, "version") or "").isdigit() else 0}
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        if target not in corrections.FIELDS:
            error = ("Hãy chọn trường cần sửa.", "Choose the field to correct.")
        else:
            try:
                async with conn.transaction():
                    book = await request.app.state.rulebooks.current(conn)
                    await corrections.correct_field(conn, actor, book, code, data, request.app.state.clock())
            except (cases.Invalid, TransitionRefused) as exc:
                error = (exc.vi, exc.en)
            except cases.Conflict:
                error = ("Hồ sơ vừa được người khác cập nhật; hãy kiểm tra rồi sửa lại.",
                         "Someone else has just changed this case: check it and correct again.")
            except cases.NotFound:
                raise NOT_FOUND from None
        if error:
            return await _back(request, conn, actor, code, correct_error=error,
                               correct_form={k: str(v or "") for k, v in form.items() if k != "csrf"})
    return RedirectResponse(f"/app/cases/{code}#corrections", status_code=303)


@router.get("/corrections")
async def late(request: Request) -> Response:
    """The unit's (and its area's) corrections made after 5 working days, and reports still open past it."""
    async with acting(request) as (conn, actor):
        if "external_reader" in actor.roles:
            raise WebError(403, "Tài khoản không có quyền vào trang này.", "Your account may not open this page.")
        got = await corrections.late(conn, request.app.state.clock(), actor.unit_code, 500)
    return page(request, "corrections.html", rows=got["data"], per_unit=got["per_unit"])
