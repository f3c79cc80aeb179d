from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response

from core_app.api.deps import acting, require_role, rulebook, today
from core_app.api.errors import ApiError
from core_app.api.schemas import AssignIn, CaseIn, CaseUpdateIn, PetitionIn, TransitionIn
from core_app.domain.workflow import ACTIONS
from core_app.repo import cases

router = APIRouter(prefix="/api/cases", tags=["cases"])

CodePath = Annotated[str, "case code"]


@router.post("", status_code=201)
async def record_petition(body: CaseIn, request: Request) -> dict[str, Any]:
    """Record a petition as a new case file. The lookup secret is shown only in this answer."""
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "handling", "head")
        data = body.model_dump()
        data["parties"] = [p.model_dump() for p in body.parties]
        return await cases.create_case(conn, actor, await rulebook(request, conn), data, today(request))


@router.get("")
async def list_cases(
    request: Request,
    status: str | None = None,
    kind: Literal["complaint", "denunciation", "recommendation", "multi"] | None = None,
    unit: str | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    scope: Literal["unit", "area"] = Query(
        "area", description="unit: only cases your unit holds; area: all you may see"),
    per_page: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=200, description="the `next` cursor of the previous page"),
) -> dict[str, Any]:
    async with acting(request) as (conn, actor):
        filters = {"status": status, "kind": kind, "unit": unit, "received_from": received_from,
                   "received_to": received_to}
        return await cases.list_cases(conn, filters, per_page, after=after,
                                      mine_only_unit=actor.unit_id if scope == "unit" else None)


@router.get("/actions")
async def actions() -> list[dict[str, Any]]:
    """The workflow: each action, the states it applies to, the roles allowed."""
    return [{"action": a.name, "from": sorted(a.sources), "to": a.target, "roles": sorted(a.roles),
             "requires": list(a.requires), "label": a.label_vi, "label_en": a.label_en} for a in ACTIONS.values()]


@router.get("/{code}", response_class=Response,
            responses={200: {"content": {"application/json": {}}, "description": "the case file"}})
async def get_case(code: CodePath, request: Request) -> Response:
    """The case file: the case, its parties, petitions, deadlines, timeline, attachments, assignments,
    intake decisions, extensions, discrepancies and notifications, as far as the officer may see."""
    async with acting(request) as (conn, _):
        body = await cases.case_file_json(conn, code)
    return Response(body, media_type="application/json")


@router.patch("/{code}")
async def update_case(code: CodePath, body: CaseUpdateIn, request: Request) -> dict[str, Any]:
    async with acting(request) as (conn, actor):
        changes = body.model_dump(exclude={"version"})
        book = await rulebook(request, conn)
        return await cases.update_case(conn, actor, code, body.version, changes, book=book, today=today(request))


@router.post("/{code}/transitions")
async def transition(code: CodePath, body: TransitionIn, request: Request) -> dict[str, Any]:
    """Take a workflow action; `version` must be the one you read (409 otherwise)."""
    async with acting(request) as (conn, actor):
        params = body.model_dump(exclude={"action", "version"})
        book = await rulebook(request, conn)
        return await cases.transition(conn, actor, book, code, body.action, body.version, params, today(request))


@router.post("/{code}/petitions", status_code=201)
async def add_petition(code: CodePath, body: PetitionIn, request: Request) -> dict[str, Any]:
    """Another petition on the same matter joins the existing case file."""
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "handling", "head")
        return await cases.add_petition(conn, actor, code, body.model_dump(), today(request))


@router.post("/{code}/assignments", status_code=201)
async def assign(code: CodePath, body: AssignIn, request: Request) -> dict[str, str]:
    async with acting(request) as (conn, actor):
        await cases.assign(conn, actor, code, body.username, body.duty)
        return {"status": "assigned"}


@router.post("/{code}/attachments", status_code=201)
async def upload(code: CodePath, request: Request, file: UploadFile = File(...)) -> dict[str, Any]:
    data = await file.read(cases.MAX_ATTACHMENT + 1)
    if len(data) > cases.MAX_ATTACHMENT:
        raise ApiError(413, "file_too_large", "Tệp quá lớn (tối đa 25 MB).", "file too large (25 MB at most)")
    name = (file.filename or "tai-lieu").replace("/", "_").replace("\\", "_")[:255]
    async with acting(request) as (conn, actor):
        return await cases.add_attachment(conn, actor, code, name, file.content_type or "application/octet-stream",
                                          data)


@router.get("/{code}/attachments/{attachment_id}")
async def download(code: CodePath, attachment_id: UUID, request: Request) -> Response:
    async with acting(request) as (conn, _):
        row = await cases.get_attachment(conn, code, str(attachment_id))
    safe = row["filename"].encode("ascii", "replace").decode().replace('"', "")
    return Response(row["data"], media_type=row["content_type"], headers={
        "Content-Disposition": f'attachment; filename="{safe}"', "X-Content-SHA256": row["sha256"],
        "X-Content-Type-Options": "nosniff"})
