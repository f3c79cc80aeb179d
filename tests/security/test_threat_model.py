"""The threat model stays whole: every row of runbooks/security.md has its own number, the README
counts them right, and each row is attacked by a test module that names it (`Threat rows: …`).

It attacks no row itself: it keeps the table's bookkeeping."""

from __future__ import annotations

import re

from tests.conftest import ROOT

BOOK = ROOT / "runbooks" / "security.md"
ROW = re.compile(r"^\| (T\d+) \|", re.MULTILINE)
NAMED = re.compile(r"Threat rows?(?: \(runbooks/security\.md\))?:((?:[^\n]|\n(?!\n|\"\"\"))*)")


def rows() -> list[str]:
    return ROW.findall(BOOK.read_text())


def named_by_tests() -> set[str]:
    named: set[str] = set()
    for module in (ROOT / "tests").rglob("test_*.py"):
        for found in NAMED.findall(module.read_text()):
            named.update(re.findall(r"\bT\d+\b", found))
    return named


def test_each_row_has_its_own_number():
    numbers = rows()
    assert numbers, "no threat rows found"
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not twice, f"threat rows numbered twice: {twice}"


def test_the_readme_counts_the_rows():
    said = re.search(r"(\d+) rows of attack", (ROOT / "README.md").read_text())
    assert said, "README no longer says how many rows the threat table has"
    assert int(said.group(1)) == len(rows())


def test_every_row_is_named_by_a_test_and_every_name_is_a_row():
    numbers, named = set(rows()), named_by_tests()
    assert not numbers - named, f"rows no test module names: {sorted(numbers - named, key=lambda t: int(t[1:]))}"
    assert not named - numbers, f"test modules name rows that do not exist: {sorted(named - numbers)}"
