"""The load run's officers from an imported roster, each logged in for the first time once.

Who is who comes from the roster's key (loadtests/roster.py: unit, name, tier, role), the initial
passwords from the import's credentials file (username, name, unit, initial password); both are
joined on unit and name. A sample of distinct officers is drawn per Locust class (tier × role,
external readers as one class) in proportion to the capacity model's concurrent users, and each
is brought through the first login (loadtests/officers.py) by a thread pool. What each officer
ends with (password, TOTP secret, last code step) is journalled as it happens, so an interrupted
run resumes: an officer set up before just logs in again.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import threading
import time
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from loadtests import capacity
from loadtests.officers import STEP_SECONDS, Journal, Officer, SetupFailed, set_up
from loadtests.roster import apportion

log = logging.getLogger("loadtests.pool")
OFFICER_ROLES = ("reception", "handling", "resolution", "head")
# Failed logins from one address are budgeted (kntc.throttle_rule 'login_address': 10 in 15 min):
# past a few, something is wrong for all of them, and going on would lock the suite's address out.
MAX_FAILURES = 5


def class_key(level: str, roles: Iterable[str]) -> str | None:
    """The Locust class an officer plays: tier × role, external readers as one class; None for
    accounts the load run does not simulate (administrators)."""
    roles = set(roles)
    if roles == {"external_reader"}:
        return "external_reader"
    role = next((r for r in OFFICER_ROLES if r in roles), None)
    return f"{level}.{role}" if role else None


def _person(unit: str, name: str) -> tuple[str, str]:
    return unit.strip().upper(), " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def read_roster(key: Path, credentials: Iterable[Path]) -> dict[str, list[Officer]]:
    """Officers with their initial passwords by Locust class; rows without credentials (accounts
    this import did not create) are left out."""
    initial: dict[tuple[str, str], tuple[str, str]] = {}
    for path in credentials:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for r in csv.DictReader(f):
                initial[_person(r["unit_code"], r["full_name"])] = (r["username"], r["initial_password"])
    out: dict[str, list[Officer]] = {}
    with key.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            got = initial.get(_person(r["unit_code"], r["full_name"]))
            kind = class_key(r["level"], r["roles"].split(";"))
            if got and kind:
                out.setdefault(kind, []).append(Officer(got[0], r["unit_code"], got[1], kind, initial=got[1]))
    return out


def pick(by_class: dict[str, list[Officer]], n: int, seed: int = 1, scenario: str = "busy") -> list[Officer]:
    """`n` distinct officers, per class in proportion to the scenario's concurrent users; a class
    with too few officers gives all it has and the others share the rest. The same inputs pick the
    same officers, and a larger `n` keeps those of a smaller one (seeded order, then a prefix)."""
    plan = capacity.locust_plan(scenario)
    rng = random.Random(seed)  # noqa: S311 - which simulated officers, not a secret
    order = {k: rng.sample(v, len(v)) for k, v in sorted(by_class.items())}
    weights = {k: plan[k]["weight"] for k in order if k in plan and plan[k]["weight"] > 0}
    quota = dict.fromkeys(weights, 0)
    left = min(n, sum(len(order[k]) for k in weights))
    while left > 0:
        open_ = {k: w for k, w in weights.items() if quota[k] < len(order[k])}
        share = apportion(left, open_)
        for k, q in share.items():
            take = min(q, len(order[k]) - quota[k])
            quota[k] += take
            left -= take
    return [o for k in sorted(quota) for o in order[k][:quota[k]]]


@dataclass
class State:
    """What earlier runs left: officers by username (from the test data file and its journal).

    They belong to a *target*: the database the accounts live in. Against a deployment that is its
    URL; against the local stack it is the cluster, whatever port the app was served on this time
    (a second run on the same cluster finds its officers where the first left them)."""

    path: Path
    officers: dict[str, Officer] = field(default_factory=dict)
    _file: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    @classmethod
    def load(cls, path: Path, host: str) -> State:
        """`host`: the target (see above); test data written before targets were kept names its URL."""
        state = cls(path)
        if path.exists():
            data = json.loads(path.read_text())
            if target_of(data) == host:  # another target's officers are other accounts
                for a in data.get("set_up_before", []):
                    state.officers[a["username"]] = Officer.from_json(a)
                for group in data.get("accounts", {}).values():
                    for a in group:
                        state.officers[a["username"]] = Officer.from_json(a)
        if state.journal_path.exists():
            for line in state.journal_path.read_text().splitlines():
                entry = json.loads(line)
                if entry.get("host") not in (None, host):
                    continue
                o = state.officers.get(entry["username"])
                if o is None:
                    o = state.officers[entry["username"]] = Officer(entry["username"], "", "")
                for k in ("password", "totp", "last_step", "ready", "initial", "unit", "key"):
                    if k in entry:
                        setattr(o, k, entry[k])
        return state

    def journal(self, host: str) -> Journal:
        def write(entry: dict[str, Any]) -> None:
            with self._lock:
                if self._file is None:
                    fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    self._file = os.fdopen(fd, "a", encoding="utf-8")
                self._file.write(json.dumps({"host": host, **entry}) + "\n")
                self._file.flush()
        return Journal(write)

    def close(self, done: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if done:
            self.journal_path.unlink(missing_ok=True)


def target_of(data: dict[str, Any]) -> str | None:
    return data.get("target") or data.get("host")


def resume(officer: Officer, state: State, spent_step: int | None = None) -> tuple[Officer, list[str]]:
    """The officer as an earlier run left it, and the passwords to try, most likely first.

    `spent_step`: the TOTP step under way when this preparation began (default: now), the last one
    an earlier run can have used."""
    before = state.officers.get(officer.username)
    if before is None or (officer.initial and before.initial and before.initial != officer.initial):
        return officer, [p for p in (officer.initial,) if p]  # new, or made anew since (a new initial password)
    before.unit, before.key = officer.unit, officer.key
    before.initial = officer.initial or before.initial
    if before.totp:
        # The run that left it may have spent the step under way at its end (Locust does not write
        # its logins' steps back): the next login waits for a later step rather than replay it. The
        # step is the one under way when the preparation began, not when the officer's turn came:
        # otherwise every officer waited for a step of its own, 16 logins a minute over 8 threads.
        spent = int(time.time() // STEP_SECONDS) if spent_step is None else spent_step
        before.last_step = max(before.last_step, spent)
    # Set up before: its own password alone (a wrong guess is a failed login, and those are budgeted).
    if before.ready and before.password:
        return before, [before.password]
    return before, [p for p in (before.password, officer.initial) if p]


def set_up_all(host: str, officers: list[Officer], state: State, threads: int = 8,
               target: str | None = None) -> tuple[list[Officer], list[str]]:
    """First login (or a login, for those done before) of every officer; (ready, failures)."""
    journal = state.journal(target or host)
    spent = int(time.time() // STEP_SECONDS)
    failures: list[str] = []
    stop = threading.Event()
    local = threading.local()
    done = [0]
    lock = threading.Lock()

    def one(officer: Officer) -> Officer | None:
        if stop.is_set():
            return None
        if not hasattr(local, "http"):
            local.http = requests.Session()
        o, candidates = resume(officer, state, spent)
        journal.note(o, unit=o.unit, key=o.key, initial=o.initial)
        try:
            if not candidates:
                raise SetupFailed(f"{o.username} exists, made by an earlier run whose test data is gone: no password "
                                  "is known (use a fresh database, or remove the account)")
            got = set_up(local.http, host, o, journal, candidates)
        except (SetupFailed, requests.RequestException) as exc:
            with lock:
                failures.append(str(exc))
                if len(failures) >= MAX_FAILURES:
                    stop.set()
            return None
        with lock:
            done[0] += 1
            if done[0] % 500 == 0:
                log.info("first logins: %d of %d", done[0], len(officers))
        return got

    try:
        with ThreadPoolExecutor(max_workers=threads) as ex:
            ready = [o for o in ex.map(one, officers) if o is not None]
    finally:
        state.close(done=False)
    if stop.is_set():
        failures.append(f"stopped after {MAX_FAILURES} failures: failed logins from one address are budgeted")
    return ready, failures
