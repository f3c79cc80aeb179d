"""Logs never hold a session token, a citizen's lookup secret or a password.

A filter on every handler of the root logger rewrites each record before it is written: the
message and the traceback text. It catches what a careless log line or an exception's message
could carry: `Bearer …`, `password=…`/`"secret": "…"` pairs, the receipt's secret shape and
long random tokens.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_PATTERNS = [
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer " + REDACTED),
    (re.compile(r"(?i)((?:password|passwd|secret|token|lookup_secret|kntc_session)[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s&\"',;}]+"), r"\1" + REDACTED),
    # The receipt's secret: six groups of four base32 characters, in either case.
    (re.compile(r"(?i)\b[A-Z2-7]{4}(?:-?[A-Z2-7]{4}){5}\b"), REDACTED),
    # A session token (token_urlsafe(32)) or anything as long and as random.
    (re.compile(r"\b[A-Za-z0-9_-]{40,}\b"), REDACTED),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install() -> None:
    """Add the filter to every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(Redact())
