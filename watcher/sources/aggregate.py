"""Exports of one row per event (a help desk's tickets) counted into one snapshot per store
and period: the ``aggregate:`` key of a column mapping.

A help desk such as Zoho Desk exports one row per ticket, not one per store and day. The
mapping still says which column is the store, platform and period (the period column is
the ticket's creation time, read in the mapping's time zone); ``aggregate`` says what each
metric is over the tickets of a store and period: a count of rows (``count: rows``,
optionally ``where`` a column holds some values) or the mean or median of hours (between
two timestamp columns, or in a column of hours). The statistics are computed here from
the rows that were accepted; a bad row is rejected alone by the caller
(``watcher/sources/tabular.py``) and counts for nothing.

Nothing is guessed: a timestamp without a zone is read in the zone the mapping states
(a mapping that reads timestamps must state one), a value of a ``where`` column that is
in neither of its lists rejects the row, and a duration written ``5:30`` (hours and
minutes, or minutes and seconds?) is refused unless it says ``hrs``.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watcher import indicators
from watcher.indicators import Unit
from watcher.limits import METRIC_MAX_HOURS
from watcher.numbers import SHEET_SEPARATORS, AmbiguousNumber
from watcher.snapshot import parse_number
from watcher.sources.sheets import Cell, RowError

Header = Annotated[str, Field(min_length=1, max_length=200)]
_OFFSET: Final = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_HOURS_MINUTES: Final = re.compile(r"^(\d+):([0-5]\d)\s*(?:hrs?|hours?)$", re.IGNORECASE)
_TIME_DIRECTIVES: Final = ("%H", "%I", "%M")


@functools.lru_cache(maxsize=64)
def parse_zone(text: str) -> tzinfo:
    """``UTC``, a fixed offset (``+08:00``, ``UTC+8``) or an IANA name (``Asia/Shanghai``:
    needs the system's time-zone database, or the ``tzdata`` package)."""
    clean = text.strip()
    if clean.upper() in ("UTC", "GMT", "Z"):
        return UTC
    m = _OFFSET.match(clean)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3) or 0)
        if hours > 14 or minutes >= 60:
            raise ValueError(f"{text!r} is not an offset from UTC (-14:00 to +14:00)")
        delta = timedelta(hours=hours, minutes=minutes)
        return timezone(-delta if m.group(1) == "-" else delta)
    try:
        return ZoneInfo(clean)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not a time zone: write +08:00, UTC or an IANA name "
                         "such as Asia/Shanghai") from None


def read_timestamp(cell: Cell, formats: tuple[str, ...], zone: tzinfo) -> tuple[datetime, bool]:
    """A timestamp cell as an aware time in ``zone``, and whether it had a time of day.

    A cell without an offset is a time in ``zone``; one with an offset (ISO 8601,
    ``%z``) is converted to it. Raises ValueError naming the shapes it accepts."""
    if isinstance(cell, datetime):
        return _in_zone(cell, zone), True
    if isinstance(cell, date):
        return datetime.combine(cell, time(), zone), False
    text = str(cell).strip() if cell is not None else ""
    if not text:
        raise ValueError("is empty; a timestamp is required")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return _in_zone(parsed, zone), ":" in text
    for fmt in formats:
        if "%d" not in fmt and "%j" not in fmt:
            continue  # a month ("2026/11") is no moment: never read as its first day
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return _in_zone(parsed, zone), any(d in fmt for d in _TIME_DIRECTIVES)
    days = [f for f in formats if "%d" in f or "%j" in f]
    raise ValueError(f"{text!r} is not a timestamp; expected 2026-11-02 10:15:00 (ISO 8601, "
                     f"with or without an offset) or one of the mapping's formats with a day "
                     f"({', '.join(days)})")


def _in_zone(moment: datetime, zone: tzinfo) -> datetime:
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)


def is_nan(cell: Cell) -> bool:
    """``nan`` in a spreadsheet cell is a formula or an export that failed, not an empty
    cell: a metric cell holding it is refused, never read as no data."""
    if isinstance(cell, float):
        return math.isnan(cell)
    return isinstance(cell, str) and cell.strip().lower() == "nan"


def read_hours(cell: Cell) -> float:
    """A duration cell in hours: ``5.5``, ``"5.5"``, ``"5:30 hrs"``; ``"5:30"`` alone could
    be minutes and seconds, and is refused."""
    if isinstance(cell, bool) or not isinstance(cell, int | float | str):
        raise ValueError(f"is not a number of hours: {cell!r}")
    return checked_hours(_hours_text(cell) if isinstance(cell, str) else float(cell), cell)


def _hours_text(cell: str) -> float:
    text = cell.strip()
    m = _HOURS_MINUTES.match(text)
    if m:
        return int(m.group(1)) + int(m.group(2)) / 60
    if ":" in text:
        raise ValueError(f"{text!r} could be hours:minutes or minutes:seconds; write "
                         "5.5 or '5:30 hrs'")
    text = re.sub(r"\s*(?:hrs?|hours?)$", "", text, flags=re.IGNORECASE)
    try:
        return parse_number(text, SHEET_SEPARATORS)
    except AmbiguousNumber as exc:
        raise ValueError(str(exc)) from None
    except ValueError:
        raise ValueError(f"is not a number of hours: {cell!r}") from None


def checked_hours(value: float, cell: object) -> float:
    """Every duration, whichever way it was written (a number, ``H:MM hrs``, the time
    between two timestamps), within [0, METRIC_MAX_HOURS]: a row over it is refused
    alone, before it can move its day's mean."""
    if not math.isfinite(value):
        raise ValueError(f"is not a number of hours: {cell!r}")
    if value < 0:
        raise ValueError(f"is a negative duration: {cell!r}")
    if value > METRIC_MAX_HOURS:
        raise ValueError(f"{cell!r} is over {METRIC_MAX_HOURS:g} hours, a year "
                         "(METRIC_MAX_HOURS)")
    return value


# -- the mapping's ``aggregate`` key -----------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Where(_Frozen):
    """Which rows a count takes: the column's cell is one of ``in``. With ``not_in`` the
    column's values are closed: a cell in neither list rejects its row, so a status added
    later (a custom one) is never silently counted on either side."""

    column: Header
    in_: tuple[str, ...] = Field(alias="in", min_length=1)
    not_in: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _apart(self) -> Where:
        both = set(self.in_) & set(self.not_in)
        if both:
            raise ValueError(f"{sorted(both)[0]!r} is in both 'in' and 'not_in'")
        return self

    def holds(self, text: str | None) -> bool:
        if text is None:
            raise RowError(self.column, "is empty; the count needs it")
        if text in self.in_:
            return True
        if not self.not_in or text in self.not_in:
            return False
        raise RowError(self.column, f"{text!r} is in neither 'in' ({', '.join(self.in_)}) nor "
                                    f"'not_in' ({', '.join(self.not_in)}) of the mapping; "
                                    "add it to one")


class Measure(_Frozen):
    """One metric over a group's rows: ``{count: rows}``, ``{mean: hours, from: A, to: B}``,
    ``{median: hours, column: C}``; ``where`` limits the rows it takes."""

    count: Literal["rows"] | None = None
    mean: Literal["hours"] | None = None
    median: Literal["hours"] | None = None
    from_: Header | None = Field(default=None, alias="from")
    to: Header | None = None
    column: Header | None = None
    where: Where | None = None

    @model_validator(mode="after")
    def _shape(self) -> Measure:
        given = [k for k in ("count", "mean", "median") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of 'count: rows', 'mean: hours' or 'median: hours'")
        spans = self.from_ is not None or self.to is not None
        if self.count is not None and (spans or self.column is not None):
            raise ValueError("'count: rows' takes no 'from', 'to' or 'column' (only 'where')")
        if self.count is None:
            if (self.from_ is None) != (self.to is None):
                raise ValueError("'from' and 'to' go together: the hours between two "
                                 "timestamp columns")
            if spans == (self.column is not None):
                raise ValueError("give either 'from' and 'to' (two timestamp columns) or "
                                 "'column' (a column of hours)")
        return self

    @property
    def statistic(self) -> Literal["count", "mean", "median"]:
        return "count" if self.count else "mean" if self.mean else "median"

    def columns(self) -> dict[str, str]:
        named = {"from": self.from_, "to": self.to, "column": self.column,
                 "where": self.where.column if self.where else None}
        return {k: v for k, v in named.items() if v is not None}


class AggregateSpec(_Frozen):
    """``aggregate:`` of a mapping: one row per event, one snapshot per store and period."""

    key: Header | None = Field(default=None, description="a column naming each row (the "
                               "ticket id): a second row with the same key is rejected")
    metrics: dict[str, Measure] = Field(min_length=1)

    @model_validator(mode="after")
    def _units(self) -> AggregateSpec:
        for metric, measure in self.metrics.items():
            indicator = indicators.get(metric)
            if indicator is None:
                raise ValueError(f"'{metric}' is not a known metric id "
                                 "(see docs/snapshot-format.md)")
            wanted = Unit.COUNT if measure.statistic == "count" else Unit.HOURS
            if indicator.unit is not wanted:
                raise ValueError(f"'{metric}' is in {indicator.unit.value}; "
                                 f"{measure.statistic} gives {wanted.value}")
        return self

    def columns(self) -> dict[str, str]:
        """What each column the aggregation reads is for (``aggregate.tickets.where``)."""
        found = {"aggregate.key": self.key} if self.key else {}
        for metric, measure in self.metrics.items():
            found.update({f"aggregate.{metric}.{k}": v for k, v in measure.columns().items()})
        return found


# -- counting ----------------------------------------------------------------------------------

Read = Callable[[str], Cell]
Text = Callable[[str], "str | None"]


@dataclass(slots=True)
class _Group:
    record: dict[str, Any]
    rows: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)


class Tally:
    """The groups of one file: rows are added one by one (a bad one raises RowError and
    leaves the tally as it was), then each group becomes one record."""

    def __init__(self, spec: AggregateSpec, formats: tuple[str, ...], zone: tzinfo) -> None:
        self.spec = spec
        self._formats = formats
        self._zone = zone
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._keys: dict[str, int] = {}

    def add(self, record: Mapping[str, Any], number: int, raw: str, read: Read,
            text: Text) -> None:
        """One accepted row of ``record``'s store, platform and period."""
        contributions = {metric: self._observe(measure, read, text)
                         for metric, measure in self.spec.metrics.items()}
        if self.spec.key is not None:
            key = text(self.spec.key)
            if key is None:
                raise RowError(self.spec.key, "is empty; every row needs its key")
            if key in self._keys:
                raise RowError(self.spec.key, f"{key!r} is also row {self._keys[key]}: a row "
                                              "is counted once")
            self._keys[key] = number
        identity = (record["store"], record["platform"], record["period"], record["operator"])
        group = self._groups.get(identity)
        if group is None:
            group = self._groups[identity] = _Group(dict(record))
        group.rows.append(number)
        group.raws.append(raw)
        for metric, value in contributions.items():
            if self.spec.metrics[metric].statistic == "count":
                group.counts[metric] = group.counts.get(metric, 0) + int(bool(value))
            elif value is not None:
                group.samples.setdefault(metric, []).append(float(value))

    def _observe(self, measure: Measure, read: Read, text: Text) -> bool | float | None:
        if measure.where is not None and not measure.where.holds(text(measure.where.column)):
            return False if measure.statistic == "count" else None
        if measure.statistic == "count":
            return True
        if measure.column is not None:
            if text(measure.column) is None:
                if is_nan(read(measure.column)):  # a failed formula, not an empty cell
                    raise RowError(measure.column, f"is not a number of hours: "
                                                   f"{read(measure.column)!r}")
                return None  # not answered yet: no duration to count
            try:
                return read_hours(read(measure.column))
            except ValueError as exc:
                raise RowError(measure.column, str(exc)) from None
        assert measure.from_ is not None and measure.to is not None
        if text(measure.to) is None:
            if is_nan(read(measure.to)):
                raise RowError(measure.to, f"is not a timestamp: {read(measure.to)!r}")
            return None  # not answered yet
        start = self._moment(measure.from_, read)
        end = self._moment(measure.to, read)
        if end < start:
            raise RowError(measure.to, f"is before '{measure.from_}' "
                                       f"({end.isoformat()} < {start.isoformat()})")
        try:
            return checked_hours((end - start).total_seconds() / 3600,
                                 f"{start.isoformat()} .. {end.isoformat()}")
        except ValueError as exc:
            raise RowError(measure.to, str(exc)) from None

    def _moment(self, column: str, read: Read) -> datetime:
        try:
            moment, has_time = read_timestamp(read(column), self._formats, self._zone)
        except ValueError as exc:
            raise RowError(column, str(exc)) from None
        if not has_time:
            raise RowError(column, "is a date without a time of day; hours between two "
                                   "timestamps need both times")
        return moment

    def records(self) -> Iterator[tuple[str, dict[str, Any], str]]:
        """(location, record, raw) per group, in the order groups first appeared. The raw
        text holds every row of the group under its row number: nothing sent is lost."""
        for group in self._groups.values():
            metrics: dict[str, float] = {}
            for metric, measure in self.spec.metrics.items():
                if measure.statistic == "count":
                    metrics[metric] = group.counts.get(metric, 0)
                elif group.samples.get(metric):
                    compute = statistics.fmean if measure.mean else statistics.median
                    metrics[metric] = round(compute(group.samples[metric]), 6)
                # no sample (no ticket answered yet): the metric is no data, never zero
            record = {**group.record, "metrics": metrics}
            location = (f"{record['store']} {record['period']} "
                        f"({_spans(group.rows)})")
            raw = "{" + ", ".join(f'"row {n}": {text}'
                                  for n, text in zip(group.rows, group.raws, strict=True)) + "}"
            yield location, record, raw


def _spans(numbers: list[int]) -> str:
    """``rows 2-4, 7``: the rows a record was counted from, as the operator scrolls them."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ("row " if len(numbers) == 1 else "rows ") + ", ".join(parts)

