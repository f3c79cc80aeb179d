"""Reporting periods: the circular's data cut-off (the 15th to the 14th), calendar periods, parameters."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core_app.domain import periods
from core_app.domain.periods import PeriodError, bounds, containing, named, parse

TODAY = date(2026, 12, 2)
PARTITIONS = ("month", "quarter", "half", "year")


@pytest.mark.parametrize(("key", "start", "end"), [
    ("2026-Q1", date(2025, 12, 15), date(2026, 3, 14)),   # Circular 01/2024/TT-TTCP art. 7(1): quarter I
    ("2026-Q2", date(2026, 3, 15), date(2026, 6, 14)),
    ("2026-Q4", date(2026, 9, 15), date(2026, 12, 14)),
    ("2026-H1", date(2025, 12, 15), date(2026, 6, 14)),   # six months
    ("2026-9M", date(2025, 12, 15), date(2026, 9, 14)),   # nine months
    ("2026", date(2025, 12, 15), date(2026, 12, 14)),     # the year
    ("2026-01", date(2025, 12, 15), date(2026, 1, 14)),   # a month, with the same cut-off day
    ("2026-03", date(2026, 2, 15), date(2026, 3, 14)),
    ("2026-H2", date(2026, 6, 15), date(2026, 12, 14)),
])
def test_the_circulars_cut_off(key, start, end):
    p = parse(key, None, None, None, TODAY)
    assert (p.start, p.end) == (start, end) and p.key == key


@pytest.mark.parametrize(("key", "start", "end"), [
    ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
    ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
    ("2026-H2", date(2026, 7, 1), date(2026, 12, 31)),
    ("2026", date(2026, 1, 1), date(2026, 12, 31)),
])
def test_calendar_periods(key, start, end):
    p = parse(key, "calendar", None, None, TODAY)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("basis", periods.BASES)
@pytest.mark.parametrize("kind", PARTITIONS)
def test_consecutive_periods_meet_without_gap_or_overlap(kind, basis):
    spans = [bounds(kind, y, n, basis) for y in range(2018, 2031) for n in range(1, periods.LIMITS[kind] + 1)]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end + timedelta(days=1)


@given(st.dates(min_value=date(2018, 1, 1), max_value=date(2030, 12, 1)), st.sampled_from(periods.BASES))
def test_every_day_lies_in_exactly_one_period_of_each_kind_and_months_make_their_quarter(day, basis):
    for kind in PARTITIONS:
        holders = [(y, n) for y in (day.year - 1, day.year, day.year + 1) for n in range(1, periods.LIMITS[kind] + 1)
                   if bounds(kind, y, n, basis)[0] <= day <= bounds(kind, y, n, basis)[1]]
        assert len(holders) == 1, (kind, day, holders)
        assert containing(day, kind, basis).key == named(kind, *holders[0], basis).key
    month, quarter = containing(day, "month", basis), containing(day, "quarter", basis)
    assert quarter.start <= month.start and month.end <= quarter.end


def test_a_periods_instants_are_midnights_in_vietnam():
    p = parse("2026-Q2", None, None, None, TODAY)
    assert p.start_at == datetime(2026, 3, 14, 17, 0, tzinfo=UTC)
    assert p.end_before == datetime(2026, 6, 14, 17, 0, tzinfo=UTC)


def test_no_period_means_the_quarter_of_today_and_a_custom_range_is_taken_as_given():
    assert parse(None, None, None, None, TODAY).key == "2026-Q4"
    # After the 14th of December the circular already counts next year's first quarter.
    assert parse(None, None, None, None, date(2026, 12, 20)).key == "2027-Q1"
    p = parse("custom", None, "2026-01-05", "2026-02-10", TODAY)
    assert (p.kind, p.start, p.end) == ("custom", date(2026, 1, 5), date(2026, 2, 10))
    assert parse(None, None, "2026-01-05", "2026-02-10", TODAY).kind == "custom"


@pytest.mark.parametrize(("args", "field"), [
    (("2026-Q5", None, None, None), "period"),
    (("2026-00", None, None, None), "period"),
    (("2026-H3", None, None, None), "period"),
    (("Q1-2026", None, None, None), "period"),
    (("1999", None, None, None), "period"),
    (("2028", None, None, None), "period"),
    (("2026-Q1", "lunar", None, None), "basis"),
    (("custom", None, "2026-02-30", "2026-03-01"), "from"),
    (("custom", None, "2026-03-01", "2026-13-01"), "to"),
    (("custom", None, "2026-03-01", "2026-02-01"), "to"),
    (("custom", None, "2026-03-01", None), "from"),
    (("2026-Q1", None, "2026-03-01", "2026-03-02"), "period"),
])
def test_bad_periods_are_refused_with_a_message_in_both_languages(args, field):
    with pytest.raises(PeriodError) as e:
        parse(*args, TODAY)
    assert e.value.field == field and e.value.vi and e.value.en


def test_the_periods_offered_have_begun_and_include_today():
    offered = dict(periods.choices(TODAY))
    assert offered["quarter"][0].key == "2026-Q4" and all(p.start <= TODAY for ps in offered.values() for p in ps)
    assert [p.key for p in offered["year"]] == ["2026", "2025", "2024"]
