"""A roster file checked without errors in the administrator's pages, kept server-side so that
"Import" creates the accounts from exactly the bytes that were checked, without a second upload.

Kept (kntc.roster_keep) for the session that checked it, for 30 minutes, with its SHA-256; the
content is sealed bound to the account and that digest, so a kept file altered in the database, or
moved to another administrator's row, opens to nothing and is refused as altered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from psycopg import AsyncConnection

from core_app import sealing
from core_app.gate import Actor
from core_app.roster import load

log = logging.getLogger(__name__)
SEALED_AS = "checked roster"
# What kntc.roster_checked holds at most, less the seal's nonce and tag.
MAX_BYTES = 4 * 1024 * 1024 - 28
MINUTES = 30


@dataclass(frozen=True)
class Kept:
    handle: str
    sha256: str
    expires_at: datetime


@dataclass(frozen=True)
class Taken:
    filename: str
    data: bytes
    sha256: str


class Refused(Exception):
    """Why a kept file cannot be imported, in Vietnamese and English."""

    def __init__(self, state: str, vi: str, en: str) -> None:
        super().__init__(en)
        self.state, self.vi, self.en = state, vi, en


REFUSALS = {
    "gone": ("Không còn tệp đã kiểm tra này (đã nhập rồi, hoặc không phải tệp anh/chị kiểm tra): "
             "hãy chọn tệp và kiểm tra lại.",
             "That checked file is not kept any more (imported already, or not checked by you): "
             "choose the file and check it again."),
    "expired": (f"Tệp đã kiểm tra quá {MINUTES} phút nên không còn được giữ: hãy chọn tệp và kiểm tra lại.",
                f"The file was checked more than {MINUTES} minutes ago and is no longer kept: "
                "choose the file and check it again."),
    "other_session": ("Tệp này được kiểm tra trong một phiên đăng nhập khác: hãy kiểm tra lại tệp trong "
                      "phiên này.",
                      "This file was checked in another login session: check it again in this one."),
    "altered": ("Tệp được giữ không còn khớp với tệp đã kiểm tra (đã bị thay đổi): không tạo tài khoản nào. "
                "Hãy kiểm tra lại tệp và báo quản trị hệ thống.",
                "The kept file no longer matches the file that was checked (it was altered): no account was "
                "created. Check the file again and tell the system administrators."),
}


def _bound(actor_id: int, sha256: str) -> str:
    return f"{actor_id} {sha256}"


async def keep(conn: AsyncConnection[Any], actor: Actor, data: bytes, filename: str,
               keys: sealing.Keys) -> Kept | None:
    """Keep the file just checked for this session (None: too large to keep; choose it again)."""
    if len(data) > MAX_BYTES:
        return None
    digest = load.sha256_of(data)
    sealed = sealing.seal(keys, SEALED_AS, data, _bound(actor.account_id, digest))
    cur = await conn.execute("SELECT * FROM kntc.roster_keep(%s, %s, %s)", (digest, filename[:255], sealed))
    got = await cur.fetchone()
    return Kept(str(got["id"]), digest, got["expires_at"]) if got else None


async def take(conn: AsyncConnection[Any], actor: Actor, handle: str, keys: sealing.Keys) -> Taken:
    """The bytes this session checked under `handle`, once; Refused otherwise."""
    cur = await conn.execute("SELECT * FROM kntc.roster_take(%s)", (handle,))
    got = await cur.fetchone()
    state = got["state"] if got else "gone"
    if state != "ok":
        raise Refused(state, *REFUSALS[state])
    digest = got["file_sha256"]
    try:
        data = sealing.unseal(keys, SEALED_AS, bytes(got["sealed"]), _bound(actor.account_id, digest))
    except InvalidTag:
        data = None
    if data is None or load.sha256_of(data) != digest:
        # Only someone writing to the database directly gets here: worth an operator's look.
        log.warning("checked roster %s of account %s does not open or match its digest", handle, actor.account_id)
        raise Refused("altered", *REFUSALS["altered"])
    return Taken(got["filename"], data, digest)


def refused_unknown() -> Refused:
    """A handle that is not one (a hand-made form): the same answer as a file no longer kept."""
    return Refused("gone", *REFUSALS["gone"])
