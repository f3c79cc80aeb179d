from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field, StringConstraints

from core_app.api.deps import acting, database, today
from core_app.api.errors import ApiError
from core_app.api.schemas import Strict
from core_app.repo import cases
from core_app.repo import rules as rulebook_repo

router = APIRouter(prefix="/api/deadlines", tags=["deadlines"])

Event = Literal["receipt", "accept", "forward", "guide", "file_away", "return", "notify_acceptance", "resolve",
                "correct"]


class RuleVersionIn(Strict):
    """A new version of a rule: only the fields that change, its legal basis, reason and effective date."""

    effective_from: date = Field(description="the day from which steps starting then are counted by it")
    legal_basis: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=500)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=2000)]
    days: int | None = Field(None, ge=1, le=3650)
    day_unit: Literal["days", "working_days"] | None = None
    complex_days: int | None = Field(None, ge=1, le=3650)
    remote_days: int | None = Field(None, ge=1, le=3650)
    remote_complex_days: int | None = Field(None, ge=1, le=3650)
    extension_days: int | None = Field(None, ge=0, le=3650)
    max_extensions: int | None = Field(None, ge=0, le=5)
    extension_levels: list[Literal["complex", "especially_complex"]] | None = Field(None, max_length=5)
    start_event: Literal["receipt", "acceptance", "known", "first_decision", "discovery"] | None = None
    end_events: list[Event] | None = Field(None, min_length=1, max_length=9)
    description_vi: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] | None = None
    description_en: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] | None = None


@router.get("/rules")
async def rules(request: Request) -> list[dict[str, Any]]:
    """The statutory limits, as data: each with its unit, start and end events, legal basis and versions."""
    async with database(request).transaction() as conn:
        return await rulebook_repo.list_rules(conn, today(request))


@router.post("/rules/{code}/versions", status_code=201)
async def edit_rule(code: str, body: RuleVersionIn, request: Request) -> dict[str, Any]:
    """A new version of a rule (central system administrators only), in force from `effective_from` on
    every application host at once: no restart."""
    changes = body.model_dump(exclude={"effective_from", "reason"}, exclude_none=True)
    async with acting(request) as (conn, _):
        try:
            version = await rulebook_repo.edit(conn, code, body.effective_from, changes, body.reason)
        except rulebook_repo.RuleRefused as exc:
            raise ApiError(exc.status, "rule_refused", exc.vi, exc.en) from None
    return {"code": code, "version": version, "effective_from": body.effective_from}


@router.get("/overdue")
async def overdue(request: Request, unit: str | None = Query(None, description="a unit code; its subtree"),
                  limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
    """Overdue steps of the cases you may see, oldest first, with the number of days late."""
    async with acting(request) as (conn, _):
        rows = await cases.overdue(conn, today(request), unit, limit)
        per_unit: dict[str, int] = {}
        for r in rows:
            per_unit[r["handling_unit"]] = per_unit.get(r["handling_unit"], 0) + 1
        return {"data": rows, "per_unit": per_unit}
