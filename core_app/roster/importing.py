"""A roster uploaded in the administrator's pages or to the API: checked and created in the officer's
own transaction (row-level security and kntc.may_grant apply), the initial passwords sealed for that
administrator to download once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from psycopg import AsyncConnection

from core_app import sealing
from core_app.gate import Actor
from core_app.roster import credentials, format, load

# A province and its communes is about 218 accounts; the command line takes national files.
WEB_MAX_ROWS = 5_000
PURPOSE = "roster credentials"


@dataclass(frozen=True)
class Report:
    outcome: load.Outcome
    delivery: str | None  # the one-time download of the initial passwords

    def as_json(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "rows": o.rows, "dry_run": o.dry_run, "ok": not o.errors,
            "created": [{"line": c.line, "username": c.username, "full_name": c.full_name, "unit": c.unit_code}
                        for c in o.created],
            "unchanged": [{"line": line, "username": u} for line, u in o.unchanged],
            "errors": [{"line": e.line, "message": e.vi, "message_en": e.en} for e in o.errors],
            "credentials": f"/api/accounts/import/{self.delivery}/credentials" if self.delivery else None,
        }


async def from_upload(conn: AsyncConnection[Any], actor: Actor, data: bytes, filename: str, reason: str,
                      dry_run: bool, secret_key: sealing.Keys) -> Report:
    rows = format.read(data, filename)
    if len(rows) > WEB_MAX_ROWS:
        raise format.RosterUnreadable(
            f"Tải lên tối đa {WEB_MAX_ROWS} dòng; tệp lớn hơn hãy nhập bằng lệnh kntc accounts import.",
            f"at most {WEB_MAX_ROWS} rows by upload; import larger files with `kntc accounts import`")
    out = await load.run(conn, rows, load.Importer(session=True), dry_run=dry_run,
                         file_sha256=load.sha256_of(data), reason=reason)
    if out.errors or dry_run or not out.created:
        return Report(out, None)
    sealed = sealing.seal(secret_key, PURPOSE, credentials.as_csv(out.created), str(actor.account_id))
    cur = await conn.execute("SELECT kntc.delivery_put(%s) AS id", (sealed,))
    got = await cur.fetchone()
    return Report(out, str(got["id"]) if got else None)


async def take_credentials(conn: AsyncConnection[Any], handle: str, secret_key: sealing.Keys) -> bytes | None:
    """The initial passwords the acting administrator's import stored under `handle`, once; None when
    they are gone or another's."""
    cur = await conn.execute("SELECT kntc.delivery_take(%s) AS sealed, (kntc.actor()).account_id AS me", (handle,))
    got = await cur.fetchone()
    if not got or got["sealed"] is None:
        return None
    try:
        return sealing.unseal(secret_key, PURPOSE, got["sealed"], str(got["me"]))
    except InvalidTag:
        return None
