"""Noise control in the store: pending firings (``for:``) and withdrawing a held
"resolved" notification when its incident re-opens within ``reopen_hold``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from watcher.holding import Pending
from watcher.incidents import Firing
from watcher.store.database import as_utc
from watcher.store.schema import incident_events, incidents, notifications, pending_firings


def _pending(row: Any) -> Pending:
    data = dict(row._mapping)
    data["since"] = as_utc(data["since"])
    data["due_at"] = as_utc(data["due_at"])
    data["firing"] = Firing.model_validate(data["firing"])
    return Pending.model_validate(data)


def of_subjects(conn: Connection, subjects: Iterable[str]) -> dict[str, Pending]:
    chosen = sorted(set(subjects))
    if not chosen:
        return {}
    found: dict[str, Pending] = {}
    for start in range(0, len(chosen), 500):
        rows = conn.execute(select(pending_firings).where(
            pending_firings.c.subject.in_(chosen[start:start + 500])))
        found.update({p.fingerprint: p for p in map(_pending, rows)})
    return found


def due(conn: Connection, now: datetime) -> list[Pending]:
    """Pending firings whose duration has passed with no data to end the run."""
    rows = conn.execute(select(pending_firings).where(
        pending_firings.c.due_at.is_not(None), pending_firings.c.due_at <= now)
        .order_by(pending_firings.c.due_at))
    return list(map(_pending, rows))


def replace(conn: Connection, kept: dict[str, Pending], dropped: Iterable[str]) -> None:
    """Write the batch's runs: ``kept`` (new or extended) and ``dropped`` (ended or fired)."""
    gone = sorted(set(dropped) | set(kept))
    for start in range(0, len(gone), 500):
        conn.execute(delete(pending_firings).where(
            pending_firings.c.fingerprint.in_(gone[start:start + 500])))
    if kept:
        conn.execute(insert(pending_firings), [
            {**p.model_dump(exclude={"firing"}), "firing": p.firing.model_dump(mode="json")}
            for p in kept.values()])


def withdraw_resolved(conn: Connection, incident_id: int,
                      now: datetime) -> tuple[list[str], int]:
    """The incident re-opened: its "resolved" notifications still held back (not yet
    due, never tried) are withdrawn. Returns the channels that were told (or are being
    told) it resolved and have not heard since that it is back (they must hear it), and
    how many notifications were withdrawn."""
    rows = conn.execute(select(notifications.c.id, notifications.c.channel,
                               notifications.c.status, notifications.c.attempts,
                               notifications.c.next_attempt_at, notifications.c.alert)
                        .where(notifications.c.incident_id == incident_id)
                        .order_by(notifications.c.id)).all()
    withdrawn: list[int] = []
    last: dict[str, str] = {}
    for row in rows:
        kind = str((row.alert or {}).get("kind"))
        if kind not in ("opened", "resolved"):
            continue
        due_at = as_utc(row.next_attempt_at)
        if (kind == "resolved" and row.status == "pending" and row.attempts == 0
                and due_at is not None and due_at > now):
            withdrawn.append(int(row.id))
            continue
        last[str(row.channel)] = kind
    if withdrawn:
        conn.execute(delete(notifications).where(notifications.c.id.in_(withdrawn)))
    return sorted(channel for channel, kind in last.items() if kind == "resolved"), \
        len(withdrawn)


HOLDS = ("silenced", "inhibited")


def held_incident_ids(conn: Connection) -> list[int]:
    """Live incidents that a silence or an inhibition holds, by their timeline: a hold
    event after the last ``released`` one. The timer loop checks whether what held
    them has ended. Starts from the live incidents (few) and reads their events by
    incident id (indexed), never the whole event table."""
    def last(kinds: tuple[str, ...]) -> Any:
        return (select(func.max(incident_events.c.id))
                .where(incident_events.c.incident_id == incidents.c.id,
                       incident_events.c.kind.in_(kinds)).scalar_subquery())

    rows = conn.execute(select(incidents.c.id).where(
        incidents.c.status != "resolved",
        last(HOLDS) > func.coalesce(last(("released",)), 0)).order_by(incidents.c.id))
    return [int(r.id) for r in rows]
