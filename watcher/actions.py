"""What a person does to an incident (acknowledge, resolve, note), for the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection

from watcher import incidents as inc
from watcher.alerts import AlertKind
from watcher.apply import alert_for
from watcher.errors import NotFound
from watcher.incidents import Incident
from watcher.store import Database
from watcher.store import repository as repo
from watcher.store.database import utcnow

ActionKind = Literal["ack", "resolve", "note"]

_TRANSITIONS: dict[str, Callable[[Incident, str, str | None, datetime], inc.Update]] = {
    "ack": inc.acknowledge,
    "resolve": inc.resolve,
    "note": lambda i, by, note, now: inc.add_note(i, by, note or "", now),
}


def act(db: Database, incident_id: int, kind: ActionKind, by: str, note: str | None,
        *, now: datetime | None = None, public_url: str | None = None) -> Incident:
    """Apply ``kind`` to the incident; raises NotFound or InvalidTransition.

    A person's resolution is news to whoever was told of the incident: the channels
    that were notified get a resolved message, in the same transaction (the outbox)."""
    now = now or utcnow()
    with db.engine.begin() as conn:
        incident = repo.get_incident(conn, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        update = _TRANSITIONS[kind](incident, by, note, now)
        repo.update_incident(conn, incident_id, update.changes)
        event_id = repo.add_event(conn, incident_id, update.event)
        changed = incident.model_copy(update=update.changes)
        if kind == "resolve":
            tell_resolved(conn, changed, event_id, by, now, public_url)
        return changed


def tell_resolved(conn: Connection, incident: Incident, event_id: int, by: str,
                  now: datetime, public_url: str | None) -> None:
    """Queue a resolved message, resolved by ``by``, to the channels told of ``incident``."""
    told = repo.channels_told(conn, [incident.id]).get(incident.id, [])
    alert = alert_for(incident, AlertKind.RESOLVED, now, public_url, f"resolved by {by}",
                      note_key="resolved_by", note_args={"by": by})
    repo.insert_notifications(conn, [repo.notification_row(incident.id, event_id, channel,
                                                           alert, now)
                                     for channel in sorted(set(told))])
