"""Per-endpoint limits (p95, p99, error ratio) checked when a run ends; they set the exit code.

Loaded from a TOML file (loadtests/thresholds.toml by default, --kntc-thresholds to change it);
the verdict is logged, written to <report dir>/thresholds.json, and becomes Locust's exit code
(0 all within limits, 1 any limit crossed), whatever Locust's own --exit-code-on-error says.
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

log = logging.getLogger("loadtests.thresholds")


def load(path: str | Path) -> dict[str, dict[str, float]]:
    data = tomllib.loads(Path(path).read_text())
    for key, limits in data.items():
        unknown = set(limits) - {"p95_ms", "p99_ms", "error_ratio"}
        if unknown:
            raise SystemExit(f"thresholds {path}: [{key}] has unknown limits {sorted(unknown)}")
    return data


def check_entry(label: str, entry: Any, limits: dict[str, float]) -> dict[str, Any]:
    n = entry.num_requests
    measured = {
        "requests": n,
        "p95_ms": entry.get_response_time_percentile(0.95) if n else None,
        "p99_ms": entry.get_response_time_percentile(0.99) if n else None,
        "error_ratio": round(entry.num_failures / n, 5) if n else None,
    }
    crossed = [f"{k} {measured[k]} > {v}" for k, v in limits.items()
               if measured.get(k) is not None and measured[k] > v]
    return {"name": label, **measured, "limits": limits, "crossed": crossed}


def evaluate(stats: Any, limits: dict[str, dict[str, float]]) -> dict[str, Any]:
    default = limits.get("default", {})
    rows = [check_entry(f"{e.method} {e.name}", e, {**default, **limits.get(f"{e.method} {e.name}", {})})
            for e in sorted(stats.entries.values(), key=lambda e: (e.name, e.method))]
    total = check_entry("total", stats.total, limits.get("total", default))
    if stats.total.num_requests == 0:
        total["crossed"].append("no request was made")
    rows.append(total)
    failed = [r for r in rows if r["crossed"]]
    return {"passed": not failed, "rows": rows}


def install(environment: Any) -> None:
    """Check the limits when the run ends (on the master or the single process)."""
    from locust import events

    @events.quitting.add_listener
    def _check(environment: Any, **_: Any) -> None:
        path = getattr(environment.parsed_options, "kntc_thresholds", "") if environment.parsed_options else ""
        if not path:
            return
        verdict = evaluate(environment.runner.stats, load(path))
        for row in verdict["rows"]:
            if row["crossed"]:
                log.error("threshold crossed: %s: %s", row["name"], "; ".join(row["crossed"]))
        log.info("thresholds (%s): %s", path, "all within limits" if verdict["passed"] else "CROSSED")
        folder = getattr(environment.parsed_options, "kntc_report_dir", "")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "thresholds.json").write_text(json.dumps({"file": str(path), **verdict}, indent=1))
        environment.process_exit_code = 0 if verdict["passed"] else 1
