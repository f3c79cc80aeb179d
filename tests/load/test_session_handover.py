"""A simulated officer whose session ends hands its seat on before choosing a case: the next
officer (of another unit) never acts on what the last one saw. Locust patches the standard library
when imported, so the scenario runs in a process of its own, with its calls recorded, not sent."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCENARIO = textwrap.dedent('''
    import json, time
    from locust.env import Environment
    from loadtests import locustfile as lf

    lf.DATA.update({"cases": [{"code": "T9-2026-000009"}], "routes": []})  # the run-wide sample
    lf.SEATS.load({"commune.handling": [
        {"username": "a.x1", "unit": "X1", "password": "p", "ready": True},
        {"username": "b.x2", "unit": "X2", "password": "p", "ready": True}]})
    calls = []

    class Handling(lf.Handling):
        key = "commune.handling"
        host = "http://127.0.0.1:9"  # never reached: request() is replaced

        def request(self, method, path, name, ok=(200,), **kw):
            who = (kw.get("headers") or {}).get("Authorization") or kw.get("json", {}).get("username")
            calls.append([method, path, who])
            if path == "/api/auth/login":
                return {"token": "token-of-" + kw["json"]["username"]}
            if path.startswith("/api/cases?"):
                return {"data": []}  # the next officer's inbox is empty
            return {}

    user = Handling(Environment(user_classes=[Handling]))
    user.on_start()
    first = user.officer.username
    # What the first officer saw of its unit's inbox, then its session ends.
    user.cases = {"in_handling": [{"code": "X1-2026-000001", "version": 1}]}
    user.own, user.session_ends = True, time.monotonic() - 1
    user.act("in_handling", "accept")
    user.cases = {"in_handling": [{"code": "X1-2026-000002", "version": 1}]}
    user.session_ends = time.monotonic() - 1
    user.open_case()
    print(json.dumps({"first": first, "calls": calls}))
''')


def test_a_handed_on_seat_never_acts_on_the_last_officers_cases() -> None:
    run = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    calls = out["calls"]
    assert calls[0][1] == "/api/auth/login" and calls[0][2] == out["first"]
    # The session ended before the case was chosen: the next officer logs in, reads its own inbox,
    # and neither transitions nor opens a case of the first officer's unit.
    assert [c[1] for c in calls[1:3]] == ["/api/auth/login", "/api/cases?scope=unit&status=in_handling&per_page=20"]
    assert calls[1][2] != out["first"]
    assert not [c for c in calls if "X1-2026" in c[1]], calls
