"""The exchange API's TLS terminator on a loopback port: Debian's nginx asking for the client's
certificate, in front of the real server, as in production (`infra/ansible/roles/app/templates/
nginx-kntc.conf.j2`). The exchange tests (tests/exchange/conftest.py) and the exchange benchmark
(loadtests/bench_exchange.py) run the same one.

nginx asks for the client's certificate (`ssl_verify_client optional_no_ca`), checks in the
handshake that the client holds its key, and forwards it escaped in X-Client-Cert, from its own
address 127.0.0.2: the server is told to trust that header (and X-Real-IP) only from 127.0.0.2
(`KNTC_TRUSTED_PROXIES`), so a caller that talks to the server directly from 127.0.0.1 plays the
client who forges the header.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_ADDRESS = "127.0.0.2"
# What the server is started with: only the gateway's address is a trusted proxy.
TRUSTED_PROXIES = f'["{PROXY_ADDRESS}/32"]'


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


def make_pki(folder: Path) -> Pki:
    """The server's side: a CA and the gateway's certificate for 127.0.0.1, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
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


# Run as whoever runs the caller; nginx's workers then run as that user too (as root they would
# switch to nobody, who cannot enter pytest's private temporary folders).
NGINX_CONF = """
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    # As production's template: connections to the app kept open between requests.
    upstream kntc_app {{
        server 127.0.0.1:{app_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client optional_no_ca;
        client_max_body_size 5m;
        client_body_buffer_size 1m;
        location /api/v1/ {{
            proxy_pass http://kntc_app;
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_gateway(app_url: str, pki: Pki, folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """nginx terminating TLS in front of `app_url` (its files in `folder`); yields its https URL and
    its process once it answers, and stops it afterwards."""
    if not Path(NGINX).exists():
        raise RuntimeError("nginx is missing: apt-get install -y nginx-light")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    (folder / "tmp").chmod(0o777)  # nginx's workers run as an unprivileged user
    port = _free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "",
            dir=folder,
            port=port,
            cert=pki.server_cert,
            key=pki.server_key,
            app_port=app_url.rsplit(":", 1)[1],
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
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
