"""`/metrics` on the real server (granian, two workers sharing their figures): requests counted per
route template and status, latency, the pools; and nothing of it through the public entry.

Threat rows (runbooks/security.md): T91.
"""

from __future__ import annotations

import re
import secrets

import httpx

from tests.conftest import TEST_PASSWORD


def test_the_workers_figures_are_counted_per_route_template_and_status(server: str, make_account) -> None:
    name = make_account("X00004", ["reception"])
    code = f"X00004-2026-{secrets.randbelow(900000) + 100000}"
    with httpx.Client(base_url=server, timeout=30) as c:
        token = c.post("/api/auth/login", json={"username": name, "password": TEST_PASSWORD}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(6):  # enough for both workers to have answered some
            assert c.get(f"/api/cases/{code}", headers=auth).status_code == 404
        body = c.get("/metrics").text
    counted = re.findall(r'^kntc_http_requests_total\{method="GET",route="/api/cases/\{code\}",status="404"\} (\S+)$',
                         body, flags=re.M)
    assert counted and float(counted[0]) >= 6, body[:3000]
    assert code not in body and token not in body and name not in body  # templates, never values
    assert re.search(r'^kntc_http_request_duration_seconds_bucket\{le="1\.0",method="POST",route="/api/auth/login"\}',
                     body, flags=re.M)
    assert re.search(r'^kntc_db_pool_connections\{pool="app",state="max"\} [1-9]', body, flags=re.M), body[-2000:]


def test_the_figures_are_not_served_through_the_public_entry(server: str) -> None:
    # nginx's public server always sets X-Real-IP: a request that came through it gets a 404,
    # the same as any path that does not exist.
    for header in ("X-Real-IP", "X-Forwarded-For"):
        r = httpx.get(server + "/metrics", headers={header: "203.0.113.9"}, timeout=10)
        assert r.status_code == 404 and "kntc_http" not in r.text
    assert httpx.get(server + "/no-such-page", headers={"X-Real-IP": "203.0.113.9"}).status_code == 404
