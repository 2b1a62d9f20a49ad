"""What a notification says: the data a channel renders, frozen at enqueue time.

The outbox stores an ``Alert`` as JSON so that a notification sent after a
restart says exactly what it would have said before it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class AlertKind(StrEnum):
    OPENED = "opened"
    FIRING = "firing"
    REMINDER = "reminder"
    ESCALATED = "escalated"
    WORSENED = "worsened"  # a live incident's value got worse (rule: renotify_when_worse)
    RESOLVED = "resolved"
    RELEASED = "released"  # a silence or inhibition ended on a still-open incident
    TEST = "test"
    DIGEST = "digest"
    REPORT = "report"  # a manager's monthly report (watcher.monthly)
    WEEKLY = "weekly"  # a route's weekly digest (watcher.weekly)


class Evidence(BaseModel):
    """One reason behind an alert: a metric's value against its threshold or target."""

    model_config = ConfigDict(frozen=True)

    period: str
    metric: str
    value: float
    threshold: float
    comparison: str = "<"
    store: str | None = None


class GroupItem(BaseModel):
    """One incident of a grouped message: enough to list it and to say what the group is."""

    model_config = ConfigDict(frozen=True)

    incident_id: int | None = None
    severity: str
    title: dict[str, str]
    rule: str
    store: str | None = None
    operator: str | None = None
    metric: str | None = None
    threshold: float | None = None


class DigestRule(BaseModel):
    """How many folded alerts one rule raised, and where the page lists them."""

    model_config = ConfigDict(frozen=True)

    rule: str
    severity: str
    count: int
    link: str | None = None


class DigestItem(BaseModel):
    """One folded alert, as a digest names it (the worst first)."""

    model_config = ConfigDict(frozen=True)

    incident_id: int | None = None
    store: str | None = None
    platform: str | None = None
    operator: str | None = None
    rule: str
    severity: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None


class Digest(BaseModel):
    """Many alerts for one channel and route, folded into one message when more were
    waiting than the channel's send rate allows (watcher/digest.py)."""

    model_config = ConfigDict(frozen=True)

    total: int
    rules: list[DigestRule]
    worst: list[DigestItem] = Field(description="the worst alerts first, at most "
                                                "limits.DIGEST_MAX_STORES")
    link: str | None = None


class WeeklyLine(BaseModel):
    """One incident as a weekly digest names it."""

    model_config = ConfigDict(frozen=True)

    incident_id: int
    severity: str
    rule: str
    title: dict[str, str]
    store: str | None = None
    operator: str | None = None
    opened_at: datetime
    resolved_at: datetime | None = None
    age_days: int | None = Field(default=None, description="a still-open one: days open")


class WeeklyStore(BaseModel):
    """A store with the most (and most severe) still-open incidents."""

    model_config = ConfigDict(frozen=True)

    store: str
    open: int
    worst: str  # the severity of its worst open incident


class WeeklySection(BaseModel):
    """One team's part of a weekly digest (``team`` None: incidents of no known team).
    The counts are the whole; the lists are the worst first, cut to fit a message."""

    model_config = ConfigDict(frozen=True)

    team: str | None = None
    opened: int
    still_open: int
    resolved: int
    opened_list: list[WeeklyLine]
    open_list: list[WeeklyLine]
    resolved_list: list[WeeklyLine]


class WeeklyDigest(BaseModel):
    """A route's week (ISO, Monday to Sunday): what opened, what is still open, what was
    resolved, the worst stores, per team (watcher/weekly_digest.py builds it)."""

    model_config = ConfigDict(frozen=True)

    week: str
    route: int
    match: dict[str, list[str]]
    start: datetime
    end: datetime  # exclusive: the next Monday 00:00 UTC
    at: datetime  # "still open" and ages are as of this moment
    opened: int
    still_open: int
    resolved: int
    stores: list[WeeklyStore]
    sections: list[WeeklySection]
    link: str | None = None
    closed: bool = True  # False: the week is still running at ``at`` (a digest "so far")


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AlertKind
    incident_id: int | None = None
    rule: str
    severity: str
    audience: str
    title: dict[str, str] = Field(description="rendered rule message by language (en, zh-CN)")
    store: str | None = None
    platform: str | None = None
    operator: str | None = None
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    period: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    evidence: list[Evidence] = Field(default_factory=list)
    link: str | None = None
    at: datetime
    note: str | None = None
    note_key: str | None = Field(
        default=None, description="the note in words of the channel's language: "
                                  "strings.yaml notes.<key> filled with note_args ('note' "
                                  "is the English text, for logs and the fallback)")
    note_args: dict[str, Any] = Field(default_factory=dict)
    items: list[GroupItem] = Field(
        default_factory=list, description="a grouped message: the incidents it carries")
    digest: Digest | None = None
    weekly: WeeklyDigest | None = None
    runbook: dict[str, str] = Field(default_factory=dict,
                                    description="the rule's runbook by language, if any")
    runbook_link: str | None = None

    def text(self, language: str) -> str:
        return self.title.get(language) or self.title.get("en") or self.rule

    def item(self) -> GroupItem:
        return GroupItem(incident_id=self.incident_id, severity=self.severity,
                         title=self.title, rule=self.rule, store=self.store,
                         operator=self.operator, metric=self.metric, threshold=self.threshold)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
