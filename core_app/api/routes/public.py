from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from core_app import throttle
from core_app.api.deps import database
from core_app.api.errors import ApiError
from core_app.api.schemas import LookupIn
from core_app.repo import cases

router = APIRouter(tags=["public"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    """200 while the process answers, without touching the database: a liveness probe (restart the
    worker when it fails, where /healthz would restart it for the database's fault), and the floor
    `make bench-app` measures every endpoint against."""
    return {"status": "ok"}


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """200 when the database answers (and says whether it is the primary)."""
    try:
        async with database(request).transaction() as conn:
            cur = await conn.execute("SELECT pg_is_in_recovery() AS standby")
            row = await cur.fetchone()
    except Exception as exc:
        raise ApiError(503, "database_unavailable", "Cơ sở dữ liệu không phản hồi.",
                       "the database does not answer") from exc
    return {"status": "ok", "database": "standby" if row and row["standby"] else "primary"}


@router.post("/api/lookup")
async def lookup(body: LookupIn, request: Request) -> dict[str, Any]:
    """Citizen lookup by the case code and the secret on the receipt, both in the JSON body.
    Wrong code and wrong secret get the same answer."""
    # Failed lookups are counted per address (core_app/throttle.py): guessing secrets gets slow, then stops.
    row = await throttle.lookup_guarded(database(request), throttle.client_address(request),
                                        lambda conn: cases.public_lookup(conn, body.code, body.secret))
    if row is None:
        raise ApiError(404, "not_found", "Không tìm thấy hồ sơ với mã và mã tra cứu đã nhập.",
                       "no case matches this code and secret")
    return row
