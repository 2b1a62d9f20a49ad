"""The timer loop: applies due escalations and reminders to open incidents, and opens
the ``for:`` runs whose duration passed with no data to end them.

Each action is one transaction: the timeline event and the notifications it
causes are committed together, and the next pass reads what was done from
the timeline, so a restart neither repeats nor skips a step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog
from sqlalchemy import text

from watcher.alerts import AlertKind
from watcher.apply import alert_for, labels_of, promote, silenced_event
from watcher.config import Route, Settings, policy
from watcher.escalation import Escalate, Progress, Remind, due
from watcher.incidents import Event, EventKind, Incident
from watcher.silences import silenced_by
from watcher.store import Database
from watcher.store import repository as repo
from watcher.store.database import as_utc, utcnow

log = structlog.get_logger(__name__)


def progress_of(events: list[dict[str, object]]) -> Progress:
    steps = frozenset(int(e["data"]["step"]) for e in events  # type: ignore[index]
                      if e["kind"] == EventKind.ESCALATED.value)
    reminders = [as_utc(e["at"]) for e in events  # type: ignore[arg-type]
                 if e["kind"] == EventKind.REMINDED.value]
    return Progress(steps, max((r for r in reminders if r is not None), default=None))


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
                 wake: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.wake = wake

    def run_once(self) -> int:
        with leader(self.db, TIMERS_LOCK) as elected:
            if not elected:
                return 0
            with self.db.engine.begin() as conn:
                applied = promote(conn, self.settings, self.clock())
            if applied:
                self.wake()
            if any(r.escalate or r.repeat_interval for r in self.settings.routes):
                applied += self._pass()
            return applied

    def _pass(self) -> int:
        now = self.clock()
        with self.db.engine.connect() as conn:
            candidates = repo.list_incidents(conn, status="open", limit=100_000)
        applied = 0
        for incident in candidates:
            route = policy(self.settings, labels_of(incident))
            if route is not None:
                applied += self._apply(incident, route, now)
        if applied:
            self.wake()
        return applied

    def _apply(self, incident: Incident, route: Route, now: datetime) -> int:
        with self.db.engine.begin() as conn:
            current = repo.get_incident(conn, incident.id)
            if current is None:
                return 0
            actions = due(current, route, progress_of(repo.incident_events_of(conn, incident.id)),
                          now)
            for action in actions:
                if isinstance(action, Escalate):
                    kind, alert_kind = EventKind.ESCALATED, AlertKind.ESCALATED
                    data: dict[str, object] = {"step": action.step,
                                               "channels": list(action.channels)}
                    note = f"not acknowledged: escalation step {action.step + 1}"
                else:
                    assert isinstance(action, Remind)
                    kind, alert_kind = EventKind.REMINDED, AlertKind.REMINDER
                    data = {"channels": list(action.channels)}
                    note = "still open: reminder"
                event_id = repo.add_event(conn, incident.id, Event(kind=kind, at=now, note=note,
                                                                   data=data))
                silence = silenced_by(repo.list_silences(conn, active_at=now),
                                      labels_of(current), now)
                if silence is not None:
                    repo.add_event(conn, incident.id, silenced_event(silence, alert_kind, now))
                    continue
                alert = alert_for(current, alert_kind, now, self.settings.public_url, note)
                repo.insert_notifications(conn, [
                    repo.notification_row(incident.id, event_id, channel, alert, now)
                    for channel in action.channels])
                log.info(kind.value, incident=incident.id, channels=list(action.channels))
        return len(actions)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.timers_poll_seconds):
            try:
                self.run_once()
            except Exception:
                log.exception("timers_failed")
