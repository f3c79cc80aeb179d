"""The exchange API through a real TLS terminator: nginx from Debian on a loopback port, in front of
the real server, as in production (`infra/ansible/roles/app/templates/nginx-kntc.conf.j2`).

nginx asks for the client's certificate (`ssl_verify_client optional_no_ca`), checks in the
handshake that the client holds its key, and forwards it escaped in X-Client-Cert, from its own
address 127.0.0.2: the server trusts that header (and X-Real-IP) only from 127.0.0.2, so a test that
talks to the server directly from 127.0.0.1 plays the client who forges the header.

Clients are registered with the operator's own command (`kntc exchange clients register`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connect_client import Connection
from tests.conftest import BIN, Officer, free_port, running_server, stop

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_ADDRESS = "127.0.0.2"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = path.with_suffix(".key")
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A client certificate as another body makes it: self-signed, its own key (RFC 8705 section 2.2)."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    base = folder / f"{name}-{secrets.token_hex(3)}"
    _write(base, cert, key)
    return base.with_suffix(".crt"), base.with_suffix(".key")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    folder: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The server's side: a CA and the gateway's certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, srv_key = _key(), _key()
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KNTC test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    srv = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "ca", ca, ca_key)
    _write(folder / "server", srv, srv_key)
    return Pki(folder / "ca.crt", folder / "server.crt", folder / "server.key", folder)


@pytest.fixture(scope="session")
def xenv(pg_env: dict[str, str]) -> dict[str, str]:
    """The server's environment: only the gateway's address is a trusted proxy."""
    return {**pg_env, "KNTC_TRUSTED_PROXIES": f'["{PROXY_ADDRESS}/32"]'}


@pytest.fixture(scope="session")
def xserver(xenv: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(xenv, tmp_path_factory.mktemp("xserver") / "server.log") as url:
        yield url


# The test runs as whoever runs pytest; nginx's workers then run as that user too (as root they
# would switch to nobody, who cannot enter pytest's private temporary folders).
NGINX_CONF = """
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client optional_no_ca;
        client_max_body_size 5m;
        client_body_buffer_size 1m;
        location /api/v1/ {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_bind {proxy};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
        }}
    }}
}}
"""


@pytest.fixture(scope="session")
def gateway(xserver: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx terminating TLS in front of the server; yields its https URL."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: apt-get install -y nginx-light")
    folder = tmp_path_factory.mktemp("nginx")
    (folder / "tmp").mkdir()
    (folder / "tmp").chmod(0o777)  # nginx's workers run as an unprivileged user
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            dir=folder,
            port=port,
            cert=pki.server_cert,
            key=pki.server_key,
            app_port=xserver.rsplit(":", 1)[1],
            proxy=PROXY_ADDRESS,
        )
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "stderr.log").open("w"),
    )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(
                    url + "/api/v1/openapi.json", verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=1
                )
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: "
                        + (folder / "stderr.log").read_text()
                        + (folder / "error.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        stop(proc)


@dataclass(frozen=True)
class Registered:
    name: str
    unit: str
    cert: Path
    key: Path


def kntc(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [str(BIN / "kntc"), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    if check:
        assert res.returncode == 0, res.stderr + res.stdout
    return res


@pytest.fixture(scope="session")
def register(xenv: dict[str, str], pki: Pki) -> Callable[..., Registered]:
    """Register a connected system with the operator's command; returns its name and certificate."""

    def make(unit: str, scopes: str = "read,submit,feed", clearance: int = 0, rate: int = 6000) -> Registered:
        name = f"t-{secrets.token_hex(4)}"
        cert, key = self_signed(pki.folder, name)
        kntc(
            xenv,
            "exchange",
            "clients",
            "register",
            "--name",
            name,
            "--title",
            f"Hệ thống thử {name}",
            "--unit",
            unit,
            "--cert",
            str(cert),
            "--scopes",
            scopes,
            "--clearance",
            str(clearance),
            "--rate",
            str(rate),
        )
        return Registered(name, unit, cert, key)

    return make


@pytest.fixture(scope="session")
def connect(gateway: str, pki: Pki) -> Callable[..., Connection]:
    """The reference client for a registered system, through the gateway."""

    def make(client: Registered, cert: Path | None = None, key: Path | None = None) -> Connection:
        return Connection(gateway, client.name, cert or client.cert, key or client.key, ca=pki.ca, retries=0)

    return make


@pytest.fixture(scope="session")
def xofficer(xserver: str, make_account: Callable[..., str]) -> Callable[..., Officer]:
    """An officer logged in on the same server (to make the cases clients must or must not see)."""

    def login(unit: str, roles: list[str], clearance: int = 0) -> Officer:
        return Officer(xserver, make_account(unit, roles, clearance))

    return login


@pytest.fixture(scope="session")
def owner(pg_env: dict[str, str]) -> Iterator[psycopg.Connection]:
    from psycopg.rows import dict_row

    conn = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], row_factory=dict_row, autocommit=True)
    yield conn
    conn.close()


def id_number() -> str:
    return "0" + "".join(secrets.choice("0123456789") for _ in range(11))


def submission(external_id: str | None = None, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "external_id": external_id or f"TA-{secrets.token_hex(5)}",
        "kind": "complaint",
        "subject": "Khiếu nại bản án về tranh chấp đất đai",
        "content": "Đơn khiếu nại gửi Tòa án nhân dân về việc thi hành bản án.",
        "respondent": "Chi cục thi hành án dân sự",
        "channel": "letter",
        "received_on": "2026-11-20",
        "parties": [
            {
                "role": "complainant",
                "full_name": "Trần Thị Bình",
                "id_number": id_number(),
                "address": "Số 5 phố Kim Mã",
                "address_unit": "X00004",
            }
        ],
    }
    body.update(over)
    return body
