"""Pruning what is finished: delivered notifications, old rejections, old raw payloads.

A daemon that runs for years must not grow without bound where nothing is
gained. Delivered outbox rows are repeated on each incident's timeline (a
``notified`` event); the rejected log is for fixing inputs, weeks after the
fact at most; the text a snapshot arrived as is for audits, its values stay.
Work still to do (a notification not yet delivered) never expires.

Deletes go in chunks, each its own short transaction, so that ingestion
(SQLite has one writer) waits for one chunk at most. On PostgreSQL one
replica prunes at a time, under an advisory lock as the timers are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, Delete, Table, Update, delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from watcher.config import RetentionSettings
from watcher.store import Database
from watcher.store.database import utcnow
from watcher.store.schema import notifications, rejected_inputs, snapshots
from watcher.timers import leader

log = structlog.get_logger(__name__)

CHUNK = 5000
RETENTION_LOCK = 0x6B7077_02  # "kpw" + 2: the advisory lock id of the pruning pass


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows one pass removed (raw payloads: cleared)."""

    sent_notifications: int = 0
    rejected_inputs: int = 0
    raw_payloads: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def prune(db: Database, policy: RetentionSettings, now: datetime) -> Pruned | None:
    """One pass of ``policy`` as of ``now``; None when another process holds the pass."""
    def before(keep: float) -> datetime:
        return now - timedelta(seconds=keep)

    with leader(db, RETENTION_LOCK) as elected:
        if not elected:
            return None
        sent, rejected, raw = (policy.sent_notifications, policy.rejected_inputs,
                               policy.raw_payloads)
        return Pruned(
            sent_notifications=0 if sent is None else _in_chunks(
                db, notifications, delete(notifications),
                notifications.c.status.in_(("sent", "folded")),  # folded: its digest sent
                notifications.c.sent_at < before(sent)),
            rejected_inputs=0 if rejected is None else _in_chunks(
                db, rejected_inputs, delete(rejected_inputs),
                rejected_inputs.c.received_at < before(rejected)),
            raw_payloads=0 if raw is None else _in_chunks(
                db, snapshots, update(snapshots).values(raw=None),
                snapshots.c.raw.is_not(None), snapshots.c.updated_at < before(raw)),
        )


def _in_chunks(db: Database, table: Table, change: Delete | Update,
               *old: ColumnElement[bool]) -> int:
    """Apply ``change`` to the rows that are ``old``, CHUNK rows per transaction."""
    chunk = CHUNK
    ids = select(table.c.id).where(*old).limit(chunk).scalar_subquery()
    statement = change.where(table.c.id.in_(ids))
    total = 0
    while True:
        with db.engine.begin() as conn:
            count = conn.execute(statement).rowcount
        total += count
        if count < chunk:
            return total


class Retention:
    """The daemon's pruning worker: a pass at start, then every ``policy.every``."""

    def __init__(self, db: Database, policy: RetentionSettings, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    def run_once(self) -> Pruned:
        pruned = prune(self.db, self.policy, self.clock()) or Pruned()
        if any(pruned.as_dict().values()):
            log.info("pruned", **pruned.as_dict())
        return pruned

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except SQLAlchemyError as exc:  # the database is away: the next pass tries again
                log.error("prune_failed", error=type(exc).__name__, detail=str(exc)[:300])
            if stop.wait(self.policy.every):
                return
