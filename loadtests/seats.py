"""Which officer each simulated user is, and how many distinct officers logged in.

Each Locust user takes an officer of its class that no other user of the run holds; when its
session ends it hands the officer back to the end of the queue and takes the next one, so that
sessions start by different officers, as in the capacity model (λ logins by distinct people).
Only when a class has fewer officers than users do users share one, as an officer's browser
tabs. With worker processes, the master deals each class's officers out among the workers, so
no officer is in two processes (a TOTP code is good once: two processes would replay it).

Every process counts the usernames it logged in; workers report them to the master, which
writes `officers.json` in the report folder and logs the count when the run ends.
"""

from __future__ import annotations

import json
import logging
import random
from collections import deque
from pathlib import Path
from typing import Any

from loadtests.officers import Officer

log = logging.getLogger("loadtests.seats")
REPORT = "officers.json"


class Seats:
    """One process's officers, by class."""

    def __init__(self) -> None:
        self.free: dict[str, deque[Officer]] = {}
        self.held: dict[str, list[Officer]] = {}
        self.pool = 0
        self.logged_in: set[str] = set()
        self._unreported: set[str] = set()
        self.logins = 0
        self.shared = 0

    def load(self, accounts: dict[str, list[dict[str, Any]]], password: str | None = None) -> None:
        """From the test data's accounts (an account without its own password has the run's)."""
        self.free.clear()
        self.held.clear()
        self.pool = 0
        for key, group in accounts.items():
            officers = [Officer.from_json({"password": password or "", **a, "key": key}) for a in group]
            self.free[key] = deque(officers)
            self.held[key] = []
            self.pool += len(officers)

    def take(self, key: str) -> tuple[Officer | None, bool]:
        """(officer, own): the longest-idle free officer of the class, or, none being free, one
        that another user holds (own False); (None, False) when this process has none of the class."""
        free = self.free.get(key)
        if free:
            officer = free.popleft()
            self.held[key].append(officer)
            return officer, True
        held = self.held.get(key)
        if held:
            self.shared += 1
            return random.choice(held), False  # noqa: S311 - which tab, not a secret
        return None, False

    def give_back(self, officer: Officer, own: bool) -> None:
        if own and officer in self.held.get(officer.key, []):
            self.held[officer.key].remove(officer)
            self.free[officer.key].append(officer)

    def logged(self, officer: Officer) -> None:
        self.logins += 1
        if officer.username not in self.logged_in:
            self.logged_in.add(officer.username)
            self._unreported.add(officer.username)

    def report(self) -> dict[str, Any]:
        """For the master: the usernames logged in since the last report, the logins and the pool."""
        out = {"usernames": sorted(self._unreported), "logins": self.logins, "pool": self.pool,
               "shared": self.shared}
        self._unreported.clear()
        return out


def deal(data: dict[str, Any], index: int, workers: int) -> dict[str, Any]:
    """Worker `index`'s share of the test data: every `workers`-th officer of each class."""
    accounts = {k: v[index::workers] for k, v in data.get("accounts", {}).items()}
    return {**data, "accounts": {k: v for k, v in accounts.items() if v}}


class Tally:
    """The master's (or the single process's) count across processes."""

    def __init__(self) -> None:
        self.usernames: set[str] = set()
        self.logins: dict[str, int] = {}
        self.pool: dict[str, int] = {}
        self.shared: dict[str, int] = {}

    def add(self, source: str, report: dict[str, Any]) -> None:
        self.usernames.update(report.get("usernames", []))
        self.logins[source] = report.get("logins", 0)
        self.pool[source] = report.get("pool", 0)
        self.shared[source] = report.get("shared", 0)

    def summary(self) -> dict[str, Any]:
        return {"distinct_officers_logged_in": len(self.usernames), "logins": sum(self.logins.values()),
                "officers_in_pool": sum(self.pool.values()), "users_sharing_an_officer": sum(self.shared.values())}

    def write(self, folder: str | Path | None) -> dict[str, Any]:
        s = self.summary()
        log.info("distinct officers logged in: %d (logins %d, pool %d, users that shared an officer %d)",
                 s["distinct_officers_logged_in"], s["logins"], s["officers_in_pool"], s["users_sharing_an_officer"])
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / REPORT).write_text(json.dumps(s, indent=1))
        return s
