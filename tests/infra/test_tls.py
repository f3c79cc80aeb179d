"""Every host carries a certificate of the internal CA, and the services speak TLS with it."""

from __future__ import annotations

import socket
import ssl

import pytest

from .conftest import ADDR, ALL_HOSTS, CA, DC_APP, DR_APP

pytestmark = [pytest.mark.lab, pytest.mark.readonly]


@pytest.mark.parametrize("host_name", ALL_HOSTS)
def test_host_certificate_is_signed_by_the_internal_ca(hosts, host_name):
    r = hosts(host_name).run("openssl verify -CAfile /etc/kntc/tls/ca.crt /etc/kntc/tls/host.crt")
    assert r.rc == 0, r.stdout + r.stderr


@pytest.mark.parametrize("host_name", ALL_HOSTS)
def test_host_certificate_is_valid_for_thirty_days(hosts, host_name):
    r = hosts(host_name).run("openssl x509 -checkend 2592000 -noout -in /etc/kntc/tls/host.crt")
    assert r.rc == 0, r.stdout


@pytest.mark.parametrize("host_name", ALL_HOSTS)
def test_host_key_is_not_world_readable(hosts, host_name):
    assert hosts(host_name).file("/etc/kntc/tls/host.key").mode == 0o640


# (client, server, port, openssl extra arguments, the client certificate the client presents)
ENDPOINTS = [
    ("dc-db2", "dc-etcd1", 2379, "", "etcd-client"),                # etcd clients
    ("dc-db2", "dc-db1", 8008, "", "host"),                         # Patroni REST API
    ("dc-app1", "dc-db1", 5432, "-starttls postgres", "host"),      # PostgreSQL
    ("dr-db1", "dr-backup1", 2379, "", "etcd-client"),
    ("dc-db1", "dc-backup1", 8432, "", "host"),                     # pgBackRest TLS server
]


@pytest.mark.parametrize(("client", "server", "port", "extra", "cert"), ENDPOINTS,
                         ids=[f"{s}:{p}" for _, s, p, _, _ in ENDPOINTS])
def test_endpoint_presents_a_certificate_verified_by_the_ca(hosts, client, server, port, extra, cert):
    # Servers send their intermediate CA with their certificate: the root alone verifies them.
    cmd = (f"openssl s_client -connect {ADDR[server]}:{port} {extra} -CAfile /etc/kntc/tls/ca.crt "
           f"-cert /etc/kntc/tls/{cert}.crt -key /etc/kntc/tls/{cert}.key -verify_return_error "
           f"-verify_ip {ADDR[server]} </dev/null 2>&1 | grep -a -E '^ *Verify return code'")
    r = hosts(client).run(cmd)  # grep: pgBackRest's server sends binary data after the handshake
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("app", DC_APP + DR_APP)
def test_nginx_certificate_verifies_against_the_ca(lab, app):
    ctx = ssl.create_default_context(cafile=str(CA))
    with socket.create_connection((ADDR[app], 443), timeout=5) as sock, \
            ctx.wrap_socket(sock, server_hostname=ADDR[app]) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
