"""Every table downloads as CSV (UTF-8 with BOM, so Excel reads Vietnamese) and as XLSX.

Cells hold citizens' own words. A spreadsheet program evaluates a cell that begins with `=`, `+`,
`-`, `@` (or a tab or carriage return before one) as a formula, so a petition could make an
officer's Excel fetch a URL or run a command when the export is opened (CSV/formula injection,
OWASP). Such text is written as text: in CSV behind a leading apostrophe, which Excel and
LibreOffice show as a text marker; in XLSX as a string cell, which no program evaluates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.domain.workflow import STATUS_LABELS
from core_app.web.render import CHANNELS, KINDS, STEPS, VN_TZ, lang_of

Column = tuple[str, tuple[str, str]]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LABELLED: dict[str, dict[Any, tuple[str, str]]] = {
    "kind": KINDS, "channel": CHANNELS, "step": STEPS, "status": {str(k): v for k, v in STATUS_LABELS.items()}}


def _cell(key: str, value: Any, lang: str, labels: dict[str, Callable[[Any], str]] | None) -> Any:
    if labels and key in labels:
        return labels[key](value)
    table = LABELLED.get(key)
    if table and value in table:
        return table[value][1 if lang == "en" else 0]
    if isinstance(value, datetime):
        return value.astimezone(VN_TZ).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return value


def csv_safe(value: Any) -> Any:
    """Text a spreadsheet would evaluate, made inert; every other value unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def xlsx_cell(ws: WriteOnlyWorksheet, value: Any) -> Any:
    """Strings as string cells: openpyxl would otherwise store text starting with '=' as a formula.

    Control characters that XML cannot carry (a scanned letter's OCR leaves some) become U+FFFD
    instead of failing the whole export.
    """
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    cell.data_type = "s"
    return cell


async def record(conn: AsyncConnection[Any], basename: str, rows: Sequence[Any]) -> None:
    """Every export is recorded (kntc.access_log): which list, how many rows, by whom (the session)."""
    await conn.execute("SELECT kntc.record_access('export', NULL, %s)", (Jsonb({"list": basename, "rows": len(rows)}),))


def table_response(request: Request, basename: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]],
                   fmt: str, labels: dict[str, Callable[[Any], str]] | None = None) -> Response:
    lang = lang_of(request)
    header = [c[1][1] if lang == "en" else c[1][0] for c in columns]
    body = [[_cell(k, r.get(k), lang, labels) for k, _ in columns] for r in rows]
    if fmt == "xlsx":
        wb = Workbook(write_only=True)
        ws = wb.create_sheet(basename[:31])
        ws.append(header)
        for row in body:
            ws.append([xlsx_cell(ws, v) for v in row])
        buf = io.BytesIO()
        wb.save(buf)
        return Response(buf.getvalue(), headers={"Content-Disposition": f'attachment; filename="{basename}.xlsx"',
                                                 "Cache-Control": "no-store"},
                         media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    w.writerows([csv_safe(v) for v in row] for row in body)
    return Response(("\ufeff" + out.getvalue()).encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{basename}.csv"',
                             "Cache-Control": "no-store"})
