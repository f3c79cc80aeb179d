"""Recompute the hash chains of kntc.audit_log in Python.

Each row stores prev_hash and hash = sha256(prev_hash || canonical(row)); ids are gapless within
a chain (chain 0: the history written before the chains were split, and rows of no unit; chain
1 + u % 256: unit u). Walking each chain in id order shows an edited row (its hash no longer
matches its content), a removed row (a hole in the ids) and a rewritten hash (the next row's link
breaks).

The canonical text is built here, never by the database: the owner role can replace
kntc.audit_canonical() or kntc.audit_text() with a function that hides an edit. Only the jsonb
images are read as text (PostgreSQL's built-in jsonb output, with search_path pinned to pg_catalog),
because their exact bytes are what was hashed.

A consistent chain may still have been rewritten from some row on and recomputed, or cut short at
the end: that is what the signed anchors (anchors.py) catch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS = bytes(32)
SEPARATOR = "\x1f"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ROWS = """
SELECT chain, id, at, account_id, db_user, unit_id, table_name, op, row_key,
       before::text AS before, after::text AS after, prev_hash, hash
  FROM kntc.audit_log ORDER BY chain, id
"""


@dataclass
class Problem:
    chain: int
    id: int
    # altered, missing, relinked, rewritten, removed (chains); trigger, function, drift, anchor
    kind: str
    detail: str


@dataclass
class Report:
    rows: int = 0
    heads: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # chain -> (id, hash)
    anchors: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes hashed after prev_hash: the same as kntc.audit_text() of migration 0002."""
    micros = (row["at"] - EPOCH) // timedelta(microseconds=1)
    parts = [str(row["id"]), str(micros), _text(row["account_id"]), row["db_user"], _text(row["unit_id"]),
             row["table_name"], row["op"], row["row_key"], row["before"] or "", row["after"] or ""]
    return SEPARATOR.join(parts).encode()


def _text(v: int | None) -> str:
    return "" if v is None else str(v)


def walk(conn: Any, anchored: dict[tuple[int, int], tuple[bytes, str]] | None = None, batch: int = 20_000,
         on_progress: Callable[[int], None] | None = None, max_problems: int = 1000,
         report: Report | None = None) -> Report:
    """Walk every chain (psycopg sync connection, dict rows, inside a transaction).

    `anchored` maps (chain, id) to (hash, anchor name): each must still be on its chain."""
    rep = report or Report()
    anchored = dict(anchored or {})
    chain, prev_id, prev_hash = -1, 0, GENESIS

    def close(c: int) -> None:
        if c >= 0:
            rep.heads[c] = (prev_id, prev_hash)

    with conn.cursor(name="kntc_audit_verify") as cur:
        cur.itersize = batch
        cur.execute(ROWS)
        for row in cur:
            if row["chain"] != chain:
                close(chain)
                chain, prev_id, prev_hash = row["chain"], 0, GENESIS
            rid, stored_prev, stored = row["id"], bytes(row["prev_hash"]), bytes(row["hash"])
            if rid != prev_id + 1:
                first, last = prev_id + 1, rid - 1
                what = f"id {first}" if first == last else f"ids {first}–{last}"
                rep.problems.append(Problem(chain, first, "missing", f"chain {chain} {what} removed / đã bị xóa"))
            elif stored_prev != prev_hash:
                rep.problems.append(Problem(chain, rid, "relinked", f"chain {chain} id {rid}: link to id {prev_id} "
                                            "broken (a hash or this row's prev_hash was rewritten)"))
            if hashlib.sha256(stored_prev + canonical(row)).digest() != stored:
                rep.problems.append(Problem(chain, rid, "altered", f"chain {chain} id {rid}: content does not match "
                                            "its hash / nội dung đã bị sửa"))
            want = anchored.pop((chain, rid), None)
            if want is not None and want[0] != stored:
                rep.problems.append(Problem(chain, rid, "rewritten", f"chain {chain} id {rid}: hash differs from the "
                                            f"one signed in {want[1]} / chuỗi đã bị viết lại"))
            prev_id, prev_hash = rid, stored
            rep.rows += 1
            if on_progress and rep.rows % batch == 0:
                on_progress(rep.rows)
            if len(rep.problems) >= max_problems:
                return rep
        close(chain)
    for (c, rid), (_, name) in sorted(anchored.items()):
        rep.problems.append(Problem(c, rid, "removed", f"chain {c} id {rid}, signed in {name}, is no longer in the "
                                    "log: rows were removed from the end / đã bị xóa"))
    return rep
