"""Periodic reports (the Inspectorate's four forms): what each figure counts, how figures add up the unit
tree and down to their lists, where a period begins and ends, and what bad parameters get.

The data lives in Lai Châu (T12), a province no other test module chooses (the duplicate-check tests pick
communes at random, so a figure asserted exactly is the difference the module's own story makes).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from core_app.app import vietnam_today
from core_app.domain import periods
from core_app.repo.reports import FORMS
from tests.web import reports_helpers as rh

PROVINCE = "T12"
COMMUNE, NEIGHBOUR, EXACT = "X03388", "X03390", "X03405"  # Phường Đoàn Kết, Xã Bình Lư, Xã Tả Lèng
QUARTER = periods.containing(vietnam_today(), "quarter").key


def url(form: str, unit: str, period: str = QUARTER, **extra: str) -> str:
    q = "&".join(f"{k}={v}" for k, v in {"form": form, "unit": unit, "period": period, **extra}.items())
    return f"/app/reports?{q}"


def checks_hold(form: str, values: dict[str, int]) -> None:
    for total, parts in FORMS[form].checks:
        assert values[total] == sum(values[p] for p in parts), (form, total, parts, values)


@pytest.fixture(scope="module")
def quarter(officer) -> dict[str, str]:
    return rh.story(officer, COMMUNE, NEIGHBOUR)


@pytest.mark.parametrize("form", list(FORMS))
def test_a_reports_total_is_the_sum_of_its_units_at_every_level(officer, quarter, form):
    nation = officer("VN", ["head"], 2)
    levels = [("VN", PROVINCE), (PROVINCE, COMMUNE), (COMMUNE, None)]
    above: dict[str, int] | None = None
    for unit, below in levels:
        r = nation.get(url(form, unit))
        assert r.status_code == 200, r.text[-500:]
        t = rh.table(r.text)
        for key, n in t.total.items():
            assert n == sum(row[key] for row in t.rows.values()), (unit, key)
        checks_hold(form, t.total)
        for row in t.rows.values():
            checks_hold(form, row)
        if above is not None:
            assert t.total == above, unit  # the unit's own report adds up to its row one level up
        above = t.rows[below] if below else None
    # The story's quarter is in the province's figures.
    t = rh.table(nation.get(url(form, PROVINCE)).text)
    assert t.total[FORMS[form].columns[0].key] >= 1


@pytest.mark.parametrize("form", list(FORMS))
def test_each_figure_is_the_length_of_its_list_and_each_listed_case_opens(officer, quarter, form):
    head = officer(PROVINCE, ["head"], 2)
    t = rh.table(head.get(url(form, PROVINCE)).text)
    assert t.links, "no figure links"
    opened: set[str] = set()
    for row, col, n, href in t.links:
        figure, rows = rh.listing(head.get, href.replace("&amp;", "&"))
        column = FORMS[form].column(col)
        assert column is not None
        size = sum(r["people"] for r in rows) if column.people else len(rows)
        assert size == n == figure, (row, col)
        for r in rows:
            if r["case"] and r["case"] not in opened:
                assert head.get(f"/app/cases/{r['case']}").status_code == 200, r["case"]
                opened.add(r["case"])
    # Every figure other than 0 is a link to its list; a 0 is not.
    linked = {(row, col) for row, col, _, _ in t.links}
    for code, values in [("total", t.total), *t.rows.items()]:
        for col, n in values.items():
            assert ((code, col) in linked) == (n > 0), (code, col, n)


def test_a_communes_quarter_lands_in_the_columns_the_forms_name(officer):
    head = officer(EXACT, ["head"], 2)

    def now() -> dict[str, dict[str, int]]:
        return {form: rh.table(head.get(url(form, EXACT)).text).total for form in FORMS}

    # What the story adds (other modules may record in a random commune, this one included).
    before = now()
    rh.story(officer, EXACT, NEIGHBOUR)
    after = now()
    got = {form: {k: after[form][k] - before[form][k] for k in after[form]} for form in FORMS}
    assert got["tcd"] == {"turns": 3, "people": 9, "delegations": 1, "delegation_people": 6, "complaint": 1,
                          "denunciation": 0, "recommendation": 0, "multi": 0, "no_case": 2, "recorded": 1,
                          "guided": 1, "transferred": 1, "no_result": 0}
    assert got["xld"] == {"petitions": 4, "via_reception": 1, "by_post": 1, "transferred_in": 1,
                          "other_channel": 1, "complaint": 1, "denunciation": 1, "recommendation": 1, "multi": 1,
                          "several_signers": 1, "decided": 4, "accepted": 2, "forwarded": 1, "guided": 1,
                          "filed": 0, "returned": 0}
    assert got["kn"] == {"to_resolve": 1, "carried": 0, "accepted": 1, "first_round": 1, "second_round": 0,
                         "resolved": 1, "on_time": 1, "late": 0, "no_limit": 0, "open": 0, "open_late": 0,
                         "extended": 0}
    assert got["tc"] == {"to_resolve": 1, "carried": 0, "accepted": 1, "resolved": 0, "on_time": 0, "late": 0,
                         "no_limit": 0, "open": 1, "open_late": 0, "extended": 0}


def test_a_second_round_complaint_keeps_its_first_round_where_it_was_resolved(officer):
    commune = "X03424"  # Xã Bản Bo
    clerk = officer(commune, ["reception", "handling"])
    head = officer(commune, ["head", "resolution"], 2)
    c = rh.record(clerk, commune, kind="complaint", channel="letter", subject="Khiếu nại quyết định thu hồi đất")
    v = rh.act(clerk, c["code"], c["version"], "submit")
    v = rh.act(head, c["code"], v, "accept")
    v = rh.act(head, c["code"], v, "resolve", summary="Không chấp nhận khiếu nại")
    rh.act(clerk, c["code"], v, "second_round", target_unit="T12-TT")
    province = officer(PROVINCE, ["head"], 2)
    t = rh.table(province.get(url("kn", PROVINCE)).text)
    assert t.rows[commune]["first_round"] >= 1 and t.rows[commune]["resolved"] >= 1
    figure, rows = rh.listing(province.get, f"/app/reports/cases?form=kn&col=first_round&unit={commune}"
                                            f"&period={QUARTER}")
    assert c["code"] in [r["case"] for r in rows] and figure == len(rows)
    # The second round is the province inspectorate's, not accepted yet: not in its figures.
    assert c["code"] not in [r["case"] for r in rh.listing(province.get, "/app/reports/cases?form=kn&col=to_resolve"
                                                          f"&unit=T12-TT&period={QUARTER}")[1]]


def test_a_second_round_complaint_counts_on_its_own_at_the_unit_that_accepts_it(officer):
    """01/KQGQ counts a complaint's second round apart from its first ("Lần hai"), at the unit that
    accepted it, and the table still adds up: total = sum of its rows, to resolve = first + second."""
    commune, second_unit = "X03394", "T12-TT"
    clerk = officer(commune, ["reception", "handling"])
    head = officer(commune, ["head", "resolution"], 2)
    inspectorate = officer(second_unit, ["head", "handling", "resolution"], 2)
    province = officer(PROVINCE, ["head"], 2)

    def rows() -> rh.Table:
        t = rh.table(province.get(url("kn", PROVINCE)).text)
        for key, n in t.total.items():
            assert n == sum(row[key] for row in t.rows.values()), key
        checks_hold("kn", t.total)
        for row in t.rows.values():
            checks_hold("kn", row)
        return t

    before = rows()
    c = rh.record(clerk, commune, kind="complaint", channel="letter", subject="Khiếu nại quyết định bồi thường")
    v = rh.act(clerk, c["code"], c["version"], "submit")
    v = rh.act(head, c["code"], v, "accept")
    v = rh.act(head, c["code"], v, "resolve", summary="Giữ nguyên quyết định bồi thường")
    v = rh.act(clerk, c["code"], v, "second_round", target_unit=second_unit)
    v = rh.act(inspectorate, c["code"], v, "submit")
    rh.act(inspectorate, c["code"], v, "accept")
    after = rows()

    def added(unit: str) -> dict[str, int]:
        return {k: after.rows[unit][k] - before.rows[unit][k] for k in after.rows[unit]}

    assert added(second_unit) == {"to_resolve": 1, "carried": 0, "accepted": 1, "first_round": 0, "second_round": 1,
                                  "resolved": 0, "on_time": 0, "late": 0, "no_limit": 0, "open": 1, "open_late": 0,
                                  "extended": 0}
    assert added(commune)["first_round"] == 1 and added(commune)["second_round"] == 0
    assert added(commune)["resolved"] == 1
    figure, listed = rh.listing(province.get, f"/app/reports/cases?form=kn&col=second_round&unit={second_unit}"
                                              f"&period={QUARTER}")
    assert c["code"] in [r["case"] for r in listed] and figure == len(listed) == after.rows[second_unit]["second_round"]


# -- periods -------------------------------------------------------------------------------------

BOUNDARIES = [  # (kind, basis, the period before, the one after, a commune of its own)
    ("month", "circular", "2019-05", "2019-06", "X03394"),
    ("quarter", "circular", "2019-Q2", "2019-Q3", "X03408"),
    ("half", "circular", "2020-H1", "2020-H2", "X03390"),
    ("year", "circular", "2019", "2020", "X03405"),
    ("quarter", "calendar", "2021-Q1", "2021-Q2", "X03424"),
]


@pytest.mark.parametrize(("kind", "basis", "before", "after", "commune"), BOUNDARIES)
def test_a_case_at_a_period_boundary_counts_in_exactly_one_period(officer, owner_conn, kind, basis, before, after,
                                                                  commune):
    first = periods.parse(before, basis, None, None, vietnam_today())
    second = periods.parse(after, basis, None, None, vietnam_today())
    assert first.kind == second.kind == kind and first.end + timedelta(days=1) == second.start
    edge = second.start_at  # midnight in Vietnam: 17:00 UTC the day before
    clerk = officer(commune, ["reception", "handling", "head"])
    times = {"before": edge - timedelta(microseconds=1), "at": edge, "after_utc_day": edge + timedelta(minutes=30)}
    cases: dict[str, str] = {}
    for label, at in times.items():
        rid = rh.reception(clerk, 1)
        owner_conn.execute("UPDATE kntc.reception SET received_at = %s WHERE id = %s", (at, rid))
        day = at.astimezone(periods.VN_TZ).date()
        c = rh.record(clerk, commune, kind="complaint", channel="letter", received_on=day.isoformat(),
                      subject=f"Khiếu nại ranh giới kỳ {label}")
        v = rh.act(clerk, c["code"], c["version"], "submit")
        rh.act(clerk, c["code"], v, "accept")
        owner_conn.execute("UPDATE kntc.case_event SET at = %s WHERE case_id = (SELECT id FROM kntc.case_file "
                           "WHERE code = %s) AND action = 'accept'", (at, c["code"]))
        owner_conn.execute("UPDATE kntc.case_file SET accepted_on = %s WHERE code = %s", (day, c["code"]))
        cases[label] = c["code"]
    q = {"basis": basis}

    def listed(form: str, col: str, period: str) -> list[str]:
        _, rows = rh.listing(clerk.get, f"/app/reports/cases?form={form}&col={col}&unit={commune}&period={period}"
                                        f"&basis={basis}")
        return [r["case"] for r in rows]

    for form, col in (("tcd", "turns"), ("xld", "petitions"), ("xld", "accepted"), ("kn", "accepted")):
        one = rh.table(clerk.get(url(form, commune, before, **q)).text).total[col]
        two = rh.table(clerk.get(url(form, commune, after, **q)).text).total[col]
        assert (one, two) == (1, 2), (form, col, one, two)
        if form != "tcd":
            assert listed(form, col, before) == [cases["before"]]
            assert sorted(listed(form, col, after)) == sorted([cases["at"], cases["after_utc_day"]])
    # Still open at the boundary, the earlier case is carried over into the next period, as the form says.
    assert listed("kn", "carried", after) == [cases["before"]]


# -- bad parameters ---------------------------------------------------------------------------------

BAD = [
    ("/app/reports?period=2026-Q5", 400, "Kỳ báo cáo không hợp lệ"),
    ("/app/reports?period=2026-13", 400, "Kỳ báo cáo không hợp lệ"),
    ("/app/reports?period=quarterly", 400, "Kỳ báo cáo không hợp lệ"),
    ("/app/reports?period=1999", 400, "Năm báo cáo phải từ 2000"),
    ("/app/reports?period=custom&from=2026-02-30&to=2026-03-01", 400, "Ngày không hợp lệ"),
    ("/app/reports?period=custom&from=14/03/2026&to=2026-03-20", 400, "Ngày không hợp lệ"),
    ("/app/reports?period=custom&from=2026-03-01&to=2026-02-01", 400, "Đến ngày phải sau"),
    ("/app/reports?period=custom&from=2026-03-01", 400, "cần cả từ ngày và đến ngày"),
    ("/app/reports?period=2026-Q1&from=2026-01-01&to=2026-02-01", 400, "Khoảng ngày tự chọn"),
    ("/app/reports?basis=lunar", 400, "Cách tính kỳ không hợp lệ"),
    ("/app/reports?form=01XLD", 400, "Không có biểu báo cáo"),
    ("/app/reports?format=docx", 400, "Định dạng"),
    ("/app/reports?unit=X00004", 403, "nằm ngoài phạm vi"),
    ("/app/reports?unit=NO-SUCH-UNIT", 403, "nằm ngoài phạm vi"),
    ("/app/reports?unit=X00004&format=pdf", 403, "nằm ngoài phạm vi"),
    ("/app/reports/cases?form=xld&col=nope", 400, "không có cột"),
    ("/app/reports/cases?form=xld", 400, "không có cột"),
    ("/app/reports/cases?form=xld&col=petitions&direct=yes", 400, "direct"),
    ("/app/reports/cases?form=xld&col=petitions&after=abc", 400, "Con trỏ trang không hợp lệ"),
    ("/app/reports/cases?form=xld&col=petitions&period=2026-X1", 400, "Kỳ báo cáo không hợp lệ"),
    ("/app/reports/cases?form=xld&col=petitions&unit=T01", 403, "nằm ngoài phạm vi"),
]


@pytest.mark.parametrize(("path", "status", "message"), BAD)
def test_bad_parameters_get_a_clear_4xx_page(officer, path, status, message):
    head = officer(COMMUNE, ["head"])
    r = head.get(path)
    assert r.status_code == status, (path, r.text[-300:])
    assert r.headers["content-type"].startswith("text/html")
    assert message in r.text, r.text[-600:]


def test_the_page_names_its_circular_period_and_scope_and_offers_its_files(officer, quarter):
    head = officer(COMMUNE, ["head"], 1)
    r = head.get(url("kn", COMMUNE))
    notes = " ".join(rh.table(r.text).notes)
    assert "Thông tư số 01/2024/TT-TTCP" in notes and "01/KQGQ" in notes
    assert "từ ngày 15 của tháng cuối kỳ trước đến ngày 14" in notes
    assert "độ mật không cao hơn mức được tiếp cận của tài khoản (Mật)" in notes
    assert 'id="dl-xlsx"' in r.text and 'id="dl-pdf"' in r.text
    english = head.get(url("kn", COMMUNE), headers={"Cookie": "kntc_lang=en"})
    assert "Complaint resolution" in english.text and "Circular 01/2024/TT-TTCP" in english.text
    # The menu leads here.
    assert 'href="/app/reports"' in head.get("/app").text


@pytest.mark.parametrize("form", list(FORMS))
def test_the_xlsx_and_pdf_show_the_pages_figures_and_link_them_to_their_lists(officer, quarter, form):
    head = officer(PROVINCE, ["head"], 2)
    page = rh.table(head.get(url(form, PROVINCE)).text)
    columns = [c.key for c in FORMS[form].columns]
    x = head.get(url(form, PROVINCE, format="xlsx"))
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in x.headers["content-disposition"]
    sheet = rh.xlsx_table(x.content, len(columns))
    assert sheet["Tổng cộng"] == [page.total[c] for c in columns]
    assert sheet["Phường Đoàn Kết"] == [page.rows[COMMUNE][c] for c in columns]
    linked = [u for u in sheet["links:Tổng cộng"] if u]
    assert linked and all("/app/reports/cases?" in u for u in linked)
    # Behind nginx (HTTPS outside, HTTP to the app) the links are to the address officers use.
    proxied = head.get(url(form, PROVINCE, format="xlsx"), headers={"X-Forwarded-Proto": "https"})
    assert all(u.startswith("https://") for u in rh.xlsx_table(proxied.content, len(columns))["links:Tổng cộng"] if u)
    p = head.get(url(form, PROVINCE, format="pdf"))
    assert p.status_code == 200 and p.headers["content-type"] == "application/pdf" and p.content[:5] == b"%PDF-"
    text = rh.pdf_text(p.content)
    assert f"Biểu số {FORMS[form].number}" in text and "Phường Đoàn Kết" in text
    assert "Thông tư số 01/2024/TT-TTCP" in text.replace("\n", " ")
    links = rh.pdf_links(p.content)
    assert len(links) == len(page.links) and all("/app/reports/cases?" in u for u in links)
