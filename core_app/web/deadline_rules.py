"""The deadline rules page: every statutory limit with its versions (any officer may read the law), and a
new version of one by a central system administrator (the database decides who:
kntc.deadline_rule_edit). Every host reads the new version on its next request (repo/rules.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app.repo import rules
from core_app.web.base import WebError, acting, form_of, text
from core_app.web.render import page

router = APIRouter(prefix="/app/deadline-rules", include_in_schema=False)

NUMBERS = ("days", "complex_days", "remote_days", "remote_complex_days", "extension_days", "max_extensions")
EVENTS = ("receipt", "accept", "forward", "guide", "file_away", "return", "notify_acceptance", "resolve", "correct")


async def _page(request: Request, conn: Any, actor: Any, status_code: int = 200, **extra: Any) -> Response:
    listed = await rules.list_rules(conn, request.app.state.clock())
    ctx: dict[str, Any] = {"rules": listed, "may_edit": "sysadmin" in actor.roles, "error": None, "form": {},
                           "editing": None, "numbers": NUMBERS, "today": request.app.state.clock()}
    ctx.update(extra)
    return page(request, "deadline_rules.html", status_code=status_code, **ctx)


@router.get("")
async def rule_list(request: Request) -> Response:
    async with acting(request) as (conn, actor):
        return await _page(request, conn, actor)


def _changes(form: Any) -> tuple[dict[str, Any], tuple[str, str] | None]:
    changes: dict[str, Any] = {"legal_basis": text(form, "legal_basis") or ""}
    for key in NUMBERS:
        raw = text(form, key)
        if raw:
            if not raw.isdigit() or int(raw) > 3650:
                return changes, ("Số ngày phải là số nguyên từ 0 đến 3650.",
                                 "A number of days is a whole number, 0-3650.")
            changes[key] = int(raw)
    unit = text(form, "day_unit")
    if unit:
        if unit not in ("days", "working_days"):
            return changes, ("Đơn vị tính là ngày hoặc ngày làm việc.", "The unit is days or working days.")
        changes["day_unit"] = unit
    ends = [e for e in form.getlist("end_events") if isinstance(e, str) and e]
    if ends:
        if not set(ends) <= set(EVENTS):
            return changes, ("Sự kiện kết thúc không hợp lệ.", "An unknown ending event.")
        changes["end_events"] = ends
    if len(changes["legal_basis"]) < 5:
        return changes, ("Cần nêu căn cứ pháp lý của phiên bản mới.", "The new version needs its legal basis.")
    return changes, None


@router.post("/{code}")
async def new_version(request: Request, code: str) -> Response:
    form = await form_of(request)
    reason = text(form, "reason") or ""
    changes, error = _changes(form)
    try:
        effective = date.fromisoformat(text(form, "effective_from") or "")
    except ValueError:
        effective = None
        error = error or ("Hãy nhập ngày hiệu lực (YYYY-MM-DD).", "Enter the effective date (YYYY-MM-DD).")
    if len(reason) < 10:
        error = error or ("Cần nêu lý do (ít nhất 10 ký tự).", "Give the reason (10 characters at least).")
    async with acting(request) as (conn, actor):
        if error is None and effective is not None:
            try:
                await rules.edit(conn, code[:40], effective, changes, reason[:2000])
            except rules.RuleRefused as exc:
                if exc.status in (403, 404):
                    raise WebError(exc.status, exc.vi, exc.en) from None
                error = (exc.vi, exc.en)
        if error:
            return await _page(request, conn, actor, status_code=400, error=error, editing=code,
                               form={k: text(form, k) for k in ("effective_from", "legal_basis", "reason",
                                                                 "day_unit", *NUMBERS)})
    return RedirectResponse(f"/app/deadline-rules#rule-{code}", status_code=303)
