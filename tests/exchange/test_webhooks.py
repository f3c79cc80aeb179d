"""Webhooks signed the Standard Webhooks way, delivered from the outbox with back-off across restarts,
and verified by the reference client.

Threat rows: T72.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from connect_client import Connection
from connect_client.webhooks import WebhookRejected, sign, verify
from tests.conftest import free_port
from tests.exchange.conftest import Registered, kntc, submission

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_reference_client_accepts_a_genuine_fresh_message() -> None:
    body, now = b'{"type":"case.created"}', int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "msg_1", now, body),
    }
    assert verify(SECRET, headers, body) == {"type": "case.created"}
    # While a secret is rotated the server sends two signatures: one valid is enough.
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
    assert verify(SECRET, headers, body) == {"type": "case.created"}


@pytest.mark.parametrize("tamper", ["body", "signature", "id", "secret"])
def test_the_reference_client_rejects_a_wrong_signature(tamper: str) -> None:
    body, now = b'{"type":"case.created"}', int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(SECRET, "msg_1", now, body),
    }
    secret = SECRET
    if tamper == "body":
        body = b'{"type":"case.changed"}'
    elif tamper == "signature":
        headers["webhook-signature"] = "v1," + "A" * 44
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    else:
        secret = "whsec_" + "B" * 32
    with pytest.raises(WebhookRejected):
        verify(secret, headers, body)


@pytest.mark.parametrize("age_s", [301, -301, 86400])
def test_the_reference_client_rejects_an_old_or_future_timestamp(age_s: int) -> None:
    body = b"{}"
    ts = int(time.time()) - age_s
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, "msg_1", ts, body),
    }
    with pytest.raises(WebhookRejected, match="outside"):
        verify(SECRET, headers, body)


class Receiver:
    """A body's endpoint on the loopback: answers the statuses queued, then 200; keeps what it got."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.got: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/kntc-events"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_events_are_delivered_signed_with_back_off_across_restarts_and_never_twice(
    register: Callable[..., Registered],
    connect: Callable[..., Connection],
    owner: psycopg.Connection,
    xenv: dict[str, str],
    receiver: Receiver,
) -> None:
    client = register("T01-TAND")
    secret = json.loads(kntc(xenv, "exchange", "clients", "set-webhook", client.name, "--url", receiver.url).stdout)[
        "secret"
    ]
    with connect(client) as conn:
        # Deliver only what comes now: the unit's earlier cases are other tests' business.
        start = conn.feed_page("test", None, 500)
        while start["has_more"]:
            start = conn.feed_page("test", start["next_cursor"], 500)
        owner.execute(
            "UPDATE kntc.exchange_webhook w SET cursor = %s FROM kntc.exchange_client c "
            "WHERE c.id = w.client_id AND c.name = %s",
            (start["next_cursor"], client.name),
        )
        code = conn.submit(submission())["case_code"]

    def state() -> dict[str, Any]:
        return owner.execute(
            "SELECT w.attempts, w.next_at > now() AS waiting, w.cursor, w.last_error, "
            "       extract(epoch FROM w.next_at - w.updated_at) AS backoff_s "
            "FROM kntc.exchange_webhook w JOIN kntc.exchange_client c ON c.id = w.client_id "
            "WHERE c.name = %s",
            (client.name,),
        ).fetchone()

    def next_try(when: str) -> None:
        owner.execute(
            f"UPDATE kntc.exchange_webhook w SET next_at = {when} FROM kntc.exchange_client c "
            "WHERE c.id = w.client_id AND c.name = %s",
            (client.name,),
        )

    receiver.statuses = [503]
    kntc(xenv, "exchange", "deliver", "--once")  # the receiver is down: nothing acknowledged
    assert len(receiver.got) == 1
    failed = state()
    assert failed["attempts"] == 1 and failed["last_error"] == "HTTP 503"
    assert 4.5 <= float(failed["backoff_s"]) <= 5.5  # the first back-off: 5 s, then 10, 20 …
    next_try("now() + interval '1 hour'")  # as if the back-off had grown long
    kntc(xenv, "exchange", "deliver", "--once")  # a restart before the back-off ends: it waits
    assert len(receiver.got) == 1
    next_try("now()")  # the back-off has passed
    kntc(xenv, "exchange", "deliver", "--once")  # another process: resumes from the stored state
    assert len(receiver.got) == 2
    headers, body = receiver.got[1]
    event = verify(secret, headers, body)
    assert event["type"] == "case.created" and event["data"]["case_code"] == code
    assert headers["webhook-id"] == receiver.got[0][0]["webhook-id"]  # the same message, retried
    done = state()
    assert done["attempts"] == 0 and done["cursor"] == headers["webhook-id"]
    next_try("now()")
    kntc(xenv, "exchange", "deliver", "--once")
    assert len(receiver.got) == 2  # nothing delivered twice once acknowledged
    with pytest.raises(WebhookRejected):
        verify("whsec_" + "C" * 32, headers, body)
