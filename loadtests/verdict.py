"""The verdict of a staged load run: each stage judged against its own limits, the run by its targets.

A shape's stages are of three kinds. A *target* stage is a load the deployment must carry (the
typical day, the busy day): if one of them crosses a limit, the run fails. A *probe* goes past the
target on purpose to find where the system breaks: the first stage that does not hold is the
*breakpoint*, a finding printed with its rate, never a failure. A *warm-up* (the ramp that brings
the users in, logging in all at once) is measured and shown but decides nothing.

Limits come from thresholds.toml (loadtests/thresholds.py): p95/p99/error ratio per endpoint and in
total, and in its [stage] section the rate a stage must reach (`min_rate_ratio` of the stage's
target req/s) and the requests an endpoint needs in a stage before its percentiles are judged
(`min_requests`: two slow calls of a rare endpoint are noise, not a verdict).

Pure functions over per-stage statistics; loadtests/shapes.py collects them during the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WARMUP, TARGET, PROBE = "warmup", "target", "probe"
KINDS = (WARMUP, TARGET, PROBE)
LIMIT_KEYS = ("p95_ms", "p99_ms", "error_ratio")


@dataclass
class Requests:
    """What one endpoint (or all of them) did in a stage's measured window."""

    requests: int = 0
    failures: int = 0
    hist: dict[int, int] = field(default_factory=dict)  # response time (ms, Locust's buckets) → count

    def add(self, other: Requests) -> None:
        self.requests += other.requests
        self.failures += other.failures
        for rt, n in other.hist.items():
            self.hist[rt] = self.hist.get(rt, 0) + n


@dataclass
class StageStats:
    label: str
    kind: str
    users: int
    target_rps: float  # what the stage's users should send (capacity model × scale × pace)
    seconds: float  # length of the measured window (the stage after it settled)
    endpoints: dict[str, Requests]  # "METHOD name" → requests

    def total(self) -> Requests:
        out = Requests()
        for r in self.endpoints.values():
            out.add(r)
        return out


def percentile(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if not total:
        return 0.0
    seen = 0
    for rt in sorted(hist):
        seen += hist[rt]
        if seen >= q * total:
            return float(rt)
    return float(max(hist))


def limits_for(limits: dict[str, dict[str, float]], name: str) -> dict[str, float]:
    if name == "total":
        return {k: v for k, v in limits.get("total", limits.get("default", {})).items() if k in LIMIT_KEYS}
    return {k: v for k, v in {**limits.get("default", {}), **limits.get(name, {})}.items() if k in LIMIT_KEYS}


def _measure(r: Requests) -> dict[str, Any]:
    n = r.requests
    return {"requests": n, "failures": r.failures,
            "p50_ms": percentile(r.hist, 0.5), "p95_ms": percentile(r.hist, 0.95), "p99_ms": percentile(r.hist, 0.99),
            "error_ratio": round(r.failures / n, 5) if n else 0.0}


def _crossed(name: str, measured: dict[str, Any], limits: dict[str, float], judge_percentiles: bool) -> list[str]:
    out = []
    for key, limit in limits.items():
        if key != "error_ratio" and not judge_percentiles:
            continue
        value = measured[key]
        if value > limit:
            shown = f"{value:.2%} > {limit:.2%}" if key == "error_ratio" else f"{value:.0f} ms > {limit:.0f} ms"
            out.append(f"{name} {key.removesuffix('_ms')} {shown}")
    return out


def short_of_rate(requests: int, expected: float, ratio: float) -> bool:
    """Fewer requests than `ratio` of those expected, by more than chance explains.

    Users that think for exponential times send a Poisson-like count: a few users in a short window
    fall 20 % short by chance alone (6 users × 1 req/s for 8 s: 48 expected, σ ≈ 7). The shortfall
    counts only beyond three standard deviations; over a real stage (thousands of requests) the
    ratio is what binds."""
    return requests < ratio * expected and requests < expected - 3 * expected ** 0.5


def judge_stage(stats: StageStats, limits: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One stage against its limits: its figures, its endpoints, what it crossed, whether it held."""
    stage_limits = limits.get("stage", {})
    min_requests = int(stage_limits.get("min_requests", 0))
    rows = []
    crossed: list[str] = []
    for name in sorted(stats.endpoints):
        m = _measure(stats.endpoints[name])
        enough = m["requests"] >= max(min_requests, 1)
        # An endpoint with a few calls in the window: its errors count in the total, its p95 is noise.
        row_crossed = _crossed(name, m, limits_for(limits, name), True) if enough else []
        rows.append({"name": name, **m, "judged": enough, "crossed": row_crossed})
        crossed += row_crossed
    total = _measure(stats.total())
    crossed += _crossed("total", total, limits_for(limits, "total"), True)
    rps = total["requests"] / stats.seconds if stats.seconds > 0 else 0.0
    ratio = stage_limits.get("min_rate_ratio")
    if ratio and stats.target_rps and short_of_rate(total["requests"], stats.target_rps * stats.seconds, ratio):
        crossed.append(f"rate {rps:.1f} req/s < {ratio:.0%} of the target {stats.target_rps:.1f} req/s")
    if not total["requests"]:
        crossed.append("no request was answered")
    return {"label": stats.label, "kind": stats.kind, "users": stats.users, "seconds": round(stats.seconds, 1),
            "target_rps": round(stats.target_rps, 1), "rps": round(rps, 1), **total, "measured": True,
            "held": not crossed, "crossed": crossed, "endpoints": rows}


def unmeasured(label: str, kind: str, users: int, target_rps: float) -> dict[str, Any]:
    """A stage the run ended in before it settled: nothing to judge, so it did not hold."""
    return {"label": label, "kind": kind, "users": users, "seconds": 0.0, "target_rps": round(target_rps, 1),
            "rps": 0.0, "requests": 0, "failures": 0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0,
            "error_ratio": 0.0, "measured": False, "held": False,
            "crossed": ["not measured: the run ended before the stage settled"], "endpoints": []}


def _brief(stage: dict[str, Any]) -> dict[str, Any]:
    return {k: stage[k] for k in ("label", "kind", "users", "rps", "target_rps", "p95_ms", "error_ratio", "crossed")}


def decide(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's verdict: passed when every target stage held; the breakpoint as a finding."""
    targets = [s for s in stages if s["kind"] == TARGET]
    failed = next((s for s in targets if not s["held"]), None)
    judged = [s for s in stages if s["kind"] != WARMUP and s["measured"]]
    broke = next((s for s in judged if not s["held"]), None)
    held = [s for s in stages if s["held"]]
    best = max(held, key=lambda s: s["rps"]) if held else None
    if failed is not None:
        more = len(failed["crossed"]) - 1
        line = (f"FAILED: target stage '{failed['label']}' did not hold: {failed['crossed'][0]}"
                + (f" (and {more} more)" if more > 0 else ""))
    elif not targets:
        line = "FAILED: the shape has no target stage to judge"
    else:
        line = "PASSED: every target stage held (" + ", ".join(
            f"{s['label']} {s['rps']} req/s, p95 {s['p95_ms']:.0f} ms" for s in targets) + ")"
    if broke is not None:
        finding = (f"breakpoint: '{broke['label']}' ({broke['kind']}) at {broke['rps']} req/s, {broke['users']} users: "
                   f"{broke['crossed'][0]}")
    elif best is not None:
        finding = (f"no breakpoint: every stage held, up to {best['rps']} req/s ({best['users']} users); "
                   "capacity is at least this")
    else:
        finding = "no breakpoint: no stage was measured"
    passed = failed is None and bool(targets)
    return {"passed": passed, "exit_code": 0 if passed else 1, "line": line, "finding": finding,
            "failed_stage": _brief(failed) if failed else None, "breakpoint": _brief(broke) if broke else None,
            "last_good": _brief(best) if best else None, "saturated": broke is not None}
