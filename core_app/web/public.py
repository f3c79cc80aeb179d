"""The citizen's lookup page: no login, the code and secret from the receipt.

Only what kntc.public_lookup returns is shown (status, handling unit, dates, the published
result of an unclassified case). A wrong code and a wrong secret get the very same page.

The same proof lets the citizen withdraw, give again or change their consent to notifications
(kntc.public_notify_choice): the secret is typed again for it (it is never put back into a page),
under the lookup's throttling, and a wrong code or secret gets the lookup's own answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from core_app import throttle
from core_app.repo import cases, notifications
from core_app.web import guard
from core_app.web.base import form_of, text
from core_app.web.render import page

router = APIRouter(include_in_schema=False)

NO_MATCH = ("Không tìm thấy hồ sơ với mã hồ sơ và mã tra cứu đã nhập. Hãy kiểm tra lại giấy biên nhận.",
            "No case matches this case code and lookup secret. Check the receipt again.")


@router.get("/lookup")
async def lookup_form(request: Request) -> Response:
    return page(request, "lookup.html", form={}, result=None, error=None)


@router.post("/lookup")
async def lookup(request: Request) -> Response:
    form = await form_of(request)
    code, secret = text(form, "code") or "", text(form, "secret") or ""
    return await _answer(request, code, secret, None)


@router.post("/lookup/notifications")
async def notify_choice(request: Request) -> Response:
    """The citizen's consent to notifications: the channels ticked (none: withdrawn)."""
    form = await form_of(request)
    code, secret = text(form, "code") or "", text(form, "secret") or ""
    channels = sorted({c for c in form.getlist("channel") if c in ("sms", "email")})
    return await _answer(request, code, secret, channels)


async def _answer(request: Request, code: str, secret: str, channels: list[str] | None) -> Response:
    addr = guard.client_address(request)
    # The secret is never echoed back into the page.
    kept = {"code": code}
    if not (3 <= len(code) <= 64) or not (8 <= len(secret) <= 64):
        return page(request, "lookup.html", status_code=400, form=kept, result=None,
                    error=("Hãy nhập mã hồ sơ và mã tra cứu in trên giấy biên nhận.",
                           "Enter the case code and the lookup secret printed on the receipt."))

    async def run(conn: Any) -> dict[str, Any] | None:
        row = await cases.public_lookup(conn, code, secret)
        if row is None:
            return None
        # Read after any change, in the same transaction: what is now recorded.
        if channels is not None:
            await notifications.public_choice(conn, code, secret, channels)
        return {**row, "notify": await notifications.public_choice(conn, code, secret, None)}

    try:
        row = await throttle.lookup_guarded(request.app.state.db, addr, run)
    except throttle.Throttled as exc:
        return page(request, "lookup.html", status_code=429, form=kept, result=None, error=(exc.vi, exc.en))
    except notifications.ConsentRefused as exc:
        return page(request, "lookup.html", status_code=exc.status, form=kept, result=None, error=(exc.vi, exc.en))
    if row is None:
        return page(request, "lookup.html", status_code=404, form=kept, result=None, error=NO_MATCH)
    return page(request, "lookup.html", form={}, result=row, error=None,
                saved=channels is not None)
