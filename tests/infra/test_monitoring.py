"""Each site's monitoring host: Prometheus scrapes every host of both sites over TLS with its own
client certificate, the exporters answer no one else, and a fault becomes an alert in Alertmanager
and a mail in the on-call mailbox, then a resolved one.

Threat rows (runbooks/security.md): T91.
"""

from __future__ import annotations

import time

import pytest

from .conftest import (
    ADDR,
    DC_APP,
    DC_DB,
    DR_APP,
    DR_DB,
    ETCD,
    FIGURES,
    MONITORS,
    active_alerts,
    monitoring_client,
    query,
    wait_for,
)

pytestmark = pytest.mark.lab

DATABASES = DC_DB + DR_DB
APPS = DC_APP + DR_APP
EXPECTED = ({("node", h) for h in ADDR} | {("postgres", h) for h in DATABASES} | {("patroni", h) for h in DATABASES}
            | {("etcd", h) for h in ETCD} | {("tls", h) for h in DATABASES}
            | {(job, h) for job in ("haproxy", "app", "nginx", "https") for h in APPS}
            | {("prometheus", h) for h in MONITORS} | {("alertmanager", h) for h in MONITORS})


def scraped(monitor: str) -> dict[tuple[str, str], str]:
    """(job, instance) -> health of every target the monitor scrapes now. The targets API, not the
    `up` series: a target dropped by a restart keeps its last `up` sample for the lookback window."""
    with monitoring_client() as c:
        r = c.get(f"https://{ADDR[monitor]}:9090/api/v1/targets", params={"state": "active"})
    r.raise_for_status()
    return {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in r.json()["data"]["activeTargets"]}


@pytest.mark.parametrize("monitor", MONITORS)
@pytest.mark.readonly
def test_each_sites_prometheus_scrapes_every_host_of_both_sites(lab, monitor):
    last: dict[str, list] = {}

    def all_up() -> bool:
        got = scraped(monitor)
        last.update(missing=sorted(EXPECTED - set(got)), extra=sorted(set(got) - EXPECTED),
                    down=sorted(k for k, v in got.items() if v != "up"))
        return not any(last.values())

    try:
        wait_for(all_up, 120, f"every target up in {monitor}'s Prometheus")
    except pytest.fail.Exception:
        pytest.fail(f"{monitor}'s Prometheus after 120 s: {last}")


@pytest.mark.parametrize("monitor", MONITORS)
@pytest.mark.readonly
def test_what_the_alerts_read_is_there(lab, monitor):
    """Each source answers with the figures the rules use, not only with `up`."""
    wanted = {
        "etcd members with a leader": ("sum(etcd_server_has_leader)", len(ETCD)),
        "balancers with a primary in the primary site": (
            'count(haproxy_backend_active_servers{proxy="primary", site="dc"} == 1)', 2),
        "app hosts counting requests": ("count(count by (instance) (kntc_http_requests_total))", len(APPS)),
        "nginx exporters that reach nginx": ("sum(nginx_up)", len(APPS)),
        "HTTPS entries answering": ('sum(probe_success{job="https"})', len(APPS)),
        "TLS certificates with an expiry": ('count(probe_ssl_earliest_cert_expiry{job="tls"} > time())', len(DATABASES)),
        # Every member but the DC's primary is a standby, and each streams.
        "standbys whose WAL receiver streams": ("sum(pg_wal_receiver_streaming)", len(DATABASES) - 1),
        # A slot per replica, on each site's leader: the standby leader's too, which the
        # exporter's own query (pg_current_wal_lsn() during recovery) could not read.
        "replication slots in use": ("count(pg_replication_slots_active == 1)", len(DATABASES) - 2),
    }

    def values() -> dict[str, float]:
        return {k: float((query(monitor, q) or [{"value": [0, "0"]}])[0]["value"][1]) for k, (q, _) in wanted.items()}

    want = {k: float(n) for k, (_, n) in wanted.items()}
    wait_for(lambda: values() == want, 120, f"{monitor}: {want}")


@pytest.mark.readonly
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
    victim = hosts("dr-backup1")
    maildir = "/var/lib/kntc-alert-mail/new"
    before = {m: set(hosts(m).run(f"ls {maildir}").stdout.split()) for m in MONITORS}
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

        def mailed(status: str) -> list[str]:
            """The mails of this alert in either site's mailbox (each Alertmanager sends to its own)."""
            found = []
            for m in MONITORS:
                mon = hosts(m)
                for name in set(mon.run(f"ls {maildir}").stdout.split()) - before[m]:
                    text = mon.run(f"cat {maildir}/{name}").stdout
                    if f"[KNTC {status}] KntcTargetDown dr" in text and "van-hanh@kntc.lab" in text:
                        found.append(text)
            return found

        wait_for(lambda: mailed("FIRING"), 120, "the firing mail in the ticket mailbox", interval=5)
        first_mail = time.monotonic()
    finally:
        victim.run("systemctl start prometheus-node-exporter")
    wait_for(lambda: not active_alerts("dc-mon1", "KntcTargetDown"), 180, "KntcTargetDown resolved", interval=5)
    wait_for(lambda: mailed("RESOLVED"), 180, "the resolved mail", interval=5)
    # Both Alertmanagers held the alert, but as one cluster they sent it once: the second would have
    # sent its own copy within a few peer timeouts (15 s each) of the first, well inside 35 s.
    time.sleep(max(0.0, 35 - (time.monotonic() - first_mail)))
    assert len(mailed("FIRING")) == 1


@pytest.mark.parametrize(("target", "path", "expect"), [
    ("dc-app1:9180", "/metrics", "kntc_http_requests_total"),
    ("dc-app1:9180", "/nginx/metrics", "nginx_up 1"),
    ("dc-app2:8405", "/metrics", "haproxy_backend_active_servers"),
])
@pytest.mark.readonly
def test_the_new_listeners_answer_only_a_platform_certificate(lab, hosts, target, path, expect):
    """The case service's, nginx's and HAProxy's figures: to the monitoring host's certificate only."""
    mon = hosts("dc-mon1")
    host, port = target.split(":")
    url = f"https://{ADDR[host]}:{port}{path}"
    tls = "--cacert /etc/kntc/tls/ca.crt"
    got = mon.run(f"curl -sf --max-time 10 {tls} --cert /etc/kntc/tls/host.crt --key /etc/kntc/tls/host.key {url}")
    assert got.rc == 0 and expect in got.stdout
    assert mon.run(f"curl -sf --max-time 10 {tls} {url}").rc != 0


@pytest.mark.readonly
def test_etcd_metrics_need_an_etcd_certificate_and_the_client_port_stays_closed(lab, hosts):
    mon = hosts("dc-mon1")
    url = f"https://{ADDR[ETCD[0]]}:2381/metrics"
    tls = "--cacert /etc/kntc/tls/etcd-ca.crt"
    got = mon.run(f"curl -sf --max-time 10 {tls} --cert /etc/kntc/tls/etcd-monitor.crt "
                  f"--key /etc/kntc/tls/etcd-monitor.key {url}")
    assert got.rc == 0 and "etcd_server_has_leader 1" in got.stdout
    # The platform's host certificate is not an etcd client.
    assert mon.run(f"curl -sf --max-time 10 {tls} --cert /etc/kntc/tls/host.crt "
                   f"--key /etc/kntc/tls/host.key {url}").rc != 0
    # The metrics certificate opens no key-value store: the client port is closed to this host.
    assert mon.run(f"nc -z -w 3 {ADDR[ETCD[0]]} 2379").rc != 0
