"""What a simulated officer costs the load generator while it thinks, and officers shared by users.

Locust patches the standard library when imported, so each scenario runs in a process of its own.
The memory figure is printed, not asserted (a measurement on a shared machine); what is asserted is
what makes it cheap: every officer is a user of its own, none of them has sent a request or opened
a connection while thinking, and the users share one connection pool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from loadtests import seats

ROOT = Path(__file__).resolve().parent.parent.parent
IDLE = int(os.environ.get("KNTC_IDLE_OFFICERS", "10000"))

IDLE_SCENARIO = textwrap.dedent('''
    import gc, json, sys, types
    import gevent, psutil
    from locust.env import Environment
    from loadtests import locustfile as lf

    n = int(sys.argv[1])
    lf.DATA.update({"cases": [{"code": "T9-2026-000009", "secret": "s"}], "routes": []})
    lf.SEATS.load({"commune.handling": [
        {"username": f"o{i}", "unit": "X1", "password": "p", "ready": True} for i in range(n)]})
    sent = []

    class Handling(lf.Handling):
        key = "commune.handling"
        host = "http://127.0.0.1:9"  # nothing listens: a request would fail, and is recorded

    # Think times of centuries: the measured window sees officers thinking, none acting.
    options = types.SimpleNamespace(kntc_shape="national", kntc_pace=1e-9, kntc_scenario="stress",
                                    kntc_connections=64, kntc_session_seconds=0)
    env = Environment(user_classes=[Handling], parsed_options=options, host=Handling.host)
    env.events.request.add_listener(lambda **kw: sent.append(kw["name"]))
    lf._share_connections(env)
    runner = env.create_local_runner()
    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    runner.start(n, spawn_rate=n)
    # Measured once every user has started: it holds its officer and waits for its first action.
    while runner.user_count < n or sum(len(h) for h in lf.SEATS.held.values()) < n:
        gevent.sleep(0.5)
    gevent.sleep(1)
    gc.collect()
    after = proc.memory_info().rss
    users = list(runner.user_greenlets)
    held = {g.args[0].officer.username for g in users if g.args and getattr(g.args[0], "officer", None)}
    pools = {id(g.args[0].client.client.clientpool) for g in users}
    print(json.dumps({"users": runner.user_count, "officers": len(held), "requests": len(sent),
                      "pools": len(pools), "kb_per_officer": (after - before) / n / 1024,
                      "rss_mb": after / 2**20}))
    runner.quit()
''')


def test_ten_thousand_thinking_officers_are_cheap_users_of_their_own() -> None:
    run = subprocess.run([sys.executable, "-c", IDLE_SCENARIO, str(IDLE)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\n{IDLE:,} thinking officers: {out['kb_per_officer']:.1f} KiB each, process {out['rss_mb']:.0f} MiB; "
          f"162,318 at this rate: {out['kb_per_officer'] * 162_318 / 2**20:.2f} GiB")
    assert out["users"] == IDLE and out["officers"] == IDLE  # one officer per user, none shared
    assert out["requests"] == 0  # thinking: no login, no request before the officer's first action
    assert out["pools"] == 1  # one connection pool for the process, not one per officer


SHARED_SCENARIO = textwrap.dedent('''
    import json, time
    import gevent
    import pyotp
    from locust.env import Environment
    from loadtests import locustfile as lf

    # One head with a second factor, played by five users (a run with fewer officers than users),
    # and a small unit's one officer that holds two duties (two classes, one account).
    secret = pyotp.random_base32()
    lf.DATA.update({"cases": [{"code": "T9-2026-000009"}], "routes": []})
    lf.SEATS.load({"commune.head": [{"username": "h.x1", "unit": "X1", "password": "p", "totp": secret,
                                     "ready": True}],
                   "district.reception": [{"username": "d.x2", "unit": "X2", "password": "p", "totp": secret,
                                           "ready": True}],
                   "district.handling": [{"username": "d.x2", "unit": "X2", "password": "p", "totp": secret,
                                          "ready": True}]})
    used = {}  # username -> steps accepted: the server's rule, a step at most once and in order
    logins = []

    def fake(cls_key):
        class U(lf.Head if cls_key == "commune.head" else lf.Handling):
            key = cls_key
            host = "http://127.0.0.1:9"

            def request(self, method, path, name, ok=(200,), refused=(), **kw):
                if path != "/api/auth/login":
                    return {"data": []}
                body = kw["json"]
                gevent.sleep(0.05)  # the answer takes a while: others could send their codes meanwhile
                step = next(s for s in range(int(time.time() // 30) - 1, int(time.time() // 30) + 2)
                            if pyotp.TOTP(secret).at(s * 30) == body["code"])
                last = used.get(body["username"], 0)
                logins.append([body["username"], step > last])
                if step <= last:
                    return lf.REFUSED if 401 in refused else None  # a replay: refused
                used[body["username"]] = step
                return {"token": f"t-{body['username']}-{step}"}
        U.__name__ = U.__qualname__ = cls_key.replace(".", "_")
        return U

    classes = [fake("commune.head"), fake("district.reception"), fake("district.handling")]
    env = Environment(user_classes=classes)
    users = [classes[0](env) for _ in range(5)] + [classes[1](env), classes[2](env)]
    gevent.joinall([gevent.spawn(u.on_start) for u in users], timeout=60)
    print(json.dumps({"logins": logins, "tokens": [u.token for u in users],
                      "refused": sorted(lf.SEATS.unusable), "report": lf.SEATS.report()}))
''')


def test_users_that_share_an_officer_share_one_login_and_no_code_is_replayed() -> None:
    run = subprocess.run([sys.executable, "-c", SHARED_SCENARIO], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["logins"] == [["h.x1", True], ["d.x2", True]], out  # one login per officer, accepted
    assert len(set(out["tokens"][:5])) == 1 and out["tokens"][0]  # the five tabs use the head's session
    assert out["tokens"][5] == out["tokens"][6] and out["tokens"][5]  # two duties, one officer, one session
    assert out["refused"] == [] and out["report"]["shared"] == 4


def test_an_officer_of_several_classes_is_one_officer_in_one_worker() -> None:
    same = {"username": "d.x2", "unit": "X2", "password": "p"}
    data = {"accounts": {"district.reception": [same, {"username": "r.x3", "unit": "X3"}],
                         "district.handling": [{"username": "h.x4", "unit": "X4"}, same]}}
    homes = {}
    for i in range(2):
        for group in seats.deal(data, i, 2)["accounts"].values():
            for a in group:
                assert homes.setdefault(a["username"], i) == i, f"{a['username']} in two workers"
    s = seats.Seats()
    s.load(data["accounts"])
    assert s.pool == 3  # three accounts, though listed four times
    first, _ = s.take("district.reception")
    s.take("district.handling")
    again, _ = s.take("district.handling")
    assert first.username == again.username == "d.x2"
    assert again is first and s.desk(again) is s.desk(first)  # one officer: one TOTP step, one session
