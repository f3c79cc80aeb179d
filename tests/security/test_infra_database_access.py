"""A compromised app host (or anyone holding a stolen password) against the database tier.

Every app host runs the site's HAProxy, and every connection through it reaches PostgreSQL from
the balancer's address: pg_hba alone cannot tell the app from an intruder there. The owner role
logs in only from the migrating host; the replication and rewind roles need, besides their
password, a client certificate that only database hosts hold.

Threat rows (runbooks/security.md): T37, T38, T39, T40, T105.
"""

from __future__ import annotations

import pytest

from .lab_helpers import ADDR, ETCD, PG_TLS, psql_as, secret

pytestmark = [pytest.mark.lab, pytest.mark.readonly]

REFUSED = ("no pg_hba.conf entry", "requires a valid client certificate", "certificate authentication failed",
           "password authentication failed", "rejects connection")


def refused(r) -> bool:
    return r.rc != 0 and any(m in (r.stderr + r.stdout) for m in REFUSED)


def test_an_app_host_that_is_not_the_migrating_host_cannot_log_in_as_the_owner(hosts):
    # Each site's first app host is its migrating host (the DR's once the site is promoted); the
    # owner role is refused from every other app host.
    r = psql_as(hosts("dc-app2"), "kntc_owner", secret("pg_kntc_owner"))
    assert refused(r), f"kntc_owner logged in from dc-app2: {r.stdout} {r.stderr}"


@pytest.mark.parametrize("app", ["dc-app1", "dc-app2"])
def test_an_app_host_cannot_stream_the_database_as_the_replication_role(hosts, app):
    r = psql_as(hosts(app), "replicator", secret("pg_replicator"), dbname="replication",
                extra="replication=true", sql="IDENTIFY_SYSTEM")
    assert refused(r), f"replicator connected from {app}: {r.stdout} {r.stderr}"


@pytest.mark.parametrize("app", ["dc-app1", "dc-app2"])
def test_an_app_host_cannot_read_the_primary_files_as_the_rewind_role(hosts, app):
    r = psql_as(hosts(app), "rewinder", secret("pg_rewinder"), dbname="postgres",
                sql="select length(pg_read_binary_file('global/pg_control', 0, 8, true))")
    assert refused(r), f"rewinder connected from {app}: {r.stdout} {r.stderr}"


def test_the_app_roles_still_log_in_through_the_balancer(hosts):
    for role, name in (("kntc_app", "pg_kntc_app"), ("kntc_auth", "pg_kntc_auth")):
        r = psql_as(hosts("dc-app2"), role, secret(name))
        assert r.rc == 0 and r.stdout.strip() == role, r.stderr


@pytest.mark.parametrize("app", ["dc-app1", "dc-app2", "dr-app1"])
def test_the_app_verifies_the_database_server_name_not_only_the_ca(hosts, app):
    # A server certificate of the internal CA that is not the site's PostgreSQL service (another
    # site's database, or any host certificate) must not be accepted: verify-full, the
    # PostgreSQL CA only, and the site's service name. The case service reaches PostgreSQL through
    # PgBouncer on its own host (loopback), and PgBouncer checks the server as libpq would.
    site = app.split("-")[0]
    env = hosts(app).file("/etc/kntc/app.env").content_string
    for var in ("KNTC_DATABASE_URL", "KNTC_AUTH_DATABASE_URL"):
        line = next(ln for ln in env.splitlines() if ln.startswith(var + "="))
        assert "@127.0.0.1:6432/kntc" in line, f"{var}: {line[:40]}…"
    ini = hosts(app).file("/etc/pgbouncer/pgbouncer.ini").content_string
    assert "server_tls_sslmode = verify-full" in ini
    assert "server_tls_ca_file = /etc/kntc/tls/postgres-ca-bundle.crt" in ini
    assert f"host=postgres.{site}.kntc.internal port=" in ini
    other = "dr" if site == "dc" else "dc"
    port = 5000 if site == "dc" else 5001
    dsn = (f"host=postgres.{other}.kntc.internal hostaddr=127.0.0.1 port={port} dbname=kntc user=kntc_app "
           f"sslmode=verify-full sslrootcert={PG_TLS}/postgres-ca-bundle.crt connect_timeout=5")
    r = hosts(app).run(f"PGPASSWORD={secret('pg_kntc_app')} psql -XAt '{dsn}' -c 'select 1'")
    assert r.rc != 0 and "does not match host name" in r.stderr, r.stdout + r.stderr


def test_certificates_made_for_postgresql_or_https_are_no_client_of_etcd(hosts):
    db = hosts("dc-db1")
    base = (f"ETCDCTL_API=3 etcdctl --endpoints=https://{ADDR[ETCD[0]]}:2379 --cacert={PG_TLS}/ca.crt "
            "--dial-timeout=3s --command-timeout=3s")
    for cert in ("postgres-replicator", "postgres-server", "host"):
        assert db.file(f"{PG_TLS}/{cert}.crt").exists, cert
        r = db.run(f"{base} --cert={PG_TLS}/{cert}.crt --key={PG_TLS}/{cert}.key get /service --prefix --keys-only")
        assert r.rc != 0, f"etcd accepted the {cert} certificate as a client: {r.stdout[:200]}"
    ok = db.run(f"{base} --cert={PG_TLS}/etcd-client.crt --key={PG_TLS}/etcd-client.key endpoint health")
    assert ok.rc == 0, ok.stderr


@pytest.mark.parametrize(("cert", "usage"), [
    ("postgres-server", "TLS Web Server Authentication"),
    ("postgres-replicator", "TLS Web Client Authentication"),
    ("postgres-rewinder", "TLS Web Client Authentication"),
    ("etcd-client", "TLS Web Client Authentication"),
])
def test_each_certificate_serves_one_purpose(hosts, cert, usage):
    out = hosts("dc-db1").check_output(f"openssl x509 -noout -ext extendedKeyUsage -in {PG_TLS}/{cert}.crt")
    usages = [u.strip() for u in out.splitlines()[1].split(",")]
    assert usages == [usage], f"{cert}: {usages}"
    issuer = hosts("dc-db1").check_output(f"openssl x509 -noout -issuer -in {PG_TLS}/{cert}.crt")
    assert cert.split("-")[0] in issuer, f"{cert} is not signed by its own intermediate CA: {issuer}"
