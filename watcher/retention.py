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
from sqlalchemy import Delete, Update, delete, select, update
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
    with leader(db, RETENTION_LOCK) as elected:
        if not elected:
            return None
        return Pruned(
            sent_notifications=_sent_notifications(db, now, policy.sent_notifications),
            rejected_inputs=_rejected_inputs(db, now, policy.rejected_inputs),
            raw_payloads=_raw_payloads(db, now, policy.raw_payloads),
        )


def _sent_notifications(db: Database, now: datetime, keep: float | None) -> int:
    if keep is None:
        return 0
    cutoff = now - timedelta(seconds=keep)
    ids = (select(notifications.c.id)
           .where(notifications.c.status == "sent", notifications.c.sent_at < cutoff)
           .limit(CHUNK).scalar_subquery())
    return _in_chunks(db, delete(notifications).where(notifications.c.id.in_(ids)))


def _rejected_inputs(db: Database, now: datetime, keep: float | None) -> int:
    if keep is None:
        return 0
    cutoff = now - timedelta(seconds=keep)
    ids = (select(rejected_inputs.c.id).where(rejected_inputs.c.received_at < cutoff)
           .limit(CHUNK).scalar_subquery())
    return _in_chunks(db, delete(rejected_inputs).where(rejected_inputs.c.id.in_(ids)))


def _raw_payloads(db: Database, now: datetime, keep: float | None) -> int:
    if keep is None:
        return 0
    cutoff = now - timedelta(seconds=keep)
    ids = (select(snapshots.c.id)
           .where(snapshots.c.raw.is_not(None), snapshots.c.updated_at < cutoff)
           .limit(CHUNK).scalar_subquery())
    return _in_chunks(db, update(snapshots).where(snapshots.c.id.in_(ids)).values(raw=None))


def _in_chunks(db: Database, statement: Delete | Update) -> int:
    """Run ``statement`` (which touches at most CHUNK rows) until a pass touches fewer."""
    total = 0
    while True:
        with db.engine.begin() as conn:
            count = conn.execute(statement).rowcount
        total += count
        if count < CHUNK:
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
