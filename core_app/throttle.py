"""Throttling with counters in PostgreSQL (kntc.throttle), so that every worker of every application
host counts against the same budget: five app hosts with two workers each are one limit, not ten.

The budgets are data (kntc.throttle_rule); this module only names what is counted and by what key.
Logins are counted three ways, so that neither guessing nor locking others out pays:
- per account and address (login_pair): past 3 failures each try waits 1 s, 2 s, 4 s … (up to
  5 min), and 20 in 15 minutes stop that address for that account;
- per address over all accounts (login_address): 10 failures in 15 minutes stop a password spray,
  except for accounts that logged in from that address before (an office behind one NAT address
  is not locked out by one of its machines);
- per account over all addresses (login_account): 100 failures an hour, after which only the
  addresses the account used before may try. A single address never gets near it (login_pair),
  so it is not a weapon to lock an officer out.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection


class Throttled(Exception):
    """Too many requests: a 429 with a message in both languages and a Retry-After."""

    def __init__(self, retry_after_s: int, vi: str, en: str, code: str = "too_many_requests") -> None:
        super().__init__(en)
        self.retry_after_s, self.vi, self.en, self.code = max(1, retry_after_s), vi, en, code


async def state(conn: AsyncConnection[Any], purpose: str, key: str) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM kntc.throttle_state(%s, %s)", (purpose, key))
    row = await cur.fetchone()
    assert row is not None
    return row


async def hit(conn: AsyncConnection[Any], purpose: str, key: str) -> dict[str, Any]:
    cur = await conn.execute("SELECT * FROM kntc.throttle_hit(%s, %s)", (purpose, key))
    row = await cur.fetchone()
    assert row is not None
    return row


def _pair(username: str, address: str) -> str:
    return f"{username}|{address}"


async def before_login(conn: AsyncConnection[Any], username: str, address: str) -> None:
    """Refuse the attempt, without checking the password, when a login budget is spent."""
    pair = await state(conn, "login_pair", _pair(username, address))
    if pair["blocked"]:
        raise Throttled(900, "Quá nhiều lần đăng nhập sai vào tài khoản này từ máy này; hãy thử lại sau 15 phút.",
                        "too many failed logins to this account from this address: try again in 15 minutes",
                        "login_throttled")
    if pair["wait_s"]:
        raise Throttled(pair["wait_s"], f"Đăng nhập sai nhiều lần; hãy chờ {pair['wait_s']} giây rồi thử lại.",
                        f"repeated failed logins: wait {pair['wait_s']} seconds and try again", "login_throttled")
    known = (await state(conn, "login_known", _pair(username, address)))["hits"] > 0
    if known:
        return
    if (await state(conn, "login_address", address))["blocked"]:
        raise Throttled(900, "Quá nhiều lần đăng nhập sai từ máy này; hãy thử lại sau 15 phút.",
                        "too many failed logins from this address: try again in 15 minutes", "login_throttled")
    if (await state(conn, "login_account", username))["blocked"]:
        raise Throttled(3600, "Tài khoản đang bị dò mật khẩu; tạm thời chỉ đăng nhập được từ máy đã dùng trước đây. "
                              "Hãy liên hệ quản trị đơn vị.",
                        "this account is under a password-guessing attack: for now it may log in only from an "
                        "address it used before; ask your unit administrator", "login_throttled")


async def login_failed(conn: AsyncConnection[Any], username: str, address: str) -> None:
    for purpose, key in (("login_pair", _pair(username, address)), ("login_address", address),
                         ("login_account", username)):
        await hit(conn, purpose, key)


async def login_succeeded(conn: AsyncConnection[Any], username: str, address: str) -> None:
    await conn.execute("SELECT kntc.throttle_forgive_login(%s)", (_pair(username, address),))
    await hit(conn, "login_known", _pair(username, address))


LOOKUP_BLOCKED = ("Quá nhiều lần tra cứu không thành công từ máy này; hãy thử lại sau 15 phút.",
                  "Too many failed lookups from this address: try again in 15 minutes.")


async def lookup_delay(conn: AsyncConnection[Any], address: str) -> float:
    """Seconds to wait before a lookup from this address; raises Throttled when its budget is spent."""
    s = await state(conn, "lookup_fail", address)
    if s["blocked"]:
        raise Throttled(900, *LOOKUP_BLOCKED, code="lookup_throttled")
    return float(s["wait_s"])


async def lookup_failed(conn: AsyncConnection[Any], address: str) -> None:
    await hit(conn, "lookup_fail", address)


TOO_MANY = ("Quá nhiều yêu cầu trong thời gian ngắn; hãy thử lại sau ít phút.",
            "too many requests in a short time: try again in a few minutes")


# Where the API budget middleware leaves an officer's call for the officer's transaction to count.
BUDGET_STATE = "kntc_api_budget"


@dataclass
class Budget:
    """One API call's count against its session (or, without one, its address).

    An officer's call is counted in this process as it arrives and added to the shared counter in
    batches (core_app/call_counts.py); the officer's transaction judges it, in its first statement
    (`core_app.db.Database.acting`). A call without a session is counted and judged on its own
    before it runs (`api_call`)."""

    purpose: str
    key: str


def budget_of(token: str | None, address: str) -> Budget:
    if token:
        return Budget("api_session", hashlib.sha256(token.encode()).hexdigest())
    return Budget("api_address", address)


def refuse_over(row: dict[str, Any] | None) -> None:
    """Throttled when a hit's answer (kntc.throttle_hit's row) is over the budget."""
    if row is None or not row["allowed"]:
        raise Throttled(row["retry_after_s"] if row else 60, *TOO_MANY)


async def api_call(db: Any, budget: Budget) -> None:
    """Count a call without an officer's transaction (no session, or the login routes) in a
    transaction of its own, before it runs; over the budget, Throttled (the call counts too).

    BEGIN, the hit and COMMIT travel in one round trip (`Database.counting`): the counter's row is
    locked only while the server runs them, never across a round trip to a busy worker."""
    async with db.counting() as conn:
        cur = await conn.execute("SELECT * FROM kntc.throttle_hit(%s, %s)", (budget.purpose, budget.key))
    refuse_over(await cur.fetchone())


async def lookup_guarded(db: Any, address: str, run: Any) -> Any:
    """Run a citizen lookup (`run(conn)`, None when nothing matched) under the address's budget:
    past 3 failures each lookup waits 1 s, 2 s … up to 8 s; 30 failures in 15 minutes stop it."""
    async with db.transaction() as conn:
        delay = await lookup_delay(conn, address)
    if delay:
        await asyncio.sleep(delay)
    async with db.transaction() as conn:
        row = await run(conn)
        if row is None:
            await lookup_failed(conn, address)
    return row


# The address comes from the peer, or from X-Real-IP when the peer is one of the configured
# trusted proxies (nginx, which sets the header itself from the connection it accepted). From
# anyone else the header is ignored: it would let a guesser pick a fresh address for every try.
@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(peer: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(ip in net for net in _networks(proxies))


def is_trusted_proxy(request: Request, peer: str) -> bool:
    """Whether `peer` is one of the configured proxies, whose headers (X-Real-IP, the client
    certificate) name what they saw of the client."""
    return _trusted(peer, tuple(request.app.state.settings.trusted_proxies))


def client_address(request: Request) -> str:
    """The address throttling counts against."""
    peer = request.client.host if request.client else "unknown"
    real = request.headers.get("x-real-ip", "").strip()
    if real and is_trusted_proxy(request, peer):
        try:
            return str(ipaddress.ip_address(real))
        except ValueError:
            return peer  # not an address: the proxy did not set it, someone else did
    return peer
