"""Frozen rule models: what a rule file says once it has been validated.

Nothing here is mutated after load; a reload builds a new ``RulePack`` with a
new version, and incidents record the version that opened them.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watcher.indicators import DeclaredMetric, Direction, Unit
from watcher.limits import (
    FOR_MAX_PERIODS,
    FOR_MAX_SECONDS,
    RULE_MAX_VARIANTS,
    RUNBOOK_LINK_MAX,
    RUNBOOK_TEXT_MAX,
)
from watcher.rules import history
from watcher.rules.expression import Condition, ExpressionError, comparisons, parse
from watcher.rules.facts import segment_value
from watcher.rules.history import HISTORY_KINDS, HistoryFields

if TYPE_CHECKING:
    from watcher.snapshot import Snapshot


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return ["info", "low", "medium", "high", "critical"].index(self.value)


class SubjectKind(StrEnum):
    STORE = "store"
    OPERATOR = "operator"


LANGUAGES = ("en", "zh-CN")
SEVERITIES = tuple(s.value for s in Severity)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Variant(_Frozen):
    """A segment-specific form of a rule; the most specific matching variant wins."""

    when: dict[str, str]
    condition: str
    resolve: str | None = Field(
        default=None, description="this variant's resolve condition (default: the rule's)")
    compiled: Condition = Field(default=None, exclude=True)  # type: ignore[assignment]
    compiled_resolve: Condition | None = Field(default=None, exclude=True)

    @field_validator("when", mode="before")
    @classmethod
    def _when(cls, value: Any) -> Any:
        if isinstance(value, dict):  # spelled as the fact spells segments: 1.0 is "1"
            return {str(k): segment_value(v) if isinstance(v, str | bool | float) else str(v)
                    for k, v in value.items()}
        return value

    @field_validator("condition")
    @classmethod
    def _syntax(cls, value: str) -> str:
        _parse_condition(value)  # fail here so the error names the 'condition' key
        return value

    @field_validator("resolve")
    @classmethod
    def _resolve_syntax(cls, value: str | None) -> str | None:
        return _optional_condition(value)

    @model_validator(mode="after")
    def _compile(self) -> Variant:
        object.__setattr__(self, "compiled", _parse_condition(self.condition))
        if self.resolve is not None:
            object.__setattr__(self, "compiled_resolve", _parse_condition(self.resolve))
        return self

    def matches(self, segment: dict[str, str]) -> bool:
        return all(segment.get(k) == v for k, v in self.when.items())


class MessageCase(_Frozen):
    """A message for the firings whose snapshot meets ``when``.

    One ``message`` cannot say "account suspended" for one store and "2 policy
    warnings" for another, nor "1 warning" and "2 warnings": the rule lists
    cases, checked in order against the snapshot that fired, and the first that
    holds gives the alert's words; ``message`` is the default. ``when`` is a
    condition in the rule language, so it can test any metric of the snapshot
    (``account_suspended > 0``), a count (``penalty_count == 1``) or a band
    (``penalty_points >= 6``). Written in YAML as ``{when: ..., en: ..., zh-CN: ...}``.
    """

    when: str
    text: dict[str, str]
    compiled: Condition = Field(default=None, exclude=True)  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, dict) and "text" not in value:
            return {"when": value.get("when"),
                    "text": {k: v for k, v in value.items() if k != "when"}}
        return value

    @field_validator("when")
    @classmethod
    def _syntax(cls, value: str) -> str:
        _parse_condition(value)  # fail here so the error names the 'when' key
        return value

    @field_validator("text")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        return _with_languages(value)

    @model_validator(mode="after")
    def _compile(self) -> MessageCase:
        object.__setattr__(self, "compiled", _parse_condition(self.when))
        return self


class Runbook(_Frozen):
    """What to do when the rule fires, in both languages, and where to read more.

    Written in YAML as ``{en: ..., zh-CN: ..., link: https://...}``. Shown on the incident
    page and in ``GET /v1/rules``, and appended to notifications after the facts (a
    service's size limit cuts it before anything else).
    """

    text: dict[str, str]
    link: str | None = Field(default=None, max_length=RUNBOOK_LINK_MAX,
                             pattern=r"^https?://[^\s\x00-\x1f]+$")

    @model_validator(mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, dict) and "text" not in value:
            return {"text": {k: v for k, v in value.items() if k != "link"},
                    **({"link": value["link"]} if "link" in value else {})}
        return value

    @field_validator("text")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, text in value.items():
            if lang not in LANGUAGES:
                raise ValueError(f"'{lang}' is not a language of the pack ({', '.join(LANGUAGES)})")
            if not text.strip() or len(text) > RUNBOOK_TEXT_MAX:
                raise ValueError(f"the {lang} text must hold 1 to {RUNBOOK_TEXT_MAX} characters "
                                 "(RUNBOOK_TEXT_MAX)")
        return _with_languages(value)

    def of(self, language: str) -> str:
        return self.text.get(language) or self.text["en"]


class Hold(_Frozen):
    """``for:``: a number of periods in a row (``3``) or a duration (``10m``, ``2h``).

    A bare number counts periods; a duration needs its unit, so that ``for: 600``
    is never taken for seconds (nothing is guessed)."""

    periods: int | None = Field(default=None, ge=1, le=FOR_MAX_PERIODS)
    seconds: float | None = Field(default=None, gt=0, le=FOR_MAX_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _spelled(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("is a number of periods (3) or a duration (10m)")
        if isinstance(value, int):
            return {"periods": value}
        if isinstance(value, str):
            text = value.strip().lower()
            if text.isdigit():
                return {"periods": int(text)}
            if not text or text[-1] not in _UNITS:
                raise ValueError(f"is a number of periods (3) or a duration with its unit "
                                 f"(45s, 10m, 2h, 1d), got {value!r}")
            try:
                return {"seconds": float(text[:-1]) * _UNITS[text[-1]]}
            except ValueError:
                raise ValueError(f"is not a duration like 10m or 2h: {value!r}") from None
        if isinstance(value, dict):
            return value
        raise ValueError(f"is a number of periods (3) or a duration (10m), got {value!r}")

    @model_validator(mode="after")
    def _one(self) -> Hold:
        if (self.periods is None) == (self.seconds is None):
            raise ValueError("is either a number of periods or a duration")
        return self

    def __str__(self) -> str:
        if self.periods is not None:
            return f"{self.periods} period(s)"
        return f"{self.seconds:g}s"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PLATFORM = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class Rule(HistoryFields, _Frozen):
    """A rule of a pack; the keys of ``kind: change`` and ``kind: trend`` are
    ``HistoryFields`` (watcher/rules/history.py)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=120)
    description: str | dict[str, str] = Field(
        description="what the rule watches: one text shown in every language, or "
                    "{en: ..., zh-CN: ...} (both, as 'message')")
    kind: Literal["threshold", "streak", "platform_target", "change", "trend"] = "threshold"
    condition: str | None = None
    resolve: str | None = Field(
        default=None, description="hysteresis: a live incident resolves only once this "
                                  "condition holds (account_health_score >= 92), not as soon "
                                  "as 'condition' stops holding")
    for_: Hold | None = Field(
        default=None, alias="for",
        description="how long 'condition' must hold before an incident opens: a number of "
                    "periods in a row (3) or a duration (10m)")
    variants: tuple[Variant, ...] = ()
    periods: tuple[Literal["day", "week", "month", "quarter", "year"], ...] = ()
    platforms: tuple[str, ...] = Field(
        default=(), description="the platforms whose snapshots the rule judges (a platform's "
                                "own line: shopee's 70 % chat response); empty: every one")
    severity: Severity
    audience: str = Field(min_length=1, max_length=50)
    subject: SubjectKind = SubjectKind.STORE
    months: int = Field(default=3, ge=2, le=24)
    severities: dict[str, Severity] = Field(
        default_factory=dict, description="platform_target: severity per metric id")
    labels: dict[str, str] = Field(default_factory=dict)
    message: dict[str, str]
    message_cases: tuple[MessageCase, ...] = Field(
        default=(), description="messages for particular snapshots, first match wins; "
                                "'message' is the default")
    renotify_when_worse: bool = Field(
        default=False, description="a live incident notifies again each time its value "
                                   "gets worse (a rise in penalty points)")
    runbook: Runbook | None = Field(
        default=None, description="what to do when it fires (en, zh-CN, optional link)")
    enabled: bool = True
    downgrades_assessment: bool = Field(
        default=False, description="a major violation: when it fires on a monthly snapshot, "
                                   "that month's assessment is missed (it counts towards a PIP)")
    compiled: Condition | None = Field(default=None, exclude=True)
    compiled_resolve: Condition | None = Field(default=None, exclude=True)

    @field_validator("condition", "resolve")
    @classmethod
    def _syntax(cls, value: str | None) -> str | None:
        return _optional_condition(value)

    @field_validator("message")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        return _with_languages(value)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict):
            for lang, text in value.items():
                if lang not in LANGUAGES:
                    raise ValueError(f"'{lang}' is not a language of the pack "
                                     f"({', '.join(LANGUAGES)})")
                if not text.strip():
                    raise ValueError(f"the {lang} text is empty")
            missing = [lang for lang in LANGUAGES if lang not in value]
            if missing:
                raise ValueError(f"needs a description in {', '.join(missing)} (or one "
                                 "string for every language)")
        return value

    @property
    def descriptions(self) -> dict[str, str]:
        """The description by language: one string stands for every language."""
        if isinstance(self.description, str):
            return dict.fromkeys(LANGUAGES, self.description)
        return dict(self.description)

    def description_of(self, language: str) -> str:
        """The description in ``language`` (English for a language the pack has not)."""
        found = self.descriptions
        return found.get(language) or found["en"]

    @field_validator("platforms", mode="before")
    @classmethod
    def _platforms(cls, value: Any) -> Any:
        """Platform names as the facts compare them: lower case, each once, never empty."""
        if not isinstance(value, list | tuple):  # a name, null, a number, a mapping
            raise ValueError("is a list of platform names: [shopee] or [amazon, shopee] "
                             "(leave the key out for every platform)")
        names = []
        for item in value:
            if not isinstance(item, str) or not _PLATFORM.match(item.strip().lower()):
                raise ValueError(f"{item!r} is not a platform name (amazon, shopee, tiktok, ...)")
            names.append(item.strip().lower())
        if not names:
            raise ValueError("names at least one platform (leave the key out for every one)")
        if len(set(names)) != len(names):
            raise ValueError("names a platform twice")
        return tuple(names)

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.kind == "threshold":
            if self.condition is None:
                raise ValueError("a threshold rule needs a 'condition'")
            object.__setattr__(self, "compiled", _parse_condition(self.condition))
            if self.resolve is not None:
                object.__setattr__(self, "compiled_resolve", _parse_condition(self.resolve))
        elif self.kind in HISTORY_KINDS:
            if self.variants:
                raise ValueError(f"a {self.kind} rule takes no 'variants'")
            if self.condition is not None:  # a further condition on the snapshot
                object.__setattr__(self, "compiled", _parse_condition(self.condition))
        elif self.condition is not None or self.variants:
            raise ValueError(f"a {self.kind} rule takes no 'condition' or 'variants' (it "
                             "compares each metric with its target)")
        elif self.resolve is not None or self.for_ is not None:
            raise ValueError(f"a {self.kind} rule takes no 'resolve' or 'for' (only a "
                             "threshold rule has a condition to hold)")
        if self.kind == "streak" and self.subject is not SubjectKind.OPERATOR:
            raise ValueError("a streak rule's subject is 'operator'")
        if self.kind == "streak" and self.platforms:
            raise ValueError("a streak rule takes no 'platforms': it counts an operator's "
                             "monthly cards, which hold the stores of every platform")
        if self.kind == "streak" and (self.message_cases or self.renotify_when_worse):
            raise ValueError("a streak rule takes no 'message_cases' or 'renotify_when_worse' "
                             "(it has no snapshot value to test)")
        history_keys = sorted(self.model_fields_set & set(HistoryFields.model_fields))
        if self.kind in HISTORY_KINDS:
            history.check(self)
        elif history_keys:
            raise ValueError(f"'{history_keys[0]}' belongs to change and trend rules")
        if len(self.variants) > RULE_MAX_VARIANTS:
            raise ValueError(f"a rule has at most {RULE_MAX_VARIANTS} variants "
                             "(limit RULE_MAX_VARIANTS)")
        seen: set[tuple[tuple[str, str], ...]] = set()
        for variant in self.variants:
            key = tuple(sorted(variant.when.items()))
            if key in seen:
                raise ValueError(f"two variants share the segment {dict(key)}")
            seen.add(key)
        return self

    def applies_to(self, snap: Snapshot) -> bool:
        """Whether the rule judges ``snap`` at all: its period kind (``periods``) and its
        platform (``platforms``). The engine's guards say the same (compiler.py); every
        judge outside the engine (recovery, history rules, cards, charts) asks this."""
        return ((not self.periods or snap.period.kind.value in self.periods)
                and self.applies_to_platform(snap.platform))

    def applies_to_platform(self, platform: str) -> bool:
        return not self.platforms or platform.lower() in self.platforms

    def resolve_condition(self, variant: Variant | None) -> Condition | None:
        """What must hold for a live incident of this rule (in ``variant``) to resolve;
        None: as soon as the firing condition stops holding."""
        if variant is not None and variant.compiled_resolve is not None:
            return variant.compiled_resolve
        return self.compiled_resolve

    def severity_for(self, metric: str) -> Severity:
        return self.severities.get(metric, self.severity)

    def metrics(self) -> set[str]:
        conditions = [c for c in [self.compiled, self.compiled_resolve,
                                  *(v.compiled for v in self.variants),
                                  *(v.compiled_resolve for v in self.variants)] if c]
        return {cmp.metric for c in conditions for cmp in comparisons(c)}


class MetricDeclaration(_Frozen):
    """An entry of a rule file's ``metrics:`` section: a metric the registry does not know,
    declared so that rules may name it (a misspelt metric is refused instead)."""

    unit: Unit
    direction: Direction
    range: tuple[float | None, float | None] = Field(
        description="[low, high] of a valid value; null for an open end")
    names: dict[Literal["en", "zh-CN"], str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> MetricDeclaration:
        low, high = self.range
        if low is not None and high is not None and low > high:
            raise ValueError(f"range [{low:g}, {high:g}] is empty")
        return self

    def declared(self, metric_id: str) -> DeclaredMetric:
        return DeclaredMetric(id=metric_id, unit=self.unit, direction=self.direction,
                              minimum=self.range[0], maximum=self.range[1],
                              name_en=self.names.get("en"), name_zh=self.names.get("zh-CN"))


class RulePack(_Frozen):
    rules: tuple[Rule, ...]
    sources: tuple[str, ...] = ()
    metrics: dict[str, DeclaredMetric] = Field(
        default_factory=dict, description="metrics the pack declares beside the registry")
    origins: dict[str, tuple[str, int]] = Field(
        default_factory=dict, description="rule id -> (file, line), for errors found later")

    @property
    def version(self) -> str:
        """Content hash: the same rules load to the same version, on any replica."""
        # a rule's history keys and platforms count only where written: older packs keep
        # their version
        optional = {*HistoryFields.model_fields, "platforms"}
        rules: list[Any] = [r.model_dump(mode="json", exclude=optional - r.model_fields_set)
                            for r in self.rules]
        if self.metrics:  # a pack without declarations keeps the version it always had
            rules.append({k: m.model_dump(mode="json") for k, m in self.metrics.items()})
        body = json.dumps(rules, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    def origin(self, rule_id: str) -> tuple[str | None, int | None]:
        """File and line a rule was loaded from (None for packs built in code)."""
        return self.origins.get(rule_id, (None, None))

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)




def _optional_condition(value: str | None) -> str | None:
    if value is not None:
        _parse_condition(value)  # fail here so the error names the key
    return value


def _with_languages(value: dict[str, str]) -> dict[str, str]:
    missing = [lang for lang in LANGUAGES if lang not in value]
    if missing:
        raise ValueError(f"needs a message in {', '.join(missing)}")
    return value


def _parse_condition(text: str) -> Condition:
    try:
        return parse(text)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None
