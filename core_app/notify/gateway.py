"""The SMS gateway's HTTP contract, the platform's side (runbooks/sms-gateway.md).

Sending: `POST {gateway}/v1/messages` with the provider's API key (Bearer), the brandname, the
number ("84…"), the text and `client_message_id`, the outbox row's id, also sent as
`Idempotency-Key`. The contract obliges the provider to deduplicate on it for at least 7 days: the
same id again answers the first message's `provider_message_id` with status `duplicate` and sends
nothing. That is what makes a resend after a worker died mid-request harmless.

Callbacks (delivery reports, a citizen's lookup by SMS) come signed the Standard Webhooks way under
the key both sides share: HMAC-SHA256 over `id.timestamp.body`, a timestamp within 5 minutes, each
id once (the database remembers them, `kntc.sms_callback_seen`).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from core_app.exchange.webhooks import signature

TOLERANCE_S = 300
TIMEOUT_S = 10.0
# A provider's error code is kept only when it looks like one (it could otherwise echo a number).
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class CallbackRejected(Exception):
    """Not from the gateway, or too old or too new to be trusted."""


def sign(key: str, callback_id: str, timestamp: int, body: bytes) -> str:
    return signature(key.encode(), callback_id, timestamp, body)


def signed_headers(key: str, callback_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """What the gateway sends with a callback (the simulator and the tests sign with it)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": callback_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign(key, callback_id, ts, body), "content-type": "application/json"}


def verify(key: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
    """The callback's id if the signature is good and the timestamp fresh; CallbackRejected otherwise.
    Several `v1,` signatures may be sent (while the key is rotated): one good one is enough."""
    callback_id = headers.get("webhook-id") or ""
    stamp = headers.get("webhook-timestamp") or ""
    given = headers.get("webhook-signature") or ""
    if not callback_id or not stamp or not given or len(callback_id) > 200:
        raise CallbackRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(stamp)
    except ValueError:
        raise CallbackRejected("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - ts) > TOLERANCE_S:
        raise CallbackRejected("timestamp outside the 5-minute window")
    expected = sign(key, callback_id, ts, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in given.split() if s.startswith("v1,")):
        raise CallbackRejected("no valid signature")
    return callback_id


@dataclass(frozen=True)
class Outcome:
    """One attempt: 'sent' (with the provider's id), 'retry' (maybe after `retry_after_s`) or 'failed'."""

    outcome: str
    provider_id: str | None = None
    error: str | None = None
    retry_after_s: int | None = None


def _retry_after(r: httpx.Response) -> int | None:
    value = r.headers.get("retry-after", "")
    return min(int(value), 3600) if value.isdigit() else None


def _code(r: httpx.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return f"http_{r.status_code}"
    code = data.get("error") if isinstance(data, dict) else None
    return f"http_{r.status_code}_{code}" if isinstance(code, str) and _CODE.match(code) else f"http_{r.status_code}"


class SmsGateway:
    def __init__(self, url: str, api_key: str, brandname: str, http: httpx.AsyncClient) -> None:
        self.url = url.rstrip("/") + "/v1/messages"
        self.headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        self.brandname = brandname
        self.http = http

    async def send(self, message_id: str, to: str, text: str) -> Outcome:
        body = orjson.dumps({"brandname": self.brandname, "to": to, "text": text, "client_message_id": message_id})
        try:
            r = await self.http.post(self.url, content=body, headers={**self.headers, "idempotency-key": message_id})
        except httpx.TimeoutException:
            return Outcome("retry", error="gateway_timeout")
        except httpx.HTTPError:
            return Outcome("retry", error="gateway_unreachable")
        if 200 <= r.status_code < 300:
            try:
                provider_id = r.json().get("provider_message_id")
            except (ValueError, AttributeError):
                provider_id = None
            if not isinstance(provider_id, str) or not _PROVIDER_ID.match(provider_id):
                # Taken, but without the id its reports will name: the resend under the same key gets it.
                return Outcome("retry", error="gateway_answer_without_id")
            return Outcome("sent", provider_id=provider_id)
        if r.status_code in (401, 403):
            # The key is wrong or expired: an operator fixes it, meanwhile the message waits.
            return Outcome("retry", error=_code(r))
        if r.status_code in (408, 409, 425, 429) or r.status_code >= 500:
            return Outcome("retry", error=_code(r), retry_after_s=_retry_after(r))
        return Outcome("failed", error=_code(r))
