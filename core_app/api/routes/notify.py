"""The SMS gateway's callbacks into the platform (runbooks/sms-gateway.md): a citizen's lookup by SMS,
and delivery reports of the notifications sent.

Both are signed by the gateway under the shared key (`KNTC_NOTIFY_SMS_CALLBACK_KEY`): the signature
and the timestamp are checked before anything else, so a forged or stale call costs no database
work; each callback id is accepted once, in the transaction that acts on it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core_app.api.deps import database
from core_app.api.errors import ApiError
from core_app.notify import gateway, messages, sms_lookup
from core_app.repo import notifications

router = APIRouter(prefix="/api/notify/sms", tags=["sms-gateway"])
log = logging.getLogger("kntc.notify")


class Callback(BaseModel):
    # A provider may add fields of its own (an operator code, a keyword): they are ignored, not refused.
    model_config = ConfigDict(extra="ignore")


class InboundIn(Callback):
    """A message a citizen texted to the service number."""

    message_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    sender: Annotated[str, StringConstraints(min_length=3, max_length=20)] = Field(
        alias="from", description="the sender's number, 84… (E.164 without +)")
    to: Annotated[str, StringConstraints(max_length=20)] | None = Field(None, description="the service number")
    text: Annotated[str, StringConstraints(max_length=1000)]
    received_at: datetime | None = None


class ReportIn(Callback):
    """A delivery report of a message the platform sent."""

    client_message_id: UUID
    provider_message_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    status: Literal["delivered", "failed", "expired", "rejected", "undeliverable"]
    error_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")] | None = None
    at: datetime | None = None


async def _verified(request: Request, model: type[Callback]) -> tuple[str, Any]:
    key = request.app.state.settings.notify_sms_callback_key
    if not key:
        # Not a 5xx: that would page the on-call for a setting, not an outage.
        raise ApiError(404, "sms_gateway_not_configured", "Chưa cấu hình cổng tin nhắn.",
                       "the SMS gateway is not configured on this platform")
    body = await request.body()
    try:
        callback_id = gateway.verify(key, request.headers, body)
    except gateway.CallbackRejected as exc:
        raise ApiError(401, "bad_signature", "Chữ ký của cổng tin nhắn không hợp lệ.", str(exc)) from None
    try:
        return callback_id, model.model_validate_json(body)
    except ValidationError as exc:
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
                  for e in exc.errors()[:5]]
        raise ApiError(422, "invalid_input", "Dữ liệu không hợp lệ.", "invalid callback body", fields=fields) from None


REPLAYED = ApiError(409, "replayed", "Tin này đã được xử lý.", "this callback id was already processed")


@router.post("/inbound")
async def inbound(request: Request) -> dict[str, Any]:
    """A citizen's lookup by SMS. Answers the one reply the gateway sends back to the sender; a wrong
    case code and a wrong lookup secret get the same reply."""
    callback_id, msg = await _verified(request, InboundIn)
    sender = messages.sms_number(msg.sender)
    if sender is None:
        raise ApiError(422, "invalid_sender", "Số gửi tin không phải số di động Việt Nam.",
                       "the sender is not a Vietnamese mobile number")
    db = database(request)
    async with db.transaction() as conn:
        if not await notifications.first_callback(conn, "mo:" + callback_id):
            raise REPLAYED
    got = await sms_lookup.answer(db, sender, msg.text)
    # Never the text (it holds the secret); the number by its last digits only.
    log.info("sms lookup from %s: %s", messages.masked(sender), got.outcome)
    return {"to": sender, "reply": got.reply}


@router.post("/reports")
async def reports(request: Request) -> dict[str, Any]:
    """A delivery report. 409 while the message is not yet recorded as sent under that provider id: the
    gateway retries it later, with the same id."""
    callback_id, rep = await _verified(request, ReportIn)
    async with database(request).transaction() as conn:
        if not await notifications.first_callback(conn, "dlr:" + callback_id):
            raise REPLAYED
        known = await notifications.report(conn, str(rep.client_message_id), rep.provider_message_id,
                                           rep.status == "delivered", rep.error_code or rep.status)
        if not known:
            # Raised inside the transaction: the id's record is undone with it, so the gateway's
            # retry of this report (same id) passes.
            raise ApiError(409, "not_sent_yet", "Chưa ghi nhận tin này là đã gửi; hãy gửi lại báo cáo sau.",
                           "no message sent under this id and provider id (yet): send the report again later")
    return {"recorded": True}
