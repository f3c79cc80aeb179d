"""A local SMS gateway for the lab and the tests: the provider's side of runbooks/sms-gateway.md.

`kntc notify gateway-sim --port 9099`: one process (its state is in memory), listening on the loopback
unless told otherwise. It keeps the contract a provider signs up to, so the platform is tested against
the rules and not against luck:
- `POST /v1/messages` needs the API key; refuses a number that is not "84…" and a text outside the GSM
  alphabet or longer than four segments; deduplicates on `client_message_id` (a repeat answers the
  first message's id with status `duplicate`, and no second message reaches the phone);
- after accepting a message it posts a delivery report to the platform, signed, and posts it again
  while the platform answers 409 (not yet recorded as sent);
- `POST /_sim/mo` plays a citizen texting the service number: it signs and posts the message to the
  platform as the provider would, and keeps the reply as a message to that phone.

For the tests (the `/_sim/` routes are the simulator's, never a provider's):
- `GET /_sim/state`: the phones' messages (`handset`), every send request (`requests`), the reports;
- `POST /_sim/behave {"fail": [503, 503], "delay_s": 5}`: answer the next sends with these statuses,
  and/or take this long to answer each (a message is taken, and reaches the phone, before the delay:
  a provider that sent but whose answer was lost);
- `POST /_sim/reset`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core_app.notify import gateway
from core_app.notify.messages import CODEC

MAX_SEPTETS = 612  # four concatenated segments of 153
REPORT_TRIES = 20


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.handset: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.fail: list[int] = []
        self.delay_s = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {"handset": self.handset, "requests": self.requests, "reports": self.reports,
                "messages": len(self.messages), "fail": self.fail, "delay_s": self.delay_s}


def create_app(api_key: str, platform_url: str | None = None, callback_key: str | None = None,
               report_delay_s: float = 0.2) -> Starlette:
    state = State()
    tasks: set[asyncio.Task[Any]] = set()
    http = httpx.AsyncClient(timeout=10)

    async def post_signed(path: str, payload: dict[str, Any]) -> httpx.Response:
        assert platform_url and callback_key
        body = orjson.dumps(payload)
        headers = gateway.signed_headers(callback_key, "cb_" + secrets.token_hex(12), body)
        return await http.post(platform_url.rstrip("/") + path, content=body, headers=headers)

    async def report(message: dict[str, Any]) -> None:
        payload = {"client_message_id": message["client_message_id"],
                   "provider_message_id": message["provider_message_id"], "status": "delivered"}
        body = orjson.dumps(payload)
        # One callback id for every try of this report, as a provider retries one event.
        headers = gateway.signed_headers(callback_key or "", "dlr_" + message["provider_message_id"], body)
        await asyncio.sleep(report_delay_s)
        for _ in range(REPORT_TRIES):
            headers = gateway.signed_headers(callback_key or "", headers["webhook-id"], body)
            try:
                r = await http.post(str(platform_url).rstrip("/") + "/api/notify/sms/reports", content=body,
                                    headers=headers)
                state.reports.append({**payload, "answer": r.status_code})
                if r.status_code != 409:
                    return
            except httpx.HTTPError:
                state.reports.append({**payload, "answer": 0})
            await asyncio.sleep(0.5)

    async def send(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            data = orjson.loads(await request.body())
            client_id, to, text = str(data["client_message_id"]), str(data["to"]), str(data["text"])
            brandname = str(data["brandname"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return JSONResponse({"error": "bad_request"}, status_code=400)
        entry = {"client_message_id": client_id, "at": time.time(), "answer": None}
        state.requests.append(entry)
        if state.fail:
            entry["answer"] = state.fail.pop(0)
            return JSONResponse({"error": "simulated_failure"}, status_code=entry["answer"])
        if not (to.startswith("84") and to.isdigit() and 11 <= len(to) <= 12):
            entry["answer"] = 422
            return JSONResponse({"error": "invalid_phone"}, status_code=422)
        try:
            if len(text.encode(CODEC)) > MAX_SEPTETS:
                raise ValueError
        except (UnicodeEncodeError, ValueError):
            entry["answer"] = 422
            return JSONResponse({"error": "invalid_text"}, status_code=422)
        known = state.messages.get(client_id)
        if known is None:
            known = {"client_message_id": client_id, "provider_message_id": "sim-" + secrets.token_hex(8),
                     "to": to, "text": text, "brandname": brandname, "at": time.time()}
            state.messages[client_id] = known
            state.handset.append({"to": to, "text": text, "from": brandname, "client_message_id": client_id})
            if platform_url and callback_key:
                task = asyncio.create_task(report(known))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            status = "accepted"
        else:
            status = "duplicate"
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        entry["answer"] = 200
        return JSONResponse({"provider_message_id": known["provider_message_id"], "status": status, "parts": 1})

    async def mo(request: Request) -> Response:
        data = orjson.loads(await request.body())
        payload = {"message_id": "mo-" + secrets.token_hex(8), "from": data["from"], "to": data.get("to") or "8077",
                   "text": data["text"]}
        r = await post_signed("/api/notify/sms/inbound", payload)
        got = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code == 200 and got.get("reply"):
            state.handset.append({"to": got.get("to"), "text": got["reply"], "from": payload["to"],
                                  "reply_to": payload["message_id"]})
        return JSONResponse({"status": r.status_code, **got})

    async def behave(request: Request) -> Response:
        data = orjson.loads(await request.body())
        if "fail" in data:
            state.fail = [int(s) for s in data["fail"]]
        if "delay_s" in data:
            state.delay_s = float(data["delay_s"])
        return JSONResponse(state.snapshot())

    async def show(_: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def reset(_: Request) -> Response:
        state.reset()
        return JSONResponse(state.snapshot())

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    return Starlette(lifespan=lifespan, routes=[
        Route("/v1/messages", send, methods=["POST"]),
        Route("/_sim/mo", mo, methods=["POST"]),
        Route("/_sim/behave", behave, methods=["POST"]),
        Route("/_sim/state", show, methods=["GET"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ])
