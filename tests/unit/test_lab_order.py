"""The lab's tests that only read it run while site.yml runs on it once more after the bring-up; every
other lab test waits for that run, so that no drill races site.yml and the idempotence test counts
no change a test made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import conftest as root
from tests.infra import conftest as lab

ROOT = Path(__file__).resolve().parents[2]

# Collects the lab's tests in the order the session would run them, with their `readonly` marker.
RECORD = """
import json, sys, pytest

class Order:
    def pytest_collection_finish(self, session):
        self.items = [(i.nodeid, i.get_closest_marker("readonly") is not None) for i in session.items]

order = Order()
code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "lab"], plugins=[order])
print("ORDER " + json.dumps(order.items))
sys.exit(code)
"""


def test_the_lab_tests_that_only_read_come_before_every_one_that_changes_the_lab() -> None:
    r = subprocess.run([sys.executable, "-c", RECORD], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "KNTC_LAB_EARLY": "0"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    items = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("ORDER "))[len("ORDER "):])
    flags = [reads for _, reads in items]
    first_changing = flags.index(False)
    assert not any(flags[first_changing:]), [n for n, reads in items[first_changing:] if reads]
    # The checks the README names as read-only are among them.
    reading = {n.split("::")[0] for n, reads in items[:first_changing]}
    assert {f"tests/infra/test_{m}.py" for m in ("tls", "firewall", "services", "logs")} <= reading, reading
    # The idempotence test itself waits for the run it judges.
    assert all(not reads for n, reads in items if n.startswith("tests/infra/test_provisioning.py"))


class _Item:
    def __init__(self, *markers: str) -> None:
        self.markers = markers

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


@pytest.fixture
def second_run_going_on(monkeypatch: pytest.MonkeyPatch):
    """A bring-up that has ended and a second site.yml run that goes on for another second."""
    up = threading.Event()
    up.set()
    ended: list[float] = []
    thread = threading.Thread(target=lambda: (time.sleep(1.0), ended.append(time.monotonic())))
    now = time.monotonic()
    monkeypatch.setattr(lab, "_early", {"started": now, "ready": now, "rc": 0, "up": up, "waited": True,
                                        "thread": thread})
    thread.start()
    yield ended
    thread.join()


def test_a_lab_test_that_changes_the_lab_starts_after_the_second_run(second_run_going_on) -> None:
    root.pytest_runtest_setup(_Item("lab"))  # type: ignore[arg-type]
    assert second_run_going_on, "the test started while site.yml was still running"


def test_a_read_only_lab_test_starts_beside_the_second_run(second_run_going_on) -> None:
    root.pytest_runtest_setup(_Item("lab", "readonly"))  # type: ignore[arg-type]
    assert not second_run_going_on, "the read-only test waited for the second run"
