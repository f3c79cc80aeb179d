"""Benchmark (prints figures, asserts nothing about time): page times with a few hundred cases.

Run: KNTC_TEST_PG_PORT=55451 .venv/bin/pytest tests/web/test_bench_pages.py -m bench -s -q
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import petition_body

pytestmark = pytest.mark.bench


def _times(user, url: str, n: int = 20) -> tuple[float, float]:
    took = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = user.get(url)
        took.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, url
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.95) - 1]


def test_page_times(request, officer, web_officer):
    api = officer("X00004", ["reception"])
    codes = []
    t0 = time.perf_counter()
    for i in range(300):
        r = api.post("/api/cases", json=petition_body(kind=("complaint", "denunciation", "recommendation")[i % 3],
                                                      channel=("in_person", "letter", "online")[i % 3]))
        codes.append(r.json()["code"])
    made = time.perf_counter() - t0
    head = web_officer("X00004", ["head"], clearance=1)
    national = web_officer("VN", ["head"], clearance=2)
    rows = [("record 300 cases (API)", made * 1000 / 300, None)]
    for name, user, url in (("case file page", head, f"/app/cases/{codes[-1]}"),
                            ("case list page", head, "/app/cases"),
                            ("statistics, commune head", head, "/app/stats"),
                            ("statistics, national (map + provinces)", national, "/app/stats"),
                            ("case list CSV (10,000 rows max)", head, "/app/cases?format=csv"),
                            ("case list XLSX", head, "/app/cases?format=xlsx")):
        p50, p95 = _times(user, url)
        rows.append((name, p50, p95))
    print("\n{:<42} {:>9} {:>9}".format("page", "p50 ms", "p95 ms"))
    for name, p50, p95 in rows:
        print(f"{name:<42} {p50:>9.1f} {'' if p95 is None else f'{p95:9.1f}'}")
