"""The outbox dispatcher: delivers committed notifications, retries, records every attempt.

Delivery is at least once: a notification is marked sent only after its
channel said so, so a crash between the send and that commit sends it again
after restart (the only duplicate possible). A claim is a short lease
(``claim_lease_seconds``, 10 s) renewed while its sends take: a dispatcher
that dies holding one loses it within seconds, a live one never does. Each
channel is sent on its own worker so a slow or throttled channel never holds
up the others.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection

from watcher import digest
from watcher.alerts import SEVERITY_RANK, Alert, AlertKind
from watcher.channels.base import DeliveryReport
from watcher.channels.rate import Rate
from watcher.config import Settings
from watcher.digest import CRITICAL
from watcher.incidents import Event, EventKind
from watcher.limits import CLAIM_MESSAGES_PER_CHANNEL
from watcher.observability import (
    DIGESTS,
    FOLDED,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_HELD,
    NOTIFICATIONS_SENT,
    RATE_LIMITED,
)
from watcher.outage import DATABASE_DOWN, Outage
from watcher.redact import redact_text
from watcher.store import Database
from watcher.store import repository as repo
from watcher.store.database import utcnow

log = structlog.get_logger(__name__)

COMPLAIN_AFTER = 3  # attempts after which a failing channel is logged as an error


class Sender(Protocol):
    """A channel as the dispatcher uses it; one with a ``rate`` (``Channel.rate``) has
    its sends counted against it."""

    def send(self, alert: Alert) -> DeliveryReport: ...


def backoff(attempts: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter in [50 %, 100 %] of the step, capped."""
    step = min(cap, base * (2 ** max(attempts - 1, 0)))
    return float(step * (0.5 + jitter / 2))


def grouped(alerts: list[Alert]) -> Alert:
    """Several alerts of one group (same store, or same rule) as one message; its title
    and list are worded by the renderer in the channel's language (render.group_title)."""
    first = alerts[0]
    worst = max(alerts, key=lambda a: SEVERITY_RANK.get(a.severity, 0))
    return first.model_copy(update={
        "incident_id": None, "rule": "group", "severity": worst.severity,
        "title": {"en": f"{len(alerts)} new incidents"},
        "metric": None, "value": None, "threshold": None, "evidence": [], "note": None,
        "note_key": None, "note_args": {}, "items": [a.item() for a in alerts]})


Message = list[dict[str, Any]]  # outbox rows sent as one message (a group, or one row)


def messages_of(rows: list[dict[str, Any]]) -> list[Message]:
    """Rows in the order given, those of one group together (at its first row's place)."""
    batches: dict[object, Message] = {}
    for row in rows:
        batches.setdefault(row.get("group_key") or ("single", row["id"]), []).append(row)
    return list(batches.values())


class Dispatcher:
    """Claims, per channel, only what it is about to send, under a short lease that a
    renewer thread extends while the sends take; so a replica that dies holds little,
    and only for ``claim_lease_seconds``. Each channel spends a send budget that all
    replicas share (its ``rate``); when more waits than the budget allows, the waiting
    alerts are folded into digests (watcher/digest.py) instead of queueing."""

    def __init__(self, db: Database, channels: Mapping[str, Sender], settings: Settings, *,
                 clock: Callable[[], datetime] = utcnow,
                 jitter: Callable[[], float] = random.random, workers: int = 8) -> None:
        self.db = db
        self.channels = channels
        self.settings = settings
        self.clock = clock
        self.jitter = jitter
        # host and pid: an operator (or a test) can tell which process holds a claim
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send")
        self._busy: dict[str, Future[None]] = {}
        self.wake = threading.Event()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.claim_lease_seconds)

    def run_once(self) -> int:
        """Claim what each channel may send now, send it (channels in parallel), record
        outcomes; the number of notifications claimed (a digest is one)."""
        claimed = self._claim_all(skip=set())
        futures = [self._pool.submit(self._send_all, name, messages)
                   for name, messages in claimed.items()]
        for future in futures:
            future.result()
        return sum(len(m) for messages in claimed.values() for m in messages)

    def run_forever(self, stop: threading.Event) -> None:
        """Like ``run_once`` in a loop, except that a channel still sending is left to
        its worker: a slow channel holds up only itself."""
        outage = Outage("dispatcher", self.settings.database_url)
        while not stop.is_set():
            try:
                busy = {name for name, job in self._busy.items() if not job.done()}
                claimed = self._claim_all(skip=busy)
                for name, messages in claimed.items():
                    job = self._pool.submit(self._send_all, name, messages)
                    job.add_done_callback(self._finished)
                    self._busy[name] = job
            except DATABASE_DOWN as exc:  # logged once per outage; retried with backoff
                stop.wait(outage.failed(exc))
                continue
            except Exception:
                log.exception("dispatch_failed")
                claimed = {}
            else:
                outage.ok()
            if not claimed:
                self.wake.wait(self.settings.dispatch_poll_seconds)
                self.wake.clear()
        for job in list(self._busy.values()):
            job.exception()  # wait for the sends in flight (their errors are logged)
        if not outage.down:
            self.run_once()  # drain what is due before exiting
        self._pool.shutdown(wait=True)

    def _finished(self, job: Future[None]) -> None:
        error = job.exception()
        if error is not None and not isinstance(error, DATABASE_DOWN):  # the loop says those
            log.error("dispatch_failed", error=repr(error))
        self.wake.set()  # the channel may have more: look again now

    # -- claims -----------------------------------------------------------------------

    def _claim_all(self, skip: set[str]) -> dict[str, list[Message]]:
        now = self.clock()
        with self.db.engine.connect() as conn:
            names = [n for n in repo.due_channels(conn, now) if n not in skip]
        claimed: dict[str, list[Message]] = {}
        for name in names:
            with self.db.engine.begin() as conn:
                messages = self._claim_channel(conn, name, now)
            if messages:
                claimed[name] = messages
        return claimed

    def _claim_channel(self, conn: Connection, name: str, now: datetime) -> list[Message]:
        """The next messages of channel ``name``: what its rate has left, at most
        ``CLAIM_MESSAGES_PER_CHANNEL``, the most urgent first, folding into digests
        what the budget cannot carry one by one."""
        channel = self.channels.get(name)
        rate = getattr(channel, "rate", None)
        budget = CLAIM_MESSAGES_PER_CHANNEL
        repo.lock_channel(conn, name)
        if rate is None:  # a group cut at the limit goes on in the next round
            chosen = messages_of(repo.waiting(conn, name, now, limit=budget * 20))[:budget]
        else:
            chosen = self._within_rate(conn, name, rate, now)[:budget]
        rows = repo.claim(conn, [row["id"] for m in chosen for row in m], self.worker_id,
                          now + self.lease, now) if chosen else []
        if rate is not None:
            RATE_LIMITED.labels(name).set(repo.due_count(conn, name, now))  # left waiting
        return messages_of(rows)

    def _within_rate(self, conn: Connection, name: str, rate: Rate,
                     now: datetime) -> list[Message]:
        """What ``rate`` lets the channel send now: critical alerts first, with a budget
        of their own (the others may spend the rate only up to a reserve of a quarter),
        so a critical alert never waits behind the rest nor behind their digests."""
        window = repo.rate_window(conn, name, now - timedelta(seconds=rate.window_seconds),
                                  now)
        left = rate.count - window.used
        reserve = rate.count // 4 if rate.count >= 4 else 0
        if left <= 0 or not repo.due_count(conn, name, now):
            return []
        messages = messages_of(repo.waiting(  # the others only when they may go
            conn, name, now, min_priority=CRITICAL if left - reserve <= 0 else None))
        chosen = self._spend(conn, name, [m for m in messages if _priority(m) >= CRITICAL],
                             left, rate, window, now)
        others = [m for m in messages if _priority(m) < CRITICAL]
        return chosen + self._spend(conn, name, others,
                                    min(left - len(chosen), left - reserve), rate, window, now)

    def _spend(self, conn: Connection, name: str, messages: list[Message], budget: int,
               rate: Rate, window: repo.Window, now: datetime) -> list[Message]:
        """Messages one by one while they need at most half of ``budget``. Beyond that
        a storm has begun: the waiting alerts are folded into digests, spaced
        ``window / budget`` apart, so that the budget stretches over the window and
        what keeps arriving still finds room in it."""
        if budget <= 0 or not messages:
            return []
        if len(messages) <= budget // 2:
            return messages
        pace = timedelta(seconds=rate.window_seconds / budget)
        if window.claimed or (window.last_sent_at is not None
                              and now - window.last_sent_at < pace):
            return []  # the next digest, at the pace, carries these too
        return self._fold_all(conn, name, messages, now)[:budget]

    def _fold_all(self, conn: Connection, name: str, messages: list[Message],
                  now: datetime) -> list[Message]:
        """The alerts of each fold key (route, weight, news) in one digest each. A
        digest is never folded again, nor a report or a weekly digest (documents of their
        own), and a lone alert stays itself."""
        by_key: dict[str, list[dict[str, Any]]] = {}
        kept: list[Message] = []
        for message in messages:
            for row in message:
                alert = Alert.model_validate(row["alert"])
                if alert.kind in (AlertKind.DIGEST, AlertKind.REPORT, AlertKind.WEEKLY):
                    kept.append([row])
                else:
                    by_key.setdefault(digest.fold_key(self.settings, alert, name),
                                      []).append(row)
        for rows in by_key.values():
            kept.append(rows if len(rows) == 1 else [self._fold(conn, name, rows, now)])
        return sorted(kept, key=lambda m: (-_priority(m), min(int(r["id"]) for r in m)))

    def _fold(self, conn: Connection, name: str, rows: list[dict[str, Any]],
              now: datetime) -> dict[str, Any]:
        alerts = [Alert.model_validate(row["alert"]) for row in rows]
        summary = digest.digest(alerts, public_url=self.settings.public_url, now=now)
        row = repo.notification_row(None, None, name, summary, now)
        digest_id = repo.fold(conn, [r["id"] for r in rows], row)
        repo.add_events(conn, [(int(r["incident_id"]), Event(
            kind=EventKind.FOLDED, at=now, data={"channel": name, "digest": digest_id},
            note=f"carried by digest notification #{digest_id} on '{name}' "
                 f"({len(rows)} alerts in one message)"))
            for r in rows if r["incident_id"] is not None])
        FOLDED.labels(name).inc(len(rows))
        NOTIFICATIONS_HELD.labels("rate_limited").inc(len(rows))  # not sent one by one
        DIGESTS.labels(name).inc()
        log.info("alerts_folded", channel=name, digest=digest_id, alerts=len(rows))
        return {**row, "id": digest_id}

    # -- sending ------------------------------------------------------------------------

    def _send_all(self, name: str, messages: list[Message]) -> None:
        """Send ``messages`` in order while a renewer keeps their leases alive."""
        queue = list(messages)
        pending = {int(row["id"]) for message in queue for row in message}
        lost: set[int] = set()
        done = threading.Event()
        renewer = threading.Thread(target=self._renew_while, args=(pending, lost, done),
                                   name=f"lease-{name}", daemon=True)
        renewer.start()
        renewed = self.clock()
        try:
            while queue:
                # A process stalled past its lease (the renewer stalled with it) may
                # have lost its claims to another replica: check before the next send.
                if (self.clock() - renewed) > self.lease / 3:
                    renewed = self.clock()
                    lost |= self._renew(pending)
                message = [row for row in queue.pop(0) if int(row["id"]) not in lost]
                if not message:
                    continue
                alerts = [Alert.model_validate(row["alert"]) for row in message]
                report = self._send(name, alerts[0] if len(alerts) == 1 else grouped(alerts))
                for row in message:
                    pending.discard(int(row["id"]))  # recorded now: no longer renewed
                    self._record(name, row, report)
        finally:
            done.set()
            renewer.join()

    def _renew_while(self, pending: set[int], lost: set[int], done: threading.Event) -> None:
        """Every third of the lease until ``done``: extend the lease on what is still to
        be sent. One UPDATE per channel at a time, whatever one send takes."""
        while not done.wait(self.settings.claim_lease_seconds / 3):
            try:
                lost |= self._renew(pending)
            except Exception:  # the database is away: the next round tries again
                log.warning("lease_renewal_failed", notifications=len(pending),
                            exc_info=True)

    def _renew(self, pending: set[int]) -> set[int]:
        """Renew the lease on the ``pending`` ids; those no longer ours. A claim lost
        meanwhile (this process stalled past its lease) is left to the replica that took
        it over; one sent meanwhile (it left ``pending``) is not lost."""
        ids = set(pending)
        if not ids:
            return set()
        with self.db.engine.begin() as conn:
            mine = repo.renew_claims(conn, sorted(ids), self.worker_id,
                                     self.clock() + self.lease)
        lost = (ids - mine) & pending
        if lost:
            log.warning("claims_lost", notifications=sorted(lost), worker=self.worker_id)
        return lost

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
            # A digest's attempt is on the timeline of every incident it carries.
            told = ([int(row["incident_id"])] if row["incident_id"] is not None else
                    [int(r["incident_id"]) for r in repo.carried_by(conn, int(row["id"]))
                     if r["incident_id"] is not None])
            via = {} if row["incident_id"] is not None else {"digest": int(row["id"])}
            if report.ok:
                repo.mark_sent(conn, row["id"], now)
                NOTIFICATIONS_SENT.labels(name).inc()
                event = Event(kind=EventKind.NOTIFIED, at=now, data={
                    "channel": name, "attempt": attempt, "outcomes": outcomes, **via})
                log.info("notified", channel=name, incident=row["incident_id"], attempt=attempt,
                         **via)
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
                                    "retry_at": retry_at.isoformat(), **via})
                emit = log.error if attempt >= COMPLAIN_AFTER else log.warning
                emit("delivery_failed", channel=name, incident=row["incident_id"],
                     attempt=attempt, reason=reason, retry_in_seconds=round(delay, 1), **via)
            repo.add_events(conn, [(incident_id, event) for incident_id in told])


def rate_status(conn: Connection, name: str, rate: Rate | None,
                now: datetime) -> dict[str, Any]:
    """A channel's send rate as every replica sees it: the rate, the messages sent or
    claimed within its window, and the notifications due but waiting for it (its
    budget spent, or the next digest not due yet at the storm's pace)."""
    if rate is None:
        return {"rate": "none", "in_window": None, "rate_limited": 0}
    since = now - timedelta(seconds=rate.window_seconds)
    return {"rate": str(rate), "in_window": repo.rate_window(conn, name, since, now).used,
            "rate_limited": repo.due_count(conn, name, now)}


def _priority(message: Message) -> int:
    return max(int(row.get("priority") or 0) for row in message)
