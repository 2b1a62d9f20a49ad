"""A PIP is a plan: goals, checkpoints, an end date, and a manager's verdict.

The PIP rule (``kind: streak``) recommends a plan after three missed months; the
reference asks for "明确改进目标与时间节点": explicit goals and deadlines. A
manager starts the plan (goals default to the indicators the evidence shows
missed, with their targets), reviews it at each checkpoint, and closes it as
passed, failed or extended (an extension moves the end date and the plan goes
on). Every step is an event on the PIP incident's timeline, with its actor.

Status of a PIP, in one place (card, API, page, messages all read ``status_of``):

* ``recommended``: the incident is live and no plan has been started;
* ``withdrawn``: the recommendation ended without a plan (a restatement removed
  its grounds, or someone resolved it by hand);
* ``in_plan``, ``extended``: a plan runs;
* ``passed``, ``failed``: a manager closed it.

Pure functions over frozen models: the store edge is ``watcher.plans``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from watcher import incidents as inc
from watcher import indicators, limits
from watcher.assessment.rollup import combine, weights_of
from watcher.assessment.scorecard_report import number
from watcher.echo import shown
from watcher.errors import InputError, InvalidTransition
from watcher.indicators import Direction
from watcher.snapshot import Comparator, Snapshot


class PlanStatus(StrEnum):
    RECOMMENDED = "recommended"
    IN_PLAN = "in_plan"
    PASSED = "passed"
    EXTENDED = "extended"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


class Outcome(StrEnum):
    PASSED = "passed"
    EXTENDED = "extended"
    FAILED = "failed"


ACTIVE = (PlanStatus.IN_PLAN, PlanStatus.EXTENDED)
_COMPARE = {Comparator.LT: lambda v, t: v < t, Comparator.LE: lambda v, t: v <= t,
            Comparator.GT: lambda v, t: v > t, Comparator.GE: lambda v, t: v >= t,
            Comparator.EQ: lambda v, t: v == t}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Goal(_Frozen):
    """Where an indicator must be by the end: ``metric comparator target``."""

    metric: str
    target: float
    comparator: Comparator

    def met(self, value: float) -> bool:
        return bool(_COMPARE[self.comparator](value, self.target))

    def __str__(self) -> str:
        return f"{self.metric} {self.comparator.value} {self.target:g}"


class Review(_Frozen):
    """A manager's note on the plan, against the checkpoint it reviews (if any left)."""

    at: datetime
    by: str
    note: str
    checkpoint: date | None = None


class Plan(_Frozen):
    incident_id: int
    operator: str
    status: PlanStatus
    started_at: datetime
    started_by: str
    starts_on: date
    ends_on: date
    checkpoint_days: int
    goals: tuple[Goal, ...]
    checkpoints: tuple[date, ...]
    reviews: tuple[Review, ...] = ()
    reminded: tuple[str, ...] = ()  # keys of the reminders sent (see ``due_reminders``)
    closed_at: datetime | None = None
    closed_by: str | None = None
    note: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def reviewed(self, checkpoint: date) -> Review | None:
        return next((r for r in self.reviews if r.checkpoint == checkpoint), None)


class GoalValue(_Frozen):
    """A goal with the operator's latest value from stored snapshots (None: none yet)."""

    metric: str
    target: float
    comparator: Comparator
    value: float | None
    period: str | None
    met: bool | None


class Reminder(_Frozen):
    key: str  # "checkpoint:2026-12-01" or "end:2026-12-31": each is sent once
    kind: str  # checkpoint or end
    due: date


def status_of(incident: inc.Incident, plan: Plan | None) -> PlanStatus:
    if plan is not None:
        return plan.status
    return PlanStatus.RECOMMENDED if incident.live else PlanStatus.WITHDRAWN


def passing_side(metric: str) -> Comparator:
    indicator = indicators.get(metric)
    lower = indicator is not None and indicator.direction is Direction.LOWER_IS_BETTER
    return Comparator.LE if lower else Comparator.GE


def goals_from_evidence(evidence: Iterable[dict[str, Any]]) -> tuple[Goal, ...]:
    """The indicators the PIP evidence shows missed, each with its latest month's target."""
    latest: dict[str, Goal] = {}
    for item in sorted(evidence, key=lambda e: str(e.get("period", ""))):
        metric, target = item.get("metric"), item.get("target")
        if not isinstance(metric, str) or not isinstance(target, int | float):
            continue
        given = str(item.get("comparator"))
        comparator = Comparator(given) if given in Comparator._value2member_map_ \
            else passing_side(metric)
        latest[metric] = Goal(metric=metric, target=float(target), comparator=comparator)
    return tuple(latest[m] for m in sorted(latest))


def parse_goal(text: str) -> Goal:
    """``METRIC=TARGET`` (the passing side is the metric's) or ``METRIC>=TARGET``."""
    for symbol in (">=", "<=", ">", "<", "="):
        metric, sep, value = text.partition(symbol)
        if sep:
            break
    metric = metric.strip()
    if not sep or not metric:
        raise InputError(f"'{shown(text, 80)}' is not METRIC=TARGET (e.g. gmv=150000)",
                         field="goal")
    if indicators.get(metric) is None:
        raise InputError(f"'{shown(metric, 80)}' is not a known metric id", field="goal")
    try:
        target = float(value.strip().rstrip("%")) / (100 if value.strip().endswith("%") else 1)
    except ValueError:
        raise InputError(f"'{value.strip()}' is not a number", field="goal") from None
    comparator = passing_side(metric) if symbol == "=" else Comparator(symbol)
    return Goal(metric=metric, target=target, comparator=comparator)


def _days(value: int, name: str) -> int:
    if not 1 <= value <= limits.PIP_MAX_DAYS:
        raise InputError(f"must be between 1 and {limits.PIP_MAX_DAYS} days", field=name)
    return value


def _note(value: str | None, *, required: bool) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise InputError("is required", field="note")
    if len(text) > limits.PIP_MAX_NOTE or "\x00" in text:
        raise InputError(f"must be text of at most {limits.PIP_MAX_NOTE} characters",
                         field="note")
    return text or None


def _by(value: str) -> str:
    text = value.strip()
    if not text or len(text) > limits.ROSTER_MAX_FIELD or "\x00" in text:
        raise InputError(f"who acts: a name of 1 to {limits.ROSTER_MAX_FIELD} characters",
                         field="by")
    return text


def checkpoints_between(start: date, end: date, every: int) -> tuple[date, ...]:
    """Review dates every ``every`` days from ``start``, before ``end`` (the end is the
    final review)."""
    found, cursor = [], start + timedelta(days=every)
    while cursor < end:
        found.append(cursor)
        cursor += timedelta(days=every)
    return tuple(found)


def start(incident: inc.Incident, current: Plan | None, by: str, now: datetime, *,
          days: int, every: int, goals: Sequence[Goal] = ()) -> tuple[Plan, inc.Update]:
    """A plan for a live recommendation; the incident becomes acknowledged (a manager
    acted, so its generic escalation stops and the plan's own reminders take over)."""
    by = _by(by)
    days, every = _days(days, "days"), _days(every, "checkpoint_days")
    if current is not None:
        raise InvalidTransition(f"incident {incident.id} already has a plan "
                                f"({current.status.value})")
    if not incident.live:
        raise InvalidTransition(f"incident {incident.id} is resolved: the recommendation was "
                                "withdrawn or closed")
    chosen = tuple(goals) or goals_from_evidence(incident.evidence)
    if not chosen:
        raise InputError("the evidence names no indicator with a target: give --goal "
                         "METRIC=TARGET", field="goal")
    if len(chosen) > limits.PIP_MAX_GOALS:
        raise InputError(f"at most {limits.PIP_MAX_GOALS} goals", field="goal")
    today = now.date()
    ends_on = today + timedelta(days=days)
    plan = Plan(incident_id=incident.id, operator=incident.operator or incident.subject,
                status=PlanStatus.IN_PLAN, started_at=now, started_by=by, starts_on=today,
                ends_on=ends_on, checkpoint_days=every, goals=chosen,
                checkpoints=checkpoints_between(today, ends_on, every))
    note = (f"plan started: {', '.join(str(g) for g in chosen)}; checkpoints "
            f"{', '.join(d.isoformat() for d in plan.checkpoints) or 'none'}; ends "
            f"{ends_on.isoformat()}")
    changes: dict[str, Any] = {"updated_at": now}
    if incident.status is inc.Status.OPEN:
        changes.update(status=inc.Status.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by)
    return plan, inc.Update(incident, changes, inc.Event(
        kind=inc.EventKind.PLAN_STARTED, at=now, actor=by, note=note,
        data={"plan": plan.model_dump(mode="json")}))


def _running(plan: Plan | None, incident: inc.Incident) -> Plan:
    if plan is None:
        raise InvalidTransition(f"incident {incident.id} has no plan: start one first")
    if not plan.active:
        raise InvalidTransition(f"the plan of incident {incident.id} is closed "
                                f"({plan.status.value})")
    return plan


def review(incident: inc.Incident, plan: Plan | None, by: str, note: str,
           now: datetime) -> tuple[Plan, inc.Update]:
    """A review note, against the earliest checkpoint not yet reviewed."""
    running = _running(plan, incident)
    by, text = _by(by), _note(note, required=True)
    assert text is not None
    checkpoint = next((c for c in running.checkpoints if running.reviewed(c) is None), None)
    entry = Review(at=now, by=by, note=text, checkpoint=checkpoint)
    updated = running.model_copy(update={"reviews": (*running.reviews, entry)})
    return updated, inc.Update(incident, {"updated_at": now}, inc.Event(
        kind=inc.EventKind.PLAN_REVIEWED, at=now, actor=by, note=text,
        data={"checkpoint": checkpoint.isoformat() if checkpoint else None}))


def close(incident: inc.Incident, plan: Plan | None, outcome: Outcome, by: str,
          note: str | None, now: datetime, *, days: int | None = None,
          values: Sequence[GoalValue] = ()) -> tuple[Plan, inc.Update]:
    """Passed or failed ends the plan and resolves the incident; extended moves the end
    date by ``days`` (default: the plan's checkpoint interval) and the plan goes on.

    The manager decides the outcome, but the timeline keeps where the goals stood
    (``values``) beside it: a plan closed as passed with goals unmet says so, for the
    review that reads it later."""
    running = _running(plan, incident)
    by, text = _by(by), _note(note, required=False)
    standing = goals_summary(values)
    if standing:
        text = f"{text} ({standing})" if text else standing
    data: dict[str, Any] = {"outcome": outcome.value}
    if values:
        data["goals"] = [v.model_dump(mode="json") for v in values]
        data["goals_unmet"] = sum(1 for v in values if not v.met)
    if outcome is Outcome.EXTENDED:
        more = _days(days or running.checkpoint_days, "days")
        ends_on = running.ends_on + timedelta(days=more)
        extra = checkpoints_between(running.starts_on, ends_on, running.checkpoint_days)
        updated = running.model_copy(update={
            "status": PlanStatus.EXTENDED, "ends_on": ends_on,
            "checkpoints": tuple(sorted({*running.checkpoints, running.ends_on, *extra}))})
        data["ends_on"] = ends_on.isoformat()
        summary = f"plan extended to {ends_on.isoformat()}"
        return updated, inc.Update(incident, {"updated_at": now}, inc.Event(
            kind=inc.EventKind.PLAN_CLOSED, at=now, actor=by,
            note=f"{summary}: {text}" if text else summary, data=data))
    updated = running.model_copy(update={
        "status": PlanStatus(outcome.value), "closed_at": now, "closed_by": by, "note": text})
    summary = f"plan {outcome.value}"
    return updated, inc.Update(incident, {
        "status": inc.Status.RESOLVED, "resolved_at": now, "resolved_by": by,
        "updated_at": now}, inc.Event(kind=inc.EventKind.PLAN_CLOSED, at=now, actor=by,
                                      note=f"{summary}: {text}" if text else summary,
                                      data=data))


def goals_summary(values: Sequence[GoalValue]) -> str | None:
    """``goals met: 1 of 2; gmv >= 150,000: 120,000 (2026-10, not met)``: the count, and
    each goal not met with its value."""
    if not values:
        return None
    unmet = [v for v in values if not v.met]
    return "; ".join([f"goals met: {len(values) - len(unmet)} of {len(values)}",
                      *(f"{v.metric} {format_goal(v)}" for v in unmet)])


def goal_values(goals: Sequence[Goal], snapshots: Iterable[Snapshot]) -> list[GoalValue]:
    """Each goal with the operator's latest value: the latest period that has the metric,
    its stores combined as a card combines them (``watcher.assessment.rollup``)."""
    snaps = list(snapshots)
    found: list[GoalValue] = []
    for goal in goals:
        having = [s for s in snaps if goal.metric in s.metrics]
        if not having:
            found.append(GoalValue(**goal.model_dump(), value=None, period=None, met=None))
            continue
        last = max(having, key=lambda s: (s.period.end, s.period.start))
        parts = [s for s in having if s.period == last.period]
        _basis, weights = weights_of([p.metrics for p in parts])
        value = combine(goal.metric, [p.metrics[goal.metric] for p in parts], weights)
        found.append(GoalValue(**goal.model_dump(), value=value, period=last.period.text,
                               met=goal.met(value)))
    return found


def due_reminders(plan: Plan, today: date, before_days: int) -> list[Reminder]:
    """Reminders due by ``today``: ``before_days`` ahead of each checkpoint not yet
    reviewed, and of the end; each once (``plan.reminded``)."""
    if not plan.active:
        return []
    wanted = [Reminder(key=f"checkpoint:{c.isoformat()}", kind="checkpoint", due=c)
              for c in plan.checkpoints if plan.reviewed(c) is None]
    wanted.append(Reminder(key=f"end:{plan.ends_on.isoformat()}", kind="end",
                           due=plan.ends_on))
    return [r for r in wanted if r.key not in plan.reminded
            and today >= r.due - timedelta(days=before_days)]


def reminded(plan: Plan, reminder: Reminder) -> Plan:
    return plan.model_copy(update={"reminded": (*plan.reminded, reminder.key)})


def reminder_note(plan: Plan, reminder: Reminder, values: Sequence[GoalValue]) -> str:
    """What the manager reads: which date, and where each goal stands."""
    what = "checkpoint review" if reminder.kind == "checkpoint" else "plan ends"
    goals = "; ".join(
        f"{v.metric} {format_goal(v)}" for v in values)
    return f"PIP of {plan.operator}: {what} on {reminder.due.isoformat()}. Goals: {goals}"


def format_goal(value: GoalValue) -> str:
    """A goal as people read it, rates in percent as on the cards: ``>= 95.00%: 80.00%``."""
    now = "no data yet" if value.value is None else (
        f"{number(value.metric, value.value)} ({value.period}, "
        f"{'met' if value.met else 'not met'})")
    return f"{value.comparator.value} {number(value.metric, value.target)}: {now}"
