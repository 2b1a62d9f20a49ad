"""Escalation and reminders: what an unacknowledged incident is owed, and when.

Pure: given an incident, its route's policy, what was already done (from the
timeline) and the time, say which steps are due. The timer loop in the daemon
applies them, writing the event and its notifications in one transaction.
Acknowledging (or resolving) stops both: only an ``open`` incident escalates.

A silence or an inhibition pauses both: while one holds the incident nothing
escalates or reminds, and the time it held does not count towards a step's
``after`` or the ``repeat_interval`` (the clock resumes where it stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from watcher.config import Route
from watcher.incidents import Incident, Status

Hold = tuple[datetime, datetime | None]  # (held from, released at; None: still held)


@dataclass(frozen=True, slots=True)
class Progress:
    """What the timeline says was done: escalation steps taken, last reminder."""

    steps_done: frozenset[int]
    last_reminder: datetime | None
    holds: tuple[Hold, ...] = ()

    @property
    def held(self) -> bool:
        """A silence or an inhibition holds the incident and has not been seen to end."""
        return bool(self.holds) and self.holds[-1][1] is None


def running(since: datetime, now: datetime, holds: tuple[Hold, ...]) -> timedelta:
    """Time from ``since`` to ``now`` that no silence or inhibition held."""
    held = timedelta(0)
    for start, end in holds:
        start, end = max(start, since), min(end or now, now)
        if end > start:
            held += end - start
    return now - since - held


@dataclass(frozen=True, slots=True)
class Escalate:
    step: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Remind:
    channels: tuple[str, ...]


Due = Escalate | Remind


def due(incident: Incident, policy: Route, progress: Progress, now: datetime) -> list[Due]:
    if incident.status is not Status.OPEN or progress.held:
        return []
    actions: list[Due] = []
    age = running(incident.opened_at, now, progress.holds)
    for index, step in enumerate(policy.escalate):
        if index not in progress.steps_done and age >= timedelta(seconds=step.after):
            actions.append(Escalate(index, step.channels))
    if policy.repeat_interval:
        since = progress.last_reminder or incident.opened_at
        if running(since, now, progress.holds) >= timedelta(seconds=policy.repeat_interval):
            told = set(policy.channels)
            for index in progress.steps_done | {a.step for a in actions
                                                if isinstance(a, Escalate)}:
                told |= set(policy.escalate[index].channels)
            actions.append(Remind(tuple(sorted(told))))
    return actions
