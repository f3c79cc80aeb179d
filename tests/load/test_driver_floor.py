"""bench-app's driver floor: the app CPU of a request's round trips carrying nothing, in both of the
app's connection modes, printed under /livez in the summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadtests import bench_app
from tests.conftest import ROOT


@pytest.mark.parametrize("mode", ["pooler", "pipeline"])
def test_the_floor_is_measured_as_the_application_role(mode: str, pg_env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-m", "loadtests.driver_floor", pg_env["KNTC_DATABASE_URL"],
                          "--mode", mode, "--requests", "300"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["mode"] == mode and got["requests"] == 300
    assert 0 < got["app_cpu_ms"] < 1000


def test_a_database_that_does_not_answer_is_one_line_and_no_figure() -> None:
    res = subprocess.run([sys.executable, "-m", "loadtests.driver_floor", "host=127.0.0.1 port=1 dbname=x user=x",
                          "--requests", "10"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.startswith("driver-floor: ") and len(res.stderr.strip().splitlines()) == 1
    assert bench_app.driver_floor("host=127.0.0.1 port=1 dbname=x user=x", "pooler") is None


def test_the_summary_prints_the_floor_under_livez() -> None:
    rows = [bench_app.Result(bench_app.TRIVIAL, 9000.0, 1.0, 2.0, 3.0, 0, app_cpu_ms=0.15),
            bench_app.Result("case file   GET /api/cases/{code}", 500.0, 20.0, 60.0, 90.0, 0, app_cpu_ms=1.0)]
    lines = bench_app.print_summary(rows, 80000.0, "abc1234", "pooler", driver_ms=0.12).splitlines()
    assert lines[2].startswith("trivial")
    assert lines[3].startswith(bench_app.DRIVER) and lines[3].split()[-1] == "0.12"
    assert lines[4].startswith("case file")
    assert len({len(line) for line in lines[1:]}) == 1, lines


@pytest.mark.parametrize("given", ["0", "-5", "many"])
def test_a_count_of_requests_that_is_not_a_positive_number_is_refused_in_one_line(given: str) -> None:
    res = subprocess.run([sys.executable, "-m", "loadtests.driver_floor", "host=127.0.0.1 port=1 dbname=x",
                          f"--requests={given}"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2 and res.stdout == ""
    assert f"expected a whole number of requests, at least 1: '{given}'" in res.stderr
    assert "Traceback" not in res.stderr
