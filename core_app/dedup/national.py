"""The national data set: the duplicate benchmark's case files with the work officers record on them.

`kntc generate --national` takes the case files, parties and petitions of the synthetic generator
(`core_app.dedup.generator`, same seed, same matters) and adds what the application writes beside
them when officers do the work, each row as the application's own code would have written it:

* the timeline (`case_event`): receive, submit, the handling decision (accept, guide, file away,
  return), the head's assignments, the notice of acceptance of a denunciation, the start of
  verification, the resolution (with its summary on the case) and the closing, each by an officer
  of the unit holding the case with the role the workflow requires, on office hours in Vietnam;
* the statutory time limits (`case_deadline`), started and ended by those events through the
  rulebook and the working-day calendar of the database (`kntc.deadline_rule_version`), so a
  step is met, late or still running exactly as the app would count it; a complaint that says
  when its decision became known carries its filing limit, ended by the receipt;
* assignments (`case_assignment`) of handling, resolution and verification officers by the head;
* receptions (`reception`) behind the petitions received in person, and the visits that led to
  none;
* each case's version, creator, and the petitions' receiving officer.

Officers come from the accounts in the database (import the national roster first). Case codes
stay gapless per unit and year, and the counters are moved past them at the end. Every
transaction holds the case files of one audit chain (the chain of the unit holding them), so the
audit log records each case in its own unit's chain, as the app does; two writers load in
parallel. Triggers and constraints fire as for any insert. For a large load the secondary indexes
of the loaded tables are dropped first and built once at the end, as pg_restore does (their
definitions are kept in the database until they exist again, so a stopped run still gets them).
A run stopped part-way is resumed by running the same command: the data is the same for the same
seed, and the transactions already committed are skipped.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock
from typing import Any

from core_app.dedup.generator import CASE_COLUMNS, PARTY_COLUMNS, PETITION_COLUMNS, Chunk, Generator, Unit
from core_app.domain.deadlines import Rule, due_for
from core_app.repo.deadline_steps import step_key
from core_app.repo.rules import RuleBook

VN = timezone(timedelta(hours=7))
CHAINS = 256  # kntc.audit_chain_count(): a case's audit rows go to chain 1 + unit id % 256

NATIONAL_CASE = (*CASE_COLUMNS, "version", "created_by", "decision_known_on", "resolution_summary", "created_at",
                 "updated_at")
NATIONAL_PETITION = (*PETITION_COLUMNS, "received_by", "reception_id", "created_at")
EVENT = ("case_id", "at", "actor_id", "unit_id", "action", "from_status", "to_status", "note", "data")
DEADLINE = ("case_id", "step", "rule_code", "rule_version", "starts_on", "due_on", "met_on", "ended_by")
ASSIGNMENT = ("case_id", "account_id", "duty", "assigned_by", "assigned_at")
RECEPTION = ("id", "unit_id", "unit_path", "officer_id", "received_at", "visitor_name", "people_count", "content",
             "action_taken", "case_id")
# COPY order: what a row refers to is written before it.
TABLES = (("case_file", NATIONAL_CASE), ("party", PARTY_COLUMNS), ("reception", RECEPTION),
          ("petition", NATIONAL_PETITION), ("case_event", EVENT), ("case_deadline", DEADLINE),
          ("case_assignment", ASSIGNMENT))
# Tables the load writes to, itself or through triggers: their secondary indexes may be deferred.
LOADED = ("case_file", "party", "petition", "reception", "case_event", "case_deadline", "case_assignment",
          "audit_log", "dedup_key", "exchange_event")
# Read by a trigger for every row loaded (kntc.notify_capture looks up the case's parties): kept.
KEEP_INDEXES = ("party_case",)

SUMMARIES = {
    "complaint": "Quyết định giải quyết khiếu nại lần đầu: {v} nội dung khiếu nại.",
    "denunciation": "Kết luận nội dung tố cáo: tố cáo {v}.",
    "recommendation": "Văn bản trả lời kiến nghị, phản ánh: đã xem xét và trả lời công dân.",
    "multi": "Văn bản giải quyết các nội dung của đơn.",
}
VERDICTS = ("đúng", "sai", "đúng một phần")
NOTES = {
    "guide": "Hướng dẫn công dân gửi đơn đến cơ quan có thẩm quyền giải quyết.",
    "file_away": "Đơn không đủ điều kiện xử lý, lưu đơn theo quy định.",
    "return": "Trả lại đơn và hướng dẫn công dân bổ sung thông tin theo quy định.",
}


@dataclass
class Staff:
    """The active officers of each unit by role: who does each step of a case held there."""

    by_unit: dict[int, dict[str, list[tuple[int, str]]]] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Any) -> Staff:
        staff = cls()
        for r in conn.execute("SELECT id, username, unit_id, roles FROM kntc.account WHERE is_active ORDER BY id"):
            for role in r["roles"]:
                staff.by_unit.setdefault(r["unit_id"], {}).setdefault(role, []).append((r["id"], r["username"]))
        return staff

    def pick(self, rng: random.Random, unit_id: int, *roles: str) -> tuple[int, str] | None:
        """An officer of the unit with the first of `roles` it has (the workflow's fallbacks)."""
        unit = self.by_unit.get(unit_id)
        if unit:
            for role in roles:
                people = unit.get(role)
                if people:
                    return people[rng.randrange(len(people))]
        return None


@dataclass
class Bundle:
    """The rows of one transaction: case files of one audit chain and all that goes with them."""

    seq: int = 0
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t, _ in TABLES})

    @property
    def cases(self) -> int:
        return len(self.rows["case_file"])

    def size(self) -> int:
        return sum(len(v) for v in self.rows.values())


class Timeline:
    """One case's events, each later than the last, on office hours in Vietnam."""

    def __init__(self, rng: random.Random, case_id: uuid.UUID, unit_id: int) -> None:
        self.rng, self.case_id, self.unit_id = rng, case_id, unit_id
        self.rows: list[tuple[Any, ...]] = []
        self.last: datetime | None = None

    def at(self, day: date) -> datetime:
        t = datetime.combine(day, clock(7, 30), VN) + timedelta(minutes=self.rng.randrange(540))
        if self.last is not None and t <= self.last:
            t = self.last + timedelta(minutes=1 + self.rng.randrange(20))
        self.last = t
        return t

    def add(self, day: date, who: tuple[int, str] | None, action: str, before: str | None, after: str | None,
            note: str | None = None, data: str = "{}") -> datetime:
        t = self.at(day)
        self.rows.append((self.case_id, t, who[0] if who else None, self.unit_id, action, before, after, note, data))
        return t


class NationalGenerator(Generator):
    """The dedup generator's matters, with the officers' work on each case (see the module's doc)."""

    def __init__(self, communes: list[Unit], province_bodies: dict[int, Unit], central: Unit, seed: int,
                 today: date, counters: dict[tuple[int, int], int], staff: Staff, book: RuleBook,
                 paths: dict[int, str]) -> None:
        super().__init__(communes, province_bodies, central, seed, today, counters)
        # The work has its own stream: the case files stay those of `kntc generate` with the same seed.
        self.work = random.Random(seed * 7919 + 1)  # noqa: S311 - reproducible test data, not secrets
        self.staff, self.book, self.paths = staff, book, paths
        self._starting: dict[tuple[str, str, date], list[Rule]] = {}
        self._due: dict[tuple[str, int, date, bool, bool], date] = {}

    # -- the rulebook, cached: ~3,000 days x a dozen rules ------------------------------------
    def starting(self, kind: str, event: str, on: date) -> list[Rule]:
        key = (kind, event, on)
        if key not in self._starting:
            self._starting[key] = self.book.starting(kind, 1, event, on)
        return self._starting[key]

    def due(self, rule: Rule, on: date, is_complex: bool, is_remote: bool) -> date:
        key = (rule.code, rule.version, on, is_complex, is_remote)
        if key not in self._due:
            self._due[key] = due_for(rule, on, self.book.calendar, is_complex=is_complex, is_remote=is_remote)
        return self._due[key]

    # -- one case with its work ----------------------------------------------------------------
    def national_case(self, i: int) -> tuple[int, dict[str, list[tuple[Any, ...]]]]:
        scratch = Chunk()
        self.case(scratch, i)
        (case,) = scratch.cases
        (case_id, _code, kind, _subject, _content, _resp, _cls, _conf, channel, status, _round, is_complex,
         is_remote, _recv_unit, unit_id, received, acc, res, clo, _secret) = case
        r, today = self.work, self.today
        staff = self.staff
        reception = staff.pick(r, unit_id, "reception", "handling", "head")
        handler = staff.pick(r, unit_id, "handling", "head")
        resolver = staff.pick(r, unit_id, "resolution", "head", "handling")
        head = staff.pick(r, unit_id, "head", "handling")
        tl = Timeline(r, case_id, unit_id)
        out: dict[str, list[tuple[Any, ...]]] = {t: [] for t, _ in TABLES}
        deadlines = out["case_deadline"]

        def steps(event: str, on: date, ended: dict[str, tuple[date, str]]) -> None:
            for rule in self.starting(kind, event, on):
                end = next((ended[e] for e in rule.end_events if e in ended), None)
                deadlines.append((case_id, step_key(rule.step, 1), rule.code, rule.version, on,
                                  self.due(rule, on, is_complex, is_remote), end[0] if end else None,
                                  end[1] if end else None))

        created = tl.add(received, reception, "receive", None, "received", data=f'{{"channel": "{channel}"}}')
        known = None
        if kind == "complaint" and r.random() < 0.7:  # the complainant says when they learnt of the decision
            known = received - timedelta(days=r.randint(3, 120))
            steps("known", known, {"receipt": (received, "receipt")})
        # The handling decision and its day.
        decision, decided_on = None, None
        if acc is not None:
            decision, decided_on = "accept", acc
        elif status in ("guided", "filed", "returned"):
            decision = {"guided": "guide", "filed": "file_away", "returned": "return"}[status]
            decided_on = min(received + timedelta(days=r.randint(2, 10)), today)
        ended: dict[str, tuple[date, str]] = {decision: (decided_on, decision)} if decision and decided_on else {}
        steps("receipt", received, ended)
        version = 1
        if status != "received":
            submitted = min(received + timedelta(days=r.randint(0, 2)), decided_on or today)
            tl.add(submitted, reception, "submit", "received", "in_handling")
            version += 1
            if head and handler and r.random() < 0.6:
                self.assign(out, tl, case_id, submitted, "in_handling", head, handler, "handling")
        notified = None
        if decision == "accept" and acc is not None:
            tl.add(acc, handler, "accept", "in_handling", "accepted")
            version += 1
            if head and resolver:
                self.assign(out, tl, case_id, acc, "accepted", head, resolver, "resolution")
            if kind == "denunciation":
                day = acc + timedelta(days=r.randint(1, 9))
                if res is not None:
                    notified = min(day, res)
                elif day <= today and r.random() < 0.85:
                    notified = day
            verify_on = None
            if status in ("verifying", "resolved", "closed"):
                verify_on = min(acc + timedelta(days=r.randint(1, 10)), res or today)
            # The notice and the verification in the order of their days.
            ordered = sorted(x for x in ((notified, 0), (verify_on, 1)) if x[0] is not None)
            current = "accepted"
            for day, what in ordered:
                if what == 0:
                    tl.add(day, handler, "notify_acceptance", current, current)
                else:
                    tl.add(day, resolver, "start_verification", "accepted", "verifying")
                    current = "verifying"
                    if head and resolver and r.random() < 0.5:
                        self.assign(out, tl, case_id, day, "verifying", head, resolver, "verification")
                version += 1
            accepted_ends = {}
            if notified is not None:
                accepted_ends["notify_acceptance"] = (notified, "notify_acceptance")
            if res is not None:
                accepted_ends["resolve"] = (res, "resolve")
            steps("acceptance", acc, accepted_ends)
        elif decision is not None and decided_on is not None:
            tl.add(decided_on, handler, decision, "in_handling", status, NOTES[decision])
            version += 1
        summary = None
        if res is not None:
            summary = SUMMARIES[kind].format(v=r.choice(VERDICTS))
            tl.add(res, resolver, "resolve", "verifying", "resolved", summary)
            version += 1
        if clo is not None:
            tl.add(clo, head, "close", "resolved", "closed")
            version += 1
        updated = tl.last or created
        # Petitions sent again later were joined to the case as they came (`add_petition`), in
        # whatever status the case had then.
        work = list(tl.rows)
        for pet in scratch.petitions[1:]:
            t = datetime.combine(pet[3], clock(7, 30), VN) + timedelta(minutes=r.randrange(540))
            # A petition sent again the day the case was received joins it after the receipt.
            t = max(t, created + timedelta(minutes=1))
            now = next((e[6] for e in reversed(work) if e[1] <= t), "received")
            tl.rows.append((case_id, t, reception[0] if reception else None, unit_id, "add_petition", now, now, None,
                            f'{{"petition_id": "{pet[0]}"}}'))
        out["case_event"] = sorted(tl.rows, key=lambda e: e[1]) if len(scratch.petitions) > 1 else tl.rows
        out["case_file"].append((*case, version, reception[0] if reception else None, known, summary, created,
                                 updated))
        out["party"] = scratch.parties
        # The petitions, each received by an officer of the unit; those brought in person were
        # recorded at a reception, whose visitor is named generically (a protected denouncer's
        # name must not travel outside the case file).
        path = self.paths[unit_id]
        for pet in scratch.petitions:
            got = datetime.combine(pet[3], clock(7, 30), VN) + timedelta(minutes=r.randrange(540))
            reception_id = None
            if pet[4] == "in_person" and reception:
                reception_id = uuid.UUID(int=r.getrandbits(128), version=4)
                out["reception"].append((reception_id, unit_id, path, reception[0], got, "Khách đến trình bày",
                                         pet[7], "Công dân trình bày nội dung đơn", "recorded", case_id))
                if r.random() < 0.25:  # and a visit that led to no case file
                    out["reception"].append((uuid.UUID(int=r.getrandbits(128), version=4), unit_id, path,
                                             reception[0], got + timedelta(minutes=r.randint(5, 90)),
                                             "Khách đến hỏi", 1 if r.random() < 0.95 else r.randint(5, 30),
                                             "Công dân hỏi thủ tục",
                                             "guided" if r.random() < 0.6 else "transferred", None))
            out["petition"].append((*pet, reception[0] if reception else None, reception_id, got))
        return unit_id, out

    @staticmethod
    def assign(out: dict[str, list[tuple[Any, ...]]], tl: Timeline, case_id: uuid.UUID, on: date, status: str,
               head: tuple[int, str], officer: tuple[int, str], duty: str) -> None:
        """The head's assignment: an event that keeps the status, and no new version (as the app)."""
        t = tl.add(on, head, "assign", status, status, data=f'{{"username": "{officer[1]}", "duty": "{duty}"}}')
        out["case_assignment"].append((case_id, officer[0], duty, head[0], t))

    def bundles(self, n: int, size: int) -> Iterator[Bundle]:
        """Transactions of `size` case files of one audit chain each, in a fixed order for a seed."""
        open_: dict[int, Bundle] = {}
        seq = 0
        for i in range(n):
            unit_id, rows = self.national_case(i)
            chain = 1 + unit_id % CHAINS
            b = open_.setdefault(chain, Bundle())
            for table, got in rows.items():
                b.rows[table] += got
            if b.cases >= size:
                b.seq, seq = seq, seq + 1
                yield open_.pop(chain)
        for chain in sorted(open_):
            b = open_[chain]
            b.seq, seq = seq, seq + 1
            yield b
