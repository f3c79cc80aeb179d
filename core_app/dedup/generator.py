"""The synthetic national data set: deterministic for a seed, loaded with COPY as the owner role.

Case files spread over every current commune (weighted: communes differ in population), with
provincial inspectorates and the Government Inspectorate holding a share; parties with
Vietnamese names, 12-digit personal ID numbers (province code, century/sex digit, birth year);
kinds, channels and statuses in plausible proportions; and real duplicates: the same matter
resent (reworded), sent to several bodies, or typed differently (no diacritics, capitals,
doubled spaces, no ID number). Triggers fire as for any insert (paths, audit log).
"""

from __future__ import annotations

import bisect
import itertools
import queue
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from core_app.dedup import vocabulary as V
from core_app.dedup.normalise import strip_accents

START = date(2018, 3, 15)
KINDS = (("recommendation", 55), ("complaint", 30), ("denunciation", 12), ("multi", 3))
CHANNELS = (("letter", 40), ("in_person", 30), ("online", 15), ("transferred", 8), ("email", 4), ("phone", 2),
            ("fax", 1))
CASE_COLUMNS = ("id", "code", "kind", "subject", "content", "respondent", "classification", "denouncer_confidential",
                "channel", "status", "complaint_round", "is_complex", "is_remote_area", "receiving_unit_id",
                "handling_unit_id", "received_on", "accepted_on", "resolved_on", "closed_on", "lookup_secret_hash")
PARTY_COLUMNS = ("id", "case_id", "role", "party_kind", "full_name", "id_number", "address", "address_unit_id",
                 "identity_protected")
PETITION_COLUMNS = ("id", "case_id", "unit_id", "received_on", "channel", "sender_party_id", "content",
                    "people_count")


@dataclass
class Unit:
    id: int
    code: str
    name: str
    province: Unit | None = None
    gso: str = ""


@dataclass
class Person:
    name: str
    id_number: str | None
    address: str
    commune: Unit


@dataclass
class Matter:
    person: Person
    kind: str
    subject: str
    respondent: str | None


@dataclass
class Chunk:
    cases: list[tuple[Any, ...]] = field(default_factory=list)
    parties: list[tuple[Any, ...]] = field(default_factory=list)
    petitions: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Stats:
    cases: int = 0
    parties: int = 0
    petitions: int = 0
    duplicates: int = 0
    probes: list[dict[str, Any]] = field(default_factory=list)


def _cum(pairs: tuple[tuple[str, float], ...]) -> tuple[list[str], list[float]]:
    names, weights = zip(*pairs, strict=True)
    return list(names), list(weights)


class Generator:
    def __init__(self, communes: list[Unit], province_bodies: dict[int, Unit], central: Unit, seed: int,
                 today: date, counters: dict[tuple[int, int], int]) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        self.communes = communes
        self.cum_weights = list(itertools.accumulate(self.rng.lognormvariate(0, 0.7) for _ in communes))
        self.province_bodies = province_bodies
        self.central = central
        self.today = today
        self.days = (today - START).days
        self.counters = dict(counters)
        self.kinds = _cum(KINDS)
        self.channels = _cum(CHANNELS)
        self.surnames = _cum(V.SURNAMES)
        self.matters: list[Matter] = []  # a reservoir of earlier matters, for duplicates
        self.stats = Stats()

    # -- people and words -----------------------------------------------------------------
    def person(self, commune: Unit) -> Person:
        r = self.rng
        female = r.random() < 0.48
        sur = r.choices(*self.surnames)[0]
        middle = r.choice(V.MIDDLE_FEMALE if female else V.MIDDLE_MALE)
        given = r.choice(V.GIVEN_FEMALE if female else V.GIVEN_MALE)
        name = f"{sur} {middle} {given}"
        if r.random() < 0.15:  # a compound given name
            name = f"{sur} {middle} {r.choice(V.GIVEN_FEMALE if female else V.GIVEN_MALE)} {given}"
        idn = None
        if r.random() < 0.75:
            year = r.randint(1940, 2006)
            century = (0 if year < 2000 else 2) + (1 if female else 0)
            prefix = (commune.province.gso if commune.province else "").zfill(3)[-3:]
            idn = f"{prefix}{century}{year % 100:02d}{r.randint(0, 999_999):06d}"
        address = f"Số {r.randint(1, 300)}, {r.choice(V.STREETS)}, {commune.name}"
        return Person(name, idn, address, commune)

    def respondent(self, commune: Unit, kind: str) -> str | None:
        r = self.rng.random()
        if r < 0.45:
            return f"UBND {commune.name}"
        if r < 0.6:
            return f"Chủ tịch UBND {commune.name}"
        if r < 0.75:
            return self.rng.choice(V.COMPANIES)
        if r < 0.85 and commune.province:
            return f"Sở Tài nguyên và Môi trường {commune.province.name}"
        if kind == "denunciation":
            p = self.person(commune)
            return f"Ông {p.name}, cán bộ {commune.name}"
        return None

    def subject(self, kind: str, commune: Unit, resp: str | None) -> str:
        t = self.rng.choice(V.SUBJECTS[kind])
        return t.format(resp=resp or f"UBND {commune.name}", place=commune.name)

    def reword(self, subject: str) -> str:
        out = subject
        for old, new in self.rng.sample(V.REWORD, 3):
            if old in out:
                out = out.replace(old, new, 1)
        if out == subject:
            out = "Đơn đề nghị: " + subject[0].lower() + subject[1:]
        return out

    def mistype(self, name: str) -> str:
        r = self.rng.random()
        if r < 0.4:
            return strip_accents(name)
        if r < 0.7:
            return strip_accents(name).upper()
        if r < 0.9:
            return "  ".join(name.split())
        return name.upper()

    # -- case files -------------------------------------------------------------------------
    def _code(self, unit: Unit, year: int) -> str:
        key = (unit.id, year)
        self.counters[key] = self.counters.get(key, 0) + 1
        return f"{unit.code}-{year}-{self.counters[key]:06d}"

    def _dates(self, received: date, status: str) -> tuple[date | None, date | None, date | None]:
        acc = res = clo = None
        if status in ("accepted", "verifying", "resolved", "closed"):
            acc = min(received + timedelta(days=self.rng.randint(3, 12)), self.today)
        if status in ("resolved", "closed") and acc:
            res = min(acc + timedelta(days=self.rng.randint(20, 60)), self.today)
        if status == "closed" and res:
            clo = min(res + timedelta(days=self.rng.randint(1, 30)), self.today)
        return acc, res, clo

    def _status(self, kind: str, received: date) -> str:
        age = (self.today - received).days
        r = self.rng.random()
        if age < 15:
            return "received" if r < 0.6 else "in_handling"
        if kind == "recommendation":
            return "closed" if r < 0.55 else ("guided" if r < 0.75 else ("filed" if r < 0.9 else "in_handling"))
        if age < 90:
            return ("accepted", "verifying", "in_handling", "guided")[int(r * 4)]
        return "closed" if r < 0.6 else ("resolved" if r < 0.75 else ("guided" if r < 0.85 else
                                          ("filed" if r < 0.93 else "returned")))

    def _handling(self, commune: Unit) -> Unit:
        r = self.rng.random()
        if r < 0.78 or commune.province is None:
            return commune
        if r < 0.98:
            return self.province_bodies.get(commune.province.id, commune.province)
        return self.central

    def chunks(self, n: int, size: int) -> Iterator[Chunk]:
        chunk = Chunk()
        for i in range(n):
            self.case(chunk, i)
            if len(chunk.cases) >= size:
                yield chunk
                chunk = Chunk()
        if chunk.cases:
            yield chunk

    def case(self, chunk: Chunk, i: int) -> None:
        r = self.rng
        received = START + timedelta(days=r.randint(0, self.days))
        dup_of = r.choice(self.matters) if self.matters and r.random() < 0.07 else None
        name_written: str
        if dup_of is not None:
            person, kind = dup_of.person, dup_of.kind
            how = r.random()
            subject = self.reword(dup_of.subject) if how < 0.6 else dup_of.subject
            respondent = dup_of.respondent
            name_written = self.mistype(person.name) if r.random() < 0.5 else person.name
            idn = person.id_number if r.random() < 0.8 else None
            holder = self._handling(person.commune) if how >= 0.3 else person.commune
            self.stats.duplicates += 1
        else:
            commune = self.communes[bisect.bisect(self.cum_weights, r.random() * self.cum_weights[-1])]
            person = self.person(commune)
            kind = r.choices(*self.kinds)[0]
            respondent = self.respondent(commune, kind)
            subject = self.subject(kind, commune, respondent)
            name_written = person.name
            idn = person.id_number
            holder = self._handling(commune)
            m = Matter(person, kind, subject, respondent)
            if len(self.matters) < 200_000:
                self.matters.append(m)
            else:
                self.matters[r.randrange(200_000)] = m
        status = self._status(kind, received)
        acc, res, clo = self._dates(received, status)
        content = f"{subject}. {r.choice(V.SENTENCES)} {r.choice(V.SENTENCES)}"
        channel = r.choices(*self.channels)[0]
        cls = 0 if r.random() < 0.97 else (1 if r.random() < 0.8 else 2)
        confidential = kind == "denunciation" and r.random() < 0.5
        case_id = uuid.UUID(int=r.getrandbits(128), version=4)
        chunk.cases.append((case_id, self._code(holder, received.year), kind, subject, content, respondent, cls,
                            confidential, channel, status, 1, r.random() < 0.1, r.random() < 0.05, holder.id,
                            holder.id, received, acc, res, clo, r.randbytes(32)))
        role = {"complaint": "complainant", "denunciation": "denouncer"}.get(kind, "petitioner")
        party_id = uuid.UUID(int=r.getrandbits(128), version=4)
        chunk.parties.append((party_id, case_id, role, "person", name_written, idn, person.address,
                              person.commune.id, confidential))
        self.stats.parties += 1
        n_pet = 1 if r.random() < 0.88 else r.randint(2, 3)  # resent and joined to the same file
        for k in range(n_pet):
            day = min(received + timedelta(days=30 * k), self.today)
            chunk.petitions.append((uuid.UUID(int=r.getrandbits(128), version=4), case_id, holder.id, day,
                                    channel if k == 0 else r.choices(*self.channels)[0],
                                    party_id if k == 0 else None, content,
                                    1 if r.random() < 0.95 else r.randint(2, 40)))
        self.stats.petitions += n_pet
        self.stats.cases += 1
        if i % 997 == 0 and len(self.stats.probes) < 2000:
            self.stats.probes.append({
                "case_code": chunk.cases[-1][1], "unit": holder.code, "name": person.name, "name_written": name_written,
                "id_number": person.id_number, "address_unit": person.commune.code, "subject": subject,
                "respondent": respondent, "reworded": self.reword(subject), "commune": person.commune.code,
                "province": person.commune.province.code if person.commune.province else None})



def load_units(conn: Any) -> tuple[list[Unit], dict[int, Unit], Unit]:
    provinces = {r["id"]: Unit(r["id"], r["code"], r["name"], gso=r["admin_code"] or "") for r in conn.execute(
        "SELECT id, code, name, admin_code FROM kntc.unit WHERE code ~ '^T[0-9]+$' AND valid_to IS NULL").fetchall()}
    bodies = {}
    for r in conn.execute("SELECT id, code, name, parent_id FROM kntc.unit WHERE code ~ '^T[0-9]+-TT$'").fetchall():
        bodies[r["parent_id"]] = Unit(r["id"], r["code"], r["name"], provinces.get(r["parent_id"]))
    communes = [Unit(r["id"], r["code"], r["name"], provinces.get(r["parent_id"]), r["admin_code"] or "")
                for r in conn.execute("SELECT id, code, name, parent_id, admin_code FROM kntc.unit "
                                      "WHERE code ~ '^X[0-9]+$' AND valid_to IS NULL ORDER BY id").fetchall()]
    central = conn.execute("SELECT id, code, name FROM kntc.unit WHERE code = 'TTCP'").fetchone()
    if not communes or central is None:
        raise RuntimeError("the unit tree is not loaded: run `kntc seed-units` first")
    return communes, bodies, Unit(central["id"], central["code"], central["name"])


def generate(conn: Any, n: int, seed: int, today: date, chunk_size: int = 20_000,
             on_chunk: Callable[[int], None] | None = None, writer_conn: Any = None) -> Stats:
    """Generate and COPY `n` case files; the writer runs in its own thread so that Python builds
    the next chunk while PostgreSQL stores the previous one."""
    communes, bodies, central = load_units(conn)
    counters = {(r["unit_id"], r["year"]): r["last_seq"]
                for r in conn.execute("SELECT unit_id, year, last_seq FROM kntc.case_code_counter").fetchall()}
    gen = Generator(communes, bodies, central, seed, today, counters)
    wconn = writer_conn or conn
    q: queue.Queue[Chunk | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while (chunk := q.get()) is not None:
                _copy(wconn, chunk)
                if on_chunk:
                    on_chunk(len(chunk.cases))
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
            while q.get() is not None:
                pass

    t = threading.Thread(target=writer, name="kntc-copy", daemon=True)
    t.start()
    try:
        for chunk in gen.chunks(n, chunk_size):
            if failure:
                break
            q.put(chunk)
    finally:
        q.put(None)
        t.join()
    if failure:
        raise failure[0]
    changed = [(u, y, s) for (u, y), s in gen.counters.items() if counters.get((u, y)) != s]
    with wconn.transaction(), wconn.cursor() as cur:
        # Codes made by next_case_code later must follow the generated ones.
        cur.executemany("INSERT INTO kntc.case_code_counter AS c (unit_id, year, last_seq) VALUES (%s, %s, %s) "
                        "ON CONFLICT (unit_id, year) DO UPDATE SET last_seq = greatest(c.last_seq, EXCLUDED.last_seq)",
                        changed)
    return gen.stats


def _copy(conn: Any, chunk: Chunk) -> None:
    with conn.transaction(), conn.cursor() as cur:
        for table, cols, rows in (("case_file", CASE_COLUMNS, chunk.cases), ("party", PARTY_COLUMNS, chunk.parties),
                                  ("petition", PETITION_COLUMNS, chunk.petitions)):
            with cur.copy(f"COPY kntc.{table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
