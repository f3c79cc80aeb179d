"""Which officer each simulated user is, and how many distinct officers logged in.

Each Locust user takes an officer of its class that no other user of the run holds; when its
session ends it hands the officer back to the end of the queue and takes the next one, so that
sessions start by different officers, as in the capacity model (λ logins by distinct people).
Only when a class has fewer officers than users do users share one, as an officer's browser
tabs. An account may play several classes (a small unit's one officer holds the four duties):
it is still one officer, one object here, whatever the class.

Users that share an officer share its session (`Desk`): one of them logs in while the others
wait for that login and use its token, because a TOTP code is good once and a second login of
the same step — or of an earlier step answered later — is refused as a replay. A login is not
the app's failure when the generator caused it. With worker processes, the master deals the
officers out by username, so no officer is in two processes.

Every process counts the usernames it logged in; workers report them to the master, which
writes `officers.json` in the report folder and logs the count when the run ends.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.officers import Officer

log = logging.getLogger("loadtests.seats")
REPORT = "officers.json"


@dataclass(eq=False)
class Desk:
    """An officer's live session in this process, shared by every user acting as that officer.

    `lock` is held across a login (and a page login), so a code is sent and answered before the
    next one is made; `token` and `cookie` are what that login gave (None: no live session)."""

    token: str | None = None
    cookie: str | None = None  # the pages' session cookie, "name=value"
    lock: Any = field(default_factory=threading.Lock)  # gevent's, once Locust has patched threading


class Seats:
    """One process's officers, by class."""

    def __init__(self) -> None:
        self.free: dict[str, deque[Officer]] = {}
        # By class, then username: handing an officer back is O(1) (a national run's 80,000 users
        # per worker all hand theirs back when it stops).
        self.held: dict[str, dict[str, Officer]] = {}
        self.desks: dict[str, Desk] = {}
        self.pool = 0
        self.logged_in: set[str] = set()
        self._unreported: set[str] = set()
        self.logins = 0
        self.shared = 0
        self.unusable: set[str] = set()  # officers whose test data the app refused (not the app's fault)

    def load(self, accounts: dict[str, list[dict[str, Any]]], password: str | None = None) -> None:
        """From the test data's accounts (an account without its own password has the run's); an
        account listed under several classes is one officer."""
        self.free.clear()
        self.held.clear()
        self.desks.clear()
        by_name: dict[str, Officer] = {}
        for key, group in accounts.items():
            officers = []
            for a in group:
                o = by_name.get(a["username"])
                if o is None:
                    o = by_name[a["username"]] = Officer.from_json({"password": password or "", **a, "key": key})
                officers.append(o)
            self.free[key] = deque(officers)
            self.held[key] = {}
        self.pool = len(by_name)

    def desk(self, officer: Officer) -> Desk:
        d = self.desks.get(officer.username)
        if d is None:
            d = self.desks[officer.username] = Desk()
        return d

    def take(self, key: str) -> tuple[Officer | None, bool]:
        """(officer, own): the longest-idle free officer of the class, or, none being free, one
        that another user holds (own False); (None, False) when this process has none of the class.
        Officers whose test data the app refused are not handed out again."""
        free = self.free.get(key)
        while free:
            officer = free.popleft()
            if officer.username in self.unusable:
                continue
            self.held[key][officer.username] = officer
            return officer, True
        held = [o for o in self.held.get(key, {}).values() if o.username not in self.unusable]
        if held:
            self.shared += 1
            return random.choice(held), False  # noqa: S311 - which tab, not a secret
        return None, False

    def give_back(self, officer: Officer, own: bool, key: str | None = None) -> None:
        """`key`: the class it was taken for (an officer of several classes is held in one of them)."""
        key = key or officer.key
        held = self.held.get(key, {})
        if own and held.get(officer.username) is officer:
            del held[officer.username]
            if officer.username not in self.unusable:
                self.free[key].append(officer)

    def refused(self, officer: Officer) -> None:
        """The app refused this officer's credentials from the test data: the generator's data,
        not the app, is wrong; the officer is left out for the rest of the run."""
        if officer.username not in self.unusable:
            self.unusable.add(officer.username)
            log.warning("the test data of %s is refused by the app (password or factor unknown here): "
                        "left out of this run", officer.username)

    def logged(self, officer: Officer) -> None:
        self.logins += 1
        if officer.username not in self.logged_in:
            self.logged_in.add(officer.username)
            self._unreported.add(officer.username)

    def report(self) -> dict[str, Any]:
        """For the master: the usernames logged in since the last report, the logins and the pool."""
        out = {"usernames": sorted(self._unreported), "logins": self.logins, "pool": self.pool,
               "shared": self.shared, "unusable": len(self.unusable)}
        self._unreported.clear()
        return out


def deal(data: dict[str, Any], index: int, workers: int) -> dict[str, Any]:
    """Worker `index`'s share of the test data: every `workers`-th officer of each class, an
    officer of several classes going wherever its first class sends it (one process per officer)."""
    home: dict[str, int] = {}
    accounts: dict[str, list[dict[str, Any]]] = {}
    for key, group in data.get("accounts", {}).items():
        dealt = 0
        for a in group:
            worker = home.get(a["username"])
            if worker is None:
                worker = home[a["username"]] = dealt % workers
                dealt += 1
            if worker == index:
                accounts.setdefault(key, []).append(a)
    return {**data, "accounts": accounts}


def deal_as_placed(data: dict[str, Any], placed: list[dict[str, int]]) -> list[dict[str, Any]]:
    """Each worker's share when Locust places `placed[i][class]` users of each class on worker i:
    that many officers of the class each (then the officers left over, in turn), so that no user
    of the national run shares an officer for want of one in its own process."""
    shares: list[dict[str, list[dict[str, Any]]]] = [{} for _ in placed]
    for key, group in data.get("accounts", {}).items():
        start = 0
        for i, counts in enumerate(placed):
            n = counts.get(key, 0)
            if group[start:start + n]:
                shares[i][key] = group[start:start + n]
            start += n
        for j, a in enumerate(group[start:]):
            shares[j % len(placed)].setdefault(key, []).append(a)
    return [{**data, "accounts": share} for share in shares]


class Tally:
    """The master's (or the single process's) count across processes."""

    def __init__(self) -> None:
        self.usernames: set[str] = set()
        self.logins: dict[str, int] = {}
        self.pool: dict[str, int] = {}
        self.shared: dict[str, int] = {}
        self.unusable: dict[str, int] = {}

    def add(self, source: str, report: dict[str, Any]) -> None:
        self.usernames.update(report.get("usernames", []))
        self.logins[source] = report.get("logins", 0)
        self.pool[source] = report.get("pool", 0)
        self.shared[source] = report.get("shared", 0)
        self.unusable[source] = report.get("unusable", 0)

    def summary(self) -> dict[str, Any]:
        return {"distinct_officers_logged_in": len(self.usernames), "logins": sum(self.logins.values()),
                "officers_in_pool": sum(self.pool.values()), "users_sharing_an_officer": sum(self.shared.values()),
                "officers_refused_test_data": sum(self.unusable.values())}

    def write(self, folder: str | Path | None) -> dict[str, Any]:
        s = self.summary()
        log.info("distinct officers logged in: %d (logins %d, pool %d, users that shared an officer %d, officers "
                 "whose test data the app refused %d)", s["distinct_officers_logged_in"], s["logins"],
                 s["officers_in_pool"], s["users_sharing_an_officer"], s["officers_refused_test_data"])
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / REPORT).write_text(json.dumps(s, indent=1))
        return s
