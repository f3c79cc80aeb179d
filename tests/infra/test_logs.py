"""Every host's journal reaches its site's monitoring host, searchable by host and unit, and only
hosts with a certificate of the platform's CA may send."""

from __future__ import annotations

import uuid

import pytest

from .conftest import ALL_HOSTS, wait_for

pytestmark = pytest.mark.lab


def monitor_of(host: str) -> str:
    return "dc-mon1" if host.startswith("dc-") else "dr-mon1"


def received(hosts, monitor: str, sender: str, marker: str) -> bool:
    out = hosts(monitor).run(f"journalctl -D /var/log/journal/remote _HOSTNAME={sender} -t kntc-log-drill "
                             f"--grep {marker} -o cat --no-pager")
    return marker in out.stdout


def test_a_line_logged_on_any_host_is_found_on_its_sites_monitoring_host(lab, hosts):
    markers = {name: f"drill-{uuid.uuid4().hex[:12]}" for name in ALL_HOSTS}
    for name, marker in markers.items():
        assert hosts(name).run(f"logger -t kntc-log-drill {marker}").rc == 0
    for name, marker in markers.items():
        wait_for(lambda name=name, marker=marker: received(hosts, monitor_of(name), name, marker), 120,
                 f"{name}'s line in {monitor_of(name)}'s received journal", interval=3)
    # The other site's monitoring host does not get it (each site keeps its own).
    assert not received(hosts, "dr-mon1", "dc-db1", markers["dc-db1"])


def test_logs_are_searchable_by_host_and_unit(lab, hosts):
    out = hosts("dc-mon1").check_output(
        "journalctl -D /var/log/journal/remote _HOSTNAME=dc-db1 -u patroni -n 5 -o short-iso --no-pager")
    assert "dc-db1" in out and "patroni" in out
    assert hosts("dc-mon1").service("kntc-journal-vacuum.timer").is_enabled


def test_the_receiver_refuses_a_sender_without_a_platform_certificate(lab, hosts):
    """From a host of the site (the firewall lets it through), without its certificate the TLS
    handshake fails before any log line is read; with it, the receiver answers."""
    h = hosts("dc-db1")
    url = "https://dc-mon1:19532/upload"
    curl = ("curl -sS --max-time 5 --cacert /etc/kntc/tls/ca.crt -o /dev/null -w '%{http_code}' -X POST "
            "-H 'Content-Type: application/vnd.fdo.journal' --data-binary @/dev/null")
    anonymous = h.run(f"{curl} {url}")
    assert anonymous.rc != 0 and anonymous.stdout.strip("'") in ("", "000"), anonymous.stdout
    signed = h.run(f"{curl} --cert /etc/kntc/tls/host.crt --key /etc/kntc/tls/host.key {url}")
    assert signed.stdout.strip("'") not in ("", "000"), signed.stderr
