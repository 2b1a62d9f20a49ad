"""Request and response models of the snapshot, silence and rule endpoints.

They are the OpenAPI contract: every constraint a handler relies on is stated
here (lengths, patterns, ranges), so a client (or the contract test) learns it
from ``/openapi.json`` and a bad value is a 422 naming the field, never a 500
from the database. NUL characters are refused in every string: PostgreSQL text
cannot hold them (records holding one are rejected by ``watcher.validation``).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from watcher.config import MATCH_KEYS, parse_duration
from watcher.limits import PIP_MAX_DAYS, PIP_MAX_GOALS, PIP_MAX_NOTE
from watcher.period import Period
from watcher.rules.history import HistoryFields
from watcher.rules.model import Rule, RulePack, Runbook
from watcher.rules.status import ReloadOutcome
from watcher.silences import Silence

NO_NUL = r"^[^\x00]*$"
# The shapes of a period, for the OpenAPI contract only: a parameter is read by
# Period.parse (PeriodText), whose refusal says which shapes it takes.
PERIOD = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?|-W[0-9]{2}|-Q[1-4])?$"
MATCH_KEY = "^(" + "|".join(re.escape(k) for k in MATCH_KEYS) + r"|label\.[^\x00]{1,100})$"
MAX_ID = 2**31 - 1  # the id columns are 32-bit integers
MAX_OFFSET = 1_000_000_000
MAX_SILENCE_SECONDS = 366 * 86400

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]


def _period_text(text: str) -> str:
    """A period parameter in the one text it is stored under (``２０２６-10`` is 2026-10);
    a malformed one is refused with Period.parse's message (a 422 naming the parameter)."""
    try:
        return Period.parse(text).text
    except ValueError as exc:
        raise PydanticCustomError("value_error", str(exc)) from None


# every period a path or query takes: a day, an ISO week, a month, a quarter or a year
PeriodText = Annotated[str, StringConstraints(max_length=20), AfterValidator(_period_text),
                       WithJsonSchema({"type": "string", "maxLength": 20, "pattern": PERIOD})]
MatchKey = Annotated[str, StringConstraints(pattern=MATCH_KEY)]


class SnapshotPart(BaseModel):
    """One feed's part of a snapshot (docs/snapshot-format.md, "Feeds")."""

    metrics: dict[str, float] = Field(description="as the feed stated them (no derived rates)")
    targets: dict[str, Any]
    segment: dict[str, Any]
    operator: str | None
    observed_at: datetime | None
    stated_at: datetime = Field(description="when this content was stated (observed_at, else "
                                            "when received): the newest part wins")
    seq: int = Field(description="the order the parts were received in")
    source: str
    received_at: datetime


class SnapshotOut(BaseModel):
    id: int
    store: str
    platform: str
    period: str
    period_kind: str
    period_start: date
    period_end: date
    operator: str | None
    observed_at: datetime | None
    segment: dict[str, Any]
    metrics: dict[str, float]
    targets: dict[str, Any] = Field(
        description="metric id -> target: a number, or {value, comparator} when the "
                    "platform states the comparison")
    revision: int = Field(description="1, plus one per change of the stored (merged) snapshot")
    source: str | None = Field(description="the transport of the latest statement")
    received_at: datetime
    updated_at: datetime
    parts: dict[str, SnapshotPart] = Field(
        default_factory=dict,
        description="feed -> what that feed last stated (oldest first); the snapshot above is "
                    "their merge: per metric, target and segment key the newest part wins")


class SilenceIn(BaseModel):
    """A silence starting now. ``matchers`` use the route keys (or ``label.<name>``)."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[MatchKey, Name] = Field(min_length=1, max_length=20, json_schema_extra={
        "additionalProperties": False})  # pydantic states only the keys that are allowed
    by: Name
    comment: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]
    duration: Annotated[str, StringConstraints(pattern=r"^\d{1,9}(\.\d{1,6})?[smhd]?$")] | \
        Annotated[float, Field(gt=0, le=MAX_SILENCE_SECONDS)] = Field(
        default="2h", description="how long: seconds, or 45s, 30m, 2h, 1d (at most 366 days)")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        seconds = parse_duration(value)
        if not 0 < seconds <= MAX_SILENCE_SECONDS:
            raise ValueError("a silence lasts more than 0 seconds and at most 366 days")
        return value

    @property
    def seconds(self) -> float:
        return parse_duration(self.duration)


class SilenceOut(BaseModel):
    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, silence: Silence, now: datetime) -> SilenceOut:
        return cls(**silence.model_dump(), active=silence.active(now))


class VariantOut(BaseModel):
    when: dict[str, str]
    condition: str
    resolve: str | None = Field(default=None, description="this variant's resolve condition")


class MessageCaseOut(BaseModel):
    when: str = Field(description="condition on the snapshot that fired")
    message: dict[str, str] = Field(description="the alert's words by language")


class RunbookOut(BaseModel):
    text: dict[str, str] = Field(description="what to do, by language (en, zh-CN)")
    link: str | None = Field(default=None, description="where to read more")

    @classmethod
    def of(cls, runbook: Runbook | None) -> RunbookOut | None:
        return cls(text=dict(runbook.text), link=runbook.link) if runbook else None


class RuleOut(BaseModel):
    id: str
    kind: str
    description: str = Field(description="the description in English (kept for clients "
                                         "that read one string)")
    descriptions: dict[str, str] = Field(
        default_factory=dict, description="the description by language (en, zh-CN): a rule "
                                          "written with one string has it in both")
    enabled: bool
    severity: str
    severities: dict[str, str] = Field(description="platform_target: severity per metric id")
    audience: str
    subject: str
    labels: dict[str, str]
    condition: str | None
    variants: list[VariantOut]
    periods: list[str]
    platforms: list[str] = Field(default_factory=list, description="the platforms whose "
                                 "snapshots the rule judges; empty: every one")
    months: int | None = Field(description="streak: consecutive missed months that fire")
    message: dict[str, str]
    message_cases: list[MessageCaseOut] = Field(
        default_factory=list, description="messages for particular snapshots, first match "
                                          "wins; 'message' is the default")
    renotify_when_worse: bool = Field(
        default=False, description="a live incident notifies again when its value worsens")
    resolve: str | None = Field(default=None, description="hysteresis: what must hold for "
                                                          "a live incident to resolve")
    for_periods: int | None = Field(default=None, description="for: periods in a row the "
                                                              "condition must hold to open")
    for_seconds: float | None = Field(default=None, description="for: how long the "
                                                                "condition must hold to open")
    runbook: RunbookOut | None = Field(default=None, description="what to do when it fires")
    history: dict[str, Any] = Field(
        default_factory=dict, description="change and trend rules: their keys as written "
                                          "(metric, baseline, drop, rise, crosses, within, ...)")

    @classmethod
    def of(cls, rule: Rule) -> RuleOut:
        return cls(
            id=rule.id, kind=rule.kind, description=rule.description_of("en"),
            descriptions=rule.descriptions, enabled=rule.enabled,
            severity=rule.severity.value,
            severities={k: v.value for k, v in rule.severities.items()},
            audience=rule.audience, subject=rule.subject.value, labels=dict(rule.labels),
            condition=rule.condition,
            variants=[VariantOut(when=dict(v.when), condition=v.condition, resolve=v.resolve)
                      for v in rule.variants],
            periods=list(rule.periods), platforms=list(rule.platforms),
            months=rule.months if rule.kind == "streak" else None,
            history={k: getattr(rule, k) for k in sorted(
                rule.model_fields_set & set(HistoryFields.model_fields))},
            message=dict(rule.message),
            message_cases=[MessageCaseOut(when=c.when, message=dict(c.text))
                           for c in rule.message_cases],
            renotify_when_worse=rule.renotify_when_worse, resolve=rule.resolve,
            for_periods=rule.for_.periods if rule.for_ else None,
            for_seconds=rule.for_.seconds if rule.for_ else None,
            runbook=RunbookOut.of(rule.runbook))


class ReloadOut(BaseModel):
    at: datetime
    accepted: bool
    version: str = Field(description="the pack version in force after this attempt")
    error: str | None = Field(description="why a refused reload was refused (limits: "
                                          "docs/limits.md)")
    file: str | None
    line: int | None


class RulesOut(BaseModel):
    version: str = Field(description="content hash of the loaded pack; incidents record it")
    rules: list[RuleOut]
    last_reload: ReloadOut | None = Field(
        default=None, description="the last hot reload since start; a refused one kept the "
                                  "pack in force")

    @classmethod
    def of(cls, pack: RulePack, last_reload: ReloadOutcome | None = None) -> RulesOut:
        return cls(version=pack.version, rules=[RuleOut.of(r) for r in pack.rules],
                   last_reload=ReloadOut(at=last_reload.at, accepted=last_reload.accepted,
                                         version=last_reload.version, error=last_reload.error,
                                         file=last_reload.file, line=last_reload.line)
                   if last_reload else None)


_NUMBER_OR_TEXT = {"anyOf": [{"type": "number"}, {"type": "string", "maxLength": 40}]}
SNAPSHOT_IN: dict[str, Any] = {
    "type": "object",
    "description": "A canonical snapshot (docs/snapshot-format.md); unknown keys are kept "
                   "in the stored raw record",
    "required": ["store", "platform", "period", "metrics"],
    "properties": {
        "store": {"type": "string", "minLength": 1, "maxLength": 200},
        "platform": {"type": "string", "minLength": 1, "maxLength": 200},
        "period": {"type": "string", "pattern": PERIOD},
        "operator": {"type": "string", "maxLength": 200},
        "observed_at": {"type": "string", "format": "date-time"},
        "segment": {"type": "object", "additionalProperties": {
            "anyOf": [{"type": "string"}, {"type": "boolean"}, {"type": "number"}]}},
        "metrics": {"type": "object", "minProperties": 1,
                    "additionalProperties": _NUMBER_OR_TEXT},
        "targets": {"type": "object", "additionalProperties": {"anyOf": [
            _NUMBER_OR_TEXT,
            {"type": "object", "required": ["value"], "properties": {
                "value": _NUMBER_OR_TEXT,
                "comparator": {"enum": ["<", "<=", ">", ">=", "=="]}}}]}},
    },
}
SNAPSHOTS_BODY: dict[str, Any] = {"requestBody": {
    "required": True,
    "description": "One snapshot, an array of them, JSON Lines "
                   "(`application/x-ndjson`) or CSV (`text/csv`)",
    "content": {"application/json": {"schema": {"anyOf": [
        SNAPSHOT_IN, {"type": "array", "items": SNAPSHOT_IN, "maxItems": 10_000}]}}},
}}




# -- PIP plans (watcher/daemon/pip.py) --------------------------------------------------------


class GoalIn(BaseModel):
    """``metric`` must reach ``target``; ``comparator`` defaults to the metric's passing side
    (``>=`` for GMV, ``<=`` for a stockout rate)."""

    model_config = ConfigDict(extra="forbid")

    metric: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]
    target: float = Field(allow_inf_nan=False)
    comparator: Literal["<", "<=", ">", ">=", "=="] | None = None


class PipStartIn(BaseModel):
    """Start the plan; without ``goals``, the indicators the PIP evidence shows missed."""

    model_config = ConfigDict(extra="forbid")

    by: Name
    days: int | None = Field(default=None, ge=1, le=PIP_MAX_DAYS,
                             description="the plan's length (default: pip.days)")
    goals: list[GoalIn] | None = Field(default=None, min_length=1, max_length=PIP_MAX_GOALS)


class PipCheckpointIn(BaseModel):
    """A review note; it reviews the earliest checkpoint not yet reviewed."""

    model_config = ConfigDict(extra="forbid")

    by: Name
    note: str = Field(min_length=1, max_length=PIP_MAX_NOTE, pattern=r"^[^\x00]*\S[^\x00]*$")


class PipCloseIn(BaseModel):
    """``passed`` or ``failed`` ends the plan (the incident resolves); ``extended`` moves
    the end by ``days`` (default: pip.checkpoint_days) and the plan goes on."""

    model_config = ConfigDict(extra="forbid")

    by: Name
    outcome: Literal["passed", "extended", "failed"]
    note: str | None = Field(default=None, max_length=PIP_MAX_NOTE, pattern=NO_NUL)
    days: int | None = Field(default=None, ge=1, le=PIP_MAX_DAYS)
