"""The API calls of officers' sessions, counted in this process and added to the shared counters
(kntc.throttle) in batches.

Adding one to a session's counter at every call made each read a write with a transaction id of its
own, about half the cost of the statement every request runs first. Here a call is counted in
memory as it arrives; every `EVERY_S` one transaction adds what each session called
(`kntc.throttle_add`, the keys in one order), and a call is judged by the shared counter plus what
this process has counted and not yet added (`kntc.throttle_allows`, in the officer's first
statement). One process never lets a session past its budget: a call judged while the process is
adding a batch may count that batch twice (between reading what is unsent and the statement's
snapshot the batch may commit), so it is refused early by at most that batch, never let through. A
session that several processes serve at once may pass its budget by what the others counted in the
last `EVERY_S`. A batch the database refused
(a failover) is kept and added with the next one: the counters are unlogged, a failover empties
them anyway, and what matters is that no call is free for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

log = logging.getLogger("kntc.call_counts")

EVERY_S = 0.25
# Sessions counted and not yet added past which a batch leaves at once, not at the next tick: a
# flood of fresh tokens must not grow this process's memory.
MAX_KEYS = 20_000


class CallCounts:
    """What one purpose's keys were called in this process and not yet added."""

    def __init__(self, purpose: str) -> None:
        self.purpose = purpose
        self.pending: Counter[str] = Counter()
        self.sending: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, key: str) -> None:
        self.pending[key] += 1
        if len(self.pending) >= MAX_KEYS:
            self._wake.set()

    def unsent(self, key: str) -> int:
        """Calls of `key` this process counted that the shared counter does not hold yet."""
        return self.pending.get(key, 0) + self.sending.get(key, 0)

    async def flush(self, db: Any) -> None:
        """Add what was counted since the last batch; kept for the next one if the database refused."""
        if not self.pending or self.sending:
            return
        self.sending, self.pending = self.pending, Counter()
        keys = sorted(self.sending)
        try:
            async with db.counting() as conn:
                await conn.execute("SELECT kntc.throttle_add(%s, %s, %s)",
                                   (self.purpose, keys, [self.sending[k] for k in keys]))
        except BaseException as exc:
            # Cancelled (the process stops) or refused: the batch is counted again, never lost.
            self.pending.update(self.sending)
            if not isinstance(exc, (psycopg.Error, PoolTimeout)):
                raise
            log.warning("%d sessions' API calls not added yet, kept for the next batch: %s", len(keys),
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            self.sending = Counter()

    def start(self, db: Any) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(db), name=f"call counts {self.purpose}")

    async def stop(self, db: Any) -> None:
        """Stop the batches and add what is left (a process that stops leaves no free calls)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush(db)

    async def _run(self, db: Any) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), EVERY_S)
            self._wake.clear()
            try:
                await self.flush(db)
            except Exception:  # a bug must not stop the counting for the process's lifetime
                log.exception("adding the API calls failed; trying again at the next batch")
