"""The on-call dashboard as the engineer sees it in a browser, over figures of a known state of
both sites (tests/dashboard_support.py); screenshots in test-output/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard_support import Dashboard, backfilled_prometheus

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with backfilled_prometheus(tmp_path_factory.mktemp("dashboard")) as d:
        yield d


@pytest.fixture
def page(browser, dashboard: Dashboard) -> Iterator[object]:
    ctx = browser.new_context(base_url=dashboard.url, viewport={"width": 1280, "height": 900}, locale="vi-VN")
    p = ctx.new_page()
    p.set_default_timeout(15_000)
    yield p
    ctx.close()


def test_the_on_call_engineer_sees_both_sites_the_leader_the_lag_and_the_failed_backup(page, shots: Path) -> None:
    page.goto("/consoles/kntc.html")
    dc, dr = page.locator("#site-dc"), page.locator("#site-dr")
    assert dc.locator("tr", has_text="Leader").first.inner_text().split("\t")[-1] == "dc-db1 (timeline 3)"
    assert "Site chính" in dc.inner_text() and "Site dự phòng" in dr.inner_text()
    assert "48MiB" in dr.locator("tr", has_text="Độ trễ so với site chính").inner_text()
    overdue = page.locator("tr", has_text="dr-backup1").filter(has_text="incr")
    assert "quá hạn" in overdue.inner_text() and "lỗi" in overdue.inner_text()
    assert page.get_by_role("link", name="KntcBackupFailed").is_visible()
    page.screenshot(path=str(shots / "30-dashboard-overview.png"), full_page=True)


def test_the_engineer_opens_the_standby_site_from_the_overview(page, shots: Path) -> None:
    page.goto("/consoles/kntc.html")
    page.locator("#site-dr h2 a").click()
    page.wait_for_url("**/consoles/kntc-site.html?site=dr")
    members = page.locator("#members tr", has_text="dr-db1").inner_text()
    assert "Standby leader" in members and "48MiB" in members
    assert page.locator("#down tr").last.inner_text().split("\t") == ["dr-backup1", "etcd"]
    page.screenshot(path=str(shots / "31-dashboard-site-dr.png"), full_page=True)
