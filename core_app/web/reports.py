"""Periodic reports: the Inspectorate's four forms per unit and period, as a page, XLSX and PDF, each
figure leading to the list of its cases.

What a figure counts is decided in `core_app.repo.reports` under the officer's row-level security;
this module reads the request (form, unit, period), refuses what it cannot answer with a 4xx page,
and lays the answer out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core_app.domain import periods
from core_app.domain.periods import Period, PeriodError
from core_app.gate import Actor
from core_app.repo import cases, reports, stats
from core_app.repo.reports import FORMS, Form
from core_app.web import export, guard, report_files
from core_app.web.base import WebError, acting, forbidden
from core_app.web.render import lang_of, page

router = APIRouter(prefix="/app/reports", include_in_schema=False)
log = logging.getLogger("kntc.web.reports")

FORMATS = ("html", "xlsx", "pdf")
ACTION_LABELS = {"accept": ("Thụ lý", "Accepted"), "forward": ("Chuyển đơn", "Forwarded"),
                 "guide": ("Hướng dẫn", "Guided"), "file_away": ("Lưu đơn", "Kept on file"),
                 "return": ("Trả lại đơn", "Returned")}
RECEPTION_RESULTS = {"accepted": ("Nhận đơn", "Petition taken"), "recorded": ("Đã lập hồ sơ", "Case file opened"),
                     "guided": ("Hướng dẫn", "Guided"), "transferred": ("Chuyển đơn", "Transferred")}


def _form(code: str | None) -> Form:
    form = FORMS.get(code or "tcd")
    if form is None:
        raise WebError(400, f"Không có biểu báo cáo '{(code or '')[:20]}'; chọn một trong: {', '.join(FORMS)}.",
                       f"no report form {(code or '')[:20]!r}; choose one of: {', '.join(FORMS)}.")
    return form


def _period(request: Request, period: str | None, basis: str | None, date_from: str | None,
            date_to: str | None) -> Period:
    try:
        return periods.parse(period, basis, date_from, date_to, request.app.state.clock())
    except PeriodError as exc:
        raise WebError(400, exc.vi, exc.en) from None


def _format(fmt: str | None) -> str:
    fmt = fmt or "html"
    if fmt not in FORMATS:
        raise WebError(400, f"Định dạng '{fmt[:20]}' không có; chọn html, xlsx hoặc pdf.",
                       f"no format {fmt[:20]!r}; choose html, xlsx or pdf.")
    return fmt


BUSY = WebError(429, "Một báo cáo khác của tài khoản đang được lập; hãy chờ báo cáo đó xong rồi thử lại.",
                "Another report of your account is being made: wait until it is done, then try again.")


async def _unit(conn: Any, actor: Actor, code: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the officer's area, the report's unit), refusing a unit outside the area, and a second report
    of the same officer while one runs."""
    if not await reports.one_at_a_time(conn, actor.account_id):
        raise BUSY
    area = await stats.scope_unit(conn, actor.unit_id)
    code = (code or area["code"]).strip().upper()
    unit = await reports.report_unit(conn, code, area["path"])
    if unit is None:
        # A unit that does not exist and one outside the area get the same answer: the unit tree is
        # public, but a report of either cannot be made.
        raise forbidden(f"Không lập được báo cáo cho đơn vị '{code[:40]}': đơn vị không có hoặc nằm ngoài phạm vi "
                        f"tài khoản ({area['name']} và cấp dưới).",
                        f"No report for unit {code[:40]!r}: there is no such unit or it lies outside your "
                        f"account's area ({area['name']} and below).")
    return area, unit


def _query(form: Form, period: Period, **extra: Any) -> dict[str, Any]:
    return {"form": form.code, **period.query(), **{k: v for k, v in extra.items() if v not in (None, "", False)}}


def _list_link(form: Form, period: Period, base: str = "") -> Any:
    def link(col: str, unit_code: str, direct: bool) -> str:
        return base + "/app/reports/cases?" + urlencode(_query(form, period, col=col, unit=unit_code,
                                                               direct="1" if direct else None))
    return link


@router.get("")
async def report(request: Request, form: str | None = None, unit: str | None = None, period: str | None = None,
                 basis: str | None = None, date_from: str | None = Query(None, alias="from"),
                 date_to: str | None = Query(None, alias="to"), format: str | None = None) -> Response:
    the_form = _form(form)
    the_period = _period(request, period, basis, date_from, date_to)
    fmt = _format(format)
    lang = lang_of(request)
    async with acting(request) as (conn, actor):
        area, target = await _unit(conn, actor, unit)
        table = await reports.figures(conn, the_form, target, the_period,
                                      request.app.state.settings.report_statement_timeout_ms)
        trail = await stats.ancestors(conn, target["path"])
        if fmt != "html":
            await export.record(conn, f"bao-cao-{the_form.code}-{the_period.key}-{target['code']}", table["rows"])
    note_lines = report_files.notes(the_form, the_period, target, actor.clearance, lang)
    filename = f"bao-cao-{the_form.number.replace('/', '-')}-{the_period.key}-{target['code']}"
    # The files are laid out in a worker thread: a province's PDF takes a few hundred milliseconds of
    # CPU, which must not stop the event loop serving the worker's other requests.
    if fmt == "xlsx":
        body = await run_in_threadpool(report_files.xlsx, the_form, table, the_period, target, note_lines,
                                       _list_link(the_form, the_period, _base(request)), lang)
        return _file(body, f"{filename}.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    if fmt == "pdf":
        try:
            body = await run_in_threadpool(
                report_files.pdf, the_form, table, the_period, target, note_lines,
                _list_link(the_form, the_period, _base(request)), lang,
                Path(request.app.state.settings.report_font_dir))
        except report_files.FontMissing as exc:
            log.error("no font for the report PDF in %s: install fonts-dejavu-core", exc)
            raise WebError(503, "Máy chủ thiếu phông chữ để in PDF (gói fonts-dejavu-core); hãy tải XLSX và báo "
                                "quản trị hệ thống.",
                           "The server lacks the font the PDF needs (package fonts-dejavu-core): download the XLSX "
                           "and tell the system administrators.") from None
        return _file(body, f"{filename}.pdf", "application/pdf")
    trail = trail[len(area["path"].split(".")) - 1:]  # from the officer's own area down
    return page(request, "report.html", form=the_form, forms=FORMS, table=table, target=target, trail=trail,
                period=the_period, notes=note_lines, runs=report_files.runs(the_form),
                choices=periods.choices(request.app.state.clock(),
                                        the_period.basis if the_period.basis != "custom" else "circular"),
                link=_list_link(the_form, the_period), row_label=lambda r: report_files.row_label(r, lang),
                file_url=lambda **kw: "/app/reports?" + urlencode(_query(the_form, the_period, unit=target["code"],
                                                                      **kw)),
                drill=lambda code: "/app/reports?" + urlencode(_query(the_form, the_period, unit=code)),
                switch=lambda code: "/app/reports?" + urlencode(_query(FORMS[code], the_period, unit=target["code"])))


def _base(request: Request) -> str:
    """The address officers reach the service by, for the links in the files: behind nginx the app
    hears plain HTTP, and nginx says it was HTTPS (X-Forwarded-Proto)."""
    scheme = "https" if guard.is_https(request) else request.url.scheme
    return f"{scheme}://{request.url.netloc}"


def _file(body: bytes, filename: str, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.get("/cases")
async def report_cases(request: Request, form: str | None = None, col: str | None = None, unit: str | None = None,
                       period: str | None = None, basis: str | None = None,
                       date_from: str | None = Query(None, alias="from"), date_to: str | None = Query(None, alias="to"),
                       direct: str | None = None, after: str | None = None) -> Response:
    """The rows behind one figure, oldest first, 50 a page; each links to its case file."""
    the_form = _form(form)
    column = the_form.column(col or "")
    if column is None:
        raise WebError(400, f"Biểu {the_form.number} không có cột '{(col or '')[:30]}'.",
                       f"table {the_form.number} has no column {(col or '')[:30]!r}.")
    if direct not in (None, "", "0", "1"):
        raise WebError(400, "Tham số 'direct' chỉ nhận 0 hoặc 1.", "the 'direct' parameter takes 0 or 1 only.")
    only_here = direct == "1"
    the_period = _period(request, period, basis, date_from, date_to)
    async with acting(request) as (conn, actor):
        _, target = await _unit(conn, actor, unit)
        try:
            got = await reports.listing(conn, the_form, column, target, the_period, direct=only_here, after=after,
                                        timeout_ms=request.app.state.settings.report_statement_timeout_ms)
        except cases.Invalid as exc:
            raise WebError(400, exc.vi, exc.en) from None
    base = _query(the_form, the_period, col=column.key, unit=target["code"], direct="1" if only_here else None)
    return page(request, "report_cases.html", form=the_form, column=column, target=target, period=the_period,
                rows=got["data"], figure=got["figure"], has_more=got["has_more"], first_page=not after,
                number=the_form.numbered(column.key), direct=only_here,
                first_url="/app/reports/cases?" + urlencode(base),
                next_url="/app/reports/cases?" + urlencode({**base, "after": got["next"]}) if got["next"] else None,
                back_url="/app/reports?" + urlencode(_query(the_form, the_period, unit=target["code"])),
                actions=ACTION_LABELS, results=RECEPTION_RESULTS)
