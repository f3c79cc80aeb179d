"""Connected systems as clients: certificate-bound tokens, rotation, revocation, scopes and rates.

Threat rows: T59, T60, T61, T62, T63.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from connect_client import Connection, ExchangeError
from tests.exchange.conftest import Registered, kntc, self_signed

PURPOSE = {"Purpose": "connection test"}


def feed_status(conn: Connection, token: str) -> int:
    return conn.http.get("/api/v1/feed", headers={"Authorization": f"Bearer {token}", **PURPOSE}).status_code


def test_a_token_is_issued_only_for_a_registered_certificate_presented_in_the_handshake(
    register: Callable[..., Registered], connect: Callable[..., Connection], pki, gateway: str
) -> None:
    client = register("T01-TAND")
    with connect(client) as conn:
        answer = conn.http.post(
            "/api/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client.name}
        ).json()
        assert answer["token_type"] == "Bearer" and answer["expires_in"] == 600
        assert set(answer["scope"].split()) == {"read", "submit", "feed"}
        assert "x5t#S256" in answer["cnf"]
    stranger_cert, stranger_key = self_signed(pki.folder, "stranger")
    with connect(client, stranger_cert, stranger_key) as conn, pytest.raises(ExchangeError) as refused:
        conn.token()
    assert refused.value.status == 401 and refused.value.body["error"] == "invalid_client"
    with httpx.Client(base_url=gateway, verify=ssl.create_default_context(cafile=str(pki.ca))) as anonymous:
        r = anonymous.post("/api/v1/oauth/token", data={"grant_type": "client_credentials", "client_id": client.name})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_a_token_used_with_another_certificate_is_refused(
    register: Callable[..., Registered], connect: Callable[..., Connection], pki
) -> None:
    client = register("T01-TAND")
    with connect(client) as conn:
        token = conn.token()
        assert feed_status(conn, token) == 200
    # Another certificate, even one registered to the same client, does not carry this token.
    other_cert, other_key = self_signed(pki.folder, "other")
    with connect(client, other_cert, other_key) as thief:
        r = thief.http.get("/api/v1/feed", headers={"Authorization": f"Bearer {token}", **PURPOSE})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert "another certificate" in r.json()["detail"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_a_client_certificate_header_sent_past_the_gateway_is_not_believed(
    register: Callable[..., Registered], xserver: str
) -> None:
    """The server is reached directly (not from the gateway's address) with the client's real certificate
    in the header nginx would set: it is ignored, so no token is issued."""
    client = register("T01-TAND")
    forged = quote(client.cert.read_text(), safe="")
    r = httpx.post(
        xserver + "/api/v1/oauth/token",
        headers={"X-Client-Cert": forged},
        data={"grant_type": "client_credentials", "client_id": client.name},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_a_revoked_credential_is_refused_at_once(
    register: Callable[..., Registered], connect: Callable[..., Connection], xenv: dict[str, str]
) -> None:
    client = register("T01-TAND")
    with connect(client) as conn:
        token = conn.token()
        assert feed_status(conn, token) == 200
        thumb = _thumbprint(xenv, client.name)
        kntc(
            xenv,
            "exchange",
            "clients",
            "revoke-credential",
            client.name,
            "--thumbprint",
            thumb[:16],
            "--reason",
            "khóa bị lộ / key leaked",
        )
        assert feed_status(conn, token) == 401
        with pytest.raises(ExchangeError) as refused:
            conn.token(fresh=True)
        assert refused.value.status == 401


def test_during_rotation_both_credentials_work_and_afterwards_only_the_new_one(
    register: Callable[..., Registered], connect: Callable[..., Connection], xenv: dict[str, str], pki
) -> None:
    client = register("T01-TAND")
    new_cert, new_key = self_signed(pki.folder, "rotated")
    overlap_s = 6
    kntc(
        xenv,
        "exchange",
        "clients",
        "add-credential",
        client.name,
        "--cert",
        str(new_cert),
        "--overlap-hours",
        str(overlap_s / 3600),
    )
    started = time.monotonic()
    with connect(client) as old, connect(client, new_cert, new_key) as new:
        old_token, new_token = old.token(), new.token()
        assert feed_status(old, old_token) == 200
        assert feed_status(new, new_token) == 200
        assert time.monotonic() - started < overlap_s, "the checks during the overlap took too long"
        time.sleep(max(0.0, overlap_s + 0.5 - (time.monotonic() - started)))
        assert feed_status(old, old_token) == 401
        with pytest.raises(ExchangeError):
            old.token(fresh=True)
        assert feed_status(new, new_token) == 200
        assert feed_status(new, new.token(fresh=True)) == 200


def test_a_revoked_client_is_refused_at_once_and_its_scopes_bind(
    register: Callable[..., Registered], connect: Callable[..., Connection], xenv: dict[str, str], pki, gateway: str
) -> None:
    reader = register("T01-TAND", scopes="read,feed")
    with connect(reader) as conn:
        r = conn.http.post(
            "/api/v1/petitions", headers={"Authorization": f"Bearer {conn.token()}", "Idempotency-Key": "k1"}, json={}
        )
        assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]
        with (
            Connection(gateway, reader.name, reader.cert, reader.key, ca=pki.ca, scopes="submit", retries=0) as greedy,
            pytest.raises(ExchangeError) as asked,
        ):
            greedy.token()
        assert asked.value.body["error"] == "invalid_scope"
        token = conn.token()
        kntc(xenv, "exchange", "clients", "revoke", reader.name, "--reason", "hết thỏa thuận / agreement ended")
        assert feed_status(conn, token) == 401


def test_a_client_past_its_rate_gets_429(
    register: Callable[..., Registered], connect: Callable[..., Connection]
) -> None:
    client = register("T01-TAND", rate=5)
    with connect(client) as conn:
        token = conn.token()
        statuses = [feed_status(conn, token) for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[-1] == 429


def test_the_clients_account_can_neither_log_in_nor_use_the_officers_api(
    register: Callable[..., Registered], connect: Callable[..., Connection], xserver: str
) -> None:
    client = register("T01-TAND")
    r = httpx.post(xserver + "/api/auth/login", json={"username": f"x.{client.name}", "password": "!exchange-client"})
    assert r.status_code == 401
    with connect(client) as conn:
        token = conn.token()
    r = httpx.get(xserver + "/api/cases", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def _thumbprint(env: dict[str, str], name: str) -> str:
    import json

    listing = json.loads(kntc(env, "exchange", "clients", "list").stdout)
    return next(c for c in listing if c["name"] == name)["credentials"][0]["thumbprint"]


def test_changed_scopes_end_the_current_tokens_and_bind_the_next(
    register: Callable[..., Registered], connect: Callable[..., Connection], xenv: dict[str, str]
) -> None:
    client = register("T01-TAND")
    with connect(client) as conn:
        token = conn.token()
        assert feed_status(conn, token) == 200
        kntc(xenv, "exchange", "clients", "set-scopes", client.name, "--scopes", "read")
        assert feed_status(conn, token) == 401
        narrowed = conn.token(fresh=True)
        assert feed_status(conn, narrowed) == 403
        listing = kntc(xenv, "exchange", "clients", "list").stdout
        assert '"read"' in listing
