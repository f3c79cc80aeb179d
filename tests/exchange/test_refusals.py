"""Requests refused before the client is known are counted and logged for the operator, within
bounds, and the log never holds a token.

Each test talks through the gateway from an address of its own on the loopback (127.0.0.x, which
nginx passes on as X-Real-IP), so its lines and its budget of refusals are its own.

Threat rows: T90.
"""

from __future__ import annotations

import re
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from connect_client import Connection
from loadtests.gateway import Pki, self_signed
from tests.exchange.conftest import Registered

PURPOSE = {"Purpose": "probe test"}


_USED: set[str] = set()


def source() -> str:
    """A loopback address no other test of the session has used (the log is shared by all of them)."""
    while True:
        address = f"127.0.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 2}"
        if address not in _USED:
            _USED.add(address)
            return address


@pytest.fixture
def address() -> str:
    return source()


def from_address(gateway: str, pki: Pki, address: str, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        tls.load_cert_chain(str(cert[0]), str(cert[1]))
    return httpx.Client(
        base_url=gateway, verify=tls, transport=httpx.HTTPTransport(verify=tls, local_address=address), timeout=30
    )


def refused_counts(xserver: str) -> dict[tuple[str, str], float]:
    """kntc_exchange_refused_total by (reason, via), summed over the server's workers."""
    text = httpx.get(xserver + "/metrics", timeout=10).text
    found = re.findall(r'^kntc_exchange_refused_total\{reason="([^"]+)",via="([^"]+)"\} ([0-9.e+]+)$', text, re.M)
    return {(r, v): float(n) for r, v, n in found}


def lines_for(log: Path, address: str, deadline_s: float = 5, expect: int = 1) -> list[str]:
    """The refusal lines naming `address` as their source (waiting a little for the worker's write)."""
    end = time.monotonic() + deadline_s
    while True:
        lines = [
            line for line in log.read_text(errors="replace").splitlines()
            if "refused at the gate" in line and f"source={address} " in line
        ]
        if len(lines) >= expect or time.monotonic() > end:
            return lines
        time.sleep(0.1)


@pytest.fixture
def client(register: Callable[..., Registered]) -> Iterator[Registered]:
    yield register("T01-TAND")


def test_each_refusal_before_authentication_is_logged_with_its_reason_and_source_and_never_its_token(
    client: Registered,
    connect: Callable[..., Connection],
    gateway: str,
    xserver: str,
    xserver_log: Path,
    pki: Pki,
    address: str,
) -> None:
    before = refused_counts(xserver)
    with connect(client) as conn:
        real_token = conn.token()  # a live token: shown to the gateway with another certificate below
    made_up = secrets.token_urlsafe(32)
    stranger = self_signed(pki.folder, "stranger")
    with from_address(gateway, pki, address) as anonymous:
        assert anonymous.get("/api/v1/feed", headers=PURPOSE).status_code == 401
        r = anonymous.get("/api/v1/feed", headers={"Authorization": f"Bearer {made_up}", **PURPOSE})
        assert r.status_code == 401
        r = anonymous.post("/api/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client.name})
        assert r.status_code == 401
        assert anonymous.get("/api/v1/no-such-route").status_code == 404
    with from_address(gateway, pki, address, stranger) as thief:
        r = thief.get("/api/v1/feed", headers={"Authorization": f"Bearer {real_token}", **PURPOSE})
        assert r.status_code == 401
        r = thief.post("/api/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client.name})
        assert r.status_code == 401

    lines = lines_for(xserver_log, address, expect=6)
    by_reason = {re.search(r"reason=(\S+)", line).group(1): line for line in lines}  # type: ignore[union-attr]
    assert set(by_reason) == {
        "no_token", "invalid_token", "no_certificate", "http_404", "wrong_certificate",
        "unknown_client_or_certificate",
    }, lines
    assert all("via=gateway" in line for line in lines)
    # The operator sees which client was asked for, and with which certificate (its public thumbprint).
    probe = by_reason["unknown_client_or_certificate"]
    assert f"client_id={client.name}" in probe and re.search(r"cert=[0-9a-f]{16} ", probe)
    assert 'route="POST /api/v1/oauth/token"' in probe
    log_text = xserver_log.read_text(errors="replace")
    assert real_token not in log_text and made_up not in log_text
    after = refused_counts(xserver)
    for reason in by_reason:
        assert after.get((reason, "gateway"), 0) >= before.get((reason, "gateway"), 0) + 1, reason


def test_a_request_past_the_gateway_is_recorded_as_direct_and_a_forged_client_id_cannot_forge_a_line(
    client: Registered, xserver: str, xserver_log: Path, address: str
) -> None:
    """The app's own port reached from the inside (not from the gateway's address), with the client's
    real certificate in the header nginx would set, and a client_id made to look like another line."""
    before = refused_counts(xserver)
    forged = quote(client.cert.read_text(), safe="")
    forged_id = "x\nrefused at the gate: reason=x source=10.0.0.1"
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30) as inside:
        r = inside.post(
            xserver + "/api/v1/oauth/token",
            headers={"X-Client-Cert": forged, "X-Real-IP": "192.0.2.1"},
            data={"grant_type": "client_credentials", "client_id": forged_id},
        )
    assert r.status_code == 401
    lines = lines_for(xserver_log, address, expect=1)  # its own address, not the X-Real-IP it sent
    mine = [line for line in lines if "via=direct" in line and "reason=no_certificate" in line]
    assert mine and all("client_id=(not a client id)" in line for line in mine)
    assert "source=10.0.0.1" not in xserver_log.read_text(errors="replace")
    after = refused_counts(xserver)
    assert after[("no_certificate", "direct")] == before.get(("no_certificate", "direct"), 0) + 1


def test_a_flood_of_refusals_is_counted_exactly_and_writes_a_line_or_two(
    gateway: str, xserver: str, xserver_log: Path, pki: Pki, address: str
) -> None:
    """150 made-up tokens from one address: the counter says 150, the log one line per worker (the
    repeats are told in one summary line when the minute ends: tests/unit/test_exchange_refusals.py)."""
    before = refused_counts(xserver).get(("invalid_token", "gateway"), 0)
    with from_address(gateway, pki, address) as prober:
        for _ in range(150):
            token = secrets.token_urlsafe(32)
            r = prober.get("/api/v1/feed", headers={"Authorization": f"Bearer {token}", **PURPOSE})
            assert r.status_code == 401
    assert refused_counts(xserver)[("invalid_token", "gateway")] == before + 150
    lines = lines_for(xserver_log, address, expect=1)
    assert 1 <= len(lines) <= 2, lines  # the server runs two workers, each with its own bounded log


def test_a_registered_clients_token_refused_for_its_scope_is_recorded_under_its_name(
    register: Callable[..., Registered], gateway: str, xserver_log: Path, pki: Pki, address: str
) -> None:
    reader = register("T01-TAND", scopes="read")
    with from_address(gateway, pki, address, (reader.cert, reader.key)) as conn:
        token = conn.post(
            "/api/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": reader.name}
        ).json()["access_token"]
        r = conn.get("/api/v1/feed", headers={"Authorization": f"Bearer {token}", **PURPOSE})
        assert r.status_code == 403
    [line] = lines_for(xserver_log, address)
    assert "reason=insufficient_scope" in line and f"client_id={reader.name}" in line and token not in line
