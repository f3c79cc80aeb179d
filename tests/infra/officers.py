"""Officers reading their inbox through nginx on the DC app hosts while a test changes the
platform under them: every answer's status and time, for "no request failed, the slowest took…"."""

from __future__ import annotations

import itertools
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from .conftest import ADDR, CA, DC_APP, secret, wait_for

PACE = 0.1  # seconds between one officer's requests
DEMO_OFFICER = "tiepdan.badinh"  # core_app/cli/demo.py: the lab loads the demo accounts


@dataclass
class Reading:
    answers: list[tuple[int, float]] = field(default_factory=list)  # (status, seconds); 0: no answer
    started: list[float] = field(default_factory=list)  # each answer's request start (monotonic)

    @property
    def failed(self) -> list[tuple[int, float]]:
        return [a for a in self.answers if a[0] != 200]

    def longest_wait_after(self, t: float) -> float | None:
        """The longest time after `t` in which no officer got an answer (200), once answers came
        again: what an officer sees of an outage that began at `t`."""
        ends = sorted(at + took for at, (status, took) in zip(self.started, self.answers, strict=True)
                      if at + took > t and status == 200)
        if not ends:
            return None
        return max(b - a for a, b in itertools.pairwise([t, *ends]))

    @property
    def slowest(self) -> float:
        return max(seconds for _, seconds in self.answers)

    def summary(self) -> str:
        return f"{len(self.answers)} requests, {len(self.failed)} not 200, slowest {self.slowest:.2f} s"


@contextmanager
def officers_reading(apps: list[str] = DC_APP, port: int = 443, pace: float = PACE) -> Iterator[Reading]:
    """One officer per app host reading the inbox in a loop, from before the block to its end;
    through the host's nginx (443) or the site balancer on it (haproxy_web_port)."""
    ctx = ssl.create_default_context(cafile=str(CA))
    clients = []
    for app in apps:
        c = httpx.Client(base_url=f"https://{ADDR[app]}:{port}", verify=ctx, timeout=60)
        r = c.post("/api/auth/login", json={"username": DEMO_OFFICER, "password": secret("demo_password")})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        clients.append(c)
    reading = Reading()
    stop = threading.Event()

    def officer(c: httpx.Client) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = c.get("/api/cases").status_code
            except httpx.HTTPError:
                status = 0
            took = time.monotonic() - started
            reading.started.append(started)
            reading.answers.append((status, took))
            # Ten a second: under nginx's per-address API rate (app_nginx_api_rate, 20 r/s).
            time.sleep(max(0.0, pace - took))

    threads = [threading.Thread(target=officer, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(reading.answers) > 20, 30, "officers read their inbox")
        yield reading
    finally:
        stop.set()
        for t in threads:
            t.join(70)
        for c in clients:
            c.close()
