"""The exchange API through a real TLS terminator: nginx from Debian on a loopback port, in front of
the real server, as in production (`loadtests/gateway.py`, shared with the exchange benchmark).

The server trusts X-Client-Cert and X-Real-IP only from the gateway's address 127.0.0.2, so a test
that talks to the server directly from 127.0.0.1 plays the client who forges the header.

Clients are registered with the operator's own command (`kntc exchange clients register`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from connect_client import Connection
from loadtests.gateway import NGINX, PROXY_ADDRESS, TRUSTED_PROXIES, Pki, make_pki, running_gateway, self_signed
from tests.conftest import BIN, Officer, running_server

__all__ = ["NGINX", "PROXY_ADDRESS", "Pki", "Registered", "id_number", "kntc", "self_signed", "submission"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The server's side: a CA and the gateway's certificate for 127.0.0.1."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def xenv(pg_env: dict[str, str]) -> dict[str, str]:
    """The server's environment: only the gateway's address is a trusted proxy."""
    return {**pg_env, "KNTC_TRUSTED_PROXIES": TRUSTED_PROXIES}


@pytest.fixture(scope="session")
def xserver_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the exchange server writes its log (what an operator reads)."""
    return tmp_path_factory.mktemp("xserver") / "server.log"


@pytest.fixture(scope="session")
def xserver(xenv: dict[str, str], xserver_log: Path) -> Iterator[str]:
    with running_server(xenv, xserver_log) as url:
        yield url


@pytest.fixture(scope="session")
def gateway(xserver: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx terminating TLS in front of the server; yields its https URL."""
    with running_gateway(xserver, pki, tmp_path_factory.mktemp("nginx")) as (url, _):
        yield url


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
