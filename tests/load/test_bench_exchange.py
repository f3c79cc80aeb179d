"""The exchange benchmark runs against the real server behind nginx with mutual TLS and writes its
report with every figure named. Seconds of each phase: a smoke run, not a measurement (no timing
is judged); that every acknowledged submission reached the follower and the webhook is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_short_run_writes_the_report_with_its_fields(pg_env: dict[str, str], tmp_path: Path) -> None:
    res = subprocess.run(
        [str(BIN / "python"), "-m", "loadtests.bench_exchange", "--from-env", "--units", "T01-TAND",
         "--concurrency", "2", "--warmup", "0.5", "--seconds", "2", "--batch-sizes", "1,3",
         "--rates", "4", "--open-seconds", "2", "--report-dir", str(tmp_path)],
        env={**os.environ, **pg_env}, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "CPU ms/item" in res.stdout  # the table
    [report] = tmp_path.glob("bench-exchange-*.json")
    data = json.loads(report.read_text())
    assert data["command"].startswith("python -m loadtests.bench_exchange")
    assert data["setup"]["units"] == ["T01-TAND"] and data["setup"]["gateway_errors"] == 0
    phases = {p["name"]: p for p in data["phases"]}
    assert list(phases) == ["closed, batches of 1", "closed, batches of 3", "open, 4/s"]
    for p in phases.values():
        # A busy machine may answer "in flight" or "busy" (409, 503): counted, never a refused item.
        assert p["items"] > 0 and set(p["refused_by_status"]) <= {"409", "429", "503"}, p
        assert set(p["request_ms"]) == set(p["item_ms"]) == {"p50", "p95", "p99"}
        assert p["items_per_s"] > 0
        assert {"database", "app", "gateway", "outbox", "driver"} <= set(p["cpu_ms_per_item"])
        assert p["cpu_ms_per_item"]["database"] > 0 and p["cpu_ms_per_item"]["app"] > 0
    opened = phases["open, 4/s"]
    assert opened["offered_per_s"] == 4
    assert set(opened["feed_lag_ms"]) == set(opened["webhook_lag_ms"]) == {"p50", "p95", "max"}
    # Every acknowledged submission reached the second client's feed and the webhook receiver.
    assert opened["feed_missing"] == 0 and opened["webhook_missing"] == 0
    assert opened["cpu_ms_per_item"]["outbox"] > 0
    md = report.with_suffix(".md").read_text()
    assert "| phase | items/s |" in md and "open, 4/s" in md and data["command"] in md
