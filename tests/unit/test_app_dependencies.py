"""The hosts install the case service from requirements/app.lock alone: every package core_app
imports must be in it, or the service dies at its start on a host while every local test passes
(the local venv has every extra)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Imported only where the test or load extras are installed, never by the running service.
NOT_ON_HOSTS = {"tests", "loadtests", "connect_client", "dr"}


def imported_top_levels() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in (ROOT / "core_app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def locked() -> set[str]:
    text = (ROOT / "requirements/app.lock").read_text()
    return {re.sub(r"[-_.]+", "-", m).lower() for m in re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.M)}


def test_every_package_core_app_imports_is_in_the_hosts_lock():
    dists = importlib.metadata.packages_distributions()
    have = locked()
    missing = {}
    for top, where in imported_top_levels().items():
        if top in sys.stdlib_module_names or top in NOT_ON_HOSTS or top == "core_app":
            continue
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(top, [top])}
        if not names & have:
            missing[top] = where
    assert not missing, f"imported by core_app but not in requirements/app.lock (pyproject [app]): {missing}"
