"""A roster uploaded by an administrator: checked (or imported) row by row, and the one-time download
of the new accounts' initial passwords."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from core_app.roster import checked as kept_roster
from core_app.roster import format as roster_format
from core_app.roster import importing, load
from core_app.web.base import WebError, acting, form_of, said, text
from core_app.web.render import page

router = APIRouter(prefix="/app/accounts/import", include_in_schema=False)

ADMINS = ("unit_admin", "sysadmin")
GONE = WebError(404, "Tệp mật khẩu ban đầu không còn (đã tải hoặc hết hạn).",
                "The initial passwords file is gone (downloaded already, or expired).")


def _import_page(request: Request, status_code: int = 200, **ctx: object) -> Response:
    header = ",".join(c.vi for c in roster_format.COLUMNS)
    return page(request, "account_import.html", status_code=status_code, columns=roster_format.COLUMNS,
                header=header, kept_minutes=kept_roster.MINUTES,
                **{"form": {}, "errors": {}, "report": None, "credentials": None, "checked": None,
                   "digest": None, **ctx})


@router.get("")
async def import_form(request: Request) -> Response:
    async with acting(request, *ADMINS):
        pass
    return _import_page(request)


def _handle(value: str | None) -> str | None:
    try:
        return str(UUID(value or ""))
    except ValueError:
        return None


@router.post("")
async def import_roster(request: Request) -> Response:
    form = await form_of(request)
    reason = text(form, "reason") or ""
    # "Check only" unless the import button was pressed: a stray submit never creates accounts.
    dry_run = form.get("mode") != "import"
    file = form.get("file")
    sent = isinstance(file, UploadFile) and bool(file.filename)
    # After a clean check, "Import" names the file kept for this session instead of a new upload.
    checked = None if sent or dry_run else text(form, "checked")
    errors: dict[str, tuple[str, str]] = {}
    if not sent and checked is None:
        errors["file"] = ("Hãy chọn tệp danh sách (.csv hoặc .xlsx).", "Choose the roster file (.csv or .xlsx).")
    if not 5 <= len(reason) <= 500:
        errors["reason"] = ("Hãy ghi lý do (5 đến 500 ký tự).", "Give a reason (5 to 500 characters).")
    report, kept, digest = None, None, None
    filename = file.filename if isinstance(file, UploadFile) else None
    key = request.app.state.settings.sealing_keys
    async with acting(request, *ADMINS) as (conn, actor):
        data = None
        if not errors and isinstance(file, UploadFile) and sent:
            data = await file.read(roster_format.MAX_BYTES + 1)
        elif not errors and checked:
            try:
                if _handle(checked) is None:
                    raise kept_roster.refused_unknown()
                got = await kept_roster.take(conn, actor, checked, key)
                filename, data = got.filename, got.data
            except kept_roster.Refused as exc:
                errors["file"] = (exc.vi, exc.en)
        if data is not None:
            digest = load.sha256_of(data)
            try:
                report = await importing.from_upload(conn, actor, data, filename or "roster.csv", reason, dry_run,
                                                     key)
            except roster_format.RosterUnreadable as exc:
                errors["file"] = said(exc.vi, exc.en)
            if report and dry_run and not report.outcome.errors and report.outcome.created:
                kept = await kept_roster.keep(conn, actor, data, filename or "roster.csv", key)
    got_report = report.as_json() if report else None
    if got_report:
        for e in got_report["errors"]:
            e["message"], e["message_en"] = said(e["message"], e["message_en"])
    link = f"/app/accounts/import/{report.delivery}/credentials" if report and report.delivery else None
    failed = bool(errors) or (got_report is not None and not got_report["ok"])
    return _import_page(request, status_code=400 if failed else 200, form={"reason": reason}, errors=errors,
                        report=got_report, credentials=link, checked=kept, filename=filename,
                        digest=digest if got_report else None)


@router.get("/{handle}/credentials")
async def credentials(request: Request, handle: str) -> Response:
    """The initial passwords of an import, for the administrator who ran it, once."""
    try:
        UUID(handle)
    except ValueError:
        raise GONE from None
    async with acting(request, *ADMINS) as (conn, _):
        got = await importing.take_credentials(conn, handle, request.app.state.settings.sealing_keys)
    if got is None:
        raise GONE
    return Response(got, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="mat-khau-ban-dau.csv"',
                             "Cache-Control": "no-store"})
