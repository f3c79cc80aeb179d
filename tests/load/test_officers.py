"""The load suite's officers without a server: one TOTP step per login, who is picked from a roster,
how an interrupted preparation resumes, and each Locust user holding an officer of its own."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import pyotp
import pytest

from loadtests import capacity, pool, seats
from loadtests.officers import STEP_SECONDS, Officer


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_a_second_login_in_the_same_step_waits_for_the_next_code() -> None:
    secret = pyotp.random_base32()
    clock = Clock(1_000 * STEP_SECONDS + 3)
    o = Officer("annv.x00004", "X00004", "pw", totp=secret)
    first = o.code(clock.sleep, clock.now)
    assert first == pyotp.TOTP(secret).at(clock.t) and not clock.slept
    second = o.code(clock.sleep, clock.now)
    assert clock.slept and 27 <= clock.slept[0] <= 28  # to the next step, not a replay
    assert second == pyotp.TOTP(secret).at(1_001 * STEP_SECONDS) and o.last_step == 1_001
    assert Officer("b.x1", "X1", "pw").code(clock.sleep, clock.now) is None  # no factor, no code


@pytest.mark.parametrize(("level", "roles", "key"), [
    ("commune", ["reception"], "commune.reception"), ("district", ["resolution"], "district.resolution"),
    ("province", ["external_reader"], "external_reader"), ("province", ["unit_admin"], None),
    ("district", ["head", "handling"], "district.handling")])
def test_each_roster_account_plays_one_locust_class(level: str, roles: list[str], key: str | None) -> None:
    assert pool.class_key(level, roles) == key


def write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]], bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_the_key_and_the_importers_credentials_are_joined_on_unit_and_name(tmp_path: Path) -> None:
    key = write_csv(tmp_path / "r.key.csv", ("unit_code", "full_name", "username", "level", "roles", "clearance"), [
        ("X00004", "Nguyễn Văn An", "", "commune", "reception", "0"),
        ("X00004", "Lê Thị Hoa", "hoalt.x00004", "district", "head", "1"),
        ("T01", "Đỗ Văn Bình", "binhdv.t01", "province", "unit_admin", "0"),
        ("X00008", "Trần Văn Cường", "", "commune", "handling", "0")])  # not imported: no credentials
    creds = write_csv(tmp_path / "c.csv", ("username", "full_name", "unit_code", "initial_password"), [
        ("annv.x00004", "Nguyễn  Văn An", "x00004", "AAAA-BBBB"), ("hoalt.x00004", "Lê Thị Hoa", "X00004", "CCCC"),
        ("binhdv.t01", "Đỗ Văn Bình", "T01", "DDDD")], bom=True)
    got = pool.read_roster(key, [creds])
    assert {k: [(o.username, o.password) for o in v] for k, v in got.items()} == {
        "commune.reception": [("annv.x00004", "AAAA-BBBB")], "district.head": [("hoalt.x00004", "CCCC")]}


def fake_roster(per_class: int) -> dict[str, list[Officer]]:
    keys = [k for k in capacity.locust_plan("busy") if k != "citizen"]
    return {k: [Officer(f"{k}.{i}", "X1", "pw", k, initial="pw") for i in range(per_class)] for k in keys}


def test_officers_are_picked_distinct_in_the_models_proportions() -> None:
    roster = fake_roster(5_000)
    picked = pool.pick(roster, 10_000, seed=3)
    assert len(picked) == len({o.username for o in picked}) == 10_000
    plan = {k: p["weight"] for k, p in capacity.locust_plan("busy").items() if k in roster and p["weight"] > 0}
    counts = Counter(o.key for o in picked)
    for k, w in plan.items():
        assert abs(counts[k] - 10_000 * w / sum(plan.values())) <= 1, k
    assert pool.pick(roster, 10_000, seed=3) == picked
    assert {o.username for o in pool.pick(roster, 2_000, seed=3)} <= {o.username for o in picked}


def test_a_class_short_of_officers_gives_all_it_has_and_the_others_share_the_rest() -> None:
    roster = fake_roster(5_000)
    roster["commune.head"] = roster["commune.head"][:10]
    picked = pool.pick(roster, 10_000)
    assert len(picked) == 10_000 and Counter(o.key for o in picked)["commune.head"] == 10
    assert len(pool.pick({"commune.head": roster["commune.head"]}, 10_000)) == 10


def test_an_interrupted_preparation_resumes_from_its_journal(tmp_path: Path) -> None:
    out = tmp_path / "testdata.json"
    state = pool.State.load(out, "http://h")
    journal = state.journal("http://h")
    a = Officer("a.x1", "X1", "INIT-A", "commune.reception", initial="INIT-A")
    b = Officer("b.x1", "X1", "INIT-B", "commune.head", initial="INIT-B")
    journal.note(a, password="Lt-new-a-9")
    journal.note(b, password="Lt-new-b-9")
    journal.note(b, totp="SECRETB", last_step=0)
    journal.note(b, ready=True, last_step=77)
    state.close(done=False)
    assert (out.with_name("testdata.json.journal").stat().st_mode & 0o777) == 0o600

    again = pool.State.load(out, "http://h")
    _, tries_a = pool.resume(Officer("a.x1", "X1", "INIT-A", "commune.reception", initial="INIT-A"), again)
    assert tries_a == ["Lt-new-a-9", "INIT-A"]  # the change may not have reached the server
    now_step = int(time.time() // STEP_SECONDS)
    resumed_b, tries_b = pool.resume(Officer("b.x1", "X1", "INIT-B", "commune.head", initial="INIT-B"), again)
    assert tries_b == ["Lt-new-b-9"] and resumed_b.totp == "SECRETB"
    # The last run may have spent the step under way at its end (Locust keeps no record): not replayed.
    assert resumed_b.last_step >= now_step
    # Resumed minutes into a preparation, it waits only for the step after the one under way when
    # the preparation began, as every officer resumed with it does: one wait for all, not one each.
    again = pool.State.load(out, "http://h")
    resumed_b, _ = pool.resume(Officer("b.x1", "X1", "INIT-B", "commune.head", initial="INIT-B"), again,
                               spent_step=now_step - 20)
    assert resumed_b.last_step == max(77, now_step - 20)
    # Made anew since (another initial password): what was known of it no longer holds.
    _, tries = pool.resume(Officer("b.x1", "X1", "INIT-B2", "commune.head", initial="INIT-B2"), again)
    assert tries == ["INIT-B2"]
    assert pool.State.load(out, "http://other").officers == {}  # another host's accounts are others


def test_each_user_holds_its_own_officer_and_hands_it_to_the_back_of_the_queue() -> None:
    s = seats.Seats()
    s.load({"commune.reception": [{"username": f"r{i}", "unit": "X1", "password": "p"} for i in range(3)]})
    taken = [s.take("commune.reception") for _ in range(3)]
    assert [(o.username, own) for o, own in taken] == [("r0", True), ("r1", True), ("r2", True)]
    shared, own = s.take("commune.reception")
    assert not own and shared.username in {"r0", "r1", "r2"} and s.shared == 1  # a tab of a held officer
    s.give_back(taken[0][0], True)
    assert s.take("commune.reception")[0].username == "r0"
    assert s.take("district.head") == (None, False)
    for o, _ in taken:
        s.logged(o)
    s.logged(taken[0][0])
    assert s.report() == {"usernames": ["r0", "r1", "r2"], "logins": 4, "pool": 3, "shared": 1, "unusable": 0}
    assert s.report()["usernames"] == []  # reported once


def test_workers_get_disjoint_shares_and_the_master_counts_distinct_officers(tmp_path: Path) -> None:
    data = {"accounts": {"commune.head": [{"username": f"h{i}"} for i in range(5)],
                         "external_reader": [{"username": "r0"}]}, "cases": []}
    shares = [seats.deal(data, i, 2) for i in range(2)]
    names = [a["username"] for sh in shares for group in sh["accounts"].values() for a in group]
    assert sorted(names) == ["h0", "h1", "h2", "h3", "h4", "r0"] and len(set(names)) == len(names)
    assert "external_reader" not in shares[1]["accounts"]
    tally = seats.Tally()
    tally.add("w1", {"usernames": ["h0", "h2"], "logins": 3, "pool": 3, "shared": 0})
    tally.add("w2", {"usernames": ["h1"], "logins": 1, "pool": 3, "shared": 0})
    tally.add("w1", {"usernames": ["h4"], "logins": 5, "pool": 3, "shared": 0})
    assert tally.write(tmp_path)["distinct_officers_logged_in"] == 4
    assert (tmp_path / "officers.json").exists() and tally.summary()["logins"] == 6
