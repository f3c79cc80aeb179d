"""Unit administrator: the accounts of the unit and the units below it; creating an account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.responses import Response

from core_app.api.schemas import AccountIn
from core_app.repo import accounts
from core_app.repo.cases import Invalid
from core_app.security import password_problem
from core_app.web import export
from core_app.web.base import WebError, acting, field_errors, form_of, text
from core_app.web.render import ROLES, label, lang_of, page

router = APIRouter(prefix="/app/accounts", include_in_schema=False)

COLUMNS = [("username", ("Tên đăng nhập", "Username")), ("full_name", ("Họ và tên", "Full name")),
           ("unit", ("Mã đơn vị", "Unit code")), ("unit_name", ("Đơn vị", "Unit")),
           ("roles", ("Vai trò", "Roles")), ("clearance", ("Mức tiếp cận mật", "Clearance")),
           ("is_active", ("Đang hoạt động", "Active")), ("locked_until", ("Khóa đến", "Locked until"))]


async def _list(conn: Any, unit: str | None, after: str | None) -> dict[str, Any]:
    try:
        return await accounts.list_accounts(conn, unit or None, 100, after)
    except Invalid as exc:
        raise WebError(400, exc.vi, exc.en) from None


@router.get("")
async def account_list(request: Request, unit: str | None = None, after: str | None = None,
                       format: str | None = None) -> Response:
    async with acting(request, "unit_admin", "sysadmin", "head") as (conn, actor):
        if format in ("csv", "xlsx"):
            got = await accounts.list_accounts(conn, unit or None, 10_000)
            await export.record(conn, "tai-khoan", got["data"])
            role = label(ROLES, lang_of(request))
            return export.table_response(request, "tai-khoan", COLUMNS, got["data"], format,
                                         labels={"roles": lambda rs: ", ".join(role(r) for r in rs)})
        got = await _list(conn, unit, after)
    return page(request, "accounts.html", rows=got["data"], has_more=got["has_more"], next_cursor=got["next"],
                first_page=not after,
                unit=unit or "", form={"unit": actor.unit_code, "clearance": "0"}, errors={})


@router.post("")
async def create(request: Request) -> Response:
    form = await form_of(request)
    values = {k: text(form, k) for k in ("username", "full_name", "unit", "clearance", "password")}
    roles = [r for r in form.getlist("roles") if isinstance(r, str)]
    async with acting(request, "unit_admin", "sysadmin") as (conn, actor):
        errors: dict[str, tuple[str, str]] = {}
        try:
            body = AccountIn.model_validate({**{k: v for k, v in values.items() if v is not None}, "roles": roles})
            problem = password_problem(body.password)
            if problem:
                vi, _, en = problem.partition(" / ")
                errors["password"] = (vi, en or vi)
            elif "sysadmin" in body.roles and "sysadmin" not in actor.roles:
                errors["roles"] = ("Chỉ quản trị hệ thống mới cấp vai trò quản trị hệ thống.",
                                   "Only a system administrator may grant sysadmin.")
        except ValidationError as exc:
            errors = field_errors(exc)
        if not errors:
            try:
                async with conn.transaction():
                    row = await accounts.create_account(conn, body.model_dump())
                if row is None:
                    errors["unit"] = ("Không có đơn vị hiện hành với mã này.", "No current unit with this code.")
            except accounts.GrantRefused as exc:
                errors["roles"] = (exc.vi, exc.en)
            except Exception as exc:  # the database refuses: taken username, or a unit outside the admin's tree
                name = type(exc).__name__
                if name == "UniqueViolation":
                    errors["username"] = ("Tên đăng nhập đã có.", "This username is taken.")
                elif name in ("InsufficientPrivilege", "CheckViolation"):
                    errors["unit"] = ("Chỉ được tạo tài khoản cho đơn vị mình và đơn vị cấp dưới, với mức mật "
                                      "không cao hơn của mình.",
                                      "Only for your unit and the units below it, with a clearance not above yours.")
                else:
                    raise
        if errors:
            got = await _list(conn, None, None)
            values.pop("password", None)  # a password is never sent back into a page
            return page(request, "accounts.html", status_code=400, rows=got["data"], has_more=got["has_more"],
                        next_cursor=got["next"], first_page=True, unit="", form={**values, "roles": roles},
                        errors=errors)
    return RedirectResponse("/app/accounts?created=" + (values["username"] or ""), status_code=303)
