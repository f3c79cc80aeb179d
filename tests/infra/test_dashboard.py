"""The on-call dashboard on each site's monitoring host, over the live lab: the leader Patroni
names is the one the page shows, with both sites, the standby site's lag and the backups; a
screenshot from headless Chromium presenting the operator's client certificate."""

from __future__ import annotations

import pytest

from tests.browser.conftest import SHOTS
from tests.dashboard_support import cell, rows

from .conftest import ADDR, DR_DB, MONITORS, STATE, dc_leader, monitoring_client, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.readonly]



def dashboard_url(monitor: str, page: str = "kntc.html") -> str:
    return f"https://{ADDR[monitor]}:9090/consoles/{page}"


@pytest.mark.parametrize("monitor", MONITORS)
def test_each_sites_dashboard_shows_the_live_leader_and_both_sites(lab, hosts, monitor):
    leader = dc_leader(hosts)

    def page() -> str | None:
        with monitoring_client() as c:
            r = c.get(dashboard_url(monitor))
        r.raise_for_status()
        return r.text if cell(r.text, "site-dc", "Leader").startswith(f"{leader} ") else None

    html = wait_for(page, 60, f"{monitor}'s dashboard names {leader} the DC leader")
    assert "Site chính" in cell(html, "site-dc", "Vai trò cụm CSDL")
    assert "Site dự phòng" in cell(html, "site-dr", "Vai trò cụm CSDL")
    assert cell(html, "site-dr", "Leader").split()[0] in DR_DB
    # The seconds may be a dash just after the standby restarts (nothing replayed yet): the bytes not.
    lag_bytes = cell(html, "site-dr", "Độ trễ so với site chính").split(" · ")[0]
    assert lag_bytes.endswith("B"), lag_bytes
    assert cell(html, "site-dc", "etcd: thành viên trả lời").startswith("3 / 3 ✔ đủ quorum")
    repos = {c[1] for p, c in rows(html) if p.startswith("Sao lưu") and c[0] in ("DC", "DR")}
    assert repos, "no backup figures on the dashboard"


@pytest.mark.parametrize("monitor", MONITORS)
def test_the_dashboard_opens_in_a_browser_with_the_operators_certificate(lab, hosts, browser, monitor):
    leader = dc_leader(hosts)
    pki = STATE / "pki"
    SHOTS.mkdir(parents=True, exist_ok=True)
    origin = f"https://{ADDR[monitor]}:9090"
    # The server's identity is the lab CA's, which Chromium does not know; httpx checks it above.
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN", ignore_https_errors=True,
                              client_certificates=[{"origin": origin, "certPath": str(pki / "dc-mon1.crt"),
                                                    "keyPath": str(pki / "dc-mon1.key")}])
    try:
        page = ctx.new_page()
        page.goto(dashboard_url(monitor))
        assert page.locator("#site-dc tr", has_text="Leader").first.inner_text().split("\t")[-1].startswith(leader)
        assert page.locator("#site-dr").is_visible()
        page.screenshot(path=str(SHOTS / f"40-dashboard-lab-{monitor}.png"), full_page=True)
        page.goto(dashboard_url(monitor, "kntc-site.html?site=dr"))
        assert page.locator("#members tr", has_text="Standby leader").count() == 1
        page.screenshot(path=str(SHOTS / f"41-dashboard-lab-{monitor}-site-dr.png"), full_page=True)
    finally:
        ctx.close()
