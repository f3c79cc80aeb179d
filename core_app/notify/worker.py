"""`kntc notify deliver`: the outbox's messages sent to the SMS gateway and the SMTP server.

Modelled on the exchange's webhook delivery (core_app/exchange/webhooks.py): any number of workers
on any app hosts, the state in the database. A round claims up to `batch` due rows of the channels
this worker can send (`kntc.notify_claim`: FOR UPDATE SKIP LOCKED, and a lease until `next_at`),
sends them, and records each outcome at once (`kntc.notify_done`), each in its own transaction, so
a worker killed half-way leaves only the rows it had not recorded, to be claimed again when their
lease runs out.

What that guarantees:
- SMS: exactly once. A row claimed again is sent under the same id, which the provider must
  deduplicate on (the gateway contract); the simulator does.
- E-mail: at least once, with one Message-ID. SMTP has no idempotency: a worker that dies between
  the server's "250 OK" and recording it sends the message again on the next claim. The copies carry
  the same Message-ID (`<row id@sender's domain>`), by which mail clients and archives recognise a
  duplicate; the window is one SMTP round trip (runbooks/sms-gateway.md says so to operators).

Retries: a gateway or SMTP server that is down, slow (past 10 s), or answers 429/5xx/4xx-temporary
is tried again after 30 s, 60 s, 2 min … at most an hour apart (or its Retry-After), and given up
after `notify_max_attempts`; a permanent refusal (a number the provider says is invalid, a mailbox
that does not exist) fails at once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
import httpx
import psycopg
from psycopg import AsyncConnection

from core_app.notify import messages
from core_app.notify.gateway import TIMEOUT_S, Outcome, SmsGateway
from core_app.repo import notifications as outbox

log = logging.getLogger("kntc.notify")

IDLE_S = 2
BATCH = 20
LEASE_S = 60
SMS_IN_FLIGHT = 10  # concurrent posts to the gateway within a round


def _smtp_code(exc: Exception) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    return getattr(exc, "code", None)


class Mailer:
    """One SMTP connection per round, STARTTLS when asked for, every message with its stable Message-ID."""

    def __init__(self, settings: Any) -> None:
        self.host, self.port = settings.notify_smtp_host, settings.notify_smtp_port
        self.starttls = settings.notify_smtp_starttls
        self.username, self.password = settings.notify_smtp_username, settings.notify_smtp_password
        self.sender = settings.notify_mail_from
        self.domain = self.sender.rsplit("@", 1)[-1].strip("> ")
        self.lookup_url, self.service_number = settings.notify_lookup_url, settings.notify_sms_service_number
        self.tls = ssl.create_default_context(cafile=settings.notify_smtp_cafile) if self.starttls else None

    def message(self, row: dict[str, Any]) -> EmailMessage:
        mail = messages.mail(row["event"], row["facts"], self.lookup_url, self.service_number)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = row["destination"]
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = f"<{row['id']}@{self.domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(mail.text)
        return msg

    async def deliver(self, rows: list[dict[str, Any]], record: Any) -> None:
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, start_tls=self.starttls, tls_context=self.tls,
                               timeout=TIMEOUT_S)
        try:
            await smtp.connect()
            if self.username:
                await smtp.login(self.username, self.password or "")
        except (aiosmtplib.SMTPException, OSError) as exc:
            code = _smtp_code(exc)
            for row in rows:
                await record(row, Outcome("retry", error=f"smtp_{code}" if code else "smtp_unreachable"))
            return
        try:
            for row in rows:
                msg = self.message(row)
                try:
                    await smtp.send_message(msg)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    code = _smtp_code(exc)
                    permanent = code is not None and 500 <= code < 600
                    await record(row, Outcome("failed" if permanent else "retry",
                                              error=f"smtp_{code}" if code else "smtp_error"))
                    if not smtp.is_connected:
                        await smtp.connect()
                    continue
                await record(row, Outcome("sent", provider_id=msg["Message-ID"].strip("<>")),
                             sent_to=row["destination"], body=msg["Subject"] + "\n\n" + msg.get_content())
        except (aiosmtplib.SMTPException, OSError):
            pass  # the server went away: the rows not recorded wait for their lease
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()


class Deliverer:
    def __init__(self, conn: AsyncConnection[Any], settings: Any, http: httpx.AsyncClient) -> None:
        self.conn, self.settings = conn, settings
        self.sms = (SmsGateway(settings.notify_sms_gateway_url, settings.notify_sms_api_key,
                               settings.notify_sms_brandname, http)
                    if settings.notify_sms_gateway_url and settings.notify_sms_api_key else None)
        self.mailer = Mailer(settings) if settings.notify_smtp_host and settings.notify_mail_from else None
        self.channels = [c for c, on in (("sms", self.sms), ("email", self.mailer)) if on]
        self.tally: dict[str, int] = {}

    async def record(self, row: dict[str, Any], out: Outcome, *, sent_to: str | None = None,
                     body: str | None = None) -> None:
        status = await outbox.done(self.conn, row, out.outcome, provider_id=out.provider_id, sent_to=sent_to,
                                   body=body, error=out.error, retry_after_s=out.retry_after_s,
                                   max_attempts=self.settings.notify_max_attempts)
        key = status or "superseded"
        self.tally[key] = self.tally.get(key, 0) + 1

    async def _sms(self, row: dict[str, Any], gate: asyncio.Semaphore) -> None:
        assert self.sms is not None
        to = messages.sms_number(row["destination"])
        if to is None:
            await self.record(row, Outcome("failed", error="not_a_mobile_number"))
            return
        text = messages.sms_text(row["event"], row["facts"], self.settings.notify_sms_service_number)
        async with gate:
            out = await self.sms.send(str(row["id"]), to, text)
        await self.record(row, out, sent_to=to, body=text)

    async def round(self, batch: int, lease_s: int) -> int | None:
        """One claim and its sends: the rows handled, or None when nothing was due."""
        rows = await outbox.claim(self.conn, batch, lease_s, self.channels)
        if not rows:
            return None
        gate = asyncio.Semaphore(SMS_IN_FLIGHT)
        mail = [r for r in rows if r["channel"] == "email"]
        jobs = [self._sms(r, gate) for r in rows if r["channel"] == "sms"]
        if mail and self.mailer:
            jobs.append(self.mailer.deliver(mail, self.record))
        await asyncio.gather(*jobs)
        return len(rows)


async def run(settings: Any, *, once: bool, batch: int = BATCH, lease_s: int = LEASE_S, on_round: Any = None) -> int:
    """Deliver until nothing is due (`once`), or for ever with a pause when idle. The database going
    away (a failover) is waited out: the worker reconnects, and rows it had claimed come back after
    their lease."""
    from psycopg.rows import dict_row

    from core_app.waits import app_connection

    total = 0
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as http:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        settings.auth_database_url, autocommit=True, row_factory=dict_row,
                        **app_connection(settings)) as conn:
                    deliverer = Deliverer(conn, settings, http)
                    if not deliverer.channels:
                        raise ValueError("no channel is configured: set KNTC_NOTIFY_SMS_GATEWAY_URL and "
                                         "KNTC_NOTIFY_SMS_API_KEY, or KNTC_NOTIFY_SMTP_HOST and KNTC_NOTIFY_MAIL_FROM")
                    while True:
                        n = await deliverer.round(batch, lease_s)
                        if n is None:
                            if once:
                                return total
                            await asyncio.sleep(IDLE_S)
                            continue
                        total += n
                        log.info("notify: %s", ", ".join(f"{k} {v}" for k, v in sorted(deliverer.tally.items())))
                        deliverer.tally.clear()
                        if on_round:
                            on_round(n)
            except psycopg.OperationalError as exc:
                if once:
                    raise
                log.warning("notify: database unavailable (%s); reconnecting in %d s", type(exc).__name__, IDLE_S)
                await asyncio.sleep(IDLE_S)
