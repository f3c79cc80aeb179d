"""A periodic report as the page shows it, laid out for XLSX and PDF, with the same notes.

The files carry the table (the total, the unit's own row, one row per unit below it), the notes the
page prints under it (which circular, which period rule, whose scope and clearance) and, on every
figure that is not zero, a link to the list of its cases: opening it asks for a login and shows only
what that officer may see. Nothing in them comes from a citizen: unit names and numbers only.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from core_app.domain import periods
from core_app.domain.periods import Period
from core_app.repo.reports import Column, Form
from core_app.web.render import CLASSIFICATIONS, VN_TZ, translator

LinkFor = Callable[[str, str, bool], str]  # (column key, unit code, direct) -> URL of the list

CIRCULAR_VI = ("Thông tư số 01/2024/TT-TTCP của Thanh tra Chính phủ quy định chế độ báo cáo công tác thanh tra, "
               "tiếp công dân, giải quyết khiếu nại, tố cáo và phòng, chống tham nhũng, tiêu cực (hiệu lực từ "
               "05/3/2024, thay thế Thông tư số 02/2021/TT-TTCP)")
CIRCULAR_EN = ("Circular 01/2024/TT-TTCP of the Government Inspectorate on reporting on inspection, citizen "
               "reception, complaints, denunciations and the fight against corruption (in force since 5 March "
               "2024, replacing Circular 02/2021/TT-TTCP)")


def runs(form: Form) -> list[tuple[tuple[str, str] | None, list[Column]]]:
    """The header's spans: consecutive columns under one group heading, or a column on its own."""
    out: list[tuple[tuple[str, str] | None, list[Column]]] = []
    for c in form.columns:
        if c.group is not None and out and out[-1][0] == c.group:
            out[-1][1].append(c)
        else:
            out.append((c.group, [c]))
    return out


def identities(form: Form) -> list[str]:
    n = form.numbered
    return [f"({n(total)}) = " + " + ".join(f"({n(p)})" for p in parts) for total, parts in form.checks]


def _d(day: Any) -> str:
    return day.strftime("%d/%m/%Y")


def notes(form: Form, period: Period, unit: dict[str, Any], clearance: int, lang: str) -> list[str]:
    """The notes under the table, in the page's language: the same on the page, in the XLSX and the PDF.

    They never depend on the data: a viewer cleared below some case reads the same sentence as one
    cleared above it, so the notes cannot tell anyone that something was left out.
    """
    en = lang == "en"
    t = translator(lang)
    cleared = CLASSIFICATIONS[clearance][1 if en else 0]
    out = [t(f"Biểu số {form.number} — {form.title[0]}: bảng số liệu của báo cáo định kỳ theo {CIRCULAR_VI}. "
             "Bảng gồm các chỉ tiêu mà cơ sở dữ liệu ghi nhận được.",
             f"Table {form.number} — {form.title[1]}: a data table of the periodic report under {CIRCULAR_EN}. "
             "It holds the indicators this database records.")]
    span = t(f"số liệu từ ngày {_d(period.start)} đến hết ngày {_d(period.end)} (giờ Việt Nam)",
             f"data from {_d(period.start)} to the end of {_d(period.end)} (Vietnam time)")
    if period.basis == "circular":
        extra = t(" Báo cáo tháng (không có trong Thông tư) dùng cùng ngày chốt: từ ngày 15 tháng trước đến "
                  "ngày 14 tháng báo cáo.", " A monthly report (not in the circular) uses the same cut-off: "
                  "the 15th of the previous month to the 14th of the month.") if period.kind == "month" else ""
        out.append(t(f"Kỳ báo cáo: {period.label()}, {span}, theo thời gian chốt số liệu tại {periods.CIRCULAR}: "
                     "từ ngày 15 của tháng cuối kỳ trước đến ngày 14 của tháng cuối kỳ báo cáo." + extra,
                     f"Period: {period.label('en')}, {span}, by the data cut-off of Circular 01/2024/TT-TTCP, "
                     "art. 7(1): from the 15th of the last month of the previous period to the 14th of the "
                     "last month of the period." + extra))
    elif period.basis == "calendar":
        out.append(t(f"Kỳ báo cáo: {period.label()} theo lịch dương, {span} (không phải kỳ chốt số liệu của "
                     "Thông tư; dùng cho theo dõi nội bộ).",
                     f"Period: {period.label('en')} by the calendar, {span} (not the circular's cut-off; "
                     "for internal follow-up)."))
    else:
        out.append(t(f"Khoảng ngày theo yêu cầu (báo cáo chuyên đề, đột xuất: Điều 7 khoản 1 điểm b Thông tư "
                     f"01/2024/TT-TTCP), {span}.",
                     f"Dates as requested (a special or ad hoc report: Circular 01/2024/TT-TTCP, art. 7(1)(b)), "
                     f"{span}."))
    out.append(t(form.unit_rule[0], form.unit_rule[1]))
    out.append(t("Kiểm tra: ", "Checks: ") + "; ".join(identities(form)) + ".")
    out.append(t(f"Phạm vi số liệu: {unit['name']} và các đơn vị trực thuộc, chỉ gồm hồ sơ, lượt tiếp và đơn mà "
                 f"tài khoản lập báo cáo được xem — trong phạm vi của tài khoản và ở độ mật không cao hơn mức "
                 f"được tiếp cận của tài khoản ({cleared}). Hồ sơ có độ mật cao hơn không được tính vào con số "
                 "nào. Báo cáo gửi cấp trên cần lập bằng tài khoản được tiếp cận độ mật cao nhất của đơn vị.",
                 f"Scope: {unit['name']} and the units below it, counting only the case files, receptions and "
                 f"petitions the account that made the report may see — within its area and classified no "
                 f"higher than its clearance ({cleared}). A case classified higher counts in no figure. A report "
                 "sent to the level above must be made by an account cleared for the unit's highest "
                 "classification."))
    out.append(t("Mỗi con số khác 0 dẫn tới danh sách hồ sơ của nó (cần đăng nhập; danh sách theo quyền của "
                 "người mở).", "Each figure other than 0 links to the list of its cases (a login is asked; the "
                 "list follows the rights of whoever opens it)."))
    return out


def row_label(row: dict[str, Any], lang: str) -> str:
    if row["direct"]:
        return row["name"] + (" (directly)" if lang == "en" else " (trực tiếp)")
    return row["name"] + ((" (former unit)" if lang == "en" else " (đơn vị cũ)") if row["former"] else "")


def _title_lines(form: Form, period: Period, unit: dict[str, Any], lang: str) -> list[str]:
    en = lang == "en"
    return [
        ("Table " if en else "Biểu số ") + form.number,
        (form.title[1] if en else form.title[0].upper()),
        ("Reporting unit: " if en else "Đơn vị báo cáo: ") + unit["name"],
        f"{period.label(lang)}: " + (f"data from {_d(period.start)} to {_d(period.end)}" if en
                                     else f"số liệu tính từ ngày {_d(period.start)} đến ngày {_d(period.end)}"),
    ]


def _made_at(lang: str) -> str:
    now = datetime.now(VN_TZ).strftime("%d/%m/%Y %H:%M")
    return (f"Made on {now} from the national KNTC database." if lang == "en"
            else f"Lập lúc {now} từ Cơ sở dữ liệu quốc gia về KNTC.")


def xlsx(form: Form, table: dict[str, Any], period: Period, unit: dict[str, Any], note_lines: Sequence[str],
         link: LinkFor, lang: str) -> bytes:
    en = lang == "en"
    wb = Workbook()
    ws = wb.active
    ws.title = form.number.replace("/", "-")
    n = len(form.columns)
    last = get_column_letter(n + 1)
    bold, thin = Font(bold=True), Side(style="thin", color="999999")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)
    wrap = Alignment(wrap_text=True, vertical="center", horizontal="center")
    for i, line in enumerate(_title_lines(form, period, unit, lang), start=1):
        ws.merge_cells(f"A{i}:{last}{i}")
        ws.cell(i, 1, line).font = Font(bold=i <= 2, size=13 if i == 2 else 11)
        ws.cell(i, 1).alignment = Alignment(horizontal="center")
    top = 6
    ws.merge_cells(start_row=top, start_column=1, end_row=top + 1, end_column=1)
    ws.cell(top, 1, "Unit" if en else "Đơn vị")
    col = 2
    for group, cols in runs(form):
        if group is None:
            ws.merge_cells(start_row=top, start_column=col, end_row=top + 1, end_column=col)
            ws.cell(top, col, cols[0].label[1 if en else 0])
        else:
            if len(cols) > 1:
                ws.merge_cells(start_row=top, start_column=col, end_row=top, end_column=col + len(cols) - 1)
            ws.cell(top, col, group[1 if en else 0])
            for j, c in enumerate(cols):
                ws.cell(top + 1, col + j, c.label[1 if en else 0])
        col += len(cols)
    ws.cell(top + 2, 1, "MS")
    for j in range(n):
        ws.cell(top + 2, j + 2, f"({j + 1})")
    for r in range(top, top + 3):
        for c in range(1, n + 2):
            cell = ws.cell(r, c)
            cell.font, cell.alignment, cell.border = bold, wrap, box
    ws.row_dimensions[top + 1].height = 60
    r = top + 3
    # One style object each, shared by every cell (openpyxl hashes each one it is given).
    link_font, link_bold = Font(color="0B4F8A", underline="single"), Font(bold=True, color="0B4F8A", underline="single")
    lines = [("Total" if en else "Tổng cộng", table["total"], unit["code"], False, True)]
    lines += [(row_label(x, lang), x["values"], x["code"], x["direct"], False) for x in table["rows"]]
    for label, values, code, direct, is_total in lines:
        ws.cell(r, 1, label).border = box
        if is_total:
            ws.cell(r, 1).font = bold
        for j, c in enumerate(form.columns):
            v = values[c.key]
            cell = ws.cell(r, j + 2, v)
            cell.border = box
            cell.number_format = "#,##0"
            if v:
                cell.hyperlink = link(c.key, code, direct)
                cell.font = link_bold if is_total else link_font
            elif is_total:
                cell.font = bold
        r += 1
    r += 1
    for line in [*note_lines, _made_at(lang)]:
        ws.merge_cells(f"A{r}:{last}{r}")
        ws.cell(r, 1, line).alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[r].height = 15 * (1 + len(line) // 160)
        r += 1
    ws.column_dimensions["A"].width = 42
    for j in range(n):
        ws.column_dimensions[get_column_letter(j + 2)].width = 12
    ws.freeze_panes = ws.cell(top + 3, 2)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


class FontMissing(RuntimeError):
    """The server lacks the Unicode font the PDF embeds (Debian's fonts-dejavu-core)."""


def _box(doc: Any, x: float, y: float, w: float, h: float, text: str, line: float) -> None:
    """A bordered header cell, its text wrapped and centred both ways."""
    doc.rect(x, y, w, h)
    lines = doc.multi_cell(w - 1, line, text, dry_run=True, output="LINES")
    doc.set_xy(x + 0.5, y + max(0.0, (h - len(lines) * line) / 2))
    doc.multi_cell(w - 1, line, text, align="C", new_x="RIGHT", new_y="TOP")


def _fit(doc: Any, text: str, width: float) -> str:
    """`text` cut with an ellipsis to fit `width` at the current font."""
    if doc.get_string_width(text) <= width:
        return text
    while text and doc.get_string_width(text + "…") > width:
        text = text[:-1]
    return text + "…"


def pdf(form: Form, table: dict[str, Any], period: Period, unit: dict[str, Any], note_lines: Sequence[str],
        link: LinkFor, lang: str, font_dir: Path) -> bytes:
    """Landscape A4; the header repeats on every page. Cells are drawn one by one (fpdf2's table lays
    out and wraps every cell: seconds for a province of 170 communes, here a few hundred ms)."""
    from fpdf import FPDF

    regular, bold_file = font_dir / "DejaVuSans.ttf", font_dir / "DejaVuSans-Bold.ttf"
    if not regular.is_file() or not bold_file.is_file():
        raise FontMissing(str(font_dir))
    en = lang == "en"

    class Doc(FPDF):
        def footer(self) -> None:
            self.set_y(-8)
            self.set_font("DejaVu", "", 7)
            self.cell(0, 4, f"{form.number} — {'Page' if en else 'Trang'} {self.page_no()}/{{nb}}", align="R")

    doc = Doc(orientation="L", unit="mm", format="A4")
    doc.set_margins(10, 10, 10)
    doc.set_auto_page_break(auto=False)
    doc.add_font("DejaVu", "", str(regular))
    doc.add_font("DejaVu", "B", str(bold_file))
    doc.set_title(f"{form.number} {form.title[1 if en else 0]} - {unit['name']} - {period.label(lang)}")
    doc.set_creator("KNTC")
    n = len(form.columns)
    first = 56.0
    width = (doc.epw - first) / n
    line, row_h = 2.9, 5.0
    size = 6.2 if n > 13 else 6.8
    group_h, label_h, number_h = 9.0, 20.0, 4.0

    def header() -> None:
        doc.set_font("DejaVu", "B", size)
        x0, y0 = doc.l_margin, doc.get_y()
        doc.set_fill_color(238, 242, 245)
        _box(doc, x0, y0, first, group_h + label_h, "Unit" if en else "Đơn vị", line)
        x = x0 + first
        for group, cols in runs(form):
            if group is None:
                _box(doc, x, y0, width, group_h + label_h, cols[0].label[1 if en else 0], line)
            else:
                _box(doc, x, y0, width * len(cols), group_h, group[1 if en else 0], line)
                for j, c in enumerate(cols):
                    _box(doc, x + j * width, y0 + group_h, width, label_h, c.label[1 if en else 0], line)
            x += width * len(cols)
        doc.set_font("DejaVu", "", size)
        doc.set_xy(x0, y0 + group_h + label_h)
        doc.cell(first, number_h, "MS", border=1, align="C")
        for j in range(n):
            doc.cell(width, number_h, f"({j + 1})", border=1, align="C")
        doc.ln(number_h)

    doc.add_page()
    for i, text in enumerate(_title_lines(form, period, unit, lang)):
        doc.set_font("DejaVu", "B" if i < 2 else "", 12 if i == 1 else 9)
        doc.cell(0, 6 if i == 1 else 5, text, align="C", new_x="LMARGIN", new_y="NEXT")
    doc.ln(2)
    header()
    lines = [("Total" if en else "Tổng cộng", table["total"], unit["code"], False, True)]
    lines += [(row_label(x, lang), x["values"], x["code"], x["direct"], False) for x in table["rows"]]
    for label, values, code, direct, is_total in lines:
        if doc.get_y() + row_h > doc.h - doc.b_margin - 6:
            doc.add_page()
            header()
        doc.set_font("DejaVu", "B" if is_total else "", size)
        doc.cell(first, row_h, _fit(doc, label, first - 1.5), border=1)
        for c in form.columns:
            v = values[c.key]
            doc.cell(width, row_h, f"{v:,}".replace(",", "."), border=1, align="R",
                     link=link(c.key, code, direct) if v else "")
        doc.ln(row_h)
    doc.ln(3)
    doc.set_font("DejaVu", "", 7.5)
    for text in [*note_lines, _made_at(lang)]:
        if doc.get_y() + 8 > doc.h - doc.b_margin:
            doc.add_page()
        doc.multi_cell(0, 3.6, text, new_x="LMARGIN", new_y="NEXT")
        doc.ln(0.8)
    return bytes(doc.output())
