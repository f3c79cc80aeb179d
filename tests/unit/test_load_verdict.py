"""A load run's verdict, stage by stage: the busy-day shape driven on a simulated clock, its requests
counted as Locust counts them (per endpoint, running totals; Locust itself is not imported here: it
monkey-patches the whole process), judged by the project's thresholds.toml, reported by
loadtests.report. tests/load/test_smoke.py runs the same code under Locust against the real app. A probe past the busy day that breaks is a finding (exit 0); a target stage that
does not hold fails the run (exit 1) with one line naming it and the limit it crossed."""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtests import report, shapes, thresholds, verdict

THRESHOLDS = Path(__file__).resolve().parents[2] / "loadtests" / "thresholds.toml"
TICK = 0.5  # simulated seconds between two ticks of the shape (Locust ticks every second)
CASE_FILE = ("GET", "/api/cases/[code]")

# What the deployment does in a stage: (p95-ish response time in ms, share of failures, share of the
# target rate the users reach).
Behaviour = Callable[[str], tuple[int, float, float]]


@dataclass
class Entry:
    method: str
    name: str
    num_requests: int = 0
    num_failures: int = 0
    response_times: dict[int, int] = field(default_factory=dict)


class Stats:
    """Running totals per endpoint, the part of locust.stats.RequestStats a shape reads."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}

    def log(self, method: str, name: str, ms: int, failed: bool) -> None:
        e = self.entries.setdefault((name, method), Entry(method, name))
        e.num_requests += 1
        e.num_failures += failed
        e.response_times[ms] = e.response_times.get(ms, 0) + 1


class Clock:
    """The shape's run time, advanced by the test instead of the wall clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def get_run_time(self) -> float:
        return self.t


def healthy(_label: str) -> tuple[int, float, float]:
    return 55, 0.0, 1.0


def run_busy_day(tmp_path: Path, behaviour: Behaviour, probe_steps: int = 2,
                 stop_at: str | None = None) -> shapes.Staged:
    """The busy-day shape of a `make load` run (scale 0.001, pace 20, 10 s steps), simulated."""
    stats = Stats()
    options = Namespace(kntc_shape="busy_day", kntc_scenario="busy", kntc_scale=0.001, kntc_pace=20.0,
                        kntc_step_seconds=10.0, kntc_probe_steps=probe_steps, kntc_thresholds=str(THRESHOLDS),
                        kntc_p95_limit=0, kntc_report_dir=str(tmp_path))
    env = SimpleNamespace(runner=SimpleNamespace(stats=stats), parsed_options=options)
    clock = Clock()
    staged = shapes.build(env, clock)
    owed = 0.0
    while (tick := staged.tick()) is not None:
        label = staged.stages[staged.index].label
        if label == stop_at and staged.snap is None:
            staged.finish_now("stopped by hand")
            break
        latency, errors, rate = behaviour(label)
        owed += tick[0] * staged.rps_per_user * rate * TICK
        n, owed = int(owed), owed - int(owed)
        for i in range(n):
            # One request in twenty a login (its own, looser limit), the others the case file.
            method, name = ("POST", "/api/auth/login") if i % 20 == 19 else CASE_FILE
            stats.log(method, name, latency, i < n * errors)
        clock.t += TICK
        assert clock.t < 3600, "the shape never ended"
    return staged


def summary_of(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = report.main([str(tmp_path), "--app-workers", "2"])
    out = capsys.readouterr()
    return code, (tmp_path / "summary.md").read_text(), out.err


def test_a_probe_that_breaks_past_the_busy_day_is_a_finding_and_the_run_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The run: the busy day held (p95 55 ms, no errors), the second probe above it did not.
    def behaviour(label: str) -> tuple[int, float, float]:
        return (900, 0.02, 0.7) if label == "probe 2" else healthy(label)

    staged = run_busy_day(tmp_path, behaviour)
    v = staged.verdict
    assert [(s["label"], s["kind"], s["held"]) for s in staged.results] == [
        ("warm-up", "warmup", True), ("typical day", "target", True), ("busy day", "target", True),
        ("probe 1", "probe", True), ("probe 2", "probe", False)]
    assert v["passed"] and v["exit_code"] == 0, v
    busy = staged.results[2]
    assert busy["rps"] >= 0.8 * busy["target_rps"] > 0 and busy["p95_ms"] <= 60 and busy["failures"] == 0
    assert v["breakpoint"]["label"] == "probe 2" and v["breakpoint"]["rps"] == staged.results[4]["rps"]
    assert v["finding"].startswith(f"breakpoint: 'probe 2' (probe) at {staged.results[4]['rps']} req/s")
    assert v["last_good"]["label"] == "probe 1"
    assert json.loads((tmp_path / "stages.json").read_text())["verdict"] == v

    code, summary, _ = summary_of(tmp_path, capsys)
    assert code == 0
    assert "ĐẠT / PASSED" in summary and "breakpoint: 'probe 2'" in summary
    assert "| busy day | target |" in summary and "| probe 2 | probe |" in summary
    assert "broke (finding)" in summary and "NOT HELD" not in summary


def test_a_target_stage_that_does_not_hold_fails_the_run_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    staged = run_busy_day(tmp_path, lambda label: (450, 0.0, 1.0) if label == "busy day" else healthy(label))
    v = staged.verdict
    assert not v["passed"] and v["exit_code"] == 1
    assert v["line"].startswith("FAILED: target stage 'busy day' did not hold: GET /api/cases/[code] p95 450 ms > "
                                "300 ms"), v["line"]
    assert "\n" not in v["line"]
    # No probe above a busy day that did not hold; the busy day is where it broke.
    assert [s["label"] for s in staged.results] == ["warm-up", "typical day", "busy day"]
    assert v["breakpoint"]["label"] == "busy day"

    code, summary, err = summary_of(tmp_path, capsys)
    assert code == 1 and "target stage 'busy day' did not hold" in err
    assert "KHÔNG ĐẠT / FAILED" in summary and "**NOT HELD: fails the run**" in summary


def test_a_target_stage_short_of_its_rate_did_not_hold(tmp_path: Path) -> None:
    # Quick answers at half the load asked for: the deployment (or the generator) did not carry it.
    staged = run_busy_day(tmp_path, lambda label: (40, 0.0, 0.5) if label == "busy day" else healthy(label))
    assert staged.verdict["exit_code"] == 1
    assert "'busy day' did not hold: rate" in staged.verdict["line"]
    assert "< 80% of the target" in staged.verdict["line"]


def test_a_small_stage_short_of_its_rate_by_chance_still_held() -> None:
    limits = thresholds.load(THRESHOLDS)

    def stage(target_rps: float, seconds: float, share: float) -> dict[str, object]:
        n = round(target_rps * seconds * share)
        return verdict.judge_stage(verdict.StageStats("typical day", verdict.TARGET, 6, target_rps, seconds,
                                                      {"GET /api/cases/[code]": verdict.Requests(n, 0, {40: n})}),
                                   limits)

    # 6 users for 8 s: 48 requests expected, 36 sent; exponential think times do that by chance.
    assert stage(6.0, 8.0, 0.75)["held"]
    # The busy day of a national run: 40,000 expected, 30,000 sent is no chance.
    assert not stage(400.0, 100.0, 0.75)["held"]


def test_errors_in_a_target_stage_fail_the_run(tmp_path: Path) -> None:
    staged = run_busy_day(tmp_path, lambda label: (50, 0.05, 1.0) if label == "typical day" else healthy(label))
    assert staged.verdict["exit_code"] == 1
    assert "target stage 'typical day' did not hold" in staged.verdict["line"]
    assert "error_ratio" in staged.verdict["line"]


def test_a_slow_warm_up_decides_nothing(tmp_path: Path) -> None:
    # Every user logs in during the warm-up: argon2id on all of them at once.
    staged = run_busy_day(tmp_path, lambda label: (5000, 0.0, 1.0) if label == "warm-up" else healthy(label),
                          probe_steps=0)
    assert not staged.results[0]["held"]
    assert staged.verdict["exit_code"] == 0 and staged.verdict["breakpoint"] is None
    assert staged.verdict["finding"].startswith("no breakpoint: every stage held")


def test_a_run_stopped_before_the_busy_day_settled_fails(tmp_path: Path) -> None:
    staged = run_busy_day(tmp_path, healthy, stop_at="busy day")
    assert staged.verdict["exit_code"] == 1
    assert staged.verdict["line"] == ("FAILED: target stage 'busy day' did not hold: not measured: the run ended "
                                      "before the stage settled")


def test_a_few_slow_calls_of_a_rare_endpoint_are_shown_not_judged() -> None:
    limits = thresholds.load(THRESHOLDS)
    fast = verdict.Requests(600, 0, {50: 600})
    rare = verdict.Requests(3, 0, {2500: 3})  # three reports in the window, each 2.5 s
    stage = verdict.StageStats("busy day", verdict.TARGET, 77, 0, 10.0,
                               {"GET /api/cases/[code]": fast, "GET /api/statistics": rare})
    judged = verdict.judge_stage(stage, limits)
    assert judged["held"], judged["crossed"]
    assert [r["judged"] for r in judged["endpoints"]] == [True, False]
    rare.requests, rare.hist = 40, {2500: 40}
    judged = verdict.judge_stage(stage, limits)
    assert not judged["held"] and "GET /api/statistics p95 2500 ms > 1000 ms" in judged["crossed"]


def test_a_mistyped_limit_stops_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[stage]\nmin_rate = 0.8\n")
    with pytest.raises(SystemExit, match=r"^thresholds .*bad.toml: \[stage\] has unknown limits \['min_rate'\]$"):
        thresholds.load(bad)
