"""Load shapes, in users over time, sized from the capacity model and scaled to the rig.

Each shape is a list of stages (ramp, hold, step, spike ...). At the end of every stage the shape
records what the system did in it — requests/s, p95, error ratio, measured after the stage has
settled — so the report can say which load level was held and which was not. The breakpoint
shape keeps multiplying the load until p95 or the error ratio crosses its limit, then stops and
reports the last good level.

    ramp         0 → typical day over three steps
    typical_day  ramp, then the typical day held
    busy_day     ramp, typical day, step to the busy day, hold; then a probe above it (breakpoint)
    spike        typical day, three times the busy day for one step, back to typical (recovery)
    soak         the busy day held for --kntc-soak-minutes
    breakpoint   from the typical day, ×1.4 per step until p95 > limit or errors > limit
    fixed        -u/-r as given (with -t), for ad-hoc runs
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests import capacity

log = logging.getLogger("loadtests.shapes")

SHAPES = ("ramp", "typical_day", "busy_day", "spike", "soak", "breakpoint", "fixed")
P95_LIMIT_MS = 300.0  # the capacity criterion: the load at which p95 stays under this
MAX_ERROR_RATIO = 0.01
PROBE_FACTOR = 1.4


@dataclass
class Stage:
    label: str
    users: int
    seconds: float
    spawn_rate: float
    probe: bool = False  # part of the breakpoint search


@dataclass
class StageResult:
    label: str
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_ratio: float
    ok: bool


def percentile_of(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if not total:
        return 0.0
    seen = 0
    for rt in sorted(hist):
        seen += hist[rt]
        if seen >= q * total:
            return float(rt)
    return float(max(hist))


@dataclass
class Snapshot:
    at: float
    requests: int
    failures: int
    hist: dict[int, int] = field(default_factory=dict)


class Staged:
    """Runs the stages in order, measuring each one after it settles."""

    def __init__(self, environment: Any, shape: Any, stages: list[Stage], probe_steps: int = 0,
                 p95_limit: float = P95_LIMIT_MS, max_errors: float = MAX_ERROR_RATIO, max_users: int = 100_000,
                 step: float = 60.0) -> None:
        self.env, self.shape, self.stages, self.step = environment, shape, list(stages), step
        self.probe_steps, self.p95_limit = probe_steps, p95_limit
        self.max_errors, self.max_users = max_errors, max_users
        self.results: list[StageResult] = []
        self.index = -1
        self.stage_started = 0.0
        self.snap: Snapshot | None = None
        self.verdict: dict[str, Any] = {}
        self.done = False

    def _snapshot(self) -> Snapshot:
        t = self.env.runner.stats.total
        return Snapshot(time.monotonic(), t.num_requests, t.num_failures, dict(t.response_times))

    def _close(self) -> StageResult | None:
        stage, snap = self.stages[self.index], self.snap
        if snap is None:
            return None
        now = self._snapshot()
        hist = {k: v - snap.hist.get(k, 0) for k, v in now.hist.items() if v - snap.hist.get(k, 0) > 0}
        n, f = now.requests - snap.requests, now.failures - snap.failures
        secs = max(now.at - snap.at, 1e-6)
        p95 = percentile_of(hist, 0.95)
        err = f / n if n else 0.0
        res = StageResult(stage.label, stage.users, round(secs, 1), n, f, round(n / secs, 1),
                          percentile_of(hist, 0.5), p95, percentile_of(hist, 0.99), round(err, 5),
                          bool(n) and p95 <= self.p95_limit and err <= self.max_errors)
        self.results.append(res)
        log.info("stage %-14s users %5d  %7.1f req/s  p95 %6.0f ms  errors %.2f%%  %s", res.label, res.users,
                 res.rps, res.p95_ms, 100 * err, "ok" if res.ok else "OVER THE LIMIT")
        return res

    def _next_probe(self, last: StageResult) -> Stage | None:
        done = sum(1 for s in self.stages if s.probe)
        if done >= self.probe_steps or not last.ok or last.users >= self.max_users:
            return None
        users = min(self.max_users, max(last.users + 1, round(last.users * PROBE_FACTOR)))
        return Stage(f"probe {done + 1}", users, self.step, max(1.0, (users - last.users) / (0.5 * self.step)), True)

    def tick(self) -> tuple[int, float] | None:
        if self.done:
            return None
        t = self.shape.get_run_time()
        if self.index < 0 or t - self.stage_started >= self.stages[self.index].seconds:
            if self.index >= 0:
                last = self._close()
                if last is not None and self.probe_steps and self.index == len(self.stages) - 1:
                    nxt = self._next_probe(last)
                    if nxt is not None:
                        self.stages.append(nxt)
            if self.index + 1 >= len(self.stages):
                self._finish()
                return None
            self.index += 1
            self.stage_started = t
            self.snap = None
        stage = self.stages[self.index]
        # Measure once the users are all running and a fifth of the stage has passed.
        settle = stage.users / max(stage.spawn_rate, 0.1) + 0.2 * stage.seconds
        if self.snap is None and (t - self.stage_started) >= min(settle, 0.6 * stage.seconds):
            self.snap = self._snapshot()
        return stage.users, stage.spawn_rate

    def finish_now(self, why: str) -> None:
        """End the run before its stages do (the stage under way is measured as it stands)."""
        if not self.done:
            log.info("ending the run: %s", why)
            if self.index >= 0:
                self._close()
            self._finish()

    def _finish(self) -> None:
        self.done = True
        good = [r for r in self.results if r.ok]
        best = max(good, key=lambda r: r.rps) if good else None
        crossed = next((r for r in self.results if not r.ok), None)
        self.verdict = {
            "p95_limit_ms": self.p95_limit, "max_error_ratio": self.max_errors,
            "last_good": asdict(best) if best else None,
            "first_bad": asdict(crossed) if crossed else None,
            "saturated": crossed is not None,
        }
        if best:
            log.info("last good level: %d users, %.1f req/s (p95 %.0f ms)%s", best.users, best.rps, best.p95_ms,
                     "" if crossed else " — the limit was never crossed: capacity is at least this")
        write_stage_report(self.env, {"stages": [asdict(r) for r in self.results], "verdict": self.verdict})


def write_stage_report(env: Any, data: dict[str, Any]) -> None:
    folder = getattr(env.parsed_options, "kntc_report_dir", "") if env.parsed_options else ""
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "stages.json").write_text(json.dumps(data, indent=1))


def levels(environment: Any) -> dict[str, int]:
    """Users for the typical and busy days: model concurrent users (officers + citizens) × scale."""
    o = environment.parsed_options
    scale = getattr(o, "kntc_scale", 0.001)
    model = capacity.Model()
    out = {}
    for name in ("typical", "busy", "stress"):
        sc = model.scenario(capacity.SCENARIOS[name])
        total = sc["officers_concurrent"] + sc["classes"]["citizen"]["concurrent"]
        out[name] = max(1, round(total * scale))
    return out


def build(environment: Any, shape: Any) -> Staged:
    o = environment.parsed_options
    name = getattr(o, "kntc_shape", "busy_day")
    step = float(getattr(o, "kntc_step_seconds", 60))
    lv = levels(environment)
    typ, busy = lv["typical"], lv["busy"]

    def rate(users: int) -> float:
        return max(1.0, users / (0.5 * step))  # reach a step's users within half the step

    ramp = [Stage(f"ramp {i}/3", max(1, typ * i // 3), step, rate(typ)) for i in (1, 2, 3)]
    stages: list[Stage]
    probe = 0
    if name == "ramp":
        stages = ramp
    elif name == "typical_day":
        stages = [*ramp, Stage("typical day", typ, 3 * step, rate(typ))]
    elif name == "busy_day":
        stages = [ramp[-1], Stage("typical day", typ, step, rate(typ)), Stage("busy day", busy, 2 * step, rate(busy))]
        probe = int(getattr(o, "kntc_probe_steps", 4))
    elif name == "spike":
        stages = [Stage("typical day", typ, step, rate(typ)), Stage("spike", 3 * busy, step, 3 * busy / 5),
                  Stage("recovery", typ, 2 * step, 3 * busy / 5)]
    elif name == "soak":
        minutes = float(getattr(o, "kntc_soak_minutes", 60))
        stages = [Stage("ramp", busy, step, rate(busy)), Stage("soak", busy, minutes * 60, rate(busy))]
    elif name == "breakpoint":
        stages = [Stage("start", typ, step, rate(typ))]
        probe = int(getattr(o, "kntc_probe_steps", 12))
    else:  # fixed
        stages = [Stage("fixed", int(getattr(o, "num_users", 1) or 1), float(getattr(o, "run_time", 0) or 10**9),
                      float(getattr(o, "spawn_rate", 1) or 1))]
    p95 = float(getattr(o, "kntc_p95_limit", P95_LIMIT_MS))
    log.info("shape %s: typical day %d users, busy day %d users, step %.0f s, probe up to %d steps",
             name, typ, busy, step, probe)
    return Staged(environment, shape, stages, probe_steps=probe, p95_limit=p95, step=step)
