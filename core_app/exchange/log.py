"""The exchange log: every message in and out, with its SHA-256, in a hash chain per client.

Written by `kntc.exchange_log_append` (migration 0011) inside the transaction that did the work,
so a message is logged exactly when its effect is committed. Verified here, in Python, never with
the database's functions (the owner could replace them): each row's hash must be
sha256(prev_hash || canonical(row)), ids gapless per client, the chain's head where the table says,
and, where the verifier may read them, each kept message must still match its digest.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

GENESIS = bytes(32)
SEPARATOR = "\x1f"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

APPEND = "SELECT kntc.exchange_log_append(%s, %s, %s, %s, %s, %s, %s)"


async def record(
    conn: AsyncConnection[Any],
    client_id: int,
    route: str,
    message_in: bytes,
    status: int,
    message_out: bytes,
    *,
    keep_out: bool = True,
) -> None:
    """The request and its answer, as two linked rows of the client's chain."""
    mid = uuid.uuid4()
    await conn.execute(APPEND, (client_id, "in", mid, route, None, message_in, True))
    await conn.execute(APPEND, (client_id, "out", mid, route, status, message_out, keep_out))


async def record_push(
    conn: AsyncConnection[Any], client_id: int, route: str, message_out: bytes, status: int, reply: bytes
) -> None:
    """A message we sent (a webhook) and the receiver's answer (status 0: no answer)."""
    mid = uuid.uuid4()
    await conn.execute(APPEND, (client_id, "out", mid, route, None, message_out, True))
    await conn.execute(APPEND, (client_id, "in", mid, route, status, reply, True))


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes hashed after prev_hash: the same text kntc.exchange_log_append builds."""
    micros = (row["at"] - EPOCH) // timedelta(microseconds=1)
    parts = [
        str(row["id"]),
        str(micros),
        str(row["client_id"]),
        row["direction"],
        str(row["message_id"]),
        row["route"],
        "" if row["status"] is None else str(row["status"]),
        bytes(row["digest"]).hex(),
        row["db_user"],
    ]
    return SEPARATOR.join(parts).encode()


@dataclass
class Report:
    rows: int = 0
    clients: int = 0
    bodies_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


ROWS = """
SELECT client_id, id, at, direction, message_id, route, status, digest, db_user, prev_hash, hash{body}
  FROM kntc.exchange_log ORDER BY client_id, id
"""


def verify(conn: Any, *, with_bodies: bool = False, max_problems: int = 1000) -> Report:
    """Walk every client's chain (psycopg sync connection, dict rows, inside a transaction)."""
    rep = Report()
    heads = {
        r["client_id"]: (r["last_id"], bytes(r["last_hash"]))
        for r in conn.execute("SELECT client_id, last_id, last_hash FROM kntc.exchange_chain").fetchall()
    }
    seen: dict[int, tuple[int, bytes]] = {}
    client, prev_id, prev_hash = -1, 0, GENESIS
    with conn.cursor(name="kntc_exchange_verify") as cur:
        cur.itersize = 5000
        cur.execute(ROWS.format(body=", body" if with_bodies else ""))
        for row in cur:
            if row["client_id"] != client:
                if client >= 0:
                    seen[client] = (prev_id, prev_hash)
                client, prev_id, prev_hash = row["client_id"], 0, GENESIS
            rid, stored_prev, stored = row["id"], bytes(row["prev_hash"]), bytes(row["hash"])
            where = f"client {client} message {rid}"
            if rid != prev_id + 1:
                rep.problems.append(f"{where}: ids {prev_id + 1}–{rid - 1} removed / đã bị xóa")
            elif stored_prev != prev_hash:
                rep.problems.append(f"{where}: link to message {prev_id} broken / liên kết bị sửa")
            if hashlib.sha256(stored_prev + canonical(row)).digest() != stored:
                rep.problems.append(f"{where}: content does not match its hash / nội dung đã bị sửa")
            if with_bodies and row["body"] is not None:
                rep.bodies_checked += 1
                if hashlib.sha256(bytes(row["body"])).digest() != bytes(row["digest"]):
                    rep.problems.append(f"{where}: the kept message does not match its digest / thông điệp bị sửa")
            prev_id, prev_hash = rid, stored
            rep.rows += 1
            if len(rep.problems) >= max_problems:
                return rep
        if client >= 0:
            seen[client] = (prev_id, prev_hash)
    for c, head in sorted(heads.items()):
        got = seen.get(c, (0, GENESIS))
        if got != head:
            rep.problems.append(
                f"client {c}: the chain ends at message {got[0]} but its head says {head[0]} "
                "(rows removed from the end, or the head rewritten) / chuỗi bị cắt"
            )
    for c in sorted(set(seen) - set(heads)):
        rep.problems.append(f"client {c}: messages without a chain head")
    rep.clients = len(heads)
    return rep
