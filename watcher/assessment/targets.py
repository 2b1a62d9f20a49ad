"""The targets file: per-store and per-operator targets that the data does not carry.

Managers set GMV and margin goals once a month or a quarter, in a spreadsheet
or a YAML file; the systems that export metrics rarely know them. This file
fills the gap. A target sent with a snapshot always wins (the data knows best);
then a store's entry beats its operator's (the narrower subject); then an
exact period beats a year default (``2026-*``), which beats any period
(``*`` or no ``period``). An operator entry is a default for each of the
operator's stores, never a total to be shared out: targets are per snapshot.

Errors name the file, line and key, like rule files, because users edit it.
"""

from __future__ import annotations

import difflib
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter, ValidationError

from watcher import indicators, yamlfile
from watcher.errors import ConfigError
from watcher.period import PERIOD_FORMS, Period
from watcher.snapshot import Snapshot, Target

SubjectKind = Literal["store", "operator"]
ANY_PERIOD = "*"
_YEAR_DEFAULT = re.compile(r"^(\d{4})-\*$")
_ENTRY_KEYS = ("store", "operator", "period")
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
    line: int | None = None

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
               exact_only: bool = False) -> dict[str, Target]:
        """The file's target per metric for ``store`` (run by ``operator``) in ``period``."""
        if not self.entries:
            return {}  # no file: the common case on the ingestion path (monthly cards)
        best: dict[str, tuple[tuple[int, int], Target]] = {}
        subjects: list[tuple[int, tuple[str, str]]] = [(1, ("store", store))]
        if operator:
            subjects.append((0, ("operator", operator)))
        for subject_rank, key in subjects:
            for entry in self._by_subject.get(key, ()):
                specificity = entry.specificity(period)
                if specificity is None or (exact_only and specificity < 2):
                    continue
                rank = (subject_rank, specificity)
                for metric, target in entry.targets.items():
                    if metric not in best or rank > best[metric][0]:
                        best[metric] = (rank, target)
        return {metric: target for metric, (_rank, target) in best.items()}

    def fill(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with the file's targets added where it sent none of its own."""
        if not self.entries:
            return snapshot
        found = self.lookup(snapshot.store, snapshot.operator, snapshot.period)
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
    seen: dict[tuple[str, str, str, str], int | None] = {}
    for index, item in enumerate(data["targets"]):
        entry = _entry(item, ("targets", index), lines, name)
        for metric in entry.targets:
            key = (entry.subject_kind, entry.subject, entry.period, metric)
            if key in seen:
                raise ConfigError(
                    f"{entry.subject_kind} '{entry.subject}', period '{entry.period}' already "
                    f"has a {metric} target on line {seen[key]}",
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
    if len(given) != 1:
        raise fail("an entry names exactly one 'store' or one 'operator'")
    kind: SubjectKind = "store" if given[0] == "store" else "operator"
    subject = item[kind]
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
                       targets=targets, line=yamlfile.line_of(lines, at))


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
