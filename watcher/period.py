"""Assessment periods: a day, an ISO week, a month, a quarter or a year, written as in the
reference (a week as ISO 8601 writes it: ``2026-W45``, Monday to Sunday)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Self

from watcher.echo import shown
from watcher.numbers import to_ascii


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


# ASCII digits only: ``\d`` would also match other scripts' digits, and the period would
# be stored as text of its own beside the ASCII one (``２０２６-10`` beside ``2026-10``).
_FORMS = (
    (re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$"), PeriodKind.DAY),
    (re.compile(r"^([0-9]{4})-W([0-9]{2})$"), PeriodKind.WEEK),
    (re.compile(r"^([0-9]{4})-([0-9]{2})$"), PeriodKind.MONTH),
    (re.compile(r"^([0-9]{4})-Q([1-4])$"), PeriodKind.QUARTER),
    (re.compile(r"^([0-9]{4})$"), PeriodKind.YEAR),
)

PERIOD_FORMS = "YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY-Qn or YYYY"


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """A period is ordered by (start, end) so a month sorts before its own quarter's end."""

    start: date
    end: date
    kind: PeriodKind
    text: str

    @classmethod
    def parse(cls, text: str) -> Self:
        """Full-width digits and signs (``２０２６－１０``) are read as ASCII: one period,
        one text. Any other non-ASCII character refuses the period."""
        return cls._parse(to_ascii(text).strip())

    @classmethod
    @functools.lru_cache(maxsize=4096)
    def _parse(cls, text: str) -> Self:
        for pattern, kind in _FORMS:
            m = pattern.match(text)
            if not m:
                continue
            year = int(m.group(1))
            try:
                if kind is PeriodKind.DAY:
                    start = end = date(year, int(m.group(2)), int(m.group(3)))
                elif kind is PeriodKind.WEEK:  # ISO: 2026-W53 exists only in long years
                    start = date.fromisocalendar(year, int(m.group(2)), 1)
                    end = start + timedelta(days=6)
                elif kind is PeriodKind.MONTH:
                    start = date(year, int(m.group(2)), 1)
                    end = _month_end(start)
                elif kind is PeriodKind.QUARTER:
                    q = int(m.group(2))
                    start = date(year, 3 * q - 2, 1)
                    end = _month_end(date(year, 3 * q, 1))
                else:
                    start, end = date(year, 1, 1), date(year, 12, 31)
            except ValueError as exc:
                raise ValueError(f"'{shown(text, 40)}' is not a real date: {exc}") from None
            return cls(start, end, kind, text)
        raise ValueError(f"'{shown(text, 40)}' is not a period; expected {PERIOD_FORMS}")

    @classmethod
    def month(cls, year: int, month: int) -> Self:
        return cls.parse(f"{year:04d}-{month:02d}")

    def shift_months(self, months: int) -> Period:
        """The month ``months`` away from this month (only for monthly periods)."""
        if self.kind is not PeriodKind.MONTH:
            raise ValueError(f"{self.text} is not a monthly period")
        index = self.start.year * 12 + self.start.month - 1 + months
        return Period.month(index // 12, index % 12 + 1)

    @classmethod
    def week_of(cls, day: date) -> Self:
        """The ISO week ``day`` falls in (2027-01-01 is in 2026-W53)."""
        year, week, _ = day.isocalendar()
        return cls.parse(f"{year:04d}-W{week:02d}")

    def __str__(self) -> str:
        return self.text


def _month_end(first: date) -> date:
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return nxt - timedelta(days=1)
