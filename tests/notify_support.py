"""What the notification tests share: the real server with the gateway's callback key, the SMS gateway
simulator (`kntc notify gateway-sim`, as the lab runs it), a real SMTP server (aiosmtpd) and the
worker as operators run it (`kntc notify deliver`).

Each test module builds its own stack with `notify_stack` (a module-scoped fixture of three lines):
fixtures of one folder cannot be shared with another's without a plugin.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiosmtpd.controller import Controller

from core_app.notify import gateway
from tests.conftest import BIN, Officer, free_port, running_server, stop

API_KEY = "sim-api-key-" + "k" * 20
SENDER = "thongbao@kntc.test"
SERVICE_NUMBER = "8077"


class Mailbox:
    """aiosmtpd's handler: keeps every message; `delay_s` holds the "250 OK" back after the message
    arrived (a server whose answer is slow, or lost with a client that died)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.delay_s = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # the name aiosmtpd calls
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


@dataclass
class Stack:
    url: str
    sim_url: str
    env: dict[str, str]
    mailbox: Mailbox
    log: Path
    make_account: Callable[..., str]
    owner: psycopg.Connection
    workers: list[subprocess.Popen] = field(default_factory=list)

    def officer(self, unit: str, roles: list[str], clearance: int = 0) -> Officer:
        return Officer(self.url, self.make_account(unit, roles, clearance))

    def deliver(self, *args: str, env: dict[str, str] | None = None, timeout: float = 90
                ) -> subprocess.CompletedProcess[str]:
        """`kntc notify deliver --once`: until nothing is due (`env`: settings to change for this run)."""
        res = subprocess.run([str(BIN / "kntc"), "notify", "deliver", "--once", *args], env={**self.env, **(env or {})},
                             capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, res.stderr[-3000:]
        return res

    def start_worker(self, *args: str, log: Path) -> subprocess.Popen:
        with log.open("w") as out:
            proc = subprocess.Popen([str(BIN / "kntc"), "notify", "deliver", *args], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def sim(self) -> dict[str, Any]:
        return httpx.get(self.sim_url + "/_sim/state", timeout=10).json()

    def behave(self, **kw: Any) -> None:
        assert httpx.post(self.sim_url + "/_sim/behave", json=kw, timeout=10).status_code == 200

    def text_in(self, sender: str, text: str) -> dict[str, Any]:
        """A citizen texts the service number; what the platform answered (the sim's view)."""
        return httpx.post(self.sim_url + "/_sim/mo", json={"from": sender, "text": text}, timeout=60).json()

    def callback(self, path: str, payload: bytes, *, key: str | None = None, callback_id: str | None = None,
                 timestamp: int | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        """A callback posted as the gateway would (or as someone pretending to be it)."""
        h = gateway.signed_headers(key or self.env["KNTC_NOTIFY_SMS_CALLBACK_KEY"],
                                   callback_id or "cb_" + secrets.token_hex(8), payload, timestamp)
        return httpx.post(self.url + path, content=payload, headers={**h, **(headers or {})}, timeout=60)

    def rows(self, code: str) -> list[dict[str, Any]]:
        """The outbox rows of a case, all columns (the owner's view)."""
        return self.owner.execute(
            "SELECT n.*, extract(epoch FROM n.next_at - n.last_attempt_at) AS wait_s FROM kntc.notification n "
            "JOIN kntc.case_file c ON c.id = n.case_id WHERE c.code = %s ORDER BY n.created_at, n.event, n.channel",
            (code,)).fetchall()

    def due_now(self, code: str) -> None:
        """Skip the back-off or the lease (the clock is not what these tests are about)."""
        self.owner.execute("UPDATE kntc.notification n SET next_at = now() FROM kntc.case_file c "
                           "WHERE c.id = n.case_id AND c.code = %s AND n.status = 'queued'", (code,))

    def handset(self, code: str) -> list[dict[str, Any]]:
        ids = {str(r["id"]) for r in self.rows(code)}
        return [m for m in self.sim()["handset"] if m.get("client_message_id") in ids]


def wait_for(check: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    """`check()`'s first true answer within `seconds`, or a failure that says what never happened."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.1)


@contextmanager
def notify_stack(pg_env: dict[str, str], folder: Path, make_account: Callable[..., str],
                 owner: psycopg.Connection) -> Iterator[Stack]:
    callback_key = secrets.token_urlsafe(32)
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {**os.environ, **pg_env, "KNTC_NOTIFY_SMS_CALLBACK_KEY": callback_key,
           "KNTC_NOTIFY_SMS_SERVICE_NUMBER": SERVICE_NUMBER, "KNTC_NOTIFY_LOOKUP_URL": "https://kntc.test/lookup",
           "KNTC_NOTIFY_SMTP_HOST": "127.0.0.1", "KNTC_NOTIFY_SMTP_PORT": str(smtp.port),
           "KNTC_NOTIFY_SMTP_STARTTLS": "false", "KNTC_NOTIFY_MAIL_FROM": SENDER}
    sim_proc = None
    try:
        with running_server(env, folder / "server.log") as url:
            sim_port = free_port()
            sim_url = f"http://127.0.0.1:{sim_port}"
            with (folder / "sim.log").open("w") as out:
                sim_proc = subprocess.Popen(
                    [str(BIN / "kntc"), "notify", "gateway-sim", "--port", str(sim_port), "--api-key", API_KEY,
                     "--platform-url", url, "--callback-key", callback_key],
                    env=env, stdout=out, stderr=subprocess.STDOUT)
            wait_for(lambda: _answers(sim_url), "the gateway simulator answers")
            env.update({"KNTC_NOTIFY_SMS_GATEWAY_URL": sim_url, "KNTC_NOTIFY_SMS_API_KEY": API_KEY})
            stack = Stack(url, sim_url, env, mailbox, folder / "server.log", make_account, owner)
            try:
                yield stack
            finally:
                for w in stack.workers:
                    if w.poll() is None:
                        stop(w)
    finally:
        if sim_proc is not None:
            stop(sim_proc)
        smtp.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/_sim/state", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def consenting(*channels: str, phone: str | None = None, email_: str | None = None, **over: Any) -> dict[str, Any]:
    """A party who agreed to be notified by `channels` (a fresh number and address each time)."""
    party: dict[str, Any] = {
        "role": "complainant", "full_name": "Nguyễn Văn An", "id_number": "001089" + str(secrets.randbelow(10**6)).zfill(6),
        "address": "Số 1 phố Đội Cấn", "address_unit": "X00004",
        "phone": phone or "091" + str(secrets.randbelow(10**7)).zfill(7),
        "email": email_ or f"an.{secrets.token_hex(4)}@example.vn",
        "notify_consent": bool(channels), "notify_channels": list(channels),
    }
    party.update(over)
    return party
