"""nginx on the app hosts: an address-forging guesser, a login flood, and secrets in the logs.

Threat rows (runbooks/security.md): T9, T34, T43, T44, T57.
"""

from __future__ import annotations

import re
import secrets
import ssl
import time

import httpx
import pytest

from tests.infra.conftest import CA

from .lab_helpers import ADDR

pytestmark = pytest.mark.lab


def client(app: str) -> httpx.Client:
    return httpx.Client(base_url=f"https://{ADDR[app]}", verify=ssl.create_default_context(cafile=str(CA)), timeout=30, follow_redirects=False)


def test_a_guesser_who_sends_a_fresh_x_real_ip_each_try_is_still_counted_as_one_address(lab):
    # The app slows a guesser down by the address nginx reports. If nginx passed on the client's
    # own X-Real-IP, each try would come from a "new" address and never be slowed.
    with client("dc-app2") as c:
        page = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        took, codes = [], []
        for i in range(5):
            t0 = time.monotonic()
            r = c.post("/login", data={"username": "khong.co.tai.khoan", "password": f"sai-{i}", "csrf": csrf},
                       headers={"X-Real-IP": f"198.51.100.{i + 10}", "X-Forwarded-For": f"203.0.113.{i + 10}"})
            took.append(time.monotonic() - t0)
            codes.append(r.status_code)
    assert codes[0] in (400, 401), codes
    # The fourth and fifth tries are delayed (progressive delay per address) or refused.
    assert 429 in codes or (took[3] >= 0.4 and took[4] >= 0.4), f"codes {codes}, seconds {took}"


def test_a_login_flood_from_one_address_is_stopped_by_nginx(lab):
    # nginx answers 429 itself past its burst, whatever the app says (the app may refuse earlier).
    with client("dr-app1") as c:
        codes, by_nginx = [], False
        for i in range(30):
            r = c.post("/api/auth/login", json={"username": f"flood.{i}", "password": "sai-mat-khau"})
            codes.append(r.status_code)
            if r.status_code == 429 and "nginx" in r.text:
                by_nginx = True
                break
    assert codes[0] != 429, codes
    assert by_nginx, f"no 429 from nginx after {len(codes)} logins: {codes}"


def test_the_logs_keep_no_lookup_secret_bearer_token_or_cookie(lab, hosts):
    # A citizen's lookup secret in a URL, an officer's bearer token and session cookie: none may
    # reach a log on the app host (nginx's access and error logs, the app's journal), which are
    # shipped off the host.
    marks = {name: f"{name}{secrets.token_hex(8)}" for name in ("secret", "token", "cookie")}
    with client("dc-app1") as c:
        c.get("/api/lookup", params={"code": "KNTC-0000-00000", "secret": marks["secret"]})
        c.post("/api/lookup", json={"code": "KNTC-0000-00000", "secret": marks["secret"]})
        c.get("/lookup", params={"code": "KNTC-0000-00000", "secret": marks["secret"]})
        c.get("/api/cases", headers={"Authorization": f"Bearer {marks['token']}"})
        c.get("/app", headers={"Cookie": f"kntc_session={marks['cookie']}"})
    host = hosts("dc-app1")
    time.sleep(1)  # nginx writes its access log line after the response
    logs = host.check_output("cat /var/log/nginx/access.log /var/log/nginx/error.log; "
                             "journalctl --no-pager -q -u kntc -u nginx -u haproxy --since '-10min' || true")
    assert "/api/lookup" in logs, "the requests were not logged at all"
    leaked = [name for name, mark in marks.items() if mark in logs]
    assert not leaked, f"in the app host's logs: {leaked}"


def _login_flood(app: str, tries: int = 15) -> list[str]:
    """Who refused each of `tries` wrong logins from this machine: "nginx", "app" or "" (not refused)."""
    said = []
    with client(app) as c:
        for i in range(tries):
            r = c.post("/api/auth/login", json={"username": f"window.{i}", "password": "sai-mat-khau"})
            said.append("nginx" if r.status_code == 429 and "nginx" in r.text else
                        "app" if r.status_code == 429 else "")
    return said


def test_a_capacity_window_lets_its_generators_past_nginx_and_no_one_else_and_closes(lab):
    """The window of runbooks/capacity-test.md: nginx does not count the generators (this machine),
    the application still stops their failed logins; closed, nginx counts them again. Twice the same
    is no change (idempotent)."""
    import json

    from tests.infra.conftest import run_playbook

    generators = json.dumps({"capacity_generators": ["10.231.1.254", "10.231.2.254"]})
    try:
        opened = run_playbook("capacity_window.yml", "-e", generators, timeout=600)
        assert opened.returncode == 0, opened.stdout[-3000:]
        said = _login_flood("dc-app2")
        assert "nginx" not in said, said
        assert "app" in said, f"the application's login budget per address no longer applies: {said}"
    finally:
        closed = run_playbook("capacity_window.yml", timeout=600)
    assert closed.returncode == 0, closed.stdout[-3000:]
    again = run_playbook("capacity_window.yml", timeout=600)
    assert again.returncode == 0 and set(re.findall(r"changed=(\d+)", again.stdout)) == {"0"}, again.stdout[-3000:]
    assert "nginx" in _login_flood("dc-app2"), "the window did not close: nginx no longer limits logins"
