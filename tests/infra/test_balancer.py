"""The site balancer (HAProxy `web` on every app host, port 4443) as an outsider meets it: both app
hosts answer through either balancer, a client cannot choose the address the limits count by
sending forwarding headers, and a secret in a URL's query string is not written to the journal.

Threat rows (runbooks/security.md): T106.
"""

from __future__ import annotations

import secrets
import ssl
import time

import httpx
import pytest

from .conftest import ADDR, CA, CONTROL_NODE, DC_APP, WEB_PORT

pytestmark = [pytest.mark.lab, pytest.mark.readonly]



def through(balancer: str, path: str, **headers: str) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(CA)), timeout=20) as c:
        return c.get(f"https://{ADDR[balancer]}:{WEB_PORT}{path}", headers=headers)


def test_each_balancer_sends_requests_to_both_app_hosts(hosts):
    agent = f"kntc-balancer-{secrets.token_hex(4)}"
    for balancer in DC_APP:
        for _ in range(6):
            assert through(balancer, "/healthz", **{"User-Agent": agent}).status_code == 200
    time.sleep(1)
    served = [int(hosts(h).check_output(f"grep -c {agent} /var/log/nginx/access.log || true")) for h in DC_APP]
    assert sum(served) == 12 and all(n > 0 for n in served), served


def test_a_client_cannot_name_the_address_its_requests_are_counted_by(hosts):
    agent = f"kntc-spoof-{secrets.token_hex(4)}"
    for balancer in DC_APP:
        r = through(balancer, "/api/cases", **{"User-Agent": agent, "X-Forwarded-For": "203.0.113.7",
                                               "X-Real-IP": "203.0.113.8"})
        assert r.status_code == 401
    time.sleep(1)
    lines = "".join(hosts(h).check_output(f"grep {agent} /var/log/nginx/access.log || true") for h in DC_APP)
    assert lines.count(CONTROL_NODE["dc"]) == len(DC_APP), lines
    assert "203.0.113" not in lines


def test_a_query_string_never_reaches_the_balancers_journal(hosts):
    token = secrets.token_hex(12)
    assert through(DC_APP[0], f"/healthz?token={token}").status_code == 200
    time.sleep(1)
    journal = hosts(DC_APP[0]).check_output("journalctl -u haproxy --since -2min --no-pager")
    assert "/healthz" in journal and token not in journal
