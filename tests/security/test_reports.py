"""Periodic reports as an attacker reads them: figures, the lists behind them, the XLSX and the PDF.

A figure is a count, and a count leaks: one more secret case in a unit is one more in its column. So
each test takes everything a viewer can get (every form's page, list, XLSX and PDF), lets the thing
they must not learn happen, and takes it all again: for them, nothing may have changed.

Threat rows (runbooks/security.md): T85, T86, T87, T88.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from core_app.app import vietnam_today
from core_app.domain import periods
from core_app.repo.reports import FORMS
from tests.conftest import Officer
from tests.web import reports_helpers as rh

QUARTER = periods.containing(vietnam_today(), "quarter").key
MADE_AT = re.compile(r"(Lập lúc|Made on) \d\d/\d\d/\d{4} \d\d:\d\d")


def everything(viewer: Officer, unit: str | None = None) -> dict[str, Any]:
    """All a viewer can get of their report of `unit` (their own area by default): every form's table
    and notes, the rows of every list behind its figures, its XLSX figures and its PDF's text."""
    seen: dict[str, Any] = {}
    at = f"&unit={unit}" if unit else ""
    for form in FORMS:
        r = viewer.get(f"/app/reports?form={form}&period={QUARTER}{at}")
        assert r.status_code == 200, r.text[-300:]
        t = rh.table(r.text)
        seen[form] = {"total": t.total, "rows": t.rows, "notes": t.notes,
                      "lists": {(row, col): sorted(str(x) for x in rh.listing(viewer.get, href)[1])
                                for row, col, _, href in t.links}}
        x = viewer.get(f"/app/reports?form={form}&period={QUARTER}{at}&format=xlsx")
        assert x.status_code == 200
        seen[form]["xlsx"] = {k: v for k, v in rh.xlsx_table(x.content, len(FORMS[form].columns)).items()
                              if not k.startswith("links:")}
        p = viewer.get(f"/app/reports?form={form}&period={QUARTER}{at}&format=pdf")
        assert p.status_code == 200
        seen[form]["pdf"] = MADE_AT.sub("", rh.pdf_text(p.content))
    return seen


def test_an_officer_of_another_unit_cannot_open_its_report_list_or_files(officer):
    """T85: the unit must lie in the viewer's area; a unit above theirs, a sibling, the country: refused."""
    rh.story(officer, "X03388", "X03394")
    neighbour = officer("X03390", ["head"], 2)
    for unit in ("X03388", "T12", "VN", "X00004"):
        for form in FORMS:
            for fmt in ("html", "xlsx", "pdf"):
                r = neighbour.get(f"/app/reports?form={form}&unit={unit}&format={fmt}")
                assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), (unit, fmt)
                assert "X03388-" not in r.text
            col = FORMS[form].columns[0].key
            for extra in ("", "&direct=1"):
                r = neighbour.get(f"/app/reports/cases?form={form}&col={col}&unit={unit}{extra}")
                assert r.status_code == 403 and "X03388-" not in r.text


def test_another_units_cases_count_in_none_of_my_figures(officer):
    """T85: a sibling commune's quarter, its receptions and decisions, changes nothing a neighbour gets."""
    neighbour = officer("X03390", ["head"], 2)
    province = officer("T12", ["head"], 2)
    before = everything(neighbour)
    above = rh.table(province.get(f"/app/reports?form=xld&unit=T12&period={QUARTER}").text).rows["X03388"]
    rh.story(officer, "X03388", "X03394")
    assert everything(neighbour) == before
    # The province sees the sibling's new petitions: the story did happen.
    now = rh.table(province.get(f"/app/reports?form=xld&unit=T12&period={QUARTER}").text).rows["X03388"]
    assert now["petitions"] == above["petitions"] + 4


def test_a_secret_case_counts_in_no_figure_list_or_file_of_an_officer_cleared_below_it(officer):
    """T86: a secret complaint and a secret denunciation, the reception that led to one, their decisions:
    the same unit's head cleared below them gets exactly what they got before; a cleared head counts them."""
    commune = "X03408"
    low = officer(commune, ["head"], 0)
    high = officer(commune, ["head"], 2)
    before, high_before = everything(low), everything(high)
    clerk = officer(commune, ["reception", "handling", "resolution"], 2)
    rid = rh.reception(clerk, 7, name="Người đến về vụ mật")
    codes = []
    for kind, extra in (("complaint", {"reception_id": rid, "channel": "in_person"}),
                        ("denunciation", {"channel": "letter"})):
        c = rh.record(clerk, commune, kind=kind, classification=2, subject=f"Vụ việc mật ({kind})", **extra)
        v = rh.act(clerk, c["code"], c["version"], "submit")
        v = rh.act(clerk, c["code"], v, "accept")
        if kind == "complaint":
            rh.act(clerk, c["code"], v, "resolve", summary="Giải quyết vụ việc mật")
        codes.append(c["code"])
    after = everything(low)
    assert after == before
    assert not any(code in str(after) for code in codes)
    for code in codes:
        assert low.get(f"/app/cases/{code}").status_code == 404
    # The cleared head counts both, their reception and its 7 people, and opens them from the lists.
    high_after = everything(high)
    for form, col, more in (("tcd", "turns", 1), ("tcd", "people", 7), ("tcd", "delegations", 1),
                            ("xld", "petitions", 2), ("xld", "accepted", 2), ("kn", "resolved", 1),
                            ("tc", "open", 1)):
        assert high_after[form]["total"][col] == high_before[form]["total"][col] + more, (form, col)
    assert all(code in str(high_after["xld"]["lists"]) for code in codes)


def test_a_report_never_shows_a_denouncer_or_a_visitor(officer):
    """T87: the lists and files name cases, never people: not the protected denouncer, not the visitor
    of the reception behind the denunciation, not even to the head who handles the case."""
    commune, tag = "X03394", secrets.token_hex(4)
    clerk = officer(commune, ["reception", "handling"], 0)
    head = officer(commune, ["head", "resolution"], 2)
    colleague = officer(commune, ["reception"], 2)
    rid = rh.reception(clerk, 1, name=f"Hoàng Thị Kín {tag}")
    c = rh.record(clerk, commune, kind="denunciation", denouncer_confidential=True, reception_id=rid,
                  channel="in_person", name=f"Hoàng Thị Kín {tag}", subject="Tố cáo chủ tịch xã nhận hối lộ")
    v = rh.act(clerk, c["code"], c["version"], "submit")
    rh.act(head, c["code"], v, "accept")
    for viewer in (colleague, head):
        seen = everything(viewer)
        assert c["code"] in str(seen["xld"]["lists"]) and c["code"] in str(seen["tc"]["lists"])
        assert tag not in str(seen)
        for form in FORMS:
            for _, _, _, href in rh.table(viewer.get(f"/app/reports?form={form}&period={QUARTER}").text).links:
                assert tag not in viewer.get(href).text


def test_an_external_reader_counts_no_reception(officer):
    """T87: a court's reader of the province may read its cases but no reception: its 01/TCD stays empty
    while the province's head counts the new one."""
    court = officer("T12-TAND", ["external_reader"])
    province = officer("T12", ["head"], 2)
    assert rh.table(court.get(f"/app/reports?form=tcd&period={QUARTER}").text).total["turns"] == 0
    before = rh.table(province.get(f"/app/reports?form=tcd&unit=T12&period={QUARTER}").text).total["turns"]
    rh.reception(officer("X03390", ["reception"]), 3, "guided")
    assert rh.table(court.get(f"/app/reports?form=tcd&period={QUARTER}").text).total["turns"] == 0
    assert rh.table(province.get(f"/app/reports?form=tcd&unit=T12&period={QUARTER}").text).total["turns"] == before + 1
    # Its case figures follow its reading rights (the province's cases).
    assert court.get(f"/app/reports?form=kn&period={QUARTER}").status_code == 200


def test_every_report_file_is_recorded_with_its_reader(officer, owner_conn):
    """T88: an XLSX or PDF of a report leaves the database's access log behind it (kind 'export')."""
    viewer = officer("X03390", ["head"], 1)
    for fmt in ("xlsx", "pdf"):
        assert viewer.get(f"/app/reports?form=kn&period={QUARTER}&format={fmt}").status_code == 200
    rows = owner_conn.execute(
        "SELECT l.detail FROM kntc.access_log l JOIN kntc.account a ON a.id = l.account_id "
        "WHERE a.username = %s AND l.kind = 'export' ORDER BY l.id", (viewer.username,)).fetchall()
    assert [r["detail"]["list"] for r in rows] == [f"bao-cao-kn-{QUARTER}-X03390"] * 2


def test_an_officer_gets_one_report_at_a_time(officer, owner_conn, pg_env):
    """T88: while a report of an officer runs (a national one reads the whole country), their next one
    at the same moment is refused with 429 at once, not queued; other officers are not held; when it
    ends, the next one runs."""
    import psycopg

    from core_app.repo.reports import REPORT_LOCK_CLASS

    viewer, other = officer("X03390", ["head"], 1), officer("X03390", ["head"], 1)
    account = owner_conn.execute("SELECT id FROM kntc.account WHERE username = %s",
                                 (viewer.username,)).fetchone()["id"]
    # A report of theirs in progress: its transaction holds the officer's lock.
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as running:
        running.execute("SELECT pg_advisory_lock(%s, %s)", (REPORT_LOCK_CLASS, account))
        for path in (f"/app/reports?form=xld&period={QUARTER}", f"/app/reports?form=xld&period={QUARTER}&format=pdf",
                     f"/app/reports/cases?form=xld&col=petitions&period={QUARTER}"):
            r = viewer.get(path)
            assert r.status_code == 429 and "Một báo cáo khác của tài khoản đang được lập" in r.text, path
        assert other.get(f"/app/reports?form=xld&period={QUARTER}").status_code == 200
        running.execute("SELECT pg_advisory_unlock(%s, %s)", (REPORT_LOCK_CLASS, account))
    assert viewer.get(f"/app/reports?form=xld&period={QUARTER}").status_code == 200
