"""The case service answers through nginx (HTTPS) on every app host of both sites."""

from __future__ import annotations

import ssl

import httpx
import pytest

from .conftest import ADDR, CA, DC_APP, DR_APP, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.readonly]


@pytest.fixture(scope="module")
def tls(lab) -> ssl.SSLContext:
    # The lab's CA exists only once the lab is provisioned, so it is read after `lab`, not on import.
    return ssl.create_default_context(cafile=str(CA))


@pytest.mark.parametrize("app", DC_APP + DR_APP)
def test_healthz_answers_200_over_https_after_10_seconds(lab, tls, app):
    # A deadline, not one request: after HAProxy closed sessions (a member flapped or failed
    # over) the app's pool hands out a dead connection once and answers 503.
    wait_for(lambda: httpx.get(f"https://{ADDR[app]}/healthz", verify=tls, timeout=5).status_code == 200,
             10, f"https://{ADDR[app]}/healthz answers 200")


@pytest.mark.parametrize("app", DC_APP + DR_APP)
def test_plain_http_redirects_to_https(lab, app):
    r = httpx.get(f"http://{ADDR[app]}/healthz", timeout=10)  # plain HTTP on port 80
    assert r.status_code == 301
    assert r.headers["location"].startswith("https://")


@pytest.mark.parametrize("app", DC_APP + DR_APP)
def test_service_listens_on_loopback_only(hosts, app):
    assert hosts(app).socket("tcp://127.0.0.1:8000").is_listening
    assert not hosts(app).socket(f"tcp://{ADDR[app]}:8000").is_listening


@pytest.mark.parametrize("app", DC_APP + DR_APP)
def test_the_report_pdf_font_is_installed(hosts, app):
    # The periodic reports' PDF embeds DejaVu Sans (Vietnamese); without it the PDF answers 503.
    assert hosts(app).package("fonts-dejavu-core").is_installed
    assert hosts(app).file("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf").exists
