"""Duplicate check and decisions at intake; discrepancy reports, corrections and late corrections."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import Field, StringConstraints, model_validator

from core_app.api.deps import acting, require_role, rulebook, today
from core_app.api.schemas import CaseUpdateIn, IdNumber, PetitionIn, Short, Strict, UnitCode
from core_app.dedup import corrections, intake

router = APIRouter(tags=["dedup"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]


class DedupPartyIn(Strict):
    full_name: Name | None = None
    id_number: IdNumber | None = None
    address_unit: UnitCode | None = Field(None, description="unit of the address: current (X…), legacy (LX…) "
                                                            "or a bare GSO ward code")


class DedupCheckIn(Strict):
    parties: list[DedupPartyIn] = Field(min_length=1, max_length=20)
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] | None = None
    respondent: Short | None = None
    limit: int = Field(10, ge=1, le=50)

    @model_validator(mode="after")
    def something_to_match(self) -> DedupCheckIn:
        # A sender known only by name is still checked (by subject, and so that the decision is kept).
        if not (self.subject or any(p.id_number or (p.full_name and p.address_unit) for p in self.parties)):
            raise ValueError("each check needs an ID number, a name with its address unit, or a subject")
        return self


class DecisionIn(Strict):
    check_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{36}$")]
    decision: Literal["linked", "new", "elsewhere"]
    case_code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=80)] | None = None
    petition: PetitionIn | None = Field(None, description="for 'linked': the petition that joins the case")
    unit: UnitCode | None = Field(None, description="for 'elsewhere': the unit that holds the matter")
    inquiry_handle: UUID | None = Field(None, description="for 'elsewhere' when the check said only that the "
                                                          "matter is held elsewhere: its handle")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class InquiryIn(Strict):
    inquiry_handle: UUID = Field(description="the handle a duplicate check gave for a case held elsewhere")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=2000)]
    petition_ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="your petition, as the other unit may refer to it (your case code or register number)")


class DiscrepancyIn(Strict):
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=5000)]
    field: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    reported_on: date | None = Field(None, description="day the error was found (default: today)")


@router.post("/api/dedup/check")
async def check(body: DedupCheckIn, request: Request) -> dict[str, Any]:
    """Cases nationwide that may be the same matter, ranked, with the reasons.

    Cases you may not read (outside your area or above your clearance) are one line, last, saying
    only that a possible existing case is held elsewhere, with an `inquiry_handle` for
    `POST /api/dedup/inquiries`. Every check is recorded; too many in a short time get 429.
    """
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "handling", "head")
        return await intake.check(conn, actor, body.model_dump())


@router.post("/api/dedup/inquiries", status_code=202)
async def inquire(body: InquiryIn, request: Request) -> dict[str, Any]:
    """Ask the unit holding a case you may not read: its head is told who asks, why, and about what
    petition; you are told only that the inquiry was sent."""
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "handling", "head")
        await intake.inquire(conn, str(body.inquiry_handle), body.reason, body.petition_ref)
    return {"status": "sent", "message": "Đã gửi yêu cầu tới thủ trưởng đơn vị đang giữ hồ sơ.",
            "message_en": "the inquiry was sent to the head of the unit holding the case"}


@router.get("/api/dedup/inquiries")
async def inquiries(request: Request, limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    """For heads: inquiries from other units about your unit's cases, newest first."""
    async with acting(request) as (conn, actor):
        require_role(actor, "head")
        return {"data": await intake.inquiries(conn, limit)}


@router.post("/api/dedup/decisions", status_code=201)
async def decide(body: DecisionIn, request: Request) -> dict[str, Any]:
    """Link the petition to an existing case, confirm it is new, or note the unit that holds it."""
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "handling", "head")
        data = body.model_dump()
        return await intake.decide(conn, actor, data, today(request))


@router.post("/api/cases/{code}/discrepancies", status_code=201)
async def report_discrepancy(code: str, body: DiscrepancyIn, request: Request) -> dict[str, Any]:
    """Report recorded data that is incomplete, wrong or differs from the paper file."""
    async with acting(request) as (conn, actor):
        book = await rulebook(request, conn)
        return await corrections.report(conn, actor, book, code, body.model_dump(), today(request))


@router.post("/api/cases/{code}/discrepancies/{discrepancy_id}/corrections", status_code=201)
async def correct(code: str, discrepancy_id: str, body: CaseUpdateIn, request: Request) -> dict[str, Any]:
    """Correct the case for a reported discrepancy (same fields and `reason` as PATCH)."""
    async with acting(request) as (conn, actor):
        return await corrections.correct(conn, actor, await rulebook(request, conn), code, _uuid(discrepancy_id),
                                         body.model_dump(), today(request))


class CorrectionIn(Strict):
    version: int = Field(ge=1, description="the case version you read (409 if it changed)")
    target: Literal["case", "party", "petition"]
    target_id: UUID | None = Field(None, description="party or petition: its id (from GET /api/cases/{code})")
    field: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40)]
    value: str | int | bool | None = Field(None, description="the new value (empty: clear an optional field)")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
    discrepancy_id: UUID | None = Field(None, description="the report this answers; none: reported and corrected now")


@router.post("/api/cases/{code}/corrections", status_code=201)
async def correct_field(code: str, body: CorrectionIn, request: Request) -> dict[str, Any]:
    """Correct any recorded field of the case, a party or a petition, with a reason (the unit holding the
    case only). The correction closes its report; one later than 5 working days is listed as late."""
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "handling", "resolution", "head")
        book = await rulebook(request, conn)
        return await corrections.correct_field(conn, actor, book, code, body.model_dump(), today(request))


@router.get("/api/corrections/fields")
async def correctable() -> dict[str, Any]:
    """What may be corrected: per target, each field and its label."""
    return {t: {f: {"label": v[1], "label_en": v[2]} for f, v in fs.items()} for t, fs in corrections.FIELDS.items()}


@router.get("/api/corrections/late")
async def late(request: Request, unit: str | None = Query(None, description="a unit code: its subtree"),
               limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
    """Corrections later than 5 working days after the report, and reports still open past it, per unit."""
    async with acting(request) as (conn, _):
        return await corrections.late(conn, today(request), unit, limit)


def _uuid(value: str) -> str:
    import uuid

    from core_app.repo.cases import NotFound

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(value) from None
