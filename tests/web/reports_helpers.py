"""Reading the periodic report pages back: the table's figures, the lists behind them, the files; and
the small story of a commune's quarter that the report tests count."""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from openpyxl import load_workbook

from tests.conftest import petition_body


@dataclass
class Table:
    total: dict[str, int] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)   # unit code -> column -> figure
    kinds: dict[str, str] = field(default_factory=dict)             # unit code -> direct | child | former
    links: list[tuple[str, str, int, str]] = field(default_factory=list)  # (row, column, figure, href)
    notes: list[str] = field(default_factory=list)


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.table = Table()
        self.row: str | None = None
        self.kind = ""
        self.in_notes = False
        self.in_li = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-unit"):
            self.row = "total" if a.get("id") == "row-total" else a["data-unit"]
            self.kind = a.get("class") or ""
            if self.row != "total":
                self.table.rows[self.row] = {}
                self.table.kinds[self.row] = self.kind
        elif self.row and a.get("data-col") is not None:
            n = int(a["data-n"] or 0)
            target = self.table.total if self.row == "total" else self.table.rows[self.row]
            target[a["data-col"] or ""] = n
            if tag == "a":
                self.table.links.append((self.row, a["data-col"] or "", n, a.get("href") or ""))
        elif tag == "section" and a.get("id") == "report-notes":
            self.in_notes = True
        elif tag == "li" and self.in_notes:
            self.in_li, self.text = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.row = None
        elif tag == "li" and self.in_li:
            self.table.notes.append("".join(self.text).strip())
            self.in_li = False
        elif tag == "section":
            self.in_notes = False

    def handle_data(self, data: str) -> None:
        if self.in_li:
            self.text.append(data)


def table(html: str) -> Table:
    p = _ReportParser()
    p.feed(html)
    return p.table


class _ListParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.next: str | None = None
        self.figure: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "item":
            self.rows.append({"case": a.get("data-case") or None,
                              "people": int(a["data-people"]) if a.get("data-people") else None})
        elif tag == "a" and a.get("id") == "next-page":
            self.next = a.get("href")
        elif a.get("id") == "figure":
            self.figure = int(a.get("data-n") or 0)


def listing(get: Callable[[str], Any], href: str) -> tuple[int, list[dict[str, Any]]]:
    """Every row of the list behind a figure, page after page, and the figure the list page shows."""
    rows: list[dict[str, Any]] = []
    figure = None
    url: str | None = href
    pages = 0
    while url:
        r = get(url)
        assert r.status_code == 200, (url, r.text[-300:])
        p = _ListParser()
        p.feed(r.text)
        figure = p.figure if figure is None else figure
        rows += p.rows
        url = p.next.replace("&amp;", "&") if p.next else None
        pages += 1
        assert pages < 200
    return figure or 0, rows


def xlsx_table(content: bytes, columns: int) -> dict[str, list[Any]]:
    """The XLSX's rows by their first cell (the unit's label), figures only; links kept beside."""
    ws = load_workbook(io.BytesIO(content)).active
    out: dict[str, list[Any]] = {}
    for row in ws.iter_rows(min_row=9):
        label = row[0].value
        if isinstance(label, str) and all(isinstance(c.value, int) for c in row[1:columns + 1]):
            out[label] = [c.value for c in row[1:columns + 1]]
            out["links:" + label] = [c.hyperlink.target if c.hyperlink else None for c in row[1:columns + 1]]
    return out


def pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages)


def pdf_links(content: bytes) -> list[str]:
    from pypdf import PdfReader

    out = []
    for page in PdfReader(io.BytesIO(content)).pages:
        for annot in page.get("/Annots") or []:
            action = annot.get_object().get("/A")
            if action is not None and action.get("/URI"):
                out.append(str(action["/URI"]))
    return out


def query_of(href: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(href.replace("&amp;", "&")).query).items()}


def idn() -> str:
    return f"0{secrets.randbelow(10**11):011d}"


def record(officer: Any, commune: str, **over: Any) -> dict[str, Any]:
    party = {"role": {"denunciation": "denouncer", "complaint": "complainant"}.get(over.get("kind", "complaint"),
                                                                                    "petitioner"),
             "full_name": over.pop("name", "Lò Văn Khiêm"), "id_number": idn(), "address_unit": commune}
    r = officer.post("/api/cases", json=petition_body(parties=[party], **over))
    assert r.status_code == 201, r.text
    return r.json()


def act(officer: Any, code: str, version: int, action: str, **extra: Any) -> int:
    r = officer.post(f"/api/cases/{code}/transitions", json={"action": action, "version": version, **extra})
    assert r.status_code == 200, r.text
    return r.json()["version"]


def reception(officer: Any, people: int = 1, action: str | None = None, name: str = "Lò Thị Pằng") -> str:
    body: dict[str, Any] = {"visitor_name": name, "people_count": people, "content": "Công dân trình bày"}
    if action:
        body["action_taken"] = action
    r = officer.post("/api/receptions", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def story(officer_of: Callable[..., Any], commune: str, forward_to: str) -> dict[str, str]:
    """A commune's quarter, one of everything the four forms count:

    receptions: one of 1 person that becomes the complaint's petition, a delegation of 6 guided
    elsewhere, 2 people transferred; cases: a complaint (at that reception) accepted and resolved, a
    denunciation by post accepted, a recommendation online guided, a several-contents petition
    transferred in by another body (3 signers) and forwarded to `forward_to`."""
    clerk = officer_of(commune, ["reception", "handling"])
    head = officer_of(commune, ["head", "handling", "resolution"], 2)
    first = reception(clerk, 1)
    reception(clerk, 6, "guided")
    reception(clerk, 2, "transferred")
    out: dict[str, str] = {}
    c = record(clerk, commune, kind="complaint", channel="in_person", reception_id=first,
               subject="Khiếu nại quyết định bồi thường đất nương")
    v = act(clerk, c["code"], c["version"], "submit")
    v = act(head, c["code"], v, "accept")
    act(head, c["code"], v, "resolve", summary="Giữ nguyên quyết định bồi thường")
    out["complaint"] = c["code"]
    d = record(clerk, commune, kind="denunciation", channel="letter", subject="Tố cáo cán bộ địa chính xã")
    v = act(clerk, d["code"], d["version"], "submit")
    act(head, d["code"], v, "accept")
    out["denunciation"] = d["code"]
    k = record(clerk, commune, kind="recommendation", channel="online", subject="Kiến nghị sửa đường liên bản")
    v = act(clerk, k["code"], k["version"], "submit")
    act(head, k["code"], v, "guide", note="Hướng dẫn gửi Ủy ban nhân dân tỉnh")
    out["recommendation"] = k["code"]
    m = record(clerk, commune, kind="multi", channel="transferred", people_count=3,
               subject="Đơn nhiều nội dung về đất đai và cán bộ")
    v = act(clerk, m["code"], m["version"], "submit")
    act(head, m["code"], v, "forward", target_unit=forward_to)
    out["multi"] = m["code"]
    return out
