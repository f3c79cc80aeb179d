"""Officers working through the app hosts at a fixed rate while a test changes the platform under
them: a Locust load (loadtests/drill_load.py) whose every answer is kept, for "no request failed,
the slowest took…" and "the longest an officer waited after the fault"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtests.drill_load import Answers, fixed_rate

from .conftest import ADDR, CA, DC_APP, secret

RATE = 10.0  # requests a second per app host: under nginx's per-address API rate (app_nginx_api_rate, 20 r/s)
DEMO_OFFICER = "tiepdan.badinh"  # core_app/cli/demo.py: the lab loads the demo accounts
REPORTS = Path(__file__).resolve().parents[2] / "test-output" / "drill-load"


@contextmanager
def officers_reading(apps: list[str] = DC_APP, port: int = 443, rate: float = RATE,
                     answered_first: bool = True) -> Iterator[Answers]:
    """Four officers per app host reading their inbox, case files and searches at `rate` requests a
    second in all, from before the block to its end; through the host's nginx (443) or the site
    balancer on it (haproxy_web_port). The Locust report is kept under test-output/drill-load/."""
    folder = REPORTS / time.strftime("%Y%m%dT%H%M%S")
    with fixed_rate([f"https://{ADDR[app]}:{port}" for app in apps], username=DEMO_OFFICER,
                    password=secret("demo_password"), ca=CA, rate=rate, folder=folder,
                    answered_first=answered_first) as answers:
        yield answers
