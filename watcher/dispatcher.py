"""The outbox dispatcher: delivers committed notifications, retries, records every attempt.

Delivery is at least once: a notification is marked sent only after its
channel said so, so a crash between the send and that commit sends it again
after restart (the only duplicate possible). A claim is a lease: a dispatcher
that dies holding one loses it when the lease runs out. Each channel is sent
on its own worker so a slow or throttled channel never holds up the others.
"""

from __future__ import annotations

import random
import socket
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from watcher.alerts import Alert
from watcher.channels.base import DeliveryReport
from watcher.config import Settings
from watcher.incidents import Event, EventKind
from watcher.observability import NOTIFICATIONS_FAILED, NOTIFICATIONS_SENT
from watcher.outage import DATABASE_DOWN, Outage
from watcher.redact import redact_text
from watcher.store import Database
from watcher.store import repository as repo
from watcher.store.database import utcnow

log = structlog.get_logger(__name__)

COMPLAIN_AFTER = 3  # attempts after which a failing channel is logged as an error


class Sender(Protocol):
    def send(self, alert: Alert) -> DeliveryReport: ...


def backoff(attempts: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter in [50 %, 100 %] of the step, capped."""
    step = min(cap, base * (2 ** max(attempts - 1, 0)))
    return float(step * (0.5 + jitter / 2))


_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def grouped(alerts: list[Alert]) -> Alert:
    """Several alerts of one group (same store, or same rule) as one message; its title
    and list are worded by the renderer in the channel's language (render.group_title)."""
    first = alerts[0]
    worst = max(alerts, key=lambda a: _RANK.get(a.severity, 0))
    return first.model_copy(update={
        "incident_id": None, "rule": "group", "severity": worst.severity,
        "title": {"en": f"{len(alerts)} new incidents"},
        "metric": None, "value": None, "threshold": None, "evidence": [], "note": None,
        "note_key": None, "note_args": {}, "items": [a.item() for a in alerts]})


class Dispatcher:
    def __init__(self, db: Database, channels: Mapping[str, Sender], settings: Settings, *,
                 clock: Callable[[], datetime] = utcnow,
                 jitter: Callable[[], float] = random.random, workers: int = 8) -> None:
        self.db = db
        self.channels = channels
        self.settings = settings
        self.clock = clock
        self.jitter = jitter
        self.worker_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send")
        self.wake = threading.Event()

    def run_once(self) -> int:
        """Claim what is due, send it per channel in parallel, record outcomes."""
        now = self.clock()
        with self.db.engine.begin() as conn:
            claimed = repo.claim_due(conn, now, self.worker_id, now + timedelta(
                seconds=self.settings.claim_lease_seconds))
        by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in claimed:
            by_channel[row["channel"]].append(row)
        futures = [self._pool.submit(self._send_all, name, rows, now)
                   for name, rows in by_channel.items()]
        for future in futures:
            future.result()
        return len(claimed)

    def run_forever(self, stop: threading.Event) -> None:
        outage = Outage("dispatcher", self.settings.database_url)
        while not stop.is_set():
            try:
                sent = self.run_once()
            except DATABASE_DOWN as exc:  # logged once per outage; retried with backoff
                stop.wait(outage.failed(exc))
                continue
            except Exception:
                log.exception("dispatch_failed")
                sent = 0
            else:
                outage.ok()
            if not sent:
                self.wake.wait(self.settings.dispatch_poll_seconds)
                self.wake.clear()
        if not outage.down:
            self.run_once()  # drain what is due before exiting
        self._pool.shutdown(wait=True)

    def _send_all(self, name: str, rows: list[dict[str, Any]], claimed_at: datetime) -> None:
        batches: dict[object, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            batches[row.get("group_key") or ("single", row["id"])].append(row)
        queue = list(batches.values())
        renewed, renew_after = claimed_at, self.settings.claim_lease_seconds / 3
        while queue:
            # Once a third of the lease has gone, renew it on all this channel's queue
            # before the next send, so a slow channel's backlog is not sent again by
            # another replica meanwhile (a fresh lease needs no write).
            if (self.clock() - renewed).total_seconds() > renew_after:
                renewed = self.clock()
                mine = self._still_mine([row for batch in queue for row in batch])
                queue = [kept for kept in ([r for r in b if r["id"] in mine] for b in queue)
                         if kept]
                if not queue:
                    return
            batch = queue.pop(0)
            alerts = [Alert.model_validate(row["alert"]) for row in batch]
            report = self._send(name, alerts[0] if len(alerts) == 1 else grouped(alerts))
            for row in batch:
                self._record(name, row, report)

    def _still_mine(self, rows: list[dict[str, Any]]) -> set[int]:
        """Renew the lease on ``rows``; the ids still ours. A claim lost meanwhile (this
        process stalled past its lease) is left to the replica that took it over."""
        lease = self.clock() + timedelta(seconds=self.settings.claim_lease_seconds)
        with self.db.engine.begin() as conn:
            mine = repo.renew_claims(conn, [row["id"] for row in rows], self.worker_id, lease)
        lost = [row["id"] for row in rows if row["id"] not in mine]
        if lost:
            log.warning("claims_lost", notifications=lost, worker=self.worker_id)
        return mine

    def _send(self, name: str, alert: Alert) -> DeliveryReport:
        channel = self.channels.get(name)
        if channel is None:
            return DeliveryReport(ok=False, outcomes=[], retryable=True,
                                  reason=f"channel '{name}' is not configured")
        try:
            return channel.send(alert)
        except Exception as exc:  # a channel bug must not kill the dispatcher
            log.exception("channel_crashed", channel=name)
            return DeliveryReport(ok=False, outcomes=[], retryable=True,
                                  reason=f"channel error: {exc}")

    def _record(self, name: str, row: dict[str, Any], report: DeliveryReport) -> None:
        now = self.clock()
        attempt = int(row["attempts"]) + 1
        outcomes = [o.as_dict() for o in report.outcomes]
        with self.db.engine.begin() as conn:
            if report.ok:
                repo.mark_sent(conn, row["id"], now)
                NOTIFICATIONS_SENT.labels(name).inc()
                event = Event(kind=EventKind.NOTIFIED, at=now,
                              data={"channel": name, "attempt": attempt, "outcomes": outcomes})
                log.info("notified", channel=name, incident=row["incident_id"], attempt=attempt)
            else:
                reason = redact_text(report.summary())
                # A refusal that will not pass by itself (bad key, rejected content)
                # waits the longest interval: kept and visible, retried after a fix.
                step = attempt if report.retryable else 64
                delay = backoff(step, self.settings.retry_base_seconds,
                                self.settings.retry_max_seconds, self.jitter())
                retry_at = now + timedelta(seconds=delay)
                repo.mark_failed(conn, row["id"], reason, retry_at)
                NOTIFICATIONS_FAILED.labels(name).inc()
                event = Event(kind=EventKind.DELIVERY_FAILED, at=now, note=reason,
                              data={"channel": name, "attempt": attempt, "outcomes": outcomes,
                                    "retry_at": retry_at.isoformat()})
                emit = log.error if attempt >= COMPLAIN_AFTER else log.warning
                emit("delivery_failed", channel=name, incident=row["incident_id"],
                     attempt=attempt, reason=reason, retry_in_seconds=round(delay, 1))
            if row["incident_id"] is not None:
                repo.add_event(conn, row["incident_id"], event)
