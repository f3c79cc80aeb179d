"""Statistics: counts and charts for the officer's area, drill-down country → province → commune, the map."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from core_app.domain.workflow import STATUS_LABELS
from core_app.repo import stats
from core_app.web import charts, export
from core_app.web.base import acting, forbidden
from core_app.web.render import CHANNELS, KINDS, label, lang_of, page, translator

router = APIRouter(prefix="/app/stats", include_in_schema=False)

MEASURE_COLUMNS = [("received", ("Tiếp nhận", "Received")), ("accepted", ("Thụ lý", "Accepted")),
                   ("resolved", ("Đã giải quyết", "Resolved")), ("overdue", ("Quá hạn", "Overdue"))]
TABLES = {
    "kind": ("Theo loại đơn", "By kind"), "status": ("Theo trạng thái", "By status"),
    "channel": ("Theo nguồn đơn", "By channel"), "month": ("Theo tháng", "By month"),
    "unit": ("Theo đơn vị", "By unit"), "province": ("Theo tỉnh, thành phố", "By province"),
    "overdue_causes": ("Quá hạn và nguyên nhân", "Overdue and causes"),
}
CAUSE_COLUMNS = [("step", ("Bước", "Step")), ("rule_code", ("Quy định", "Rule")),
                 ("legal_basis", ("Căn cứ", "Legal basis")), ("cause", ("Nguyên nhân", "Cause")),
                 ("cases", ("Số vụ việc", "Cases")), ("max_days_late", ("Chậm nhất (ngày)", "Most days late"))]


def _date(v: str | None, default: date) -> date:
    try:
        return date.fromisoformat(v) if v else default
    except ValueError:
        return default


@router.get("")
async def statistics(request: Request, unit: str | None = None, date_from: str | None = None,
                     date_to: str | None = None, table: str | None = None, format: str | None = None) -> Response:
    today = request.app.state.clock()
    d_from = _date(date_from, date(today.year, 1, 1))
    d_to = _date(date_to, today)
    lang = lang_of(request)
    t = translator(lang)
    async with acting(request) as (conn, actor):
        area = await stats.scope_unit(conn, actor.unit_id)
        target = await stats.unit_in_area(conn, unit or area["code"], area["path"])
        if target is None:
            raise forbidden("Đơn vị này nằm ngoài phạm vi tài khoản được xem thống kê.",
                            "This unit is outside the area your account may see.")
        data = await stats.breakdown(conn, target["code"], d_from, d_to, today)
        trail = await stats.ancestors(conn, target["path"])
        if format in ("csv", "xlsx") and table in TABLES:
            await export.record(conn, f"thong-ke-{table}", data[table])
    trail = trail[len(area["path"].split(".")) - 1:]  # from the officer's own area down
    labels: dict[str, Any] = {
        "kind": label(KINDS, lang), "status": label({str(k): v for k, v in STATUS_LABELS.items()}, lang),
        "channel": label(CHANNELS, lang), "month": str, "unit": str, "province": str,
    }
    base_q = {"date_from": d_from.isoformat(), "date_to": d_to.isoformat()}

    if format in ("csv", "xlsx") and table in TABLES:
        if table == "overdue_causes":
            return export.table_response(request, "qua-han", CAUSE_COLUMNS, data["overdue_causes"], format)
        key_col = ("key", (TABLES[table][0].removeprefix("Theo ").capitalize(), TABLES[table][1].removeprefix("By ")))
        cols = [key_col] + ([("name", ("Tên đơn vị", "Unit name"))] if table in ("unit", "province") else [])
        return export.table_response(request, f"thong-ke-{table}", cols + MEASURE_COLUMNS, data[table], format,
                                     labels={"key": labels[table]})

    def drill(code: str) -> str:
        return "/app/stats?" + urlencode({**base_q, "unit": code})

    names = {r["key"]: r["name"] for r in data["province"]}
    series = [("received", t("Tiếp nhận", "Received"), "#1f5f99"), ("accepted", t("Thụ lý", "Accepted"), "#4f9d69"),
              ("resolved", t("Đã giải quyết", "Resolved"), "#e0a030"), ("overdue", t("Quá hạn", "Overdue"), "#c0392b")]
    svg = {
        "kind": charts.bars(data["kind"], labels["kind"], title=t(*TABLES["kind"])),
        "status": charts.bars(data["status"], labels["status"], title=t(*TABLES["status"])),
        "channel": charts.bars(data["channel"], labels["channel"], title=t(*TABLES["channel"])),
        "month": charts.columns(data["month"], series, title=t(*TABLES["month"])),
        "map": charts.choropleth({r["key"]: r["received"] for r in data["province"]}, names,
                                 drill if target["level"] == "central" else None, lang,
                                 title=t("Số vụ việc tiếp nhận theo tỉnh, thành phố", "Cases received by province")),
    }
    return page(request, "stats.html", data=data, target=target, trail=trail, svg=svg, tables=TABLES,
                measures=MEASURE_COLUMNS, labels=labels, drill=drill, date_from=d_from, date_to=d_to,
                export_q=lambda tbl, fmt: "/app/stats?" + urlencode({**base_q, "unit": target["code"], "table": tbl,
                                                                     "format": fmt}))
