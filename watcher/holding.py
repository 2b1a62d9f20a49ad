"""``for:``: a firing that must hold a while before it opens an incident.

Pure, like the incident transitions: a rule with ``for: 3`` (periods) or
``for: 10m`` (a duration) first records its firing as *pending*; each later
firing of the same fingerprint extends the run, and the incident opens once
the run is long enough. A snapshot on which the condition no longer holds ends
the run. Pending firings are stored (``pending_firings``) so that a restart,
another replica or the timer loop (a duration that passes with no new data)
sees the same run.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from watcher.incidents import Firing
from watcher.period import Period
from watcher.rules.model import Hold


class Pending(BaseModel):
    """A firing waiting for its ``for``: the run's start and its length in periods."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str
    rule: str
    subject: str
    since: datetime
    periods: int
    last_period: str
    last_period_end: date
    due_at: datetime | None  # a duration's end; None when only periods count
    firing: Firing


def extend(pending: Pending | None, firing: Firing, hold: Hold, now: datetime) -> Pending:
    """The run once ``firing`` (the condition holding again) is added to it.

    The next period (the day after the last one ends) lengthens the run; the
    same period again (a restatement) or an older one does not; a gap (a period
    missing in between) starts a new run, since nothing says the condition held
    in the period without data.
    """
    if pending is not None and firing.period_end <= pending.last_period_end:
        if firing.period_end < pending.last_period_end:
            return pending
        return pending.model_copy(update={"firing": firing})
    adjacent = pending is not None and \
        Period.parse(firing.period).start == pending.last_period_end + timedelta(days=1)
    if pending is not None and adjacent:
        return pending.model_copy(update={"periods": pending.periods + 1, "firing": firing,
                                          "last_period": firing.period,
                                          "last_period_end": firing.period_end})
    due = now + timedelta(seconds=hold.seconds) if hold.seconds is not None else None
    return Pending(fingerprint=firing.fingerprint, rule=firing.rule, subject=firing.subject,
                   since=now, periods=1, last_period=firing.period,
                   last_period_end=firing.period_end, due_at=due, firing=firing)


def ready(pending: Pending, hold: Hold, now: datetime) -> bool:
    """Has the condition held long enough: ``hold.periods`` periods, or until ``due_at``."""
    if hold.periods is not None:
        return pending.periods >= hold.periods
    return pending.due_at is not None and now >= pending.due_at


def note(pending: Pending, hold: Hold) -> str:
    """What the timeline says of the wait, language-neutral (numbers and periods)."""
    if hold.periods is not None:
        return f"for {hold.periods}: {pending.periods} × {pending.last_period}"
    return f"for {hold}: {pending.since.isoformat(timespec='seconds')}"
