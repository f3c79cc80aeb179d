from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response

from core_app.api.deps import acting, require_role
from core_app.api.errors import ApiError
from core_app.api.schemas import AccountActionIn, AccountIn
from core_app.repo import account_admin, accounts
from core_app.roster import format as roster_format
from core_app.roster import importing
from core_app.roster.rows import normal_email, normal_phone

router = APIRouter(prefix="/api/accounts", tags=["accounts"])
Username = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")]


@router.get("")
async def list_accounts(
    request: Request, unit: str | None = None, per_page: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=200, description="the `next` cursor of the previous page"),
    q: str | None = Query(None, max_length=100, description="part of a username, name, e-mail or phone"),
    active: bool | None = None,
    stale_days: int | None = Query(None, ge=1, le=3650, description="no login for this many days"),
    initial: bool = Query(False, description="still on the initial password"),
    no_factor: bool = Query(False, description="required to hold a second factor and holding none"),
) -> dict[str, Any]:
    """The account directory of your area (administrators and heads)."""
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "head", "sysadmin")
        return await accounts.list_accounts(conn, unit, per_page, after, accounts.Directory(
            unit=unit, q=q, active=active, stale_days=stale_days, initial=initial, no_factor=no_factor))


def _contact(body: AccountIn) -> dict[str, Any]:
    data = body.model_dump()
    for key, normal in (("email", normal_email), ("phone", normal_phone)):
        if data.get(key):
            data[key] = normal(data[key])
            if data[key] is None:
                raise ApiError(400, f"invalid_{key}", "Thông tin liên hệ sai dạng.", f"the {key} is malformed",
                               field=key)
    return data


@router.post("", status_code=201)
async def create_account(body: AccountIn, request: Request) -> dict[str, Any]:
    """A unit administrator creates an account in their unit or below; the answer carries its one-time
    initial password, which the officer must change at first login."""
    data = _contact(body)
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "sysadmin")
        if "sysadmin" in body.roles and "sysadmin" not in actor.roles:
            raise ApiError(403, "role_not_allowed", "Chỉ quản trị hệ thống mới cấp vai trò quản trị hệ thống.",
                           "only a system administrator may grant sysadmin")
        try:
            row, initial = await accounts.create_account(conn, data)
        except accounts.GrantRefused as exc:
            raise ApiError(403, "grant_not_allowed", exc.vi, exc.en) from None
        if row is None:
            raise ApiError(400, "unit_not_found", "Không có đơn vị hiện hành với mã này.",
                           f"no current unit with code {body.unit!r}", field="unit")
        return {"id": row["id"], "username": body.username, "initial_password": initial}


@router.post("/{username}/actions")
async def account_action(username: Username, body: AccountActionIn, request: Request) -> dict[str, Any]:
    """Disable, enable, change roles, unit or clearance, reset the password or the second factor, end
    the sessions: each with a reason, within what you may grant; recorded in the access log."""
    args: dict[str, Any] = {}
    needs = {"set_roles": "roles", "set_unit": "unit", "set_clearance": "clearance"}.get(body.action)
    if needs:
        value = getattr(body, needs)
        if value is None:
            raise ApiError(400, "missing_field", f"Thiếu trường {needs}.", f"{needs} is required for {body.action}",
                           field=needs)
        args[needs] = value
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "sysadmin")
        return await account_admin.act(conn, username, body.action, body.reason, args)


@router.get("/{username}/sessions")
async def account_sessions(username: Username, request: Request) -> dict[str, Any]:
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "sysadmin")
        return {"data": await account_admin.sessions(conn, username)}


@router.post("/import")
async def import_roster(request: Request, file: Annotated[UploadFile, File()],
                        reason: Annotated[str, Form(min_length=5, max_length=500)],
                        dry_run: Annotated[bool, Form()] = False) -> dict[str, Any]:
    """A roster (CSV or XLSX, runbooks/accounts.md): every row is checked, and either every account is
    created or none. The answer lists the errors by line, or the created accounts; their initial
    passwords are in a CSV that this administrator alone may download, once."""
    data = await file.read(roster_format.MAX_BYTES + 1)
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "sysadmin")
        try:
            out = await importing.from_upload(conn, actor, data, file.filename or "roster.csv", reason, dry_run,
                                              request.app.state.settings.sealing_keys)
        except roster_format.RosterUnreadable as exc:
            raise ApiError(400, "roster_unreadable", exc.vi, exc.en) from None
    return out.as_json()


@router.get("/import/{handle}/credentials")
async def credentials(handle: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")], request: Request) -> Any:
    """The initial passwords of an import, for the administrator who ran it, once."""
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "sysadmin")
        got = await importing.take_credentials(conn, handle, request.app.state.settings.sealing_keys)
    if got is None:
        raise ApiError(404, "not_found", "Tệp mật khẩu ban đầu không còn (đã tải hoặc hết hạn).",
                       "the initial passwords file is gone (downloaded already, or expired)")
    return Response(got, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="mat-khau-ban-dau.csv"',
                             "Cache-Control": "no-store"})

