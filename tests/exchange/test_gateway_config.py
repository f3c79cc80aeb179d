"""The production nginx template (role app) as nginx itself reads it, and what it promises.

Threat rows: T60.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
import yaml

from tests.conftest import ROOT, free_port
from tests.exchange.conftest import NGINX, Pki

ROLE = ROOT / "infra" / "ansible" / "roles" / "app"


def render(tls_dir: Path) -> str:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {k: v for k, v in defaults.items() if k.startswith(("app_nginx_", "app_exchange_", "app_metrics_"))}
    values.update(
        ansible_managed="test",
        app_listen_host="127.0.0.1",
        app_listen_port=8000,
        app_tls_dir=str(tls_dir),
        app_nginx_server_name="app.test",
        inventory_hostname="app1",
        kntc_address="127.0.0.1",
        # As Ansible has them: the site's balancers, whose forwarded client address nginx takes.
        kntc_site="site1",
        groups={"balancer": ["app1"], "app": ["app1"], "site1": ["app1"]},
        hostvars={"app1": {"kntc_address": "127.0.0.1"}},
        app_metrics_port=free_port(),
        app_nginx_status_port=free_port(),
    )
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - nginx, not HTML
    return env.from_string((ROLE / "templates" / "nginx-kntc.conf.j2").read_text()).render(**values)


def test_the_production_template_is_valid_nginx_and_asks_for_the_client_certificate(pki: Pki, tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "host.crt").write_bytes(pki.server_cert.read_bytes())
    (tls / "host.key").write_bytes(pki.server_key.read_bytes())
    (tls / "ca.crt").write_bytes(pki.ca.read_bytes())
    site = render(tls)
    servers = site.split("\nserver {")
    officers = next(s for s in servers if "listen 443" in s)
    exchange = next(s for s in servers if "listen 8443" in s)
    # A forwarded client address counts only from the site's balancers, never on the exchange port.
    assert "set_real_ip_from 127.0.0.1;" in officers and "real_ip_header X-Forwarded-For;" in officers
    assert "real_ip" not in exchange
    # The monitoring hosts' listener asks for a certificate of the platform's CA and passes no client
    # address, so the case service's /metrics answers it and nothing that came through the entry.
    metrics = next(s for s in servers if "location = /metrics" in s)
    assert "ssl_verify_client on;" in metrics and "X-Real-IP" not in metrics
    # The officers' port never passes a client's own certificate header, nor serves the exchange API.
    assert 'proxy_set_header X-Client-Cert "";' in officers and "ssl_verify_client" not in officers
    assert re.search(r"location \^~ /api/v1/ \{\s*return 421;", officers)
    assert "ssl_verify_client optional_no_ca;" in exchange
    assert "proxy_set_header X-Client-Cert $ssl_client_escaped_cert;" in exchange
    # nginx -t on the rendered file, its ports and log paths moved to where a test may bind and write.
    for port in (80, 443, 8443):
        site = site.replace(f"listen {port} ", f"listen 127.0.0.1:{free_port()} ")
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "kntc.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log {tmp_path}/access.log;\n  include {tmp_path}/kntc.conf;\n}}\n"
    )
    res = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
