"""Every host's journal reaches its site's monitoring host, searchable by host and unit, and only
hosts with a certificate of the platform's CA may send.

Threat rows (runbooks/security.md): T102.
"""

from __future__ import annotations

import uuid

import pytest

from .conftest import ALL_HOSTS, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.readonly]


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


def test_only_the_sites_own_hosts_reach_the_receiver_and_only_over_tls(lab, hosts):
    """Debian 12's receiver cannot check a sender's certificate: the firewall admits the site's own
    hosts only, and the receiver speaks TLS only (nothing in clear on the network)."""
    url = "dc-mon1:19532/upload"
    curl = ("curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST "
            "-H 'Content-Type: application/vnd.fdo.journal' --data-binary @/dev/null")
    other_site = hosts("dr-app1").run(f"{curl} --cacert /etc/kntc/tls/ca.crt https://{url}")
    assert other_site.rc != 0, other_site.stdout
    in_clear = hosts("dc-db1").run(f"{curl} http://{url}")
    assert in_clear.stdout.strip("'") in ("", "000"), in_clear.stdout
    # The senders check the receiver against the platform's CA.
    upload = hosts("dc-db1").check_output("cat /etc/systemd/journal-upload.conf")
    assert "TrustedCertificateFile=/etc/kntc/tls/ca.crt" in upload and "URL=https://dc-mon1:19532" in upload
