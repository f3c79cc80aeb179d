"""Deadline arithmetic across weekends, Vietnamese holidays and Tết (Civil Code arts. 145-148)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core_app.domain.deadlines import Calendar, Rule, due_for

CAL = Calendar()
KN1_RESOLVE = Rule("KN1-RESOLVE", "resolve", 30, "days", complex_days=45, remote_days=45, remote_complex_days=60)
TC_ACCEPT = Rule("TC-ACCEPT", "accept", 7, "working_days", extension_days=3, max_extensions=1)
TC_RESOLVE = Rule("TC-RESOLVE", "resolve", 30, "days", extension_days=30, max_extensions=2)


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 1, 1), False),    # New Year's Day
    (date(2026, 2, 17), False),   # Tết: first day of the lunar year 2026
    (date(2026, 2, 16), False),   # Tết: lunar New Year's Eve
    (date(2026, 4, 30), False),   # Reunification Day
    (date(2026, 5, 1), False),    # Labour Day
    (date(2026, 9, 2), False),    # National Day
    (date(2026, 4, 26), False),   # Hùng Kings' Commemoration (10/3 lunar) falls on a Sunday
    (date(2026, 3, 2), True),     # an ordinary Monday
    (date(2026, 3, 7), False),    # a Saturday
])
def test_calendar_knows_vietnamese_days_off(day, working):
    assert CAL.is_working_day(day) is working


def test_calendar_days_end_on_a_day_off_move_to_next_working_day():
    # 10 days from 2026-04-20 is 2026-04-30 (Reunification Day), then 1 May, then the weekend.
    assert CAL.due_date(date(2026, 4, 20), 10, "days") == date(2026, 5, 4)


def test_working_days_skip_tet():
    # Received Friday 13 Feb 2026, the last working day before Tết (16-20 Feb).
    due = CAL.due_date(date(2026, 2, 13), 7, "working_days")
    assert due == date(2026, 3, 3)  # 23-27 Feb, 2 and 3 Mar
    assert CAL.working_days_between(date(2026, 2, 13), due) == 7


def test_counting_starts_the_day_after_the_event():
    # A Monday receipt: 5 working days end on the next Monday, not on Friday.
    assert CAL.due_date(date(2026, 3, 2), 5, "working_days") == date(2026, 3, 9)


def test_complex_and_remote_complaints_get_longer_limits():
    start = date(2026, 3, 2)
    assert due_for(KN1_RESOLVE, start, CAL) == date(2026, 4, 1)
    assert due_for(KN1_RESOLVE, start, CAL, is_complex=True) == date(2026, 4, 16)
    assert due_for(KN1_RESOLVE, start, CAL, is_complex=True, is_remote=True) == date(2026, 5, 4)


def test_extensions_add_days_and_are_limited():
    start = date(2026, 3, 2)
    assert due_for(TC_RESOLVE, start, CAL, extensions=2) == CAL.due_date(start, 90, "days")
    with pytest.raises(ValueError, match="at most 2"):
        due_for(TC_RESOLVE, start, CAL, extensions=3)
    assert due_for(TC_ACCEPT, start, CAL, extensions=1) == CAL.due_date(start, 10, "working_days")


def test_override_makes_a_saturday_a_working_day():
    sat = date(2026, 3, 7)
    cal = Calendar({sat: True})
    assert cal.is_working_day(sat)
    assert cal.due_date(date(2026, 3, 6), 1, "working_days") == sat


def test_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="unknown day unit"):
        CAL.due_date(date(2026, 1, 1), 3, "weeks")


@given(st.dates(min_value=date(2018, 1, 1), max_value=date(2030, 12, 31)), st.integers(1, 60))
def test_due_dates_are_working_days_and_never_early(start, n):
    for unit in ("days", "working_days"):
        due = CAL.due_date(start, n, unit)
        assert CAL.is_working_day(due)
        assert due >= start + timedelta(days=n)
    assert CAL.working_days_between(start, CAL.due_date(start, n, "working_days")) == n


def test_a_worker_started_loads_the_holidays_before_its_first_intake_needs_them():
    """The holiday library loads its countries on first use (a third of a second): the app's start
    does it (core_app/app.py), so the first due date a worker computes, into next year too, loads
    nothing more."""
    script = ("import sys\nfrom datetime import date\nfrom core_app.domain import deadlines\n"
              "deadlines.warm(date(2026, 12, 6))\nbefore = set(sys.modules)\n"
              "due = deadlines.Calendar().add_working_days(date(2026, 12, 20), 30)\n"
              "print(due.year, len(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["2027", "0"]
