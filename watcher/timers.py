"""The timer loop: applies due escalations and reminders to open incidents, tells
the channels when a silence or an inhibition that held a live incident has ended,
opens the ``for:`` runs whose duration passed with no data to end them, and runs the
PIP plans' reminders (``watcher.plans``), the managers' monthly reports
(``watcher.monthly``) and the routes' weekly digests (``watcher.weekly``).

Each action is one transaction: the timeline event and the notifications it
causes are committed together, and the next pass reads what was done from
the timeline, so a restart neither repeats nor skips a step.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog
from sqlalchemy import Connection, text

from watcher import plans
from watcher.alerts import AlertKind
from watcher.apply import (
    alert_for,
    inhibited_by,
    inhibited_event,
    labels_of,
    promote,
    silenced_event,
)
from watcher.assessment.roster import Roster
from watcher.channels.render import format_span
from watcher.config import Settings, policy, route
from watcher.escalation import Escalate, Hold, Progress, Remind, due
from watcher.incidents import Event, EventKind, Incident
from watcher.observability import count
from watcher.outage import DATABASE_DOWN, Outage
from watcher.rules.model import RulePack
from watcher.silences import Silence, silenced_by
from watcher.store import Database, noise
from watcher.store import repository as repo
from watcher.store.database import as_utc, utcnow

log = structlog.get_logger(__name__)


def progress_of(events: list[dict[str, object]]) -> Progress:
    steps = frozenset(int(e["data"]["step"]) for e in events  # type: ignore[index]
                      if e["kind"] == EventKind.ESCALATED.value)
    reminders = [as_utc(e["at"]) for e in events  # type: ignore[arg-type]
                 if e["kind"] == EventKind.REMINDED.value]
    return Progress(steps, max((r for r in reminders if r is not None), default=None),
                    holds_of(events))


def holds_of(events: list[dict[str, object]]) -> tuple[Hold, ...]:
    """When something held the incident: from the first ``silenced``/``inhibited`` event
    to the ``released`` event that ended it (None: not ended)."""
    holds: list[Hold] = []
    for event in events:
        at = as_utc(event["at"])  # type: ignore[arg-type]
        if at is None:
            continue
        held = bool(holds) and holds[-1][1] is None
        if event["kind"] in noise.HOLDS and not held:
            holds.append((at, None))
        elif event["kind"] == EventKind.RELEASED.value and held:
            holds[-1] = (holds[-1][0], at)
    return tuple(holds)


TIMERS_LOCK = 0x6B7077_01  # "kpw" + 1: the advisory lock id of the timer loop


@contextmanager
def leader(db: Database, key: int) -> Iterator[bool]:
    """On PostgreSQL, hold a session advisory lock so only one replica runs timers;
    a replica that dies drops its connection, and the lock moves to the next pass
    of another. SQLite serves one process: it always leads."""
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as conn:
        elected = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                       .scalar())
        try:
            yield elected
        finally:
            if elected:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


class Timers:
    def __init__(self, db: Database, settings: Settings, *,
                 clock: Callable[[], datetime] = utcnow,
                 wake: Callable[[], None] = lambda: None,
                 roster: Callable[[], Roster] = Roster,
                 monthly: Callable[[datetime], int] = lambda now: 0,
                 weekly: Callable[[datetime], int] = lambda now: 0,
                 pack: Callable[[], RulePack | None] = lambda: None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.wake = wake
        self.roster = roster  # the roster in force (it reloads)
        self.monthly = monthly  # the managers' monthly reports, when due
        self.weekly = weekly  # the routes' weekly digests, when due
        self.pack = pack  # the rules in force (they reload): reminders carry the runbook

    def run_once(self) -> int:
        with leader(self.db, TIMERS_LOCK) as elected:
            if not elected:
                return 0
            now = self.clock()
            counts: Counter[str] = Counter()
            with self.db.engine.begin() as conn:
                applied = promote(conn, self.settings, now, counts)
            count(counts)
            applied += self._pass(now)
            applied += plans.remind(self.db, self.settings, self.roster(), now)
            applied += self.monthly(now)
            applied += self.weekly(now)
        if applied:
            self.wake()
        return applied

    def _pass(self, now: datetime) -> int:
        """Open incidents whose route escalates or reminds, and live incidents a silence
        or an inhibition holds (to tell when it ends)."""
        escalating = any(r.escalate or r.repeat_interval for r in self.settings.routes)
        with self.db.engine.connect() as conn:
            ids = [i.id for i in repo.list_incidents(conn, status="open", limit=100_000)
                   ] if escalating else []
            ids = sorted(set(ids) | set(noise.held_incident_ids(conn)))
        applied = sum(self._apply(incident_id, now) for incident_id in ids)
        return applied

    def _holder(self, conn: Connection, incident: Incident,
                now: datetime) -> Silence | Incident | None:
        """The silence, or the live incident (inhibition), holding ``incident`` now."""
        labels = labels_of(incident)
        silence = silenced_by(repo.list_silences(conn, active_at=now), labels, now)
        if silence is not None or not self.settings.inhibit:
            return silence
        sources = repo.live_for_subjects(conn, [incident.store] if incident.store else [],
                                         [incident.operator] if incident.operator else [])
        return inhibited_by(self.settings, labels, incident.fingerprint, sources)

    def _apply(self, incident_id: int, now: datetime) -> int:
        counts: Counter[str] = Counter()
        with self.db.engine.begin() as conn:
            applied = self._apply_in(conn, incident_id, now, counts)
        count(counts)  # committed
        return applied

    def _apply_in(self, conn: Connection, incident_id: int, now: datetime,
                  counts: Counter[str]) -> int:
        current = repo.get_incident(conn, incident_id)
        if current is None or not current.live:
            return 0
        events = repo.incident_events_of(conn, incident_id)
        progress = progress_of(events)
        holder = self._holder(conn, current, now)
        applied = 0
        if progress.held and holder is None:
            by = self._release(conn, current, events, progress.holds[-1][0], now)
            counts[f"released.{by}"] += 1
            progress = progress_of(repo.incident_events_of(conn, incident_id))
            applied += 1
        route_ = policy(self.settings, labels_of(current))
        actions = due(current, route_, progress, now) if route_ is not None else []
        if actions and holder is not None:
            # Held: nothing escalates or reminds, and the time held does not count
            # (escalation.running). One event says what was held back, and from when.
            kind = AlertKind.ESCALATED if isinstance(actions[0], Escalate) \
                else AlertKind.REMINDER
            if isinstance(holder, Silence):
                event, reason = silenced_event(holder, kind, now), "silenced"
            else:
                event, reason = inhibited_event(holder, kind, now), "inhibited"
            repo.add_event(conn, incident_id, event)
            counts[f"held.{reason}"] += 1
            return applied
        for action in actions:
            if isinstance(action, Escalate):
                kind_, alert_kind = EventKind.ESCALATED, AlertKind.ESCALATED
                data: dict[str, object] = {"step": action.step,
                                           "channels": list(action.channels)}
                note = f"not acknowledged: escalation step {action.step + 1}"
                key, args = "escalated", {"step": action.step + 1}
                counts[f"escalated.{action.step + 1}"] += 1
            else:
                assert isinstance(action, Remind)
                kind_, alert_kind = EventKind.REMINDED, AlertKind.REMINDER
                data = {"channels": list(action.channels)}
                note, key, args = "still open: reminder", "reminder", {}
                counts[f"reminded.{len(progress.steps_done)}"] += 1
            event_id = repo.add_event(conn, incident_id, Event(kind=kind_, at=now,
                                                               note=note, data=data))
            alert = alert_for(current, alert_kind, now, self.settings.public_url, note,
                              note_key=key, note_args=args, pack=self.pack())
            repo.insert_notifications(conn, [
                repo.notification_row(incident_id, event_id, channel, alert, now)
                for channel in action.channels])
            log.info(kind_.value, incident=incident_id, channels=list(action.channels))
        return applied + len(actions)

    def _release(self, conn: Connection, incident: Incident, events: list[dict[str, object]],
                 since: datetime, now: datetime) -> str:
        """What held a live incident has ended: one message to its channels, saying so
        and for how long it was held. Returns what held it: silence or inhibition."""
        last = next(e for e in reversed(events) if e["kind"] in noise.HOLDS)
        data = dict(last["data"] or {})  # type: ignore[call-overload]
        seconds = (now - since).total_seconds()
        by = ("silence", data.get("silence")) if last["kind"] == "silenced" \
            else ("inhibition", data.get("inhibitor"))
        what = f"silence {by[1]}" if by[0] == "silence" else f"inhibition by incident {by[1]}"
        note = f"{what} ended after {format_span(seconds, {})}: still open"
        event_id = repo.add_event(conn, incident.id, Event(
            kind=EventKind.RELEASED, at=now, note=note,
            data={"by": by[0], "id": by[1], "held_seconds": round(seconds)}))
        channels = sorted(set(route(self.settings, labels_of(incident)))
                          | set(repo.channels_told(conn, [incident.id]).get(incident.id, [])))
        alert = alert_for(incident, AlertKind.RELEASED, now, self.settings.public_url,
                          note, note_key=f"released_{by[0]}",
                          note_args={"id": by[1], "held": round(seconds)})
        repo.insert_notifications(conn, [
            repo.notification_row(incident.id, event_id, channel, alert, now)
            for channel in channels])
        log.info("released", incident=incident.id, by=by[0], held_seconds=round(seconds))
        return by[0]

    def run_forever(self, stop: threading.Event) -> None:
        outage, wait = Outage("timers", self.settings.database_url), 0.0
        while not stop.wait(max(wait, self.settings.timers_poll_seconds)):
            wait = 0.0
            try:
                self.run_once()
            except DATABASE_DOWN as exc:  # logged once per outage
                wait = outage.failed(exc)
                continue
            except Exception:
                log.exception("timers_failed")
            else:
                outage.ok()
