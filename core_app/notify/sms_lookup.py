"""The citizen's lookup by SMS: "KNTC <case code> <lookup secret>" texted to the service number.

The gateway posts the message to the platform (signed, see core_app.notify.gateway); the answer's
`reply` is the one message the provider sends back to the sender. The rules are the web lookup's
(core_app/web/public.py), with the sender's number in the place of the client's address:
- a wrong code and a wrong secret get the very same reply;
- failures are counted per number in `lookup_fail` (kntc.throttle): past 3 each lookup waits 1 s,
  2 s … up to 8 s, and 30 in 15 minutes stop that number for a while;
- and, because each reply is a paid message, every message a number sends counts against its own
  budget (`sms_lookup_sender`, 10 an hour), whatever its outcome.
The gateway's own address is not what is counted: every citizen's lookup comes from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core_app import throttle
from core_app.notify import messages
from core_app.repo import cases

KEYWORDS = {"KNTC", "TRACUU", "TC"}
CODE = re.compile(r"^[A-Z0-9][A-Z0-9.-]{1,40}-[0-9]{4}-[0-9]{6}$")
SENDER_BUDGET = "sms_lookup_sender"


@dataclass(frozen=True)
class Answer:
    reply: str
    outcome: str  # found, no_match, syntax, throttled: for the log line, never the text


def parse(text: str) -> tuple[str, str] | None:
    """(case code, lookup secret) from what the citizen typed, or None. The keyword is optional and
    the secret may be typed with spaces between its groups."""
    words = text.upper().split()
    while words and words[0] in KEYWORDS:
        words = words[1:]
    if len(words) < 2 or not CODE.match(words[0]):
        return None
    secret = "".join(words[1:])
    if not 8 <= len(secret) <= 64:
        return None
    return words[0], secret


def _throttled(retry_after_s: int) -> Answer:
    minutes = max(1, (retry_after_s + 59) // 60)
    return Answer(messages.plain(messages.THROTTLED.format(minutes=minutes)), "throttled")


async def answer(db: Any, sender: str, text: str) -> Answer:
    """The reply to one lookup from `sender` (a number "84…")."""
    async with db.transaction() as conn:
        spent = await throttle.hit(conn, SENDER_BUDGET, sender)
    if not spent["allowed"]:
        return _throttled(spent["retry_after_s"])
    asked = parse(text)
    if asked is None:
        return Answer(messages.plain(messages.SYNTAX), "syntax")
    code, secret = asked
    try:
        row = await throttle.lookup_guarded(db, "sms:" + sender, lambda conn: cases.public_lookup(conn, code, secret))
    except throttle.Throttled as exc:
        return _throttled(exc.retry_after_s)
    if row is None:
        return Answer(messages.plain(messages.NO_MATCH), "no_match")
    return Answer(messages.lookup_reply(row), "found")
