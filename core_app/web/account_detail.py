"""One account, as its administrator sees it: its data, its sessions, and the changes an
administrator makes (each with a reason) through the one door, `account_admin.act`.

An account outside the administrator's area gets the same answer as one that does not exist.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.responses import Response

from core_app.api.schemas import AccountActionIn
from core_app.repo import account_admin, accounts
from core_app.web.base import WebError, acting, field_errors, form_of, said, text
from core_app.web.render import page

router = APIRouter(prefix="/app/accounts", include_in_schema=False)

ADMINS = ("unit_admin", "sysadmin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
NOT_YOURS = WebError(404, *said(account_admin.NOT_FOUND.vi, account_admin.NOT_FOUND.en))
ACTIONS = {
    "disable": ("Ngừng hoạt động", "Disable"),
    "enable": ("Cho hoạt động lại", "Enable again"),
    "set_roles": ("Đổi vai trò", "Change the roles"),
    "set_unit": ("Chuyển đơn vị", "Move to another unit"),
    "set_clearance": ("Đổi mức tiếp cận mật", "Change the clearance"),
    "reset_password": ("Cấp lại mật khẩu ban đầu", "Reset the password"),
    "reset_factor": ("Đặt lại xác thực hai lớp", "Reset the second factor"),
    "end_sessions": ("Kết thúc mọi phiên đăng nhập", "End every session"),
}
# The field each action needs besides the reason.
NEEDS = {"set_roles": "roles", "set_unit": "unit", "set_clearance": "clearance"}


async def detail_page(request: Request, conn: Any, username: str, status_code: int = 200, **ctx: Any) -> Response:
    row = await accounts.get_account(conn, username)
    if row is None:
        raise NOT_YOURS
    try:
        sessions = await account_admin.sessions(conn, username)
        manageable = True
    except account_admin.AdminRefused:
        # In the area (a head of the administrator's own unit, say) but not theirs to change.
        sessions, manageable = [], False
    return page(request, "account_detail.html", status_code=status_code, account=row, sessions=sessions,
                manageable=manageable, actions=ACTIONS, failed_action=ctx.pop("failed_action", None),
                action_errors=ctx.pop("action_errors", {}), action_form=ctx.pop("action_form", {}),
                initial_password=ctx.pop("initial_password", None), done=ctx.pop("done", None), **ctx)


@router.get("/{username}")
async def detail(request: Request, username: str) -> Response:
    async with acting(request, *ADMINS) as (conn, _):
        if not USERNAME.match(username):
            raise NOT_YOURS
        return await detail_page(request, conn, username, done=request.query_params.get("done"))


@router.post("/{username}/action")
async def act(request: Request, username: str) -> Response:
    form = await form_of(request)
    action = text(form, "action") or ""
    values = {k: text(form, k) for k in ("reason", "unit", "clearance")}
    roles = [r for r in form.getlist("roles") if isinstance(r, str)]
    body_in: dict[str, Any] = {"action": action, "reason": values["reason"] or ""}
    need = NEEDS.get(action)
    if need == "roles":
        body_in["roles"] = roles
    elif need:
        body_in[need] = values[need]
    async with acting(request, *ADMINS) as (conn, _):
        if not USERNAME.match(username):
            raise NOT_YOURS
        errors: dict[str, tuple[str, str]] = {}
        status = 400
        try:
            body = AccountActionIn.model_validate(body_in)
            if need and getattr(body, need) is None:
                errors[need] = ("Bắt buộc nhập.", "Required.")
        except ValidationError as exc:
            errors = field_errors(exc)
        detail: dict[str, Any] = {}
        if not errors:
            args = {need: getattr(body, need)} if need else {}
            try:
                detail = await account_admin.act(conn, username, body.action, body.reason, args)
            except account_admin.AdminRefused as exc:
                if exc.status == 404:
                    raise NOT_YOURS from None
                status, errors = exc.status, {exc.field or "_form": said(exc.vi, exc.en)}
        if errors:
            return await detail_page(request, conn, username, status_code=status, failed_action=action,
                                     action_errors=errors, action_form={**values, "roles": roles})
        if "initial_password" in detail:
            # Shown this once, on the answer to the reset itself.
            return await detail_page(request, conn, username, initial_password=detail["initial_password"],
                                     done=action)
    return RedirectResponse(f"/app/accounts/{username}?done={action}", status_code=303)
