"""Keyset paging: the next page starts after the last row shown, so page 1,000 costs what page 1 does.

The cursor is the sort key of the last row, opaque to clients (URL-safe base64 of JSON).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from core_app.repo.cases import Invalid


def encode(*key: Any) -> str:
    raw = json.dumps([k.isoformat() if hasattr(k, "isoformat") else str(k) for k in key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str | None, size: int) -> list[str] | None:
    """The key a cursor carries (`size` strings), None for the first page; Invalid if it was tampered with."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str) for k in key):
        raise Invalid("after", "Con trỏ trang không hợp lệ; hãy tải lại danh sách từ đầu.",
                      "not a valid page cursor: reload the list from the start")
    return key


def page(rows: list[dict[str, Any]], per_page: int, *key_columns: str) -> dict[str, Any]:
    """The rows of one page (the query asked for one more) and the cursor of the next, if any."""
    more = len(rows) > per_page
    rows = rows[:per_page]
    nxt = encode(*(rows[-1][c] for c in key_columns)) if more and rows else None
    return {"data": rows, "per_page": per_page, "has_more": more, "next": nxt}
