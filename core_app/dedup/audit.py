"""Verify the hash chain of kntc.audit_log.

Each row stores prev_hash and hash = sha256(prev_hash || kntc.audit_canonical(row)); ids are
gapless. Walking the rows in id order therefore shows an edited row (its hash no longer
matches its content), a removed row (a hole in the ids), and a rewritten hash (the next row's
link breaks). Removing the newest rows leaves a shorter but consistent chain: compare the
head printed here with one recorded earlier (`--expect-head`), as the runbook says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GENESIS = bytes(32)


@dataclass
class Problem:
    id: int
    kind: str  # 'altered' | 'missing' | 'relinked' | 'head'
    detail: str


@dataclass
class Report:
    rows: int = 0
    head_id: int = 0
    head_hash: str = GENESIS.hex()
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(conn: Any, expect_head: tuple[int, str] | None = None, batch: int = 20_000,
           on_progress: Callable[[int], None] | None = None, max_problems: int = 1000) -> Report:
    """Walk the chain with a server-side cursor (psycopg sync connection)."""
    rep = Report()
    prev_id, prev_hash = 0, GENESIS
    with conn.transaction(), conn.cursor(name="kntc_audit_verify") as cur:
        cur.itersize = batch
        cur.execute("SELECT a.id, a.prev_hash, a.hash, kntc.audit_canonical(a) AS canon "
                    "FROM kntc.audit_log a ORDER BY a.id")
        for row in cur:
            rid, stored_prev, stored, canon = _fields(row)
            if rid != prev_id + 1:
                first, last = prev_id + 1, rid - 1
                what = f"id {first}" if first == last else f"ids {first}–{last}"
                rep.problems.append(Problem(first, "missing", f"{what} removed / đã bị xóa"))
            elif stored_prev != prev_hash:
                rep.problems.append(Problem(rid, "relinked", f"id {rid}: link to id {prev_id} broken "
                                            f"(id {prev_id}'s hash or this row's prev_hash was rewritten)"))
            if hashlib.sha256(stored_prev + canon.encode()).digest() != stored:
                rep.problems.append(Problem(rid, "altered", f"id {rid}: content does not match its hash "
                                            "/ nội dung đã bị sửa"))
            prev_id, prev_hash = rid, stored
            rep.rows += 1
            if on_progress and rep.rows % batch == 0:
                on_progress(rep.rows)
            if len(rep.problems) >= max_problems:
                break
    rep.head_id, rep.head_hash = prev_id, prev_hash.hex()
    if expect_head is not None:
        eid, ehash = expect_head
        if prev_id < eid:
            rep.problems.append(Problem(prev_id + 1, "missing", f"ids {prev_id + 1}–{eid} removed from the end "
                                        f"(the recorded head was id {eid})"))
        else:
            cur2 = conn.execute("SELECT hash FROM kntc.audit_log WHERE id = %s", (eid,)).fetchone()
            got = _fields(cur2)[0].hex() if cur2 else None
            if got != ehash.lower():
                rep.problems.append(Problem(eid, "head", f"id {eid}: hash differs from the recorded head"))
    return rep


def _fields(row: Any) -> tuple[Any, ...]:
    if isinstance(row, dict):
        return tuple(row.values())
    return tuple(row)


def parse_head(text: str) -> tuple[int, str]:
    rid, _, digest = text.partition(":")
    if not rid.isdigit() or len(digest) != 64:
        raise ValueError("expected ID:SHA256HEX, as printed by `kntc audit verify`")
    return int(rid), digest
