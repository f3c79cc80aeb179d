"""Figures the drills and rehearsals measure (one value per trial), printed at the end of the session
as median, p95 and max, and kept in test-output/figures.json. Timed behaviour is reported here,
never asserted: the machine is shared and noisy."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "test-output"
# tests/run.py gives the session it runs beside the lab's its own file, and merges it at the end.
FILE = os.environ.get("KNTC_FIGURES_FILE", "figures.json")
FIGURES: dict[str, list[float]] = {}
UNITS: dict[str, str] = {}


def record(name: str, value: float, unit: str = "s") -> None:
    """One trial's figure: kept for the session's summary and in test-output/figures.json."""
    FIGURES.setdefault(name, []).append(value)
    UNITS[name] = unit
    OUT.mkdir(exist_ok=True)
    summary = {k: {"trials": v, "median": statistics.median(v)} for k, v in FIGURES.items()}
    (OUT / FILE).write_text(json.dumps(summary, indent=2))


def print_figures(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("figures")
    for name, values in FIGURES.items():
        vals = ", ".join(f"{v:.2f}" for v in values)
        # The 95th percentile by the nearest-rank rule (of ten trials, the highest).
        p95 = sorted(values)[max(0, -(-len(values) * 95 // 100) - 1)]
        u = UNITS.get(name, "s")
        terminalreporter.write_line(f"{name}: median {statistics.median(values):.2f} {u}, p95 {p95:.2f} {u}, "
                                    f"max {max(values):.2f} {u} over {len(values)} trial(s)  ({vals})")
