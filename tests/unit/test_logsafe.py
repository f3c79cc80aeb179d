"""The log filter rewrites what a careless log line or an exception message could carry."""

from __future__ import annotations

import logging

import pytest

from core_app.logsafe import Redact, redact


@pytest.mark.parametrize("line", [
    "Authorization: Bearer 3q2-7Yh_abcdefghijklmnopqrstuvwxyz0123456789",
    'body {"code": "X00004-2026-000001", "secret": "ABCD-EFGH-IJKL-MNOP-QRST-UVWX"}',
    "GET /api/lookup?code=X00004-2026-000001&secret=abcd-efgh-ijkl-mnop-qrst-uvwx",
    "login failed password=Hunter2-secret for someone",
    "session kntc_session=Zx9_3q2-7Yh_abcdefghijklmnopqrstuvwxyz0123456 refused",
])
def test_secret_values_are_redacted(line: str):
    out = redact(line)
    assert "[redacted]" in out
    for secret in ("abcdefghijklmnopqrstuvwxyz", "ABCD-EFGH", "abcd-efgh", "Hunter2"):
        assert secret not in out


def test_filter_rewrites_message_arguments_and_tracebacks():
    try:
        raise ValueError("token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH")
    except ValueError as exc:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "secret %s", ("ABCD-EFGH-IJKL-MNOP-QRST-UVWX",),
                                   (type(exc), exc, exc.__traceback__))
    Redact().filter(record)
    text = logging.Formatter().format(record)
    assert "ABCD-EFGH" not in text and "abcdefghijklmnop" not in text and "[redacted]" in text
