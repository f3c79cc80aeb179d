from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from core_app.api.deps import acting, require_role
from core_app.api.errors import ApiError
from core_app.api.schemas import AccountIn
from core_app.repo import accounts
from core_app.security import password_problem

router = APIRouter(prefix="/api/accounts", tags=["accounts"])


@router.get("")
async def list_accounts(request: Request, unit: str | None = None, per_page: int = Query(50, ge=1, le=200),
                        after: str | None = Query(None, max_length=200,
                                                  description="the `next` cursor of the previous page")
                        ) -> dict[str, Any]:
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "head", "sysadmin")
        return await accounts.list_accounts(conn, unit, per_page, after)


@router.post("", status_code=201)
async def create_account(body: AccountIn, request: Request) -> dict[str, Any]:
    """A unit administrator creates accounts in their unit and the units below it."""
    problem = password_problem(body.password)
    if problem:
        raise ApiError(400, "weak_password", problem, problem, field="password")
    async with acting(request) as (conn, actor):
        require_role(actor, "unit_admin", "sysadmin")
        if "sysadmin" in body.roles and "sysadmin" not in actor.roles:
            raise ApiError(403, "role_not_allowed", "Chỉ quản trị hệ thống mới cấp vai trò quản trị hệ thống.",
                           "only a system administrator may grant sysadmin")
        try:
            row = await accounts.create_account(conn, body.model_dump())
        except accounts.GrantRefused as exc:
            raise ApiError(403, "grant_not_allowed", exc.vi, exc.en) from None
        if row is None:
            raise ApiError(400, "unit_not_found", "Không có đơn vị hiện hành với mã này.",
                           f"no current unit with code {body.unit!r}", field="unit")
        return {"id": row["id"], "username": body.username}
