"""What a person does to an incident (acknowledge, resolve, note), for the CLI and the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from watcher import incidents as inc
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
        *, now: datetime | None = None) -> Incident:
    """Apply ``kind`` to the incident; raises NotFound or InvalidTransition."""
    with db.engine.begin() as conn:
        incident = repo.get_incident(conn, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        update = _TRANSITIONS[kind](incident, by, note, now or utcnow())
        repo.update_incident(conn, incident_id, update.changes)
        repo.add_event(conn, incident_id, update.event)
        return incident.model_copy(update=update.changes)
