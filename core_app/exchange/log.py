"""The exchange log: every message in and out, with its SHA-256, in a hash chain per client.

Written by `kntc.exchange_log_append` (migration 0011) inside the transaction that did the work,
so a message is logged exactly when its effect is committed. Verified here, in Python, never with
the database's functions (the owner could replace them): each row's hash must be
sha256(prev_hash || canonical(row)), ids gapless per client, the chain's head where the table says,
and, where the verifier may read them, each kept message must still match its digest.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

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


def heads_of(conn: Any) -> dict[int, tuple[int, bytes]]:
    rows = conn.execute("SELECT client_id, last_id, last_hash FROM kntc.exchange_chain").fetchall()
    return {r["client_id"]: (r["last_id"], bytes(r["last_hash"])) for r in rows}


def rows_of(conn: Any, *, with_bodies: bool) -> Iterator[dict[str, Any]]:
    with conn.cursor(name="kntc_exchange_verify") as cur:
        cur.itersize = 5000
        cur.execute(ROWS.format(body=", body" if with_bodies else ""))
        yield from cur


def verify(conn: Any, *, with_bodies: bool = False, max_problems: int = 1000) -> Report:
    """Walk every client's chain (psycopg sync connection, dict rows, inside a transaction)."""
    return walk(heads_of(conn), rows_of(conn, with_bodies=with_bodies), max_problems=max_problems)


def walk(heads: dict[int, tuple[int, bytes]], rows: Iterable[dict[str, Any]], *, max_problems: int = 1000) -> Report:
    """Check rows ordered by (client_id, id) against the chains' heads; a row with a `body` has it checked."""
    rep = Report()
    seen: dict[int, tuple[int, bytes]] = {}
    client, prev_id, prev_hash = -1, 0, GENESIS
    for row in rows:
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
        if row.get("body") is not None:
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


# An export for an auditor who has no access to the database: JSON lines, the heads first.
BINARY = ("digest", "prev_hash", "hash", "body")


def export(conn: Any, out: TextIO, *, with_bodies: bool = False) -> int:
    heads = {str(c): [i, h.hex()] for c, (i, h) in heads_of(conn).items()}
    out.write(json.dumps({"exchange_log_heads": heads}) + "\n")
    n = 0
    for row in rows_of(conn, with_bodies=with_bodies):
        line = {k: (bytes(v).hex() if k in BINARY and v is not None else v) for k, v in row.items()}
        line["at"], line["message_id"] = row["at"].isoformat(), str(row["message_id"])
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        n += 1
    return n


def verify_file(lines: Iterable[str], *, max_problems: int = 1000) -> Report:
    it = iter(lines)
    try:
        first = json.loads(next(it))
        heads = {int(c): (i, bytes.fromhex(h)) for c, (i, h) in first["exchange_log_heads"].items()}
    except (StopIteration, ValueError, KeyError, TypeError):
        return Report(problems=["not an export of kntc exchange export (its first line names the chains' heads)"])

    def rows() -> Iterator[dict[str, Any]]:
        for text in it:
            row = json.loads(text)
            for k in BINARY:
                if row.get(k) is not None:
                    row[k] = bytes.fromhex(row[k])
            row["at"] = datetime.fromisoformat(row["at"])
            yield row

    try:
        return walk(heads, rows(), max_problems=max_problems)
    except (ValueError, KeyError, TypeError) as exc:
        return Report(problems=[f"the export is damaged: {exc}"])
