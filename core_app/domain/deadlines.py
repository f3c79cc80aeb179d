"""Deadline arithmetic: statutory limits in days or working days, Vietnamese holidays included.

Counting follows the Civil Code (arts. 145-148): a limit counts from the day after the event;
a limit in calendar days that ends on a day off moves to the next working day. Working days
skip Saturdays, Sundays, public holidays (Tết included, from the `holidays` library) and the
days the calendar_override table marks; overrides can also make a Saturday a working day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import holidays


@dataclass(frozen=True)
class Rule:
    code: str
    step: str
    days: int
    day_unit: str  # 'days' | 'working_days'
    complex_days: int | None = None
    remote_days: int | None = None
    remote_complex_days: int | None = None
    extension_days: int = 0
    max_extensions: int = 0
    start_event: str = "receipt"
    legal_basis: str = ""
    end_events: tuple[str, ...] = ()
    extension_levels: tuple[str, ...] | None = None
    version: int = 1
    effective_from: date = date(2018, 3, 15)
    case_kind: str = "any"
    complaint_round: int | None = None
    description_vi: str = ""
    description_en: str = ""

    def base_days(self, is_complex: bool = False, is_remote: bool = False) -> int:
        if is_complex and is_remote and self.remote_complex_days:
            return self.remote_complex_days
        if is_remote and self.remote_days:
            return self.remote_days
        if is_complex and self.complex_days:
            return self.complex_days
        return self.days


@lru_cache(maxsize=64)
def _vn_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("VN", years=year).keys())


def warm(today: date) -> None:
    """Load this year's and next year's holidays now. The library loads its countries on first use
    (about a third of a second of CPU, `make bench-app BENCH_ARGS=--profile`), which would otherwise
    fall on the first intake each worker serves after it starts."""
    for year in (today.year, today.year + 1):
        _vn_holidays(year)


class Calendar:
    """Working-day calendar for Vietnam with optional overrides {day: is_working}."""

    def __init__(self, overrides: Mapping[date, bool] | None = None) -> None:
        self.overrides = dict(overrides or {})

    def is_working_day(self, d: date) -> bool:
        if d in self.overrides:
            return self.overrides[d]
        return d.weekday() < 5 and d not in _vn_holidays(d.year)

    def next_working_day(self, d: date) -> date:
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    def add_working_days(self, start: date, n: int) -> date:
        d = start
        counted = 0
        while counted < n:
            d += timedelta(days=1)
            if self.is_working_day(d):
                counted += 1
        return d

    def add_days(self, start: date, n: int) -> date:
        return self.next_working_day(start + timedelta(days=n))

    def due_date(self, start: date, days: int, unit: str) -> date:
        if days < 0:
            raise ValueError("a limit cannot be negative")
        if unit == "working_days":
            return self.add_working_days(start, days)
        if unit == "days":
            return self.add_days(start, days)
        raise ValueError(f"unknown day unit {unit!r}: expected 'days' or 'working_days'")

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after `start` up to and including `end` (negative if end < start)."""
        if end < start:
            return -self.working_days_between(end, start)
        n, d = 0, start
        while d < end:
            d += timedelta(days=1)
            n += self.is_working_day(d)
        return n


# The k-th extension of a rule with extension_levels needs the case at least that complex.
LEVELS = ("complex", "especially_complex")


def extension_refusal(rule: Rule, n: int, level: str | None) -> tuple[str, str] | None:
    """Why the n-th extension of `rule` is not allowed at `level` (Vietnamese, English), or None."""
    if n > rule.max_extensions:
        return (f"Không thể gia hạn thêm: {rule.legal_basis} cho phép tối đa {rule.max_extensions} lần.",
                f"no extension left: {rule.legal_basis} allows at most {rule.max_extensions}")
    if rule.extension_levels:
        need = rule.extension_levels[min(n, len(rule.extension_levels)) - 1]
        if level not in LEVELS or LEVELS.index(level) < LEVELS.index(need):
            vi = {"complex": "phức tạp", "especially_complex": "đặc biệt phức tạp"}[need]
            return (f"Gia hạn lần {n} chỉ áp dụng cho vụ việc {vi} ({rule.legal_basis}).",
                    f"extension {n} applies only to a case that is {need.replace('_', ' ')} ({rule.legal_basis})")
    return None


def due_for(rule: Rule, start: date, cal: Calendar, *, is_complex: bool = False, is_remote: bool = False,
            extensions: int = 0) -> date:
    """The due date of a rule, with `extensions` extensions granted by decision."""
    if extensions > rule.max_extensions:
        raise ValueError(f"rule {rule.code} allows at most {rule.max_extensions} extension(s)")
    days = rule.base_days(is_complex, is_remote) + extensions * rule.extension_days
    return cal.due_date(start, days, rule.day_unit)
