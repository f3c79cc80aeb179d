"""The account directory of the unit and the units below it (search, filters, exports), and creating
one account on a one-time initial password."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.responses import Response

from core_app.api.schemas import AccountIn
from core_app.repo import accounts
from core_app.repo.cases import Invalid
from core_app.roster.rows import normal_email, normal_phone
from core_app.web import account_detail, export
from core_app.web.base import FIELD_HINTS, WebError, acting, field_errors, form_of, text
from core_app.web.render import ROLES, label, lang_of, page

router = APIRouter(prefix="/app/accounts", include_in_schema=False)

COLUMNS = [("username", ("Tên đăng nhập", "Username")), ("full_name", ("Họ và tên", "Full name")),
           ("unit", ("Mã đơn vị", "Unit code")), ("unit_name", ("Đơn vị", "Unit")),
           ("roles", ("Vai trò", "Roles")), ("clearance", ("Mức tiếp cận mật", "Clearance")),
           ("email", ("Thư điện tử", "E-mail")), ("phone", ("Điện thoại", "Phone")),
           ("is_active", ("Đang hoạt động", "Active")), ("locked_until", ("Khóa đến", "Locked until")),
           ("last_login_at", ("Đăng nhập gần nhất", "Last login")),
           ("must_change_password", ("Còn mật khẩu ban đầu", "Still on the initial password")),
           ("factor_enrolled", ("Có xác thực hai lớp", "Second factor enrolled"))]
YES_NO = {True: ("Có", "Yes"), False: ("Không", "No")}
# "No login for a long time": the directory's filter for accounts to review.
STALE_DAYS = 90
FILTERS = ("unit", "q", "state", "stale", "initial", "no_factor")


def _filters(query: QueryParams) -> dict[str, str]:
    return {k: (query.get(k) or "").strip()[:100] for k in FILTERS}


def _directory(f: dict[str, str]) -> accounts.Directory:
    return accounts.Directory(unit=f["unit"].upper() or None, q=f["q"] or None,
                              active={"active": True, "disabled": False}.get(f["state"]),
                              stale_days=STALE_DAYS if f["stale"] else None, initial=bool(f["initial"]),
                              no_factor=bool(f["no_factor"]))


async def _list(conn: Any, f: dict[str, str], after: str | None, per_page: int = 100) -> dict[str, Any]:
    try:
        return await accounts.list_accounts(conn, None, per_page, after, _directory(f))
    except Invalid as exc:
        raise WebError(400, exc.vi, exc.en) from None


def _directory_page(request: Request, got: dict[str, Any], f: dict[str, str], first_page: bool,
                    status_code: int = 200, **ctx: Any) -> Response:
    return page(request, "accounts.html", status_code=status_code, rows=got["data"], has_more=got["has_more"],
                next_cursor=got["next"], first_page=first_page, filters=f, stale_days=STALE_DAYS, **ctx)


@router.get("")
async def account_list(request: Request, after: str | None = None, format: str | None = None) -> Response:
    f = _filters(request.query_params)
    async with acting(request, "unit_admin", "sysadmin", "head") as (conn, actor):
        if format in ("csv", "xlsx"):
            # The same row-level-security list as the page, with the same filters.
            got = await _list(conn, f, None, 10_000)
            await export.record(conn, "tai-khoan", got["data"])
            lang = lang_of(request)
            role, yes_no = label(ROLES, lang), label(YES_NO, lang)
            return export.table_response(request, "tai-khoan", COLUMNS, got["data"], format, labels={
                "roles": lambda rs: ", ".join(role(r) for r in rs), "is_active": yes_no,
                "must_change_password": yes_no, "factor_enrolled": yes_no})
        got = await _list(conn, f, after)
    return _directory_page(request, got, f, not after, form={"unit": actor.unit_code, "clearance": "0"}, errors={})


@router.post("")
async def create(request: Request) -> Response:
    form = await form_of(request)
    values = {k: text(form, k) for k in ("username", "full_name", "unit", "clearance", "email", "phone")}
    roles = [r for r in form.getlist("roles") if isinstance(r, str)]
    async with acting(request, "unit_admin", "sysadmin") as (conn, actor):
        errors: dict[str, tuple[str, str]] = {}
        data: dict[str, Any] = {}
        try:
            body = AccountIn.model_validate({**{k: v for k, v in values.items() if v is not None}, "roles": roles})
            data = body.model_dump()
            for key, normal in (("email", normal_email), ("phone", normal_phone)):
                if data.get(key):
                    data[key] = normal(data[key])
                    if data[key] is None:
                        errors[key] = FIELD_HINTS[key]
            if "sysadmin" in body.roles and "sysadmin" not in actor.roles:
                errors["roles"] = ("Chỉ quản trị hệ thống mới cấp vai trò quản trị hệ thống.",
                                   "Only a system administrator may grant sysadmin.")
        except ValidationError as exc:
            errors = field_errors(exc)
        if not errors:
            try:
                async with conn.transaction():
                    row, initial = await accounts.create_account(conn, data)
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
            f = _filters(QueryParams())
            got = await _list(conn, f, None)
            return _directory_page(request, got, f, True, status_code=400, form={**values, "roles": roles},
                                   errors=errors)
        # The initial password exists only now: the new account's page shows it this once.
        return await account_detail.detail_page(request, conn, data["username"], status_code=201,
                                                initial_password=initial, done="created")
