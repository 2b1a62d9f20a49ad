"""What a manager does with a PIP (start, review, close), and the plans' reminders.

The thin edge of ``watcher.assessment.pip``: each action reads the incident and
its plan, applies the pure transition and writes the plan, the incident and the
timeline event in one transaction. The CLI, the HTTP API and the page all call
these, so a plan reads the same everywhere. The reminders run in the timer
loop (``watcher.timers``): one transaction per plan, the reminder's key saved
with its notifications, so a restart neither repeats nor skips one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from watcher import incidents as inc
from watcher.actions import tell_resolved
from watcher.alerts import AlertKind, Evidence
from watcher.apply import alert_for, labels_of, silenced_event
from watcher.assessment import pip
from watcher.assessment.roster import Roster
from watcher.config import Settings, route
from watcher.errors import InvalidTransition, NotFound
from watcher.silences import silenced_by
from watcher.store import Database
from watcher.store import plans as stored
from watcher.store import repository as repo

log = structlog.get_logger(__name__)
PipAction = Literal["start", "checkpoint", "close"]


class CheckpointView(BaseModel):
    model_config = ConfigDict(frozen=True)

    due: date
    reviewed_at: datetime | None = None
    by: str | None = None
    note: str | None = None


class PipView(BaseModel):
    """A PIP as the CLI, API and page show it."""

    model_config = ConfigDict(frozen=True)

    incident: int
    operator: str
    status: pip.PlanStatus
    title: dict[str, str]
    opened_at: datetime
    evidence: list[dict[str, Any]]
    started_at: datetime | None = None
    started_by: str | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    goals: list[pip.GoalValue] = []
    checkpoints: list[CheckpointView] = []
    reviews: list[pip.Review] = []
    closed_at: datetime | None = None
    closed_by: str | None = None
    note: str | None = None
    events: list[dict[str, Any]] = []


def _pip_incident(conn: Connection, incident_id: int, pip_rules: Collection[str]
                  ) -> inc.Incident:
    incident = repo.get_incident(conn, incident_id)
    if incident is None or incident.rule not in pip_rules:
        raise NotFound(f"no PIP incident {incident_id} (a PIP is an incident of a streak "
                       f"rule: {', '.join(sorted(pip_rules)) or 'none in the pack'})")
    return incident


def view(conn: Connection, incident: inc.Incident, plan: pip.Plan | None,
         today: date) -> PipView:
    operator = incident.operator or incident.subject
    goals: list[pip.GoalValue] = []
    checkpoints: list[CheckpointView] = []
    if plan is not None:
        goals = goal_values(conn, plan, today)
        for due in plan.checkpoints:
            done = plan.reviewed(due)
            checkpoints.append(CheckpointView(due=due, reviewed_at=done.at if done else None,
                                              by=done.by if done else None,
                                              note=done.note if done else None))
    events = [{k: v for k, v in e.items() if k != "incident_id"}
              for e in repo.incident_events_of(conn, incident.id)]
    return PipView(
        incident=incident.id, operator=operator, status=pip.status_of(incident, plan),
        title=incident.title, opened_at=incident.opened_at, evidence=incident.evidence,
        started_at=plan.started_at if plan else None,
        started_by=plan.started_by if plan else None,
        starts_on=plan.starts_on if plan else None, ends_on=plan.ends_on if plan else None,
        goals=goals, checkpoints=checkpoints, reviews=list(plan.reviews) if plan else [],
        closed_at=plan.closed_at if plan else None, closed_by=plan.closed_by if plan else None,
        note=plan.note if plan else None, events=events)


def goal_values(conn: Connection, plan: pip.Plan, today: date) -> list[pip.GoalValue]:
    """The goals with the operator's latest stored values (up to a year before the plan)."""
    snaps = repo.snapshots_within(conn, plan.starts_on - timedelta(days=366),
                                  today + timedelta(days=366), plan.operator)
    return pip.goal_values(plan.goals, snaps)


def show(db: Database, incident_id: int, pip_rules: Collection[str], now: datetime) -> PipView:
    with db.engine.connect() as conn:
        incident = _pip_incident(conn, incident_id, pip_rules)
        return view(conn, incident, stored.get_plan(conn, incident_id), now.date())


def act(db: Database, incident_id: int, action: PipAction, pip_rules: Collection[str],
        settings: Settings, now: datetime, *, by: str, note: str | None = None,
        days: int | None = None, goals: Sequence[pip.Goal] = (),
        outcome: pip.Outcome | None = None) -> PipView:
    """Start, review (checkpoint) or close the plan; raises NotFound, InvalidTransition
    or InputError (naming the field)."""
    with db.engine.begin() as conn:
        incident = _pip_incident(conn, incident_id, pip_rules)
        current = stored.get_plan(conn, incident_id, lock=True)
        if action == "start":
            plan, update = pip.start(incident, current, by, now,
                                     days=days or settings.pip.days,
                                     every=settings.pip.checkpoint_days, goals=goals)
        elif action == "checkpoint":
            plan, update = pip.review(incident, current, by, note or "", now)
        else:
            if outcome is None:
                raise InvalidTransition("closing a plan needs an outcome")
            values = goal_values(conn, current, now.date()) if current else []
            plan, update = pip.close(incident, current, outcome, by, note, now, days=days,
                                     values=values)
        repo.update_incident(conn, incident_id, update.changes)
        event_id = repo.add_event(conn, incident_id, update.event)
        changed = incident.model_copy(update=update.changes)
        if changed.status is not incident.status and changed.status is inc.Status.RESOLVED:
            tell_resolved(conn, changed, event_id, by, now, settings.public_url)
        stored.save_plan(conn, plan, now, new=current is None)
        log.info("pip_" + action, incident=incident_id, by=by, status=plan.status.value)
        return view(conn, changed, plan, now.date())


# -- reminders (the timer loop) ----------------------------------------------------------------


def remind(db: Database, settings: Settings, roster: Roster, now: datetime) -> int:
    """Send the plans' due reminders to the operator's manager; the number sent."""
    with db.engine.connect() as conn:
        plans = stored.active_plans(conn)
    sent = 0
    for candidate in plans:
        if pip.due_reminders(candidate, now.date(), settings.pip.remind_days):
            sent += _remind_one(db, settings, roster, candidate.incident_id, now)
    return sent


def _remind_one(db: Database, settings: Settings, roster: Roster, incident_id: int,
                now: datetime) -> int:
    with db.engine.begin() as conn:
        plan = stored.get_plan(conn, incident_id, lock=True)
        incident = repo.get_incident(conn, incident_id)
        if plan is None or incident is None:
            return 0
        due = pip.due_reminders(plan, now.date(), settings.pip.remind_days)
        if not due:
            return 0  # another replica's pass sent them
        values = goal_values(conn, plan, now.date())
        # the current roster decides who manages the operator now
        labels = {**labels_of(incident), **roster.labels_of(plan.operator)}
        current = incident.model_copy(update={"labels": {
            **incident.labels, **roster.labels_of(plan.operator)}})
        evidence = [Evidence(period=v.period or "-", metric=v.metric, value=v.value,
                             threshold=v.target, comparison=v.comparator.value)
                    for v in values if v.value is not None]
        silence = silenced_by(repo.list_silences(conn, active_at=now), labels, now)
        for reminder in due:
            note = pip.reminder_note(plan, reminder, values)
            channels = route(settings, labels)
            event_id = repo.add_event(conn, incident_id, inc.Event(
                kind=inc.EventKind.PLAN_REMINDED, at=now, note=note,
                data={"reminder": reminder.key, "channels": channels,
                      "goals": [v.model_dump(mode="json") for v in values]}))
            plan = pip.reminded(plan, reminder)
            if silence is not None:
                repo.add_event(conn, incident_id,
                               silenced_event(silence, AlertKind.REMINDER, now))
                continue
            alert = alert_for(current, AlertKind.REMINDER, now, settings.public_url, note)
            alert = alert.model_copy(update={"evidence": evidence})
            repo.insert_notifications(conn, [
                repo.notification_row(incident_id, event_id, channel, alert, now)
                for channel in channels])
            log.info("pip_reminded", incident=incident_id, reminder=reminder.key,
                     channels=channels)
        stored.save_plan(conn, plan, now, new=False)
        return len(due)
