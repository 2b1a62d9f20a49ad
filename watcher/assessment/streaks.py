"""The PIP rule's arithmetic: consecutive missed months per operator.

An operator misses a month when any of their stores' monthly snapshots has a
metric on the wrong side of its target. Only consecutive calendar months
count: a month with no data breaks the streak (we do not assume a month we
have not seen was missed). Pure functions over plain data; the pipeline loads
the months from the store and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from watcher.period import Period


@dataclass(frozen=True, slots=True)
class Streak:
    months: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.months[0]

    @property
    def last(self) -> str:
        return self.months[-1]


def run_containing(missed: dict[str, bool], month: Period) -> Streak | None:
    """The run of consecutive missed months that contains ``month``, if it was missed."""
    if not missed.get(month.text):
        return None
    start = month
    while missed.get(start.shift_months(-1).text):
        start = start.shift_months(-1)
    end = month
    while missed.get(end.shift_months(1).text):
        end = end.shift_months(1)
    months: list[str] = []
    cursor = start
    while cursor.start <= end.start:
        months.append(cursor.text)
        cursor = cursor.shift_months(1)
    return Streak(tuple(months))


def longest_within(missed: dict[str, bool], months: tuple[str, ...]) -> Streak | None:
    """The longest run of missed months left inside ``months`` (after a restatement)."""
    best: list[str] = []
    current: list[str] = []
    for text in months:
        if missed.get(text):
            current.append(text)
            if len(current) > len(best):
                best = list(current)
        else:
            current = []
    return Streak(tuple(best)) if best else None
