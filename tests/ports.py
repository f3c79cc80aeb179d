"""The ports of a test session's own PostgreSQL clusters: the session's on KNTC_TEST_PG_PORT, the DR
tests' on the next four. A block is free when nothing listens on its ports or when what listens is
this checkout's own cluster of that port (left by an earlier session, which reuses it)."""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST, LAST, BLOCK = 55433, 55632, 5


def ours(port: int) -> bool:
    """Whether what listens on the port is this checkout's own test cluster of that port."""
    pid = ROOT / ".data" / f"test-{port}" / "pg" / "postmaster.pid"
    try:
        return pid.read_text().splitlines()[3].strip() == str(port)
    except (OSError, IndexError):
        return False


def listened(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_block(start: int = FIRST) -> int | None:
    """The first port, from `start` in steps of ten, whose block of five is free for this checkout."""
    for base in range(start, LAST, 10):
        if all(ours(p) or not listened(p) for p in range(base, base + BLOCK)):
            return base
    return None
