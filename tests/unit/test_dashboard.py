"""The on-call dashboard (the monitoring role's console templates) as Prometheus 2.42 of Debian
renders it, over figures of a known state of both sites (tests/dashboard_support.py): what the
on-call engineer reads there is that state."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.dashboard_support import LAG_SECONDS, Dashboard, backfilled_prometheus, cell, rows, seconds


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    with backfilled_prometheus(tmp_path_factory.mktemp("dashboard")) as d:
        yield d


def page(dashboard: Dashboard, path: str) -> str:
    r = httpx.get(f"{dashboard.url}/consoles/{path}", timeout=30)
    assert r.status_code == 200, r.text[:2000]
    return r.text


def test_the_overview_shows_each_sites_role_leader_and_lag(dashboard: Dashboard) -> None:
    started = time.time()
    html = page(dashboard, "kntc.html")
    assert "Site chính" in cell(html, "site-dc", "Vai trò cụm CSDL")
    assert "Site dự phòng" in cell(html, "site-dr", "Vai trò cụm CSDL")
    assert cell(html, "site-dc", "Leader") == "dc-db1 (timeline 3)"
    assert cell(html, "site-dr", "Leader") == "dr-db1 (timeline 3)"
    assert cell(html, "site-dc", "Standby đồng bộ") == "1 / 1 expected: dc-db2"
    assert cell(html, "site-dc", "Bản sao trễ nhất") == "1MiB"
    lag_bytes, lag_seconds = cell(html, "site-dr", "Độ trễ so với site chính").split(" · ")
    assert lag_bytes == "48MiB"
    # The age of the last replayed transaction: 40 s at the last sample, older since.
    assert LAG_SECONDS <= seconds(lag_seconds) <= LAG_SECONDS + 15 + (time.time() - started) + 60


def test_the_overview_shows_etcd_quorum_balancers_and_traffic_per_site(dashboard: Dashboard) -> None:
    html = page(dashboard, "kntc.html")
    assert cell(html, "site-dc", "etcd: thành viên trả lời").startswith("3 / 3 ✔ đủ quorum")
    assert cell(html, "site-dr", "etcd: thành viên trả lời").startswith("2 / 3 ✔ đủ quorum")
    assert cell(html, "site-dc", "etcd leader") == "dc-db2"
    assert cell(html, "site-dr", "Mục tiêu trả lời") == "10 / 11"
    assert cell(html, "site-dc", "HAProxy có primary") == "2 / 2"
    assert cell(html, "site-dc", "Yêu cầu") == "50.00/s"
    assert cell(html, "site-dc", "Độ trễ p95") == "375ms"
    assert cell(html, "site-dc", "Tỉ lệ lỗi 5xx") == "1%"
    assert cell(html, "site-dr", "Yêu cầu") == "1.00/s"


def test_the_overview_shows_backup_freshness_and_verification_per_repository(dashboard: Dashboard) -> None:
    html = page(dashboard, "kntc.html")
    backups = {(c[0], c[1], c[3]): c for p, c in rows(html) if p.startswith("Sao lưu") and c[0] in ("DC", "DR")}
    assert set(backups) == {(s, r, t) for s, r in (("DC", "1"), ("DR", "2")) for t in ("full", "diff", "incr")}
    assert backups["DC", "1", "full"][4].startswith("1d 2h 0m")
    assert backups["DC", "1", "full"][6].startswith("✔ tốt")
    assert backups["DR", "2", "full"][4].startswith("3d 2h 0m")
    # The DR's incremental backup: 3 hours old where 2 are allowed, and its last run failed.
    assert backups["DR", "2", "incr"][4].startswith("3h 0m") and "quá hạn" in backups["DR", "2", "incr"][4]
    assert backups["DR", "2", "incr"][6].startswith("✘ lỗi")
    assert "quá hạn" not in backups["DC", "1", "incr"][4]
    verified = {c[1]: c for p, c in rows(html) if p.startswith("Kiểm tra khôi phục") and c[0] in ("DC", "DR")}
    assert verified["1"][2].startswith("20h 0m") and verified["1"][3].startswith("✔ tốt")
    assert verified["2"][3].startswith("chưa kiểm tra")


def test_the_alert_that_fires_is_counted_and_named(dashboard: Dashboard) -> None:
    html = page(dashboard, "kntc.html")
    assert cell(html, "site-dr", "Cảnh báo đang phát") == "1"
    assert cell(html, "site-dc", "Cảnh báo đang phát") == "0"
    firing = [c for p, c in rows(html) if p.startswith("Cảnh báo đang phát") and c[0].startswith("Kntc")]
    assert firing == [["KntcBackupFailed", "page", "DR", "2"]]


def test_a_sites_page_lists_each_member_and_what_is_down(dashboard: Dashboard) -> None:
    html = page(dashboard, "kntc-site.html?site=dr")
    members = {c[0]: c for p, c in rows(html) if p.startswith("Thành viên cụm CSDL") and c[0].startswith("dr-")}
    assert members["dr-db1"][2] == "Standby leader" and members["dr-db1"][4] == "48MiB"
    assert members["dr-db2"][2] == "Bản sao replica"
    down = [c for p, c in rows(html) if p.startswith("Mục tiêu không trả lời") and c[0].startswith("dr-")]
    assert down == [["dr-backup1", "etcd"]]
    assert not any(c[0] == "DC" for p, c in rows(html) if p.startswith("Sao lưu"))
    dc = page(dashboard, "kntc-site.html?site=dc")
    roles = {c[0]: c[2] for p, c in rows(dc) if p.startswith("Thành viên cụm CSDL") and c[0].startswith("dc-")}
    assert roles == {"dc-db1": "Leader (primary)", "dc-db2": "Standby đồng bộ sync standby", "dc-db3": "Bản sao replica"}


def test_a_site_that_does_not_exist_is_said_so_and_queries_nothing_else(dashboard: Dashboard) -> None:
    html = page(dashboard, 'kntc-site.html?site=dc"} or vector(1) or up{x="')
    assert "Không có site" in html
    assert "Thành viên cụm CSDL" not in html


def test_the_pages_load_nothing_from_elsewhere(dashboard: Dashboard) -> None:
    """No CDN and no script: the pages work on a monitoring host without Internet access."""
    for path in ("kntc.html", "kntc-site.html?site=dc"):
        html = page(dashboard, path)
        assert "<script" not in html
        assert "src=" not in html and "http://" not in html and "https://" not in html

