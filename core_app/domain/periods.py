"""Reporting periods of the Government Inspectorate's periodic reports, and their boundaries.

The rule followed is Circular 01/2024/TT-TTCP of the Government Inspectorate on reporting on
inspection, citizen reception, complaints, denunciations and anti-corruption (in force since
5 March 2024, replacing Circular 02/2021/TT-TTCP, which had the same rule), art. 7(1), the data
cut-off ("thời gian chốt số liệu") of periodic reports:

- quarter I: 15 December of the previous year to 14 March; quarters II-IV: the 15th of the last
  month of the previous quarter to the 14th of the last month of the quarter;
- six months: 15 December of the previous year to 14 June;
- nine months: 15 December of the previous year to 14 September;
- year: 15 December of the previous year to 14 December.

The circular has no monthly report and no report of the second half year. Units that report monthly
(provincial rules) use the same cut-off day, so a month here runs from the 15th of the previous
month to the 14th: three months make exactly their quarter, and the second half (15 June to
14 December) makes, with the first, exactly the year. `basis="calendar"` gives calendar periods
(1 January to 31 March …) for internal use; a special or ad hoc report takes the dates the request
sets in writing (art. 7(1)(b)): a custom range.

A period is a range of whole days in Vietnam's time (UTC+7, no daylight saving): a date column is
compared with `start`/`end`, a timestamp with [`start_at`, `end_before`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CIRCULAR = "Thông tư 01/2024/TT-TTCP, Điều 7 khoản 1 (thời gian chốt số liệu)"
CUTOFF_DAY = 15  # the first day of a circular period; the 14th is the last day of the one before
FIRST_YEAR = 2000
KINDS = ("month", "quarter", "half", "nine_months", "year", "custom")
BASES = ("circular", "calendar")
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}

FORMAT_HELP = ("dùng 2026-03 (tháng), 2026-Q1 (quý), 2026-H1 (6 tháng), 2026-9M (9 tháng), 2026 (năm) "
               "hoặc 'custom' với từ ngày, đến ngày",
               "use 2026-03 (month), 2026-Q1 (quarter), 2026-H1 (six months), 2026-9M (nine months), 2026 (year) "
               "or 'custom' with from and to dates")
PATTERNS = (
    (re.compile(r"^(\d{4})-(\d{2})$"), "month"),
    (re.compile(r"^(\d{4})-Q(\d)$"), "quarter"),
    (re.compile(r"^(\d{4})-H(\d)$"), "half"),
    (re.compile(r"^(\d{4})-9M$"), "nine_months"),
    (re.compile(r"^(\d{4})$"), "year"),
)
LIMITS = {"month": 12, "quarter": 4, "half": 2, "nine_months": 1, "year": 1}


class PeriodError(ValueError):
    """A period the request names wrongly: the message says what is expected, in both languages."""

    def __init__(self, field: str, vi: str, en: str) -> None:
        super().__init__(en)
        self.field, self.vi, self.en = field, vi, en


@dataclass(frozen=True)
class Period:
    kind: str
    basis: str
    year: int
    number: int  # the month, quarter or half; 1 for nine months and the year; 0 for a custom range
    start: date  # first day, inclusive
    end: date    # last day, inclusive

    @property
    def key(self) -> str:
        """The value of the `period` parameter that names this period."""
        if self.kind == "month":
            return f"{self.year}-{self.number:02d}"
        if self.kind == "quarter":
            return f"{self.year}-Q{self.number}"
        if self.kind == "half":
            return f"{self.year}-H{self.number}"
        if self.kind == "nine_months":
            return f"{self.year}-9M"
        if self.kind == "year":
            return str(self.year)
        return "custom"

    @property
    def start_at(self) -> datetime:
        """The period's first instant: midnight in Vietnam at the start of its first day."""
        return datetime.combine(self.start, time(0), VN_TZ)

    @property
    def end_before(self) -> datetime:
        """The first instant after the period: midnight in Vietnam after its last day."""
        return datetime.combine(self.end + timedelta(days=1), time(0), VN_TZ)

    def query(self) -> dict[str, str]:
        """The request parameters that name this period again (links, exports)."""
        if self.kind == "custom":
            return {"period": "custom", "from": self.start.isoformat(), "to": self.end.isoformat()}
        return {"period": self.key, "basis": self.basis}

    def label(self, lang: str = "vi") -> str:
        """'Quý I năm 2026' / 'Quarter I of 2026' (the dates are shown beside it)."""
        n = self.number
        if lang == "en":
            return {"month": f"Month {n:02d}/{self.year}", "quarter": f"Quarter {ROMAN.get(n, n)} of {self.year}",
                    "half": f"{'First' if n == 1 else 'Second'} half of {self.year}",
                    "nine_months": f"Nine months of {self.year}", "year": f"Year {self.year}",
                    "custom": "Dates chosen"}[self.kind]
        return {"month": f"Tháng {n:02d} năm {self.year}", "quarter": f"Quý {ROMAN.get(n, n)} năm {self.year}",
                "half": f"6 tháng {'đầu' if n == 1 else 'cuối'} năm {self.year}",
                "nine_months": f"9 tháng năm {self.year}", "year": f"Năm {self.year}",
                "custom": "Khoảng ngày tự chọn"}[self.kind]


def _last_month(kind: str, number: int) -> int:
    """The last calendar month of a period of `kind` numbered `number` in its year."""
    return {"month": number, "quarter": 3 * number, "half": 6 * number, "nine_months": 9, "year": 12}[kind]


def _first_month(kind: str, number: int) -> int:
    return {"month": number, "quarter": 3 * number - 2, "half": 6 * number - 5, "nine_months": 1, "year": 1}[kind]


def bounds(kind: str, year: int, number: int, basis: str) -> tuple[date, date]:
    """First and last day of a named period."""
    first, last = _first_month(kind, number), _last_month(kind, number)
    if basis == "circular":
        # From the 15th of the month before the first month to the 14th of the last month.
        start = date(year - 1, 12, CUTOFF_DAY) if first == 1 else date(year, first - 1, CUTOFF_DAY)
        return start, date(year, last, CUTOFF_DAY - 1)
    end = date(year, 12, 31) if last == 12 else date(year, last + 1, 1) - timedelta(days=1)
    return date(year, first, 1), end


def named(kind: str, year: int, number: int, basis: str = "circular") -> Period:
    start, end = bounds(kind, year, number, basis)
    return Period(kind, basis, year, number, start, end)


def containing(day: date, kind: str = "quarter", basis: str = "circular") -> Period:
    """The period of `kind` that counts `day` (under the circular, 20 December is in next year's Q1)."""
    year = day.year
    for y in (year, year + 1):
        for n in range(1, LIMITS[kind] + 1):
            p = named(kind, y, n, basis)
            if p.start <= day <= p.end:
                return p
    # Nine months is not a partition: after 14 September the next one is next year's.
    return named(kind, year + 1 if kind == "nine_months" else year, 1, basis)


def _parse_date(field: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(field, f"Ngày không hợp lệ: '{value[:40]}' (dạng năm-tháng-ngày, ví dụ 2026-03-14).",
                          f"not a valid date: {value[:40]!r} (write it as YYYY-MM-DD, e.g. 2026-03-14)") from None


def parse(period: str | None, basis: str | None, date_from: str | None, date_to: str | None,
          today: date) -> Period:
    """The period a request names; the quarter containing today when it names none."""
    basis = (basis or "circular").strip()
    if basis not in BASES:
        raise PeriodError("basis", f"Cách tính kỳ không hợp lệ: '{basis[:40]}' (chọn 'circular' theo Thông tư "
                                   "hoặc 'calendar' theo tháng dương lịch).",
                          f"unknown period basis {basis[:40]!r}: 'circular' (the circular's cut-off) or 'calendar'")
    period = (period or "").strip()
    given_dates = bool((date_from or "").strip() or (date_to or "").strip())
    latest = today.year + 1
    if period == "custom" or (not period and given_dates):
        if not (date_from or "").strip() or not (date_to or "").strip():
            raise PeriodError("from", "Khoảng ngày tự chọn cần cả từ ngày và đến ngày.",
                              "a chosen range needs both the from and the to date")
        start, end = _parse_date("from", date_from or ""), _parse_date("to", date_to or "")
        if start > end:
            raise PeriodError("to", "Đến ngày phải sau hoặc bằng từ ngày.",
                              "the to date must not be before the from date")
        if start.year < FIRST_YEAR or end.year > latest:
            raise PeriodError("from", f"Khoảng ngày phải nằm trong các năm {FIRST_YEAR}–{latest}.",
                              f"the range must lie within the years {FIRST_YEAR}-{latest}")
        return Period("custom", "custom", end.year, 0, start, end)
    if given_dates:
        raise PeriodError("period", "Đã nhập khoảng ngày: hãy chọn 'Khoảng ngày tự chọn' ở Kỳ báo cáo, "
                                    "hoặc xóa các ngày.",
                          "dates were given: choose 'Dates chosen' as the period, or clear the dates")
    if not period:
        return containing(today, "quarter", basis)
    for pattern, kind in PATTERNS:
        m = pattern.match(period)
        if m is None:
            continue
        year = int(m.group(1))
        number = int(m.group(2)) if m.lastindex and m.lastindex > 1 else 1
        if not 1 <= number <= LIMITS[kind]:
            raise PeriodError("period", f"Kỳ báo cáo không hợp lệ: '{period[:40]}' ({FORMAT_HELP[0]}).",
                              f"not a valid period: {period[:40]!r} ({FORMAT_HELP[1]})")
        if not FIRST_YEAR <= year <= latest:
            raise PeriodError("period", f"Năm báo cáo phải từ {FIRST_YEAR} đến {latest}.",
                              f"the report's year must be between {FIRST_YEAR} and {latest}")
        return named(kind, year, number, basis)
    raise PeriodError("period", f"Kỳ báo cáo không hợp lệ: '{period[:40]}' ({FORMAT_HELP[0]}).",
                      f"not a valid period: {period[:40]!r} ({FORMAT_HELP[1]})")


def choices(today: date, basis: str = "circular", years: int = 3) -> list[tuple[str, list[Period]]]:
    """Periods to offer, newest first, grouped by kind: those that have begun, this year and `years - 1`
    before it (the one containing today included)."""
    out: list[tuple[str, list[Period]]] = []
    last_year = containing(today, "year", basis).year
    for kind in ("year", "nine_months", "half", "quarter", "month"):
        found = [named(kind, y, n, basis) for y in range(last_year, last_year - years, -1)
                 for n in range(LIMITS[kind], 0, -1)]
        out.append((kind, [p for p in found if p.start <= today]))
    return out
