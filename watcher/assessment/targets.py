"""The targets file: per-store and per-operator targets that the data does not carry.

Managers set GMV and margin goals once a month or a quarter, in a spreadsheet
or a YAML file; the systems that export metrics rarely know them. This file
fills the gap. A target sent with a snapshot always wins (the data knows best);
then a store's entry beats its operator's (the narrower subject); then an
exact period beats a year default (``2026-*``), which beats any period
(``*`` or no ``period``). An operator entry is a default for each of the
operator's stores, never a total to be shared out: targets are per snapshot.

An entry may also name a ``segment`` (``{product_type: non_standard}``): it then
applies only to snapshots of that segment, and beats the same subject's entries
that name fewer segment keys, whatever their period. The reference sets the
conversion target per product type this way. An entry with a segment and no
subject applies to every store of the segment, after store and operator entries.

Errors name the file, line and key, like rule files, because users edit it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter, ValidationError

from watcher import indicators, yamlfile
from watcher.errors import ConfigError
from watcher.period import PERIOD_FORMS, Period
from watcher.rules.facts import segment_value
from watcher.snapshot import Snapshot, Target

SubjectKind = Literal["store", "operator", "all"]
ANY_PERIOD = "*"
EVERY_STORE = "*"
_YEAR_DEFAULT = re.compile(r"^(\d{4})-\*$")
_ENTRY_KEYS = ("store", "operator", "period", "segment")
_SEGMENT_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
# A subject's rank in the lookup: the narrower wins.
_SUBJECT_RANK: dict[str, int] = {"store": 2, "operator": 1, "all": 0}
# Segment values the reference enumerates: anything else is a typo that would never match.
KNOWN_SEGMENT_VALUES: dict[str, tuple[str, ...]] = {"product_type": ("standard", "non_standard")}
_TARGET = TypeAdapter(Target)
PERIOD_HELP = (f"{PERIOD_FORMS} for that exact period, YYYY-* for every period of a year, "
               "or \"*\" (quoted) for any period")


class TargetEntry(BaseModel):
    """One line of the file: a subject, a period pattern and the targets it sets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject_kind: SubjectKind
    subject: str
    period: str  # an exact period's text, "YYYY-*" or "*"
    targets: dict[str, Target]
    segment: dict[str, str] = {}  # normalised as facts spell segments: the entry's scope
    line: int | None = None

    def in_segment(self, segment: dict[str, str]) -> bool:
        return all(segment.get(key) == value for key, value in self.segment.items())

    def specificity(self, period: Period) -> int | None:
        """2 for the exact period, 1 for its year's default, 0 for any period; None: no match."""
        if self.period == ANY_PERIOD:
            return 0
        year = _YEAR_DEFAULT.match(self.period)
        if year:
            return 1 if period.start.year == int(year.group(1)) == period.end.year else None
        return 2 if self.period == period.text else None


class TargetBook(BaseModel):
    """Every entry of one targets file; answers "which target applies here"."""

    model_config = ConfigDict(frozen=True)

    entries: tuple[TargetEntry, ...] = ()
    source: str | None = None
    _by_subject: dict[tuple[str, str], list[TargetEntry]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        for entry in self.entries:
            self._by_subject.setdefault((entry.subject_kind, entry.subject), []).append(entry)

    def lookup(self, store: str, operator: str | None, period: Period, *,
               segment: Mapping[str, str | bool | float] | None = None,
               exact_only: bool = False) -> dict[str, Target]:
        """The file's target per metric for ``store`` (run by ``operator``, of ``segment``)
        in ``period``: the narrower subject, then more segment keys, then the exacter period."""
        if not self.entries:
            return {}  # no file: the common case on the ingestion path (monthly cards)
        best: dict[str, tuple[tuple[int, int, int], Target]] = {}
        normalised = {k: segment_value(v) for k, v in (segment or {}).items()}
        subjects = [("store", store), *([("operator", operator)] if operator else []),
                    ("all", EVERY_STORE)]
        for key in subjects:
            for entry in self._by_subject.get(key, ()):
                specificity = entry.specificity(period)
                if specificity is None or (exact_only and specificity < 2) \
                        or not entry.in_segment(normalised):
                    continue
                rank = (_SUBJECT_RANK[key[0]], len(entry.segment), specificity)
                for metric, target in entry.targets.items():
                    if metric not in best or rank > best[metric][0]:
                        best[metric] = (rank, target)
        return {metric: target for metric, (_rank, target) in best.items()}

    def fill(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with the file's targets added where it sent none of its own."""
        if not self.entries:
            return snapshot
        found = self.lookup(snapshot.store, snapshot.operator, snapshot.period,
                            segment=snapshot.segment)
        missing = {m: t for m, t in found.items() if m not in snapshot.targets}
        if not missing:
            return snapshot
        return snapshot.model_copy(update={"targets": {**snapshot.targets, **missing}})


def load_optional(path: Path | None) -> TargetBook:
    """No file configured is an empty book: the snapshots' own targets only."""
    return TargetBook() if path is None else load_targets(path)


def load_targets(path: Path) -> TargetBook:
    data, lines = yamlfile.load(path)
    return parse_targets(data, lines, str(path))


def parse_targets(data: Any, lines: yamlfile.Lines, name: str) -> TargetBook:
    if data is None:
        return TargetBook(source=name)
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise ConfigError("a targets file is a mapping with a 'targets:' list", file=name,
                          line=yamlfile.line_of(lines, ()))
    unknown = sorted(set(data) - {"targets", "description"})
    if unknown:
        raise ConfigError("is not a known key (expected targets, description)", file=name,
                          key=unknown[0], line=yamlfile.line_of(lines, (unknown[0],)))
    entries: list[TargetEntry] = []
    seen: dict[tuple[str, str, str, str, str], int | None] = {}
    for index, item in enumerate(data["targets"]):
        entry = _entry(item, ("targets", index), lines, name)
        scope = ", ".join(f"{k}={v}" for k, v in sorted(entry.segment.items()))
        for metric in entry.targets:
            key = (entry.subject_kind, entry.subject, entry.period, scope, metric)
            if key in seen:
                where = f", segment {scope}" if scope else ""
                raise ConfigError(
                    f"{entry.subject_kind} '{entry.subject}', period '{entry.period}'{where} "
                    f"already has a {metric} target on line {seen[key]}",
                    file=name, key=f"targets.{index}.{metric}",
                    line=yamlfile.line_of(lines, ("targets", index, metric)))
            seen[key] = entry.line
        entries.append(entry)
    return TargetBook(entries=tuple(entries), source=name)


def _entry(item: Any, at: tuple[str | int, ...], lines: yamlfile.Lines,
           name: str) -> TargetEntry:
    def fail(message: str, key: str | None = None) -> ConfigError:
        path = (*at, key) if key else at
        return ConfigError(message, file=name, key=".".join(str(p) for p in path),
                           line=yamlfile.line_of(lines, path))

    if not isinstance(item, dict):
        raise fail("an entry is a mapping such as {store: amz-us-01, period: 2026-10, "
                   "gmv: 150000}")
    given = [k for k in ("store", "operator") if k in item]
    segment = _segment(item.get("segment"), fail)
    if len(given) > 1 or (not given and not segment):
        raise fail("an entry names exactly one 'store' or one 'operator' (or, for every "
                   "store of a segment, only a 'segment')")
    kind: SubjectKind = ("all" if not given else "store" if given[0] == "store"
                         else "operator")
    subject = item[kind] if kind != "all" else EVERY_STORE
    if not isinstance(subject, str | int) or isinstance(subject, bool) or not str(subject).strip():
        raise fail("must be a store or operator id", kind)
    period = _period(item.get("period", ANY_PERIOD))
    if period is None:
        raise fail(f"is not a period; use {PERIOD_HELP}", "period")
    targets: dict[str, Target] = {}
    for metric, value in item.items():
        if metric in _ENTRY_KEYS:
            continue
        metric = str(metric)
        if indicators.get(metric) is None:
            close = difflib.get_close_matches(metric, indicators.INDICATORS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else " (see kpi-reference.md §1)"
            raise fail(f"is not a known metric id{hint}", metric)
        try:
            target = _TARGET.validate_python(value if isinstance(value, dict) else
                                             {"value": value})
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "takes only 'value' and 'comparator'"
            raise fail(message, metric) from None
        problem = _out_of_range(metric, target.value)
        if problem:
            raise fail(problem, metric)
        targets[metric] = target
    if not targets:
        raise fail("sets no target: add a metric, e.g. gmv: 150000")
    return TargetEntry(subject_kind=kind, subject=str(subject).strip(), period=period,
                       targets=targets, segment=segment, line=yamlfile.line_of(lines, at))


def _segment(value: Any, fail: Callable[[str, str | None], ConfigError]) -> dict[str, str]:
    """``segment: {product_type: standard}``, spelled as snapshot segments are compared."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise fail("a segment is a mapping such as {product_type: standard}", "segment")
    segment: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not _SEGMENT_KEY.match(key):
            raise fail(f"{key!r} is not a segment key (e.g. product_type)", "segment")
        if not isinstance(raw, str | bool | int | float) or not str(raw).strip():
            raise fail(f"{key} needs a value (e.g. {key}: standard)", "segment")
        normalised = segment_value(raw.strip() if isinstance(raw, str) else raw)
        known = KNOWN_SEGMENT_VALUES.get(key)
        if known is not None and normalised not in known:
            close = difflib.get_close_matches(normalised.replace("-", "_"), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise fail(f"{key} is one of {', '.join(known)}, got {raw!r}{hint}", "segment")
        segment[key] = normalised
    return segment


def _period(value: Any) -> str | None:
    """The entry's period pattern; YAML reads 2026 as a number and 2026-10-01 as a date."""
    if isinstance(value, date):
        value = value.isoformat()
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text == ANY_PERIOD or _YEAR_DEFAULT.match(text):
        return text
    try:
        return Period.parse(text).text
    except ValueError:
        return None


def _out_of_range(metric: str, value: float) -> str | None:
    indicator = indicators.get(metric)
    if indicator is None:
        return None
    low, high = indicator.minimum, indicator.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        hint = " (write 3.5 % as 0.035 or \"3.5%\")" if indicator.unit is indicators.Unit.FRACTION \
            else ""
        return (f"must be within [{'-inf' if low is None else f'{low:g}'}, "
                f"{'inf' if high is None else f'{high:g}'}], got {value:g}{hint}")
    return None
