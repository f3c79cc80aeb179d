"""The citizen's consent to notifications changed at the case file, on the citizen's request: the
channels (none: withdrawn) and the reason, by the unit holding the case (the database decides who,
kntc.notify_consent_set)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app.repo import notifications
from core_app.web.base import WebError, acting, form_of, text

router = APIRouter(prefix="/app", include_in_schema=False)


@router.post("/cases/{code}/notify-consent")
async def change(request: Request, code: str) -> Response:
    from core_app.web.cases import _case_page

    form = await form_of(request)
    party, reason = text(form, "party_id") or "", (text(form, "reason") or "")[:2000]
    channels = sorted({c for c in form.getlist("channel") if c in ("sms", "email")})
    async with acting(request) as (conn, actor):
        error: tuple[str, str] | None = None
        if len(party) != 36:
            raise WebError(400, "Hãy chọn người nhận thông báo.", "Choose whose notifications to change.")
        try:
            await notifications.officer_set(conn, party, channels, reason)
        except notifications.ConsentRefused as exc:
            if exc.status == 403:
                raise WebError(403, exc.vi, exc.en) from None
            error = (exc.vi, exc.en)
        except Exception as exc:  # a party id that is not a UUID
            if type(exc).__name__ not in ("InvalidTextRepresentation", "DataError"):
                raise
            raise WebError(400, "Hãy chọn người nhận thông báo.", "Choose whose notifications to change.") from None
        if error:
            return await _case_page(request, conn, actor, code, status_code=400, consent_error=error)
    return RedirectResponse(f"/app/cases/{code}#notifications", status_code=303)
