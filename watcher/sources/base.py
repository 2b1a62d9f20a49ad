"""What every platform adapter shares: the contract, the draft snapshot, the parsers.

An adapter turns one platform payload (the bytes an API or report download
returned) into canonical snapshot dicts. The platforms disagree on almost
everything: numbers arrive as strings, rates as fractions or as percent numbers,
timestamps without seconds, errors inside a 200 response. The helpers here make
those decisions once, so each adapter is only a mapping table and its quirks.

Every error an adapter raises is an ``InputError`` whose ``location`` is the
source name and whose ``field`` is the dotted path in the *platform* payload
(``performanceMetrics[0].lateShipmentRate.rate``), because that is what the
person holding the payload can look up.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from watcher.errors import InputError
from watcher.period import Period
from watcher.snapshot import Comparator, parse_number
from watcher.validation import RawRecord, Rejection, validate

Clock = Callable[[], datetime]

# Values a platform sends to mean "no data"; they are omitted, never read as zero.
_MISSING_TEXT = frozenset({"", "-", "--", "null", "none", "n/a", "nan"})

COMPARATORS: dict[str, Comparator] = {
    "<": Comparator.LT, "<=": Comparator.LE, ">": Comparator.GT, ">=": Comparator.GE,
    "==": Comparator.EQ, "=": Comparator.EQ,
}


class PayloadError(ValueError):
    """A payload problem at a platform field; the adapter adds its own name as location."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Context:
    """What the caller knows and the payload does not: whose store, which operator, when."""

    platform: str
    store: str
    operator: str | None
    period_override: str | None
    now: datetime

    @property
    def observed_at(self) -> str:
        return self.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def today(self) -> str:
        return self.now.astimezone(UTC).date().isoformat()

    def draft(self, *, period: str, store: str | None = None) -> Draft:
        return Draft(store=store or self.store, platform=self.platform,
                     period=self.period_override or period, operator=self.operator,
                     observed_at=self.observed_at)


@dataclass(slots=True)
class Draft:
    """A snapshot being assembled; remembers which platform field each value came from."""

    store: str
    platform: str
    period: str
    operator: str | None
    observed_at: str
    segment: dict[str, str | bool | float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def metric(self, metric_id: str, value: float, origin: str) -> None:
        self.metrics[metric_id] = value
        self.origins[f"metrics.{metric_id}"] = origin

    def target(self, metric_id: str, value: float, comparator: Comparator | None,
               origin: str) -> None:
        """A plain number without comparator, as the canonical form writes it."""
        self.targets[metric_id] = (value if comparator is None
                                   else {"value": value, "comparator": comparator.value})
        self.origins[f"targets.{metric_id}"] = origin

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store, "platform": self.platform, "period": self.period,
            "operator": self.operator, "observed_at": self.observed_at,
            "segment": dict(self.segment), "metrics": dict(self.metrics),
            "targets": {k: dict(v) if isinstance(v, dict) else v
                        for k, v in self.targets.items()},
        }


class Source(ABC):
    """One platform payload format; ``parse`` is the whole public contract.

    The clock is injectable because two of the four formats carry no period of
    their own (the snapshot is "as of today") and tests must not depend on the date.
    """

    name: ClassVar[str]
    platform: ClassVar[str]

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or _utc_now

    def parse(self, content: bytes, *, store: str, operator: str | None = None,
              period: str | None = None) -> list[dict[str, Any]]:
        """Canonical snapshot dicts for ``content``; ``period`` overrides the derived one."""
        if period is not None:
            try:
                Period.parse(period)
            except ValueError as exc:
                raise InputError(str(exc), location=self.name, field="period") from None
        context = Context(platform=self.platform, store=store, operator=operator,
                          period_override=period, now=self._clock())
        try:
            drafts = self.convert(load_json(content), context)
        except PayloadError as exc:
            raise InputError(exc.message, location=self.name, field=exc.field) from None
        return [self._checked(draft) for draft in drafts]

    @abstractmethod
    def convert(self, payload: Any, context: Context) -> list[Draft]:
        """The platform-specific mapping from decoded JSON to drafts."""

    def _checked(self, draft: Draft) -> dict[str, Any]:
        """Validate against the canonical model so a bad value fails here, named."""
        record = draft.to_dict()
        verdict = validate(RawRecord(self.name, json.dumps(record), record), self.name)
        if isinstance(verdict, Rejection):
            origin = draft.origins.get(verdict.field or "")
            raise InputError(f"store {draft.store}: {verdict.error}", location=self.name,
                             field=origin or verdict.field)
        return record


def load_json(content: bytes) -> Any:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(None, f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PayloadError(None, f"not valid JSON: {exc}") from None


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _MISSING_TEXT)


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(path or None, f"expected an object, got {_kind(value)}")
    return value


def array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(path, f"expected a list, got {_kind(value)}")
    return value


def optional_mapping(parent: Mapping[str, Any], keys: tuple[str, ...],
                     path: str) -> tuple[Mapping[str, Any], str] | None:
    """The first of ``keys`` present (spellings differ between schema and example)."""
    for key in keys:
        value = parent.get(key)
        if value is not None:
            where = join(path, key)
            return mapping(value, where), where
    return None


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def number(value: Any, path: str) -> float:
    """A finite number from a number or numeric string (``"1,200"``, ``"0.8"``)."""
    try:
        return parse_number(value)
    except ValueError as exc:
        raise PayloadError(path, str(exc)) from None


def count(value: Any, path: str) -> int:
    """A whole, non-negative number: counts arrive as ``3``, ``3.0`` or ``"3"``."""
    figure = number(value, path)
    if figure < 0 or not figure.is_integer():
        raise PayloadError(path, f"a count must be a whole number >= 0, got {value!r}")
    return int(figure)


def percent(value: Any, path: str) -> float:
    """A percent number (``6.1`` or ``"6.1%"``, meaning 6.1 %) as a fraction (0.061)."""
    if isinstance(value, str):
        value = value.strip().removesuffix("%")
    return tidy(number(value, path) / 100)


def tidy(value: float) -> float:
    """Drop binary noise from unit arithmetic (6.1 / 100 is 0.061, not 0.0610000000001)."""
    rounded = round(value, 12)
    return 0.0 if rounded == 0 else rounded


def ratio(numerator: float, denominator: float) -> float | None:
    """A share in [0, 1], or None when it is not one (no denominator, or above 1)."""
    if denominator <= 0 or not math.isfinite(numerator):
        return None
    share = tidy(numerator / denominator)
    return share if 0 <= share <= 1 else None


def timestamp(value: Any, path: str) -> datetime:
    """ISO-8601 instant, tolerant of Amazon's ``2026-10-28T23:59Z`` (no seconds); naive = UTC."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(path, f"expected a date or timestamp, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PayloadError(path, f"not an ISO date or timestamp: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def day(value: Any, path: str) -> date:
    return timestamp(value, path).date()


def period_for_range(start: date, end: date) -> str:
    """A whole calendar month is that month; any other range is its last day."""
    if start.day == 1 and start <= end:
        month = Period.parse(f"{start.year:04d}-{start.month:02d}")
        if month.end == end:
            return month.text
    return end.isoformat()


def comparator(value: Any, path: str, table: Mapping[str, Comparator] = COMPARATORS) -> Comparator:
    key = value.strip().upper() if isinstance(value, str) else value
    found = table.get(key) if isinstance(key, str) else None
    if found is None:
        known = ", ".join(sorted(table))
        raise PayloadError(path, f"unknown comparator {value!r}; expected one of {known}")
    return found


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
