"""Reads and writes on one connection; the caller owns the transaction.

Every function takes a ``Connection`` so that an incident, its event and the
notifications it causes are committed together (the outbox guarantee).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from watcher.alerts import Alert
from watcher.incidents import Event, Firing, Incident, Status
from watcher.snapshot import Snapshot
from watcher.store.database import as_utc
from watcher.store.schema import (
    assessments,
    incident_events,
    incidents,
    notifications,
    rejected_inputs,
    snapshots,
)
from watcher.validation import Rejection

# -- snapshots -------------------------------------------------------------------------


def snapshot_state(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[int, str, int]]:
    """``key -> (id, content hash, revision)`` for the keys already stored."""
    found: dict[str, tuple[int, str, int]] = {}
    for chunk in _chunks(list(keys), 500):
        rows = conn.execute(select(snapshots.c.key, snapshots.c.id, snapshots.c.content_hash,
                                   snapshots.c.revision).where(snapshots.c.key.in_(chunk)))
        found.update({r.key: (r.id, r.content_hash, r.revision) for r in rows})
    return found


def snapshot_row(snapshot: Snapshot, raw: str | None, source: str, now: datetime) -> dict[str, Any]:
    canonical = snapshot.to_canonical()
    return {
        "key": snapshot.key, "store": snapshot.store, "platform": snapshot.platform,
        "period": snapshot.period.text, "period_kind": snapshot.period.kind.value,
        "period_start": snapshot.period.start, "period_end": snapshot.period.end,
        "operator": snapshot.operator, "observed_at": snapshot.observed_at,
        "segment": canonical["segment"], "metrics": canonical["metrics"],
        "targets": canonical["targets"], "content_hash": snapshot.content_hash(),
        "source": source[:300], "raw": raw, "received_at": now, "updated_at": now,
    }


def insert_snapshots(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(snapshots), rows)


def restate_snapshots(conn: Connection, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        values = {k: v for k, v in row.items() if k not in ("key", "received_at")}
        conn.execute(update(snapshots).where(snapshots.c.key == row["key"])
                     .values(**values, revision=snapshots.c.revision + 1))


def find_snapshots(conn: Connection, *, store: str | None = None, period: str | None = None,
                   platform: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(snapshots).order_by(snapshots.c.period_start, snapshots.c.store).limit(limit)
    if store:
        query = query.where(snapshots.c.store == store)
    if period:
        query = query.where(snapshots.c.period == period)
    if platform:
        query = query.where(snapshots.c.platform == platform)
    return [dict(r._mapping) for r in conn.execute(query)]


# -- rejected inputs --------------------------------------------------------------------


def insert_rejections(conn: Connection, rejections: Iterable[Rejection], now: datetime) -> None:
    rows = [{"received_at": now, "source": r.source[:500] or "-", "location": r.location[:100],
             "field": r.field, "error": r.error, "raw": r.raw} for r in rejections]
    if rows:
        conn.execute(insert(rejected_inputs), rows)


def list_rejections(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(rejected_inputs).order_by(rejected_inputs.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


# -- incidents --------------------------------------------------------------------------


def _incident(row: Any) -> Incident:
    data = dict(row._mapping)
    for key in ("opened_at", "updated_at", "acknowledged_at", "resolved_at"):
        data[key] = as_utc(data[key])
    return Incident.model_validate(data)


def live_incidents(conn: Connection, fingerprints: Iterable[str]) -> dict[str, Incident]:
    found: dict[str, Incident] = {}
    for chunk in _chunks(sorted(set(fingerprints)), 500):
        rows = conn.execute(select(incidents).where(
            incidents.c.fingerprint.in_(chunk), incidents.c.status != Status.RESOLVED.value))
        found.update({inc.fingerprint: inc for inc in map(_incident, rows)})
    return found


def open_incident(conn: Connection, firing: Firing, now: datetime) -> int:
    values = firing.model_dump(exclude={"fingerprint"})
    values.update(fingerprint=firing.fingerprint, status=Status.OPEN.value, opened_at=now,
                  updated_at=now)
    return int(conn.execute(insert(incidents).values(**values).returning(incidents.c.id))
               .scalar_one())


def update_incident(conn: Connection, incident_id: int, changes: dict[str, Any]) -> None:
    values = {k: (v.value if isinstance(v, Status) else v) for k, v in changes.items()}
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))


def add_event(conn: Connection, incident_id: int, event: Event) -> int:
    return int(conn.execute(insert(incident_events).values(
        incident_id=incident_id, at=event.at, kind=event.kind.value, actor=event.actor,
        note=event.note, data=event.data).returning(incident_events.c.id)).scalar_one())


def get_incident(conn: Connection, incident_id: int) -> Incident | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return _incident(row) if row else None


def incident_events_of(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(incident_events).where(incident_events.c.incident_id == incident_id)
                        .order_by(incident_events.c.at, incident_events.c.id))
    events = []
    for row in rows:
        data = dict(row._mapping)
        data["at"] = as_utc(data["at"])
        events.append(data)
    return events


def list_incidents(conn: Connection, *, status: str | None = None, severity: str | None = None,
                   store: str | None = None, operator: str | None = None,
                   rule: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int = 100,
                   offset: int = 0) -> list[Incident]:
    query = select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
    for column, value in ((incidents.c.status, status), (incidents.c.severity, severity),
                          (incidents.c.store, store), (incidents.c.operator, operator),
                          (incidents.c.rule, rule)):
        if value:
            query = query.where(column == value)
    if since:
        query = query.where(incidents.c.opened_at >= since)
    if until:
        query = query.where(incidents.c.opened_at < until)
    return [_incident(r) for r in conn.execute(query.limit(limit).offset(offset))]


def count_incidents_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(incidents.c.status, func.count()).group_by(incidents.c.status))
    return {r[0]: int(r[1]) for r in rows}


# -- assessments (monthly pass/miss per operator and store) --------------------------------


def upsert_assessment(conn: Connection, *, operator: str, store: str, platform: str,
                      period: str, period_start: date, missed: bool,
                      evidence: list[dict[str, Any]], now: datetime) -> None:
    where = and_(assessments.c.operator == operator, assessments.c.store == store,
                 assessments.c.platform == platform, assessments.c.period == period)
    result = conn.execute(update(assessments).where(where).values(
        missed=missed, evidence=evidence, updated_at=now))
    if result.rowcount == 0:
        conn.execute(insert(assessments).values(
            operator=operator, store=store, platform=platform, period=period,
            period_start=period_start, missed=missed, evidence=evidence, updated_at=now))


def operator_months(conn: Connection, operator: str, first: date,
                    last: date) -> dict[str, tuple[bool, list[dict[str, Any]]]]:
    """``month -> (missed by any store, evidence of all stores)`` in [first, last]."""
    rows = conn.execute(select(assessments).where(
        assessments.c.operator == operator, assessments.c.period_start >= first,
        assessments.c.period_start <= last))
    months: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
    for row in rows:
        missed, evidence = months.get(row.period, (False, []))
        months[row.period] = (missed or bool(row.missed), evidence + list(row.evidence))
    return months


# -- outbox ------------------------------------------------------------------------------


def enqueue(conn: Connection, incident_id: int | None, event_id: int | None, channel: str,
            alert: Alert, now: datetime) -> None:
    conn.execute(insert(notifications).values(
        incident_id=incident_id, event_id=event_id, channel=channel, alert=alert.as_json(),
        status="pending", attempts=0, next_attempt_at=now, created_at=now))


def claim_due(conn: Connection, now: datetime, worker: str, lease_until: datetime,
              limit: int = 50) -> list[dict[str, Any]]:
    """Claim due notifications for ``worker`` until ``lease_until``.

    A claim whose lease ran out (its worker died mid-send) is due again.
    """
    due = and_(notifications.c.status == "pending", notifications.c.next_attempt_at <= now,
               or_(notifications.c.claimed_until.is_(None), notifications.c.claimed_until < now))
    query = select(notifications.c.id).where(due).order_by(notifications.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = [r.id for r in conn.execute(query)]
    if not ids:
        return []
    conn.execute(update(notifications).where(notifications.c.id.in_(ids), due)
                 .values(claimed_by=worker, claimed_until=lease_until))
    rows = conn.execute(select(notifications).where(notifications.c.id.in_(ids),
                                                    notifications.c.claimed_by == worker))
    return [dict(r._mapping) for r in rows]


def mark_sent(conn: Connection, notification_id: int, now: datetime) -> None:
    conn.execute(update(notifications).where(notifications.c.id == notification_id).values(
        status="sent", sent_at=now, attempts=notifications.c.attempts + 1, last_error=None,
        claimed_until=None))


def mark_failed(conn: Connection, notification_id: int, reason: str,
                next_attempt_at: datetime) -> None:
    conn.execute(update(notifications).where(notifications.c.id == notification_id).values(
        attempts=notifications.c.attempts + 1, last_error=reason,
        next_attempt_at=next_attempt_at, claimed_until=None))


def outbox_backlog(conn: Connection) -> tuple[int, datetime | None]:
    row = conn.execute(select(func.count(), func.min(notifications.c.created_at))
                       .where(notifications.c.status == "pending")).one()
    return int(row[0]), as_utc(row[1])


def channel_status(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(
        notifications.c.channel, notifications.c.status, func.count(),
        func.max(notifications.c.sent_at), func.max(notifications.c.last_error),
    ).group_by(notifications.c.channel, notifications.c.status))
    return [{"channel": r[0], "status": r[1], "count": int(r[2]), "last_sent_at": as_utc(r[3]),
             "last_error": r[4]} for r in rows]


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
