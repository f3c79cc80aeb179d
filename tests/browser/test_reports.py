"""A province's quarterly report in a real browser: from the menu to the form, down the unit tree, from a
figure to the list of its cases and on to a case file."""

from __future__ import annotations

import pytest

from core_app.app import vietnam_today
from core_app.domain import periods
from tests.web import reports_helpers as rh

pytestmark = pytest.mark.browser


def test_a_quarterly_report_from_a_figure_down_to_its_cases(officer, open_as, shots):
    codes = rh.story(officer, "X03388", "X03390")
    quarter = periods.containing(vietnam_today(), "quarter")
    head = open_as("T12", ["head"], clearance=2)
    head.click("nav.menu >> text=Báo cáo định kỳ")
    head.click("#form-xld")
    head.select_option("#f-period", quarter.key)
    with head.expect_navigation():
        head.click("#report-filters button[type=submit]")
    assert "Biểu số 01/XLD" in head.inner_text("#report-title")
    assert quarter.label() in head.inner_text("#report-period")
    assert "Thông tư số 01/2024/TT-TTCP" in head.inner_text("#report-notes")
    total = head.locator("#row-total a[data-col=petitions]")
    row = head.locator("#row-X03388 a[data-col=petitions]")
    in_province = int(row.get_attribute("data-n"))
    assert int(total.get_attribute("data-n")) >= in_province >= 4
    head.screenshot(path=str(shots / "20-report-quarter-province.png"), full_page=True)

    # Down the tree: the commune's own report adds up to its row in the province's.
    with head.expect_navigation():
        head.click("#row-X03388 th a")
    assert head.inner_text("#report-unit").startswith("Phường Đoàn Kết")
    figure = int(head.locator("#row-total a[data-col=petitions]").get_attribute("data-n"))
    assert figure == in_province
    head.screenshot(path=str(shots / "21-report-quarter-commune.png"), full_page=True)

    # A figure opens the list of its cases, as many rows as it says.
    with head.expect_navigation():
        head.click("#row-total a[data-col=via_reception]")
    n = int(head.get_attribute("#figure", "data-n"))
    assert head.locator("#report-cases tr.item").count() == min(n, 50)
    assert codes["complaint"] in head.inner_text("#report-cases")
    head.screenshot(path=str(shots / "22-report-figure-list.png"), full_page=True)

    # And each row opens its case file.
    with head.expect_navigation():
        head.click(f"#report-cases a.case >> text={codes['complaint']}")
    assert codes["complaint"] in head.url
    head.screenshot(path=str(shots / "23-report-case-file.png"), full_page=True)
