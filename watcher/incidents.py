"""Incident state transitions: plain functions over frozen models.

An incident is keyed by its fingerprint (rule + subject). These functions
decide what a firing, a recovery or a person's action does to the incident
that is live for that fingerprint; the pipeline and the CLI apply the
decision to the store. Nothing here touches a database or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field

from watcher import indicators
from watcher.errors import InvalidTransition

# The orders an incident list comes in, the same for the page, the API and the CLI:
# newest first, or the most severe first (newest first within a severity).
IncidentSort = Literal["newest", "severity"]
INCIDENT_SORTS: tuple[str, ...] = get_args(IncidentSort)


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EventKind(StrEnum):
    OPENED = "opened"
    FIRING = "firing"
    NOTIFIED = "notified"
    DELIVERY_FAILED = "delivery_failed"
    FOLDED = "folded"  # carried by a digest (data: channel, digest notification id)
    ESCALATED = "escalated"
    REMINDED = "reminded"
    SILENCED = "silenced"
    INHIBITED = "inhibited"
    RELEASED = "released"  # the silence or inhibition that held it ended; still live
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    NOTE = "note"
    PLAN_STARTED = "plan_started"    # a PIP's plan (watcher.assessment.pip)
    PLAN_REVIEWED = "plan_reviewed"
    PLAN_REMINDED = "plan_reminded"
    PLAN_CLOSED = "plan_closed"


SYSTEM_ACTOR = "watcher"


def fingerprint(rule: str, subject_kind: str, subject: str) -> str:
    return f"{rule}|{subject_kind}:{subject}"


class Firing(BaseModel):
    """A rule that holds for a subject in a period: what would open an incident."""

    model_config = ConfigDict(frozen=True)

    rule: str
    rule_version: str
    subject_kind: str
    subject: str
    store: str | None
    platform: str | None
    operator: str | None
    severity: str
    audience: str
    metric: str | None
    value: float | None
    threshold: float | None
    period: str
    period_end: date
    title: dict[str, str]
    labels: dict[str, str] = Field(default_factory=dict)
    evidence: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.subject_kind, self.subject)


class Recovery(NamedTuple):
    """A live incident's rule evaluated for its subject and found not to hold."""

    fingerprint: str
    period: str
    period_end: date
    note: str
    withdraw: bool = False  # a restatement removed the grounds, rather than a later recovery
    # the note for messages, in the channel's language: strings.yaml notes.<key> + args
    key: str | None = None
    args: Mapping[str, Any] | None = None


class Incident(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    fingerprint: str
    rule: str
    rule_version: str
    subject_kind: str
    subject: str
    store: str | None
    platform: str | None
    operator: str | None
    status: Status
    severity: str
    audience: str
    metric: str | None
    value: float | None
    threshold: float | None
    period: str | None
    period_end: date | None
    title: dict[str, str]
    labels: dict[str, str]
    evidence: list[dict[str, Any]]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None

    @property
    def live(self) -> bool:
        return self.status is not Status.RESOLVED


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: EventKind
    at: datetime
    actor: str = SYSTEM_ACTOR
    note: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Open:
    firing: Firing
    event: Event


@dataclass(frozen=True, slots=True)
class Update:
    incident: Incident
    changes: dict[str, Any]
    event: Event


Decision = Open | Update


def on_firing(live: Incident | None, firing: Firing, now: datetime,
              recently_resolved: Incident | None = None, *,
              renotify_when_worse: bool = False) -> Decision | None:
    """A live incident absorbs further firings as events; otherwise one opens.

    ``recently_resolved`` is an incident of the same fingerprint resolved within the
    flap hold-down: it re-opens instead, so a metric hovering at its threshold
    makes one incident, not a new one (and a new notification) each time.

    ``renotify_when_worse`` (the rule's setting): a firing whose value is worse than
    the live incident's latest value, for the same or a later period, is news
    (penalty points 3 -> 6): its event is marked ``worse`` so that it is notified.
    """
    if (live is None or not live.live) and recently_resolved is not None:
        reopen: dict[str, Any] = {"status": Status.OPEN, "resolved_at": None, "resolved_by": None,
                   "acknowledged_at": None, "acknowledged_by": None, "updated_at": now,
                   "value": firing.value, "threshold": firing.threshold, "period": firing.period,
                   "period_end": firing.period_end, "evidence": firing.evidence,
                   "metric": firing.metric, "title": firing.title}
        return Update(recently_resolved, reopen,
                      Event(kind=EventKind.REOPENED, at=now, note="fired again within the "
                            "flap hold-down", data={**_firing_data(firing),
                                                    "note_key": "reopened"}))
    if live is None or not live.live:
        return Open(firing, Event(kind=EventKind.OPENED, at=now, data=_firing_data(firing)))
    same = (live.period == firing.period and live.value == firing.value
            and live.evidence == firing.evidence)
    if same:
        return None  # an identical restatement is not news
    changes: dict[str, Any] = {"updated_at": now}
    data = _firing_data(firing)
    note = None
    if live.period_end is None or firing.period_end >= live.period_end:
        changes.update(value=firing.value, threshold=firing.threshold, period=firing.period,
                       period_end=firing.period_end, metric=firing.metric,
                       evidence=firing.evidence, title=firing.title)
        if renotify_when_worse and worse(live, firing):
            data.update(worse=True, previous=live.value)
            # language-neutral: the note is shown as it is in every language
            note = (f"{firing.metric}: {_number(live.value)} → {_number(firing.value)}, "
                    f"{firing.period}")
    return Update(live, changes, Event(kind=EventKind.FIRING, at=now, note=note, data=data))


def worse(live: Incident, firing: Firing) -> bool:
    """The firing's value is on the worse side of the incident's latest value, by the
    metric's direction (more penalty points, a lower health rating)."""
    indicator = indicators.get(firing.metric) if firing.metric else None
    if (indicator is None or firing.metric != live.metric or firing.value is None
            or live.value is None):
        return False
    return indicator.is_worse(firing.value, live.value)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def on_recovery(live: Incident | None, recovery: Recovery, now: datetime) -> Decision | None:
    """Resolve on data for the incident's latest period or later (or a withdrawal)."""
    if live is None or not live.live:
        return None
    if not recovery.withdraw and live.period_end is not None \
            and recovery.period_end < live.period_end:
        return None  # older data does not overrule newer evidence
    data: dict[str, Any] = {"period": recovery.period, "automatic": True,
                            "withdrawn": recovery.withdraw}
    if recovery.key is not None:
        data.update(note_key=recovery.key, note_args=dict(recovery.args or {}))
    event = Event(kind=EventKind.RESOLVED, at=now, note=recovery.note, data=data)
    return Update(live, {"status": Status.RESOLVED, "resolved_at": now,
                         "resolved_by": SYSTEM_ACTOR, "updated_at": now}, event)


def acknowledge(incident: Incident, by: str, note: str | None, now: datetime) -> Update:
    if incident.status is not Status.OPEN:
        raise InvalidTransition(
            f"incident {incident.id} is {incident.status.value}; only an open incident "
            "can be acknowledged")
    return Update(incident, {"status": Status.ACKNOWLEDGED, "acknowledged_at": now,
                             "acknowledged_by": by, "updated_at": now},
                  Event(kind=EventKind.ACKNOWLEDGED, at=now, actor=by, note=note))


def resolve(incident: Incident, by: str, note: str | None, now: datetime) -> Update:
    if incident.status is Status.RESOLVED:
        raise InvalidTransition(f"incident {incident.id} is already resolved")
    return Update(incident, {"status": Status.RESOLVED, "resolved_at": now, "resolved_by": by,
                             "updated_at": now},
                  Event(kind=EventKind.RESOLVED, at=now, actor=by, note=note))


def add_note(incident: Incident, by: str, note: str, now: datetime) -> Update:
    return Update(incident, {"updated_at": now},
                  Event(kind=EventKind.NOTE, at=now, actor=by, note=note))


def _firing_data(firing: Firing) -> dict[str, Any]:
    data: dict[str, Any] = {"period": firing.period, "rule_version": firing.rule_version}
    if firing.metric is not None:
        data.update(metric=firing.metric, value=firing.value, threshold=firing.threshold)
    if firing.evidence:
        data["evidence"] = firing.evidence
    return data
