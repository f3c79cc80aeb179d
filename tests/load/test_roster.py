"""The national roster generator: the model's 162,318 accounts on the current unit tree, the same
file for the same seed, and small rosters of one province. No database: the tree is built offline
from the packages `kntc seed-units` reads."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from loadtests import capacity, roster

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")  # kntc.account's own check
PHONE = re.compile(r"^(0|\+84)(3|5|7|8|9)[0-9]{8}$")


@pytest.fixture(scope="module")
def units() -> list[roster.Unit]:
    return roster.units_offline()


@pytest.fixture(scope="module")
def national(units: list[roster.Unit]) -> list[roster.Account]:
    return roster.generate(units, roster.NATIONAL, seed=1)


def test_the_national_roster_is_the_models_162318_accounts_per_tier(national: list[roster.Account]) -> None:
    model = capacity.Model()
    assert len(national) == 162_318
    tiers = Counter(a.level for a in national)
    assert tiers == {lv: model.level_units[lv] * model.accounts_per_unit[lv] for lv in capacity.LEVELS}


@pytest.mark.parametrize("level", capacity.LEVELS)
def test_each_tier_keeps_the_models_role_shares(national: list[roster.Account], level: str) -> None:
    mine = [a for a in national if a.level == level]
    working = [a for a in mine if a.roles != ("unit_admin",)]
    counts = Counter(a.roles[0] for a in working)
    for role, share in capacity.ROLE_SHARES[level].items():
        assert abs(counts[role] - share * len(working)) <= 1, (role, counts[role], share * len(working))


def test_heads_have_clearance_1_and_about_a_third_need_a_second_factor(national: list[roster.Account]) -> None:
    assert {a.clearance for a in national if a.roles == ("head",)} == {1}
    assert {a.clearance for a in national if a.roles != ("head",)} == {0}
    second = sum(1 for a in national if a.clearance >= 1 or "unit_admin" in a.roles)
    assert 0.25 < second / len(national) < 0.35


def test_one_unit_administrator_per_province_and_one_at_the_centre(national: list[roster.Account],
                                                                     units: list[roster.Unit]) -> None:
    admins = sorted(a.unit for a in national if "unit_admin" in a.roles)
    assert admins == sorted(u.code for u in units if u.kind in ("province", "nation"))


def test_accounts_sit_on_current_units_of_their_tier(national: list[roster.Account],
                                                    units: list[roster.Unit]) -> None:
    by_code = {u.code: u for u in units}
    assert {a.unit for a in national} <= set(by_code)
    for a in national:
        unit = by_code[a.unit]
        if a.roles == ("external_reader",):
            assert unit.kind in roster.READER_KINDS, a
        elif a.roles != ("unit_admin",):
            assert unit.level == ("commune" if a.level in ("commune", "district") else unit.level), a
            assert unit.kind != "nation", a


def test_names_usernames_and_contacts_are_well_formed_and_unique(national: list[roster.Account]) -> None:
    assert len({(a.unit, a.full_name) for a in national}) == len(national), "a name twice in one unit"
    named = [a.username for a in national if a.username]
    assert len(set(named)) == len(named) and all(USERNAME.match(u) for u in named)
    assert 0.25 < 1 - len(named) / len(national) < 0.35  # left to the importer
    emails = [a.email for a in national if a.email]
    assert len(set(emails)) == len(emails) and all(e.endswith(".gov.vn") and "@" in e for e in emails)
    phones = [a.phone for a in national if a.phone]
    assert all(PHONE.match(p) for p in phones)
    assert len({p.replace("+84", "0") for p in phones}) == len(phones)
    family = Counter(a.full_name.split()[0] for a in national)
    assert 0.33 < family["Nguyễn"] / len(national) < 0.43  # Vietnam's commonest family name
    assert all(2 <= len(a.full_name.split()) <= 5 for a in national)


def test_the_same_seed_gives_the_same_roster_and_another_seed_another(units: list[roster.Unit]) -> None:
    one = roster.generate(units, 2_000, seed=7)
    assert roster.generate(units, 2_000, seed=7) == one
    other = roster.generate(units, 2_000, seed=8)
    assert [a.full_name for a in other] != [a.full_name for a in one]
    assert Counter((a.level, a.roles) for a in other) == Counter((a.level, a.roles) for a in one)


def test_a_small_roster_is_one_province_and_its_communes(units: list[roster.Unit]) -> None:
    small = roster.generate(units, 218)
    inside = {u.code for u in units if u.province == "T01"}
    assert len(small) == 218 and {a.unit for a in small} <= inside
    assert Counter(a.level for a in small) == {"commune": 162, "district": 46, "province": 10}
    assert [a.unit for a in small if "unit_admin" in a.roles] == ["T01"]
    elsewhere = roster.generate(units, 218, province="T79")
    assert {a.unit for a in elsewhere} <= {u.code for u in units if u.province == "T79"}


def test_a_roster_for_a_database_with_accounts_repeats_none_of_them(units: list[roster.Unit]) -> None:
    """A second roster imported into the same database (another seed, another size) meets neither
    a username nor, on a row without one, a person that the first already holds."""
    first = roster.generate(units, 20_000, seed=16)
    held = roster.Taken(usernames={a.username for a in first if a.username},
                        emails={a.email for a in first if a.email}, phones={a.phone for a in first if a.phone})
    for a in first:
        held.names.setdefault(a.unit, set()).add(a.full_name)
    second = roster.generate(units, 218, seed=1, taken=held)
    plain = roster.generate(units, 218, seed=1)
    assert {a.username for a in plain if a.username} & held.usernames, "the seeds were meant to collide"
    assert not {a.username for a in second if a.username} & held.usernames
    assert not {a.email for a in second if a.email} & held.emails
    assert not [a for a in second if a.full_name in held.names.get(a.unit, set())]
    assert Counter((a.level, a.roles) for a in second) == Counter((a.level, a.roles) for a in plain)


def test_an_unknown_province_is_refused_with_the_codes_to_use(units: list[roster.Unit]) -> None:
    with pytest.raises(roster.RosterError, match="T01"):
        roster.generate(units, 100, province="T99")


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_the_file_has_the_importers_columns_and_a_key_beside_it(units: list[roster.Unit], tmp_path: Path,
                                                               suffix: str) -> None:
    accounts = roster.generate(units, 218)
    out = tmp_path / f"small.{suffix}"
    key = roster.write(accounts, out)
    if suffix == "csv":
        with out.open(encoding="utf-8") as f:
            rows = list(csv.reader(f))
    else:
        from openpyxl import load_workbook

        rows = [["" if c is None else str(c) for c in r]
                for r in load_workbook(out, read_only=True).worksheets[0].iter_rows(values_only=True)]
    assert tuple(rows[0]) == roster.HEADER
    assert len(rows) == 219 and rows[1][0] == accounts[0].unit and rows[1][1] == accounts[0].full_name
    assert {r[3] for r in rows[1:]} <= {"reception", "handling", "resolution", "head", "external_reader",
                                        "unit_admin"}
    with key.open(encoding="utf-8") as f:
        keyed = list(csv.DictReader(f))
    assert key == tmp_path / "small.key.csv" and len(keyed) == 218
    assert [(k["unit_code"], k["full_name"], k["level"]) for k in keyed] == \
        [(a.unit, a.full_name, a.level) for a in accounts]


def test_the_command_writes_the_roster_and_prints_the_tiers(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert roster.main(["--accounts", "300", "--out", str(tmp_path / "r.csv"), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "300 accounts" in out and "district" in out and (tmp_path / "r.key.csv").exists()
    assert roster.main(["--accounts", "10", "--out", str(tmp_path / "r.txt")]) == 1
