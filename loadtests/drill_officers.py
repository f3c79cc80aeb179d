# ruff: noqa: S311  (random choices of simulated officers, not secrets)
"""Locust users for the drills: officers reading their work at a fixed rate while the platform is
changed or broken under them (loadtests/drill_load.py starts one Locust process per target).

Each user is one officer's session doing the read side of the officer mix (the inbox, a case file of
it, a search), paced by `constant_throughput`, so the offered rate does not fall when the platform
slows down: a slow or failed answer shows as such instead of thinning the load. Every answer is
appended to the answers log as `start_epoch seconds status ok name[<tab>error]`, which is what the drill reads
("no request failed", "the longest an officer waited"); Locust's own CSV and HTML stay beside it.

Configured by `KNTC_DRILL_LOAD` (JSON: username, password, rate_per_user, ca, answers).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

import gevent.ssl
from locust import FastHttpUser, constant_throughput, events, task

CONFIG: dict[str, Any] = json.loads(os.environ.get("KNTC_DRILL_LOAD", "{}"))
SEARCHES = ("bồi thường", "thu hồi đất", "tái định cư", "giải phóng mặt bằng")
_answers = open(CONFIG["answers"], "a", buffering=1, encoding="utf-8") if CONFIG else None  # noqa: SIM115


@events.request.add_listener
def _record(name: str, response_time: float, response: Any, exception: Any, start_time: float | None = None,
            **_kw: Any) -> None:
    if _answers is None:
        return
    took = response_time / 1000
    started = start_time if start_time is not None else time.time() - took
    status = getattr(response, "status_code", 0) or 0
    error = "" if exception is None else "\t" + " ".join(str(exception).split())[:300]
    _answers.write(f"{started:.6f} {took:.6f} {status} {int(exception is None)} {name}{error}\n")


def _verified_context(**_kw: Any) -> gevent.ssl.SSLContext:
    # The lab's own CA, never an unverified connection (FastHttpUser's default is insecure).
    return gevent.ssl.create_default_context(cafile=CONFIG["ca"])


class DrillOfficer(FastHttpUser):
    insecure = False
    ssl_context_factory = staticmethod(_verified_context)
    network_timeout = 60.0
    connection_timeout = 10.0
    wait_time = constant_throughput(float(CONFIG.get("rate_per_user", 1.0)))

    def on_start(self) -> None:
        self.token: str | None = None
        self.codes: list[str] = []

    def _call(self, path: str, name: str, **kw: Any) -> Any:
        if self.token is None and not self._log_in():
            return None
        with self.client.get(path, name=name, catch_response=True,
                             headers={"Authorization": f"Bearer {self.token}"}, **kw) as r:
            if r.status_code == 401:  # the session is gone (a restored database): log in again next time
                self.token = None
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200] or r.error}")
                return None
            r.success()
            return r.json()

    def _log_in(self) -> bool:
        with self.client.post("/api/auth/login", name="/api/auth/login", catch_response=True,
                              json={"username": CONFIG["username"], "password": CONFIG["password"]}) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {(r.text or '')[:200] or r.error}")
                return False
            self.token = r.json()["token"]
            r.success()
            return True

    @task(3)
    def inbox(self) -> None:
        body = self._call("/api/cases", "/api/cases")
        if body and body.get("data"):
            self.codes = [c["code"] for c in body["data"]]

    @task(2)
    def case_file(self) -> None:
        if not self.codes:
            return self.inbox()
        self._call(f"/api/cases/{random.choice(self.codes)}", "/api/cases/[code]")
        return None

    @task(1)
    def search(self) -> None:
        self._call("/api/search", "/api/search", params={"q": random.choice(SEARCHES)})
