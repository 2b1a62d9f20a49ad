"""The canonical snapshot: the public input contract of kpi-watch.

A snapshot is one store's (and optionally one operator's) metrics for one
period. It is validated once, here, into a frozen model; everything downstream
trusts it. See ``docs/snapshot-format.md`` for the contract.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher import derive, indicators
from watcher.errors import InputError
from watcher.indicators import DeclaredMetric, Unit
from watcher.limits import (
    MAX_KEY_LENGTH,
    MAX_METRICS,
    MAX_SEGMENT_KEYS,
    MAX_STRING_LENGTH,
    MAX_TARGETS,
    METRIC_MAX_VALUE,
)
from watcher.numbers import SNAPSHOT_SEPARATORS, read_decimal, to_ascii
from watcher.period import Period

SEGMENT_KEYS = (
    "stage", "product_type", "category", "special_category", "fulfillment", "region",
    "price_band", "category_type", "level",
)


class Comparator(StrEnum):
    """How a platform states its own target: the value must be ``<`` the target, etc."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="


def parse_number(value: Any, separators: str = SNAPSHOT_SEPARATORS) -> float:
    """A number, a numeric string, or a percent string (``"3.5%"`` is 0.035).

    A string is read by ``watcher.numbers``: what could be read two ways (``"3,5%"``)
    is refused, not guessed.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            raise ValueError("is too large a number") from None
    elif isinstance(value, str):
        text = to_ascii(value).strip()
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            number = read_decimal(text, separators) * scale
        except ValueError as exc:  # name what was sent, percent sign and all
            raise type(exc)(str(exc).replace(repr(text), repr(value), 1)) from None
        if scale != 1.0:
            number = round(number, 12)
    else:
        raise ValueError(f"must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


Number = Annotated[float, BeforeValidator(parse_number)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class Target(BaseModel):
    """A target value; ``comparator`` is set when the platform states how to compare."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: Number
    comparator: Comparator | None = None

    def breached_by(self, metric_id: str, value: float) -> bool:
        if self.comparator is None:
            indicator = indicators.get(metric_id)
            return indicator is not None and indicator.is_worse(value, self.value)
        ok = {
            Comparator.LT: value < self.value, Comparator.LE: value <= self.value,
            Comparator.GT: value > self.value, Comparator.GE: value >= self.value,
            Comparator.EQ: value == self.value,
        }[self.comparator]
        return not ok


def _target(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    return {"value": value}


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", arbitrary_types_allowed=True)

    store: Name
    platform: Name
    period: Period
    operator: Name | None = None
    observed_at: datetime | None = None
    segment: dict[str, str | bool | float] = Field(default_factory=dict)
    metrics: dict[str, float]
    targets: dict[str, Annotated[Target, BeforeValidator(_target)]] = Field(default_factory=dict)

    @field_validator("store", "platform", "operator", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Period:
        if isinstance(value, Period):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"must be a string such as \"2026-10\", got {type(value).__name__}")
        return Period.parse(value)

    @field_validator("observed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("segment", mode="before")
    @classmethod
    def _segment(cls, value: Any) -> Any:
        _check_count("segment", value, MAX_SEGMENT_KEYS, "MAX_SEGMENT_KEYS", "segment keys")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_length(f"segment.{key}", key, item)
            return {str(k): (v.strip().lower() if isinstance(v, str) else v)
                    for k, v in value.items() if v is not None}
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, value: Any, info: ValidationInfo) -> Any:
        # One loop over the values rather than a validator per value: this is the
        # hottest validation in a batch (bench/README.md).
        if not isinstance(value, dict):
            return value
        if not value:
            raise ValueError("needs at least one metric")
        _check_count("metrics", value, MAX_METRICS, "MAX_METRICS", "metrics")
        metrics: dict[str, float] = {}
        for key, raw in value.items():
            metric_id = str(key)
            if len(metric_id) > MAX_KEY_LENGTH:
                _check_length(f"metrics.{metric_id}", metric_id, raw)
            kind = type(raw)
            if kind is float and math.isfinite(raw):
                number = raw
            elif kind is int and -_EXACT < raw < _EXACT:
                number = float(raw)
            else:
                number = _number(f"metrics.{metric_id}", raw)
            low, high = _limits(metric_id, declared := _declared(info))
            if number < low or number > high:
                _check_range(f"metrics.{metric_id}", metric_id, number, declared)
            metrics[metric_id] = number
        return metrics

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        _check_count("targets", value, MAX_TARGETS, "MAX_TARGETS", "targets")
        if isinstance(value, dict):
            for key in value:
                _check_length(f"targets.{key}", key, None)
        return value

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Snapshot:
        declared = _declared(info)
        for metric_id, target in self.targets.items():
            low, high = _limits(metric_id, declared)
            if target.value < low or target.value > high:
                _check_range(f"targets.{metric_id}", metric_id, target.value, declared)
        try:
            metrics = derive.completed(self.metrics, self.period.kind)
        except InputError as exc:
            raise FieldRangeError(exc.field or "metrics", exc.reason) from None
        if metrics is not self.metrics:
            # Still being built: derived rates join before anyone sees the snapshot.
            object.__setattr__(self, "metrics", metrics)
        return self

    @property
    def key(self) -> str:
        """Identity of a snapshot: the same key again is a restatement."""
        return f"{self.platform}|{self.store}|{self.period.text}"

    def content_hash(self) -> str:
        """Hash of what rules can see; an identical restatement has the same hash."""
        body = orjson.dumps(
            [self.operator, self.segment, self.metrics,
             {k: [t.value, t.comparator] for k, t in self.targets.items()}],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.blake2b(body, digest_size=16).hexdigest()

    def to_canonical(self) -> dict[str, Any]:
        """The snapshot as canonical JSON (what the API returns and the store keeps)."""
        targets: dict[str, Any] = {
            k: (t.value if t.comparator is None else {"value": t.value, "comparator": t.comparator})
            for k, t in self.targets.items()
        }
        return {
            "store": self.store, "platform": self.platform, "period": self.period.text,
            "operator": self.operator,
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
            "segment": dict(self.segment), "metrics": dict(self.metrics), "targets": targets,
        }


class FieldRangeError(ValueError):
    """A value out of its indicator's range; knows the dotted field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _check_count(field: str, value: Any, limit: int, name: str, what: str) -> None:
    """A snapshot's size is bounded so that it always fits the rule engine's fact
    (watcher/limits.py explains the sum)."""
    if isinstance(value, dict) and len(value) > limit:
        raise FieldRangeError(field, f"has {len(value)} {what}; the limit is {limit} ({name})")


def _check_length(field: str, key: Any, value: Any) -> None:
    """A metric id or segment key past MAX_KEY_LENGTH, or a segment text past
    MAX_STRING_LENGTH: names and texts the store and the rule engine keep."""
    if isinstance(key, str) and len(key) > MAX_KEY_LENGTH:
        raise FieldRangeError(field[:field.index(".") + 41] + "...",
                              f"a field name of {len(key)} characters; the limit is "
                              f"{MAX_KEY_LENGTH} (MAX_KEY_LENGTH)")
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        raise FieldRangeError(field, f"a text of {len(value)} characters; the limit is "
                                     f"{MAX_STRING_LENGTH} (MAX_STRING_LENGTH)")


def _number(field: str, value: Any) -> float:
    try:
        return parse_number(value)
    except ValueError as exc:
        raise FieldRangeError(field, str(exc)) from None


_EXACT = 2**53  # integers a float holds exactly


Declared = Mapping[str, DeclaredMetric]
_NONE_DECLARED: Declared = {}


def _declared(info: ValidationInfo) -> Declared:
    """Metrics the rule pack in force declares, passed in as validation context
    (``{"metrics": ...}``, ``watcher.validation.validate``)."""
    context = info.context
    declared = context.get("metrics") if isinstance(context, dict) else None
    return declared or _NONE_DECLARED


def _limits(metric_id: str, declared: Declared) -> tuple[float, float]:
    spec = declared.get(metric_id)
    if spec is None:
        return _registry_limits(metric_id)
    return _bounds(spec.minimum, spec.ceiling)


@functools.cache
def _registry_limits(metric_id: str) -> tuple[float, float]:
    """Valid range of a metric, cached: it is asked for every value of every snapshot."""
    indicator = indicators.get(metric_id)
    if indicator is None:
        return -METRIC_MAX_VALUE, METRIC_MAX_VALUE
    return _bounds(indicator.minimum, indicator.ceiling)


def _bounds(low: float | None, high: float | None) -> tuple[float, float]:
    """An open low end is -METRIC_MAX_VALUE: no metric is unbounded."""
    return (-METRIC_MAX_VALUE if low is None else low), (METRIC_MAX_VALUE if high is None
                                                         else high)


def _check_range(field: str, metric_id: str, number: float, declared: Declared) -> None:
    indicator: indicators.Indicator | DeclaredMetric | None = (
        indicators.get(metric_id) or declared.get(metric_id))
    if indicator is None:
        raise FieldRangeError(field, f"must be within [{-METRIC_MAX_VALUE:g}, "
                                     f"{METRIC_MAX_VALUE:g}] (METRIC_MAX_VALUE), got {number:g}")
    low, high = _bounds(indicator.minimum, indicator.ceiling)
    if indicator.unit is Unit.COUNT and number < 0:
        raise FieldRangeError(field, f"a count cannot be negative, got {number:g}")
    if indicator.unit is Unit.FRACTION and high is not None and number > high:
        raise FieldRangeError(
            field, f"a rate is a fraction in [{low:g}, {high:g}], got {number:g} "
            f"(write 3.5 % as 0.035 or \"3.5%\")")
    if (low is not None and number < low) or (high is not None and number > high):
        raise FieldRangeError(field, f"must be within [{low:g}, {high:g}], got {number:g}")
