"""Column mappings: ERP spreadsheet exports (CSV or XLSX) to canonical snapshots, one per row.

ERP systems (赛狐ERP, 店小秘, 领星, ...) export store performance as spreadsheets
whose columns differ per vendor, per version and per user's column picker. A
mapping file (YAML, data users edit, in the ``mappings`` folder) says which
column is the store, platform, period and operator, and which columns are
which metrics in which unit. It is validated once at load into the frozen
models below, so a typo is an error naming file and line at start, not a
silently missing metric at 3 a.m.

Unlike a platform payload, a spreadsheet is many independent records: a bad
cell rejects its row (``row 7``, field = the column header) and the other rows
go on. Each accepted row keeps every cell, mapped or not, as its raw text.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from watcher import indicators, yamlfile
from watcher.errors import ConfigError, InputError
from watcher.numbers import SHEET_SEPARATORS, AmbiguousNumber, to_ascii
from watcher.period import Period, PeriodKind
from watcher.snapshot import Comparator, parse_number
from watcher.sources.aggregate import (
    AggregateSpec,
    Tally,
    is_nan,
    parse_zone,
    read_timestamp,
)
from watcher.sources.base import Clock, is_missing, period_for_range, tidy
from watcher.sources.sheets import Cell, Row, RowError, is_workbook, read_rows, sheet_text
from watcher.validation import RawRecord, Rejection, validate

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# Tried after the canonical forms (2026-10, 2026-10-01, 2026-Q4, 2026) when a
# mapping names no formats of its own: the shapes Chinese ERP exports use.
DEFAULT_FORMATS: Final = (
    "%Y/%m/%d", "%Y/%m", "%Y年%m月%d日", "%Y年%m月", "%Y.%m.%d", "%Y.%m", "%Y%m%d", "%Y%m",
    "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
)
# "2026-10-01 ~ 2026-10-31", "2026/10/01至2026/10/31": a range is a whole month or its last day.
_RANGE: Final = re.compile(r"\s*(?:~|～|至|到|\s-\s|—)\s*")
_EXTRA_MISSING: Final = frozenset({"—", "——", "/", "na", "#n/a"})
_CURRENCY_PREFIX: Final = re.compile(r"^(?:[A-Z]{3}|RM|Rp|[A-Z]{0,2}\$|[¥￥€£₱₫฿₩₹])\s*")
_CURRENCY_SUFFIX: Final = re.compile(r"\s*(?:[A-Z]{3}|元)$")


class Unit(StrEnum):
    """How a column writes its numbers; the canonical value is always the reference's unit."""

    PERCENT = "percent"      # 3.5 or "3.5%" -> 0.035
    FRACTION = "fraction"    # 0.035 or "3.5%" -> 0.035
    NUMBER = "number"        # "1,200.5" -> 1200.5
    COUNT = "count"          # a whole number >= 0
    CURRENCY = "currency"    # "¥1,200", "US$ 1,200.50", "1,200 USD", "(1,200)" -> number


def _text_keys(value: Any) -> Any:
    """YAML reads a header like ``2026`` as a number; headers are text."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


def _constant(value: Any) -> Any:
    """``platform: amazon`` is shorthand for ``platform: {value: amazon}``."""
    return {"value": str(value)} if isinstance(value, str | int | float) else value


Header = Annotated[str, Field(min_length=1, max_length=200)]


class FieldSpec(BaseModel):
    """Where a field comes from: a column (optionally translated by ``values``) or a constant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: Header | None = None
    value: Header | None = None
    values: Annotated[dict[str, str], BeforeValidator(_text_keys)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give either 'column' (a header) or 'value' (a constant)")
        if self.values and self.column is None:
            raise ValueError("'values' translates a column's cells; it needs 'column'")
        return self


Spec = Annotated[FieldSpec, BeforeValidator(_constant)]


class PeriodSpec(BaseModel):
    """The period column (or a constant) and how its dates are written."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    column: Header | None = None
    value: str | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    as_: PeriodKind | None = Field(default=None, alias="as", description=(
        "read every row as this kind: a day 2026-10-15 read as month is 2026-10"))
    timezone: str | None = Field(default=None, description=(
        "the column holds timestamps: a row's period is the day (or its week, month, ...) "
        "in this zone; a timestamp without an offset is a time in it"))

    @model_validator(mode="after")
    def _check(self) -> PeriodSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give either 'column' (a header) or 'value' (a constant period)")
        if self.timezone is not None:
            if self.column is None:
                raise ValueError("'timezone' reads the period column's timestamps; it needs "
                                 "'column'")
            parse_zone(self.timezone)
        if self.value is not None:
            Period.parse(self.value)
        for fmt in self.formats:
            if "%" not in fmt:
                raise ValueError(f"format {fmt!r} has no %-directive (e.g. %Y/%m/%d)")
        return self

    @property
    def zone(self) -> tzinfo | None:
        return parse_zone(self.timezone) if self.timezone is not None else None


class TargetSpec(BaseModel):
    """A target for the metric: a column, or a constant written in the metric's unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: Header | None = None
    value: float | str | None = None
    comparator: Comparator | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TargetSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give either 'column' (a header) or 'value' (a constant)")
        return self


def _known_metric(value: str) -> str:
    known = set(indicators.INDICATORS) | indicators.COUNT_FIELDS
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else " (see docs/snapshot-format.md)"
        raise ValueError(f"'{value}' is not a known metric id{hint}")
    return value


class MetricSpec(BaseModel):
    """One metric column: which metric, in which unit, with which target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: Annotated[str, AfterValidator(_known_metric)]
    unit: Unit
    target: TargetSpec | None = None

    @model_validator(mode="after")
    def _target_in_unit(self) -> MetricSpec:
        if self.target is not None and self.target.value is not None:
            try:
                to_number(self.target.value, self.unit)
            except RowError as exc:
                raise ValueError(f"target value: {exc}") from None
        return self


class ColumnMapping(BaseModel):
    """One mapping file. Columns the mapping does not name are ignored (and kept as raw)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="the source name (file stem by default)")
    description: str = ""
    platform: Spec
    store: Spec | None = None
    operator: Spec | None = None
    period: PeriodSpec | None = None
    segment: Annotated[dict[str, Spec], BeforeValidator(_text_keys)] = Field(
        default_factory=dict)
    metrics: Annotated[dict[str, MetricSpec], BeforeValidator(_text_keys)] = Field(
        default_factory=dict, description="header -> metric: one snapshot per row")
    aggregate: AggregateSpec | None = Field(default=None, description=(
        "one row per event (a ticket): metrics counted over each store's rows per period "
        "(watcher/sources/aggregate.py)"))
    encoding: str = Field(default="auto",
                          pattern=r"^(auto|utf-8|utf-8-sig|utf-16|gb18030|gbk|gb2312)$")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    sheet: str | None = None
    header_row: int = Field(default=1, ge=1, le=1000)
    skip_rows: Annotated[dict[str, tuple[str, ...]], BeforeValidator(_text_keys)] = Field(
        default_factory=dict, description="header -> cell values marking rows to skip (合计)")

    @model_validator(mode="after")
    def _one_column_per_metric(self) -> ColumnMapping:
        if (not self.metrics) == (self.aggregate is None):
            raise ValueError("give either 'metrics' (a row per store and period) or "
                             "'aggregate' (a row per event, counted per store and period)")
        if self.aggregate is not None:
            self._check_aggregate()
        seen: dict[str, str] = {}
        for column, spec in self.metrics.items():
            if spec.metric in seen:
                raise ValueError(f"metric '{spec.metric}' is mapped from two columns: "
                                 f"'{seen[spec.metric]}' and '{column}'")
            seen[spec.metric] = column
        return self

    def _check_aggregate(self) -> None:
        """A group is a store, platform and period: what varies within one cannot be a
        column, and its days must be days somewhere."""
        if self.operator is not None and self.operator.column is not None:
            raise ValueError("an aggregate mapping takes no operator column (the row's agent "
                             "is not the store's operator); give a constant or --operator")
        varying = [k for k, spec in self.segment.items() if spec.column is not None]
        if varying:
            raise ValueError(f"an aggregate mapping takes constant segments only; "
                             f"'segment.{varying[0]}' is a column")
        if self.period is not None and self.period.column is not None and (
                self.period.timezone is None):
            raise ValueError("an aggregate mapping reads its period from timestamps: state "
                             "their zone, period.timezone (+08:00, Asia/Shanghai, UTC)")

    def required_columns(self, present: Collection[str]) -> dict[str, str]:
        """What each column the file must have is for: identity and segment columns, rows to
        skip, and the target column of every metric column ``present`` in the file."""
        specs: dict[str, FieldSpec | PeriodSpec | None] = {
            "platform": self.platform, "store": self.store, "operator": self.operator,
            "period": self.period, **{f"segment.{k}": v for k, v in self.segment.items()}}
        found = {name: spec.column for name, spec in specs.items()
                 if spec is not None and spec.column is not None}
        found.update({f"skip_rows.{column}": column for column in self.skip_rows})
        for column, spec in self.metrics.items():
            if column in present and spec.target is not None and spec.target.column is not None:
                found[f"targets.{spec.metric}"] = spec.target.column
        if self.aggregate is not None:
            found.update(self.aggregate.columns())
        return found


# -- loading ---------------------------------------------------------------------------------

def load_mapping(path: Path) -> ColumnMapping:
    """One mapping file; every error names the file and the line."""
    data, lines = yamlfile.load(path)
    if not isinstance(data, dict):
        raise ConfigError("a mapping file is a YAML mapping (platform, store, period, metrics)",
                          file=str(path), line=1)
    data.setdefault("name", path.stem.lower())
    try:
        return ColumnMapping.model_validate(data)
    except ValidationError as exc:
        raise yamlfile.config_error(exc, str(path), lines) from None


def load_mappings(folder: Path, *, reserved: Collection[str] = ()) -> dict[str, ColumnMapping]:
    """Every ``*.yaml``/``*.yml`` in ``folder`` by name; a name may be used once."""
    found: dict[str, tuple[ColumnMapping, Path]] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        mapping = load_mapping(path)
        if mapping.name in reserved:
            raise ConfigError(f"'{mapping.name}' is a built-in source (or the feed of canonical "
                              "snapshots); give the mapping another name", file=str(path),
                              key="name")
        if mapping.name in found:
            raise ConfigError(f"mapping name '{mapping.name}' is also used by "
                              f"{found[mapping.name][1]}", file=str(path), key="name")
        found[mapping.name] = (mapping, path)
    return {name: mapping for name, (mapping, _) in found.items()}


# -- cells -----------------------------------------------------------------------------------

def is_blank(cell: Cell) -> bool:
    if isinstance(cell, str):
        return is_missing(cell) or cell.strip().lower() in _EXTRA_MISSING
    return cell is None


def as_text(cell: Cell) -> str | None:
    """A cell as text: ``12345.0`` from a numeric store-id column is ``"12345"``."""
    if is_blank(cell):
        return None
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, datetime | date):
        return cell.isoformat()
    return str(cell).strip()


def to_number(cell: Cell | float, unit: Unit) -> float:
    """A metric cell in ``unit`` to the canonical number; raises RowError on a bad cell."""
    if isinstance(cell, bool | datetime | date) or cell is None:
        raise RowError(None, f"must be a number, got {cell!r}")
    clean = _clean(cell, unit) if isinstance(cell, str) else cell
    try:
        if unit is Unit.PERCENT:
            text = clean.removesuffix("%") if isinstance(clean, str) else clean
            return tidy(parse_number(text, SHEET_SEPARATORS) / 100)
        value = parse_number(clean, SHEET_SEPARATORS)
    except AmbiguousNumber as exc:
        raise RowError(None, str(exc)) from None
    except ValueError:
        raise RowError(None, f"must be a number, got {cell!r}") from None
    if unit is Unit.COUNT and (value < 0 or not value.is_integer()):
        raise RowError(None, f"a count must be a whole number >= 0, got {cell!r}")
    return value


def _clean(text: str, unit: Unit) -> str:
    """Currency signs and codes off; digit groups stay, for ``read_decimal`` to judge."""
    text = to_ascii(text).strip()
    if unit is Unit.CURRENCY:
        negative = text.startswith("-") or (text.startswith("(") and text.endswith(")"))
        text = text.strip("()").removeprefix("-").strip()
        text = _CURRENCY_SUFFIX.sub("", _CURRENCY_PREFIX.sub("", text))
        text = ("-" if negative else "") + text
    return text


def to_period(cell: Cell, spec: PeriodSpec) -> str:
    """A period cell to canonical text, by the canonical forms first, then ``formats``."""
    if isinstance(cell, datetime | date):
        day = cell.date() if isinstance(cell, datetime) else cell
        return _as_kind(Period.parse(day.isoformat()), spec)
    text = as_text(cell)
    if text is None:
        raise RowError(None, "is required (a period such as 2026-10 or 2026/10/01)")
    parts = _RANGE.split(text)
    if len(parts) == 2:
        start, end = (_read_period(part, spec) for part in parts)
        if start.kind is not PeriodKind.DAY or end.kind is not PeriodKind.DAY or start > end:
            raise RowError(None, f"{text!r} is not a range of two days, first to last")
        return _as_kind(Period.parse(period_for_range(start.start, end.end)), spec)
    return _as_kind(_read_period(text, spec), spec)


def timestamp_period(cell: Cell, spec: PeriodSpec) -> str:
    """The day a timestamp falls on in the mapping's zone (or its ``as`` period)."""
    try:
        moment, _ = read_timestamp(cell, spec.formats, spec.zone or UTC)
    except ValueError as exc:
        raise RowError(None, str(exc)) from None
    return _as_kind(_day(moment.date()), spec)


def _read_period(text: str, spec: PeriodSpec) -> Period:
    try:
        return Period.parse(text)
    except ValueError:
        pass
    for fmt in spec.formats:
        try:
            day = datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
        return _reduce(day, _kind_of(fmt))
    raise RowError(None, f"{text!r} is not a period; expected 2026-10, 2026-10-01 or one of "
                         f"the mapping's formats ({', '.join(spec.formats)})")


@functools.lru_cache(maxsize=4096)
def _day(day: date) -> Period:
    """A day's period: an export's tickets fall on a few days, read once each."""
    return _reduce(day, PeriodKind.DAY)


def _kind_of(fmt: str) -> PeriodKind:
    if "%d" in fmt or "%j" in fmt:
        return PeriodKind.DAY
    if "%m" in fmt or "%b" in fmt or "%B" in fmt:
        return PeriodKind.MONTH
    return PeriodKind.YEAR


def _reduce(day: date, kind: PeriodKind) -> Period:
    text = {PeriodKind.DAY: day.isoformat(), PeriodKind.WEEK: Period.week_of(day).text,
            PeriodKind.MONTH: f"{day.year:04d}-{day.month:02d}",
            PeriodKind.QUARTER: f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}",
            PeriodKind.YEAR: f"{day.year:04d}"}[kind]
    return Period.parse(text)


def _as_kind(period: Period, spec: PeriodSpec) -> str:
    """``as: month`` coarsens a day to its month; it never invents a finer period."""
    if spec.as_ is None or period.kind is spec.as_:
        return period.text
    if period.kind is PeriodKind.DAY:
        return _reduce(period.start, spec.as_).text
    raise RowError(None, f"{period.text} is a {period.kind.value}; the mapping reads every "
                         f"period as a {spec.as_.value}")


# -- rows to records -------------------------------------------------------------------------

class TabularSource:
    """One mapping applied to one file: a record or a rejection per data row."""

    def __init__(self, mapping: ColumnMapping, *, clock: Clock | None = None) -> None:
        self.mapping = mapping
        self.name = mapping.name
        self._clock: Clock = clock or (lambda: datetime.now(UTC))

    def describe(self, content: bytes) -> str:
        """The file as text for the rejected log (a workbook is named, not dumped)."""
        return sheet_text(content, self.mapping.encoding)

    @property
    def needs_store(self) -> bool:
        """Without a store column the caller names the store (flag, query, folder)."""
        return self.mapping.store is None

    def records(self, content: bytes, *, store: str | None = None, operator: str | None = None,
                period: str | None = None) -> list[RawRecord | Rejection]:
        """Raises InputError for a problem with the whole file (header, encoding)."""
        if period is not None:
            try:
                Period.parse(period)
            except ValueError as exc:
                raise InputError(str(exc), location=self.name, field="period") from None
        if self.needs_store and not store:
            raise InputError("the mapping has no store column: name the store (--store, "
                             "?store=, or the drop folder <source>/<store>/)",
                             location=self.name, field="store")
        if self.mapping.period is None and period is None:
            raise InputError("the mapping has no period column: pass the period",
                             location=self.name, field="period")
        rows = self._data_rows(content)
        header = next(rows)
        if header.problem is not None:
            raise InputError(f"the header (row {header.number}) {header.problem}",
                             location=self.name)
        # A CSV row has as many cells as its header; a workbook's rows may stop short.
        width = None if is_workbook(content) else len(header.cells)
        columns = self._columns(header)
        observed = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        defaults = {"store": store, "operator": operator, "period": period,
                    "observed_at": observed}
        names = _names(header)
        if self.mapping.aggregate is not None:
            return self._aggregated(rows, names, columns, defaults, width)
        out: list[RawRecord | Rejection] = []
        first_row: dict[str, int] = {}
        for row in rows:
            if row.problem is None and (row.is_blank() or self._skipped(row, columns)):
                continue
            raw = _raw(names, row)
            location = f"row {row.number}"
            if (refused := self._unreadable(row, names, width, raw)) is not None:
                out.append(refused)
                continue
            try:
                record, origins = self._record(row, columns, defaults)
            except RowError as exc:
                out.append(Rejection(self.name, location, exc.column, str(exc), raw))
                continue
            verdict = validate(RawRecord(location, raw, record), self.name)
            if isinstance(verdict, Rejection):
                column = origins.get(verdict.field or "")
                message = f"column '{column}': {verdict.error}" if column else verdict.error
                out.append(Rejection(self.name, location, column or verdict.field, message, raw))
                continue
            if verdict.key in first_row:
                out.append(Rejection(self.name, location, origins.get("store", "store"),
                                     f"same store, platform and period as row "
                                     f"{first_row[verdict.key]} ({verdict.key})", raw))
                continue
            first_row[verdict.key] = row.number
            out.append(RawRecord(location, raw, record, self.name))
        return out

    def _aggregated(self, rows: Iterator[Row], names: list[str], columns: Mapping[str, int],
                    defaults: Mapping[str, str | None], width: int | None
                    ) -> list[RawRecord | Rejection]:
        """One record per store, platform and period of the rows; a bad row is rejected
        alone and counts for nothing."""
        spec = self.mapping.aggregate
        assert spec is not None
        period = self.mapping.period
        tally = Tally(spec, period.formats if period else DEFAULT_FORMATS,
                      (period.zone if period else None) or UTC)
        out: list[RawRecord | Rejection] = []
        for row in rows:
            if row.problem is None and (row.is_blank() or self._skipped(row, columns)):
                continue
            raw = _raw(names, row)
            if (refused := self._unreadable(row, names, width, raw)) is not None:
                out.append(refused)
                continue

            def read(column: str, row: Row = row) -> Cell:
                return _cell(row, columns, column)

            def text(column: str, row: Row = row) -> str | None:
                return as_text(_cell(row, columns, column))

            try:
                record, _ = self._record(row, columns, defaults)
                tally.add(record, row.number, raw, read, text)
            except RowError as exc:
                out.append(Rejection(self.name, f"row {row.number}", exc.column, str(exc), raw))
        for location, record, raw in tally.records():
            verdict = validate(RawRecord(location, raw, record), self.name)
            if isinstance(verdict, Rejection):
                out.append(Rejection(self.name, location, verdict.field, verdict.error, raw))
            else:
                out.append(RawRecord(location, raw, record, self.name))
        return out

    def _unreadable(self, row: Row, names: list[str], width: int | None, raw: str
                    ) -> Rejection | None:
        """A row not read as written (sheets.Row.problem), or a CSV row whose cells do not
        line up with the header: a missing or extra cell would shift every value after it
        into the wrong column."""
        location = f"row {row.number}"
        if row.problem is not None:
            column = (names[row.column] if row.column is not None and row.column < len(names)
                      else None)
            return Rejection(self.name, location, column, row.problem, raw)
        if width is not None and len(row.cells) != width:
            return Rejection(self.name, location, None,
                             f"row {row.number} has {len(row.cells)} cells, the header "
                             f"{width}", raw)
        return None

    def _data_rows(self, content: bytes) -> Iterator[Row]:
        mapping = self.mapping
        rows = read_rows(content, source=self.name, encoding=mapping.encoding,
                         delimiter=mapping.delimiter, sheet=mapping.sheet,
                         header_row=mapping.header_row)
        for row in rows:
            if row.number == mapping.header_row:
                yield row
                yield from rows
                return
        raise InputError(f"the file has no row {mapping.header_row} (header_row of the mapping)",
                         location=self.name)

    def _columns(self, header: Row) -> dict[str, int]:
        """Header -> position; a column the mapping reads must be there, and only once."""
        positions: dict[str, list[int]] = {}
        for index, cell in enumerate(header.cells):
            text = as_text(cell)
            if text is not None:
                positions.setdefault(text, []).append(index)
        metric_columns = [c for c in self.mapping.metrics if c in positions]
        if not metric_columns and self.mapping.aggregate is None:
            raise InputError(f"the header (row {header.number}) has none of the mapping's metric "
                             f"columns ({', '.join(self.mapping.metrics)}); if the header is "
                             "further down, set header_row in the mapping", location=self.name)
        needed = self.mapping.required_columns(metric_columns)
        for field, column in needed.items():
            if column not in positions:
                raise InputError(f"the header (row {header.number}) has no column '{column}' "
                                 f"for {field}", location=self.name, field=column)
        for column in [*needed.values(), *metric_columns]:
            if len(positions[column]) > 1:
                raise InputError(f"column '{column}' appears {len(positions[column])} times in "
                                 "the header; rename one", location=self.name, field=column)
        return {column: found[0] for column, found in positions.items()}

    def _skipped(self, row: Row, columns: Mapping[str, int]) -> bool:
        return any(as_text(_cell(row, columns, column)) in values
                   for column, values in self.mapping.skip_rows.items())

    def _record(self, row: Row, columns: Mapping[str, int], defaults: Mapping[str, str | None]
                ) -> tuple[dict[str, Any], dict[str, str]]:
        """The canonical dict and, per canonical field, the column it was read from."""
        mapping = self.mapping
        origins: dict[str, str] = {}

        def text(field: str, spec: FieldSpec | None, fallback: str | None = None) -> str | None:
            if spec is None:
                return fallback
            if spec.column is None:
                return spec.value
            origins[field] = spec.column
            value = as_text(_cell(row, columns, spec.column))
            if value is not None and spec.values:
                if value not in spec.values:
                    raise RowError(spec.column, f"{value!r} is not in the mapping's values for "
                                   f"{field} ({', '.join(spec.values)})")
                value = spec.values[value]
            return value if value is not None else fallback

        record: dict[str, Any] = {
            "store": text("store", mapping.store, defaults["store"]),
            "platform": (text("platform", mapping.platform) or "").lower() or None,
            "period": defaults["period"] or self._period(row, columns, origins),
            "operator": text("operator", mapping.operator, defaults["operator"]),
            "observed_at": defaults["observed_at"],
            "segment": {}, "metrics": {}, "targets": {},
        }
        for field in ("store", "platform"):
            if not record[field]:
                raise RowError(origins.get(field), f"{field} is required; the cell is empty")
        for key, spec in mapping.segment.items():
            value = text(f"segment.{key}", spec)
            if value is not None:
                record["segment"][key] = (value.lower() == "true"
                                          if value.lower() in ("true", "false") else value)
        for column, metric in mapping.metrics.items():
            self._metric(record, origins, row, columns, column, metric)
        return record, origins

    def _period(self, row: Row, columns: Mapping[str, int], origins: dict[str, str]) -> str:
        spec = self.mapping.period
        assert spec is not None  # records() refuses a mapping without period and no override
        if spec.value is not None:
            return spec.value
        assert spec.column is not None
        origins["period"] = spec.column
        try:
            if spec.timezone is not None:
                return timestamp_period(_cell(row, columns, spec.column), spec)
            return to_period(_cell(row, columns, spec.column), spec)
        except RowError as exc:
            raise RowError(spec.column, str(exc)) from None

    def _metric(self, record: dict[str, Any], origins: dict[str, str], row: Row,
                columns: Mapping[str, int], column: str, spec: MetricSpec) -> None:
        """An empty cell (``""``, ``-``, ``N/A``) is no data: no metric, no target."""
        if column not in columns:
            return
        cell = _cell(row, columns, column)
        if is_nan(cell):
            raise RowError(column, f"is not a number ({spec.unit.value} column): {cell!r}")
        if is_blank(cell):
            return
        record["metrics"][spec.metric] = _number(cell, spec.unit, column)
        origins[f"metrics.{spec.metric}"] = column
        target = spec.target
        if target is None:
            return
        if target.column is not None:
            raw_target: Cell | float = _cell(row, columns, target.column)
            if is_nan(raw_target):
                raise RowError(target.column, f"is not a number ({spec.unit.value} column): "
                                              f"{raw_target!r}")
            if is_blank(raw_target):
                return
            origins[f"targets.{spec.metric}"] = target.column
        else:
            assert target.value is not None
            raw_target = target.value
        value = _number(raw_target, spec.unit, target.column)
        record["targets"][spec.metric] = (
            value if target.comparator is None
            else {"value": value, "comparator": target.comparator.value})


def _cell(row: Row, columns: Mapping[str, int], column: str) -> Cell:
    index = columns[column]
    return row.cells[index] if index < len(row.cells) else None


def _number(cell: Cell | float, unit: Unit, column: str | None) -> float:
    try:
        return to_number(cell, unit)
    except RowError as exc:
        raise RowError(column, f"{exc} ({unit.value} column)") from None


def _names(header: Row) -> list[str]:
    """Each column's name in the raw text: its header, else its place."""
    return [as_text(cell) or f"column {index + 1}" for index, cell in enumerate(header.cells)]


def _raw(names: list[str], row: Row) -> str:
    """Every cell under its header (unmapped ones too), so nothing sent is lost."""
    if len(row.cells) > len(names):
        names = [*names, *(f"column {i + 1}" for i in range(len(names), len(row.cells)))]
    cells = {name: (cell.isoformat() if isinstance(cell, datetime | date) else cell)
             for name, cell in zip(names, row.cells, strict=False)}
    return json.dumps(cells, ensure_ascii=False)
