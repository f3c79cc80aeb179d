"""Verifying a webhook the Standard Webhooks way (https://www.standardwebhooks.com/).

The server signs `webhook-id.webhook-timestamp.body` with HMAC-SHA256 under the secret it gave you
(`whsec_` and base64); `webhook-signature` holds `v1,<base64>` entries separated by spaces (more
than one while a secret is being rotated). A message is accepted only with a valid signature and a
timestamp within the tolerance of your clock: an old message replayed later is refused. Deliveries
are at least once: keep the `webhook-id`s you processed and ignore a repeat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

TOLERANCE_S = 300


class WebhookRejected(Exception):
    """The message is not from the server, or too old or too new to be trusted."""


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = TOLERANCE_S, now: float | None = None
) -> Any:
    """The message's JSON if it is genuine and fresh; WebhookRejected otherwise."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(stamp)
    except ValueError:
        raise WebhookRejected("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise WebhookRejected(f"timestamp {ts} is outside {tolerance_s} s of now: too old (a replay?) or too new")
    expected = sign(secret, msg_id, ts, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in signatures.split() if s.startswith("v1,")):
        raise WebhookRejected("no valid signature")
    return json.loads(body)
