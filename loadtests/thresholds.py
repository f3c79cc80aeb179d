"""The limits a load run is judged by, and the exit code they give it.

Loaded from a TOML file (loadtests/thresholds.toml by default, --kntc-thresholds to change it):
per-endpoint p95/p99/error ratio, [default] and [total] rows, and the [stage] section (the rate a
stage must reach, the requests an endpoint needs before its percentiles count). Each stage of the
shape is judged against them on its own (loadtests/verdict.py); when the run ends the verdict is
logged, written to <report dir>/stages.json, and becomes Locust's exit code (0 every target stage
held, 1 one did not), whatever Locust's own --exit-code-on-error says.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from loadtests import verdict

log = logging.getLogger("loadtests.thresholds")
STAGE_KEYS = {"min_rate_ratio", "min_requests"}


def load(path: str | Path) -> dict[str, dict[str, float]]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"thresholds {path}: {exc}") from None
    for key, limits in data.items():
        allowed = STAGE_KEYS if key == "stage" else set(verdict.LIMIT_KEYS)
        unknown = set(limits) - allowed if isinstance(limits, dict) else {"(not a table)"}
        if unknown:
            raise SystemExit(f"thresholds {path}: [{key}] has unknown limits {sorted(unknown)}")
    return data


def install(environment: Any) -> None:
    """Give the run its exit code when it ends (on the master or the single process)."""
    from locust import events

    path = getattr(environment.parsed_options, "kntc_thresholds", "") if environment.parsed_options else ""
    if path:
        load(path)  # a mistake in the file stops the run before it starts, not at its first stage

    @events.quitting.add_listener
    def _exit_code(environment: Any, **_: Any) -> None:
        shape = getattr(getattr(environment, "shape_class", None), "_impl", None)
        if shape is None:
            log.error("the run ended before its shape started: nothing was judged")
            environment.process_exit_code = 1
            return
        shape.finish_now("the run was stopped before its stages ended")
        environment.process_exit_code = shape.verdict["exit_code"]
