"""Load shapes, in users over time, sized from the capacity model and scaled to the rig.

Each shape declares its stages: a label, a length, the users (and so the req/s the capacity model
expects of them) and a kind — a warm-up that brings the users in, a target the deployment must
carry, or a probe past the target that looks for the breakpoint. Every stage is measured on its own
once it has settled (Locust's statistics per endpoint, snapshotted at the start and the end of the
window, so the same code judges a single process and a master with its workers) and judged against
the thresholds (loadtests/verdict.py): the run fails only when a target stage does not hold; the
first stage that does not hold is reported as the breakpoint.

    ramp         0 → typical day over three steps (each a target)
    typical_day  ramp (warm-up), then the typical day held (target)
    busy_day     warm-up at the typical day, typical day and busy day (targets); then probes ×1.4
                 above the busy day while they hold (--kntc-probe-steps)
    spike        typical day (target), three times the busy day for one step (probe), back to the
                 typical day (target: it recovers)
    soak         ramp (warm-up), the busy day held for --kntc-soak-minutes (target)
    breakpoint   the typical day (target), then ×1.4 per step (probes) until a stage does not hold
    fixed        -u/-r as given (with -t), one target stage, for ad-hoc runs
    national     every officer of the test data at once, one user each (mostly thinking), and the
                 scenario's citizens × scale: the users come in at --kntc-spawn-rate (warm-up), then
                 the whole population is held for three steps (target)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests import capacity, thresholds, verdict
from loadtests.verdict import PROBE, TARGET, WARMUP, Requests, StageStats

log = logging.getLogger("loadtests.shapes")

SHAPES = ("ramp", "typical_day", "busy_day", "spike", "soak", "breakpoint", "fixed", "national")
PROBE_FACTOR = 1.4


@dataclass
class Stage:
    label: str
    users: int
    seconds: float
    spawn_rate: float
    kind: str = TARGET
    target_rps: float = 0.0  # what these users send by the model (users × req/s per user)


@dataclass
class Snapshot:
    at: float
    endpoints: dict[str, Requests]
    # The wall clock too: what is measured beside the run (each tier's CPU) is matched to a stage by it.
    wall: float = field(default_factory=time.time)


def snapshot(stats: Any, at: float) -> Snapshot:
    """Locust's running statistics per endpoint at run time `at` (s), copied: they keep growing."""
    return Snapshot(at, {
        f"{e.method} {e.name}": Requests(e.num_requests, e.num_failures, dict(e.response_times))
        for e in stats.entries.values()})


def window(before: Snapshot, after: Snapshot) -> dict[str, Requests]:
    """What each endpoint did between two snapshots."""
    out = {}
    for name, now in after.endpoints.items():
        was = before.endpoints.get(name, Requests())
        hist = {rt: n - was.hist.get(rt, 0) for rt, n in now.hist.items() if n - was.hist.get(rt, 0) > 0}
        if now.requests - was.requests > 0:
            out[name] = Requests(now.requests - was.requests, now.failures - was.failures, hist)
    return out


class Staged:
    """Runs the stages in order, measuring and judging each one after it settles."""

    def __init__(self, environment: Any, shape: Any, stages: list[Stage], limits: dict[str, dict[str, float]],
                 probe_steps: int = 0, max_users: int = 100_000, step: float = 60.0, rps_per_user: float = 0.0) -> None:
        self.env, self.shape, self.stages, self.step = environment, shape, list(stages), step
        self.limits, self.probe_steps, self.max_users = limits, probe_steps, max_users
        self.rps_per_user = rps_per_user
        self.results: list[dict[str, Any]] = []
        self.index = -1
        self.stage_started = 0.0
        self.snap: Snapshot | None = None
        self.verdict: dict[str, Any] = {}
        self.done = False

    def _close(self) -> dict[str, Any]:
        stage, snap = self.stages[self.index], self.snap
        if snap is None:
            res = verdict.unmeasured(stage.label, stage.kind, stage.users, stage.target_rps)
        else:
            now = snapshot(self.env.runner.stats, self.shape.get_run_time())
            res = verdict.judge_stage(StageStats(stage.label, stage.kind, stage.users, stage.target_rps,
                                                 max(now.at - snap.at, 1e-6), window(snap, now)), self.limits)
            res["window"] = [round(snap.wall, 3), round(now.wall, 3)]
        self.results.append(res)
        log.info("stage %-14s %-6s users %5d  %7.1f req/s (target %.1f)  p95 %6.0f ms  errors %.2f%%  %s",
                 res["label"], res["kind"], res["users"], res["rps"], res["target_rps"], res["p95_ms"],
                 100 * res["error_ratio"], "held" if res["held"] else "NOT HELD: " + "; ".join(res["crossed"]))
        return res

    def _next_probe(self, last: dict[str, Any]) -> Stage | None:
        done = sum(1 for s in self.stages if s.kind == PROBE)
        if done >= self.probe_steps or not last["held"] or last["users"] >= self.max_users:
            return None
        users = min(self.max_users, max(last["users"] + 1, round(last["users"] * PROBE_FACTOR)))
        return Stage(f"probe {done + 1}", users, self.step, max(1.0, (users - last["users"]) / (0.5 * self.step)),
                     PROBE, users * self.rps_per_user)

    def tick(self) -> tuple[int, float] | None:
        if self.done:
            return None
        t = self.shape.get_run_time()
        if self.index < 0 or t - self.stage_started >= self.stages[self.index].seconds:
            if self.index >= 0:
                last = self._close()
                if self.probe_steps and self.index == len(self.stages) - 1:
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
        # Measure once the users that join (or leave) are all in and a fifth of the stage has passed.
        before = self.stages[self.index - 1].users if self.index > 0 else 0
        settle = abs(stage.users - before) / max(stage.spawn_rate, 0.1) + 0.2 * stage.seconds
        if self.snap is None and (t - self.stage_started) >= min(settle, 0.6 * stage.seconds):
            self.snap = snapshot(self.env.runner.stats, t)
        return stage.users, stage.spawn_rate

    def finish_now(self, why: str) -> None:
        """End the run before its stages do (the stage under way is judged as it stands)."""
        if not self.done:
            log.info("ending the run: %s", why)
            if 0 <= self.index < len(self.stages):
                self._close()
            self._finish()

    def _finish(self) -> None:
        self.done = True
        # Stages the run never reached did not hold either: a target skipped is a target not shown.
        for stage in self.stages[len(self.results):]:
            self.results.append(verdict.unmeasured(stage.label, stage.kind, stage.users, stage.target_rps))
        self.verdict = verdict.decide(self.results)
        (log.info if self.verdict["passed"] else log.error)("verdict: %s", self.verdict["line"])
        log.info("%s", self.verdict["finding"])
        write_stage_report(self.env, {"stages": self.results, "verdict": self.verdict})


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


def national_users(environment: Any) -> int:
    """One user per officer (the classes' fixed counts) and the scenario's citizens × scale."""
    o = environment.parsed_options
    officers = sum(getattr(c, "fixed_count", 0) or 0 for c in environment.user_classes)
    sc = capacity.Model().scenario(capacity.SCENARIOS[getattr(o, "kntc_scenario", "stress")])
    citizens = any(getattr(c, "key", "") == "citizen" for c in environment.user_classes)
    return officers + (round(sc["classes"]["citizen"]["concurrent"] * getattr(o, "kntc_scale", 1.0)) if citizens else 0)


def rps_per_user(environment: Any) -> float:
    """Requests/s one simulated user sends by the model: the scenario's req/s ÷ its users, × the pace."""
    o = environment.parsed_options
    sc = capacity.Model().scenario(capacity.SCENARIOS[getattr(o, "kntc_scenario", "busy")])
    users = sc["officers_concurrent"] + sc["classes"]["citizen"]["concurrent"]
    return sc["total_rps"] / users * float(getattr(o, "kntc_pace", 1.0) or 1.0) if users else 0.0


def stage_limits(environment: Any) -> dict[str, dict[str, float]]:
    o = environment.parsed_options
    path = getattr(o, "kntc_thresholds", "")
    limits = thresholds.load(path) if path else {}
    p95 = float(getattr(o, "kntc_p95_limit", 0) or 0)
    if p95:  # the capacity criterion given on the command line: all requests of a stage together
        limits = {**limits, "total": {**limits.get("total", limits.get("default", {})), "p95_ms": p95}}
    return limits


def build(environment: Any, shape: Any) -> Staged:
    o = environment.parsed_options
    name = getattr(o, "kntc_shape", "busy_day")
    step = float(getattr(o, "kntc_step_seconds", 60))
    lv = levels(environment)
    typ, busy = lv["typical"], lv["busy"]
    per_user = rps_per_user(environment)

    def rate(users: int) -> float:
        return max(1.0, users / (0.5 * step))  # reach a step's users within half the step

    def stage(label: str, users: int, seconds: float, spawn: float, kind: str = TARGET) -> Stage:
        return Stage(label, users, seconds, spawn, kind, users * per_user)

    ramp = [stage(f"ramp {i}/3", max(1, typ * i // 3), step, rate(typ)) for i in (1, 2, 3)]
    stages: list[Stage]
    probe = 0
    if name == "ramp":
        stages = ramp
    elif name == "typical_day":
        stages = [*(stage(s.label, s.users, s.seconds, s.spawn_rate, WARMUP) for s in ramp),
                  stage("typical day", typ, 3 * step, rate(typ))]
    elif name == "busy_day":
        # The warm-up brings every user in at the typical day (their logins all at once); the typical
        # day is then measured on users that are already working.
        stages = [stage("warm-up", typ, step, rate(typ), WARMUP), stage("typical day", typ, step, rate(typ)),
                  stage("busy day", busy, 2 * step, rate(busy))]
        probe = int(getattr(o, "kntc_probe_steps", 4))
    elif name == "spike":
        stages = [stage("typical day", typ, step, rate(typ)), stage("spike", 3 * busy, step, 3 * busy / 5, PROBE),
                  stage("recovery", typ, 2 * step, 3 * busy / 5)]
    elif name == "soak":
        minutes = float(getattr(o, "kntc_soak_minutes", 60))
        stages = [stage("ramp", busy, step, rate(busy), WARMUP), stage("soak", busy, minutes * 60, rate(busy))]
    elif name == "breakpoint":
        stages = [stage("start", typ, step, rate(typ))]
        probe = int(getattr(o, "kntc_probe_steps", 12))
    elif name == "national":
        users = national_users(environment)
        spawn = float(getattr(o, "kntc_spawn_rate", 1000) or 1000)
        stages = [stage("spawn", users, users / spawn + step, spawn, WARMUP),
                  stage("national population", users, 3 * step, spawn)]
    else:  # fixed
        stages = [stage("fixed", int(getattr(o, "num_users", 1) or 1), float(getattr(o, "run_time", 0) or 10**9),
                        float(getattr(o, "spawn_rate", 1) or 1))]
    log.info("shape %s: typical day %d users, busy day %d users (%.2f req/s per user), step %.0f s, "
             "probe up to %d steps", name, typ, busy, per_user, step, probe)
    return Staged(environment, shape, stages, stage_limits(environment), probe_steps=probe, step=step,
                  rps_per_user=per_user)
