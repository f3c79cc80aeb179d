"""Each site's monitoring host: Prometheus scrapes every host of both sites over TLS with its own
client certificate, the exporters answer no one else, and a fault becomes an alert in Alertmanager
and a mail in the on-call mailbox, then a resolved one."""

from __future__ import annotations

import time

import httpx
import pytest

from .conftest import ADDR, FIGURES, STATE, wait_for

pytestmark = pytest.mark.lab

MONITORS = ["dc-mon1", "dr-mon1"]
DATABASES = ["dc-db1", "dc-db2", "dc-db3", "dr-db1", "dr-db2"]
EXPECTED = ({("node", h) for h in ADDR} | {("postgres", h) for h in DATABASES} | {("patroni", h) for h in DATABASES}
            | {("prometheus", h) for h in MONITORS} | {("alertmanager", h) for h in MONITORS})


def client() -> httpx.Client:
    """As an operator with a certificate of the platform's CA (the lab's control node holds them)."""
    pki = STATE / "pki"
    return httpx.Client(verify=str(pki / "ca.crt"), cert=(str(pki / "dc-mon1.crt"), str(pki / "dc-mon1.key")),
                        timeout=15)


def up(monitor: str) -> dict[tuple[str, str], float]:
    with client() as c:
        r = c.get(f"https://{ADDR[monitor]}:9090/api/v1/query", params={"query": "up"})
    r.raise_for_status()
    return {(s["metric"]["job"], s["metric"]["instance"]): float(s["value"][1]) for s in r.json()["data"]["result"]}


def active_alerts(monitor: str, name: str) -> list[dict]:
    with client() as c:
        r = c.get(f"https://{ADDR[monitor]}:9093/api/v2/alerts", params={"filter": f'alertname="{name}"'})
    r.raise_for_status()
    return [a for a in r.json() if a["status"]["state"] == "active"]


@pytest.mark.parametrize("monitor", MONITORS)
def test_each_sites_prometheus_scrapes_every_host_of_both_sites(lab, monitor):
    def all_up() -> bool:
        got = up(monitor)
        return set(got) == EXPECTED and all(v == 1 for v in got.values())

    wait_for(all_up, 120, f"every target up in {monitor}'s Prometheus")


def test_an_exporter_answers_only_a_platform_certificate_and_only_the_monitoring_hosts(lab, hosts):
    mon, app = hosts("dc-mon1"), hosts("dc-app1")
    url = f"https://{ADDR['dr-db1']}:9187/metrics"
    tls = "--cacert /etc/kntc/tls/ca.crt"
    mine = "--cert /etc/kntc/tls/host.crt --key /etc/kntc/tls/host.key"
    got = mon.run(f"curl -sf --max-time 10 {tls} {mine} {url}")
    assert got.rc == 0 and "pg_up 1" in got.stdout and "pg_stat_archiver_failed_count" in got.stdout
    # Without a client certificate the TLS handshake is refused, even from the monitoring host.
    assert mon.run(f"curl -sf --max-time 10 {tls} {url}").rc != 0
    # Another host, even with its own certificate of the same CA, is stopped by the firewall.
    blocked = app.run(f"curl -sf --max-time 10 {tls} {mine} {url}")
    assert blocked.rc == 7, f"expected connection refused (7), got {blocked.rc}: {blocked.stderr}"


def test_a_target_that_stops_answering_is_alerted_and_mailed_then_resolved(lab, hosts):
    victim, mon = hosts("dr-backup1"), hosts("dc-mon1")
    maildir = "/var/lib/kntc-alert-mail/new"
    before = set(mon.run(f"ls {maildir}").stdout.split())
    t0 = time.monotonic()
    victim.run("systemctl stop prometheus-node-exporter")
    try:
        def alerted() -> list[dict]:
            return [a for a in active_alerts("dc-mon1", "KntcTargetDown")
                    if a["labels"].get("instance") == "dr-backup1" and a["labels"].get("job") == "node"]

        firing = wait_for(alerted, 300, "KntcTargetDown for dr-backup1 in Alertmanager", interval=5)
        FIGURES.setdefault("fault to alert, node exporter stopped (s)", []).append(time.monotonic() - t0)
        assert firing[0]["labels"]["site"] == "dr" and firing[0]["labels"]["severity"] == "ticket"
        assert "runbooks/alerts.md#kntctargetdown" in firing[0]["annotations"]["runbook_url"]
        # Each site's Alertmanager has it (both Prometheus send to both).
        assert wait_for(lambda: [a for a in active_alerts("dr-mon1", "KntcTargetDown")
                                 if a["labels"].get("instance") == "dr-backup1"], 60, "the alert in dr-mon1")

        def mailed(status: str) -> str:
            for name in set(mon.run(f"ls {maildir}").stdout.split()) - before:
                text = mon.run(f"cat {maildir}/{name}").stdout
                if f"[KNTC {status}] KntcTargetDown dr" in text and "van-hanh@kntc.lab" in text:
                    return text
            return ""

        wait_for(lambda: mailed("FIRING"), 120, "the firing mail in the ticket mailbox", interval=5)
    finally:
        victim.run("systemctl start prometheus-node-exporter")
    wait_for(lambda: not active_alerts("dc-mon1", "KntcTargetDown"), 180, "KntcTargetDown resolved", interval=5)
    wait_for(lambda: mailed("RESOLVED"), 180, "the resolved mail", interval=5)
