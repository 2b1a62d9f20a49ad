"""NATS JetStream source: snapshots published on ``<prefix>.<platform>.<store>``.

Replicas share one durable pull consumer, so each message goes to one replica
at a time; the stream is created when missing. A message is acknowledged only
after the pipeline committed what it holds, through the same engine thread
as the HTTP API, so a replica killed between receiving and committing leaves
the message unacknowledged and JetStream delivers it again (to any replica)
once ``ack_wait`` has passed. Work that is still going is kept alive with
in-progress acks, so a slow batch is not handed to a second replica.

What can go wrong, and what happens:

- a record is invalid: the pipeline puts it in the rejected log; the message is
  acknowledged (redelivering it would only fail again);
- processing raises (database down, a bug): the message is nak'd and comes back
  after ``retry_delay``; a failing batch is retried message by message, so one
  poison message cannot take its neighbours down with it;
- it failed ``max_deliver`` times, or was delivered that often without ever
  finishing (the replica died each time): its failure is written to the
  rejected log with the reason, then the message is terminated. Until that
  write succeeds the message stays in the stream: nothing is dropped unrecorded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from watcher.bus.messages import Message, records_of
from watcher.config import NatsSettings
from watcher.pipeline import IngestReport
from watcher.redact import redact_text
from watcher.validation import RawRecord, Rejection

log = structlog.get_logger(__name__)
T = TypeVar("T")

Ingest = Callable[[list[RawRecord | Rejection], str], IngestReport]
FETCH_SECONDS = 1.0  # how long a fetch waits for messages: also the stop latency
RECONNECT_SECONDS = 2.0


def message_of(msg: Msg) -> Message:
    meta = msg.metadata
    return Message(subject=msg.subject, data=msg.data, headers=dict(msg.headers or {}),
                   sequence=meta.sequence.stream, published_at=meta.timestamp,
                   deliveries=meta.num_delivered)


def reason_of(exc: BaseException) -> str:
    """One line: database errors carry the statement and its parameters below it."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return redact_text(f"{type(exc).__name__}: {first}"[:500])


class NatsSource:
    def __init__(self, settings: NatsSettings, ingest: Ingest, *, max_bytes: int) -> None:
        self.settings = settings
        self.ingest = ingest
        self.max_bytes = max_bytes
        self.prefix = settings.subject.removesuffix(".>")
        self.source = f"nats:{settings.stream}"

    def run_forever(self, stop: threading.Event) -> None:
        asyncio.run(self.run(stop))

    async def run(self, stop: threading.Event) -> None:
        """Consume until ``stop``; a lost server or a refused setup is retried."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except Exception as exc:
                log.error("nats_unavailable", url=self.settings.url, error=reason_of(exc),
                          retry_in_seconds=RECONNECT_SECONDS)
                await _sleep_unless(stop, RECONNECT_SECONDS)

    async def _session(self, stop: threading.Event) -> None:
        # The client keeps reconnecting by itself (also when the first connect fails),
        # so only a stop ends the wait.
        connecting = asyncio.ensure_future(nats.connect(
            self.settings.url, name="kpi-watch", connect_timeout=5, max_reconnect_attempts=-1,
            error_cb=_on_error, disconnected_cb=_on_disconnect, reconnected_cb=_on_reconnect))
        while not connecting.done():
            if stop.is_set():
                connecting.cancel()
                return
            await asyncio.wait({connecting}, timeout=0.2)
        nc = connecting.result()
        try:
            js = nc.jetstream()
            await self.prepare(js)
            sub = await js.pull_subscribe_bind(durable=self.settings.durable,
                                               stream=self.settings.stream)
            log.info("nats_consuming", stream=self.settings.stream,
                     subject=self.settings.subject, durable=self.settings.durable)
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.settings.batch, timeout=FETCH_SECONDS)
                except nats.errors.TimeoutError:
                    continue
                await self.handle(msgs)
        finally:
            await nc.close()

    async def prepare(self, js: JetStreamContext) -> None:
        """The stream and the durable consumer, created when missing (idempotent, so
        replicas starting together may all try)."""
        s = self.settings
        try:
            await js.stream_info(s.stream)
        except NotFoundError:
            try:
                await js.add_stream(name=s.stream, subjects=[s.subject])
                log.info("nats_stream_created", stream=s.stream, subject=s.subject)
            except BadRequestError:
                await js.stream_info(s.stream)  # another replica won; it must exist now
        config = ConsumerConfig(
            name=s.durable, durable_name=s.durable, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL, ack_wait=s.ack_wait, filter_subject=s.subject,
            max_deliver=-1)  # counted here, so that nothing is dropped unrecorded
        try:
            await js.add_consumer(s.stream, config)
        except BadRequestError as exc:
            log.warning("nats_consumer_kept", durable=s.durable, error=reason_of(exc),
                        message="the consumer exists with other settings; using it as is")

    async def handle(self, msgs: list[Msg]) -> None:
        """Commit what the messages hold, then acknowledge them."""
        fresh = []
        for msg in msgs:
            deliveries = msg.metadata.num_delivered
            if deliveries > self.settings.max_deliver:
                await self._give_up(msg, f"delivered {deliveries} times, more than "
                                         f"max_deliver ({self.settings.max_deliver}), without "
                                         "being processed: the replica stopped each time, or "
                                         "the rejected log could not be written")
            else:
                fresh.append(msg)
        if not fresh:
            return
        error = await self._process(fresh)
        if error is None:
            for msg in fresh:
                await msg.ack()
            return
        if len(fresh) == 1:
            await self._failed(fresh[0], error)
            return
        log.warning("nats_batch_failed", messages=len(fresh), error=error,
                    message="retrying message by message")
        for msg in fresh:
            error = await self._process([msg])
            if error is None:
                await msg.ack()
            else:
                await self._failed(msg, error)

    async def _process(self, msgs: list[Msg]) -> str | None:
        """None once committed; otherwise why it failed."""
        try:
            records = [record for msg in msgs
                       for record in records_of(message_of(msg), self.prefix,
                                                max_bytes=self.max_bytes)]
            await self._working(msgs, asyncio.to_thread(self.ingest, records, self.source))
        except Exception as exc:
            return reason_of(exc)
        return None

    async def _working(self, msgs: list[Msg], work: Awaitable[T]) -> T:
        """Await ``work``, telling JetStream the messages are in progress meanwhile."""
        task = asyncio.ensure_future(work)
        while True:
            done, _pending = await asyncio.wait({task}, timeout=self.settings.ack_wait / 3)
            if done:
                return task.result()
            for msg in msgs:
                await msg.in_progress()

    async def _failed(self, msg: Msg, error: str) -> None:
        deliveries = msg.metadata.num_delivered
        if deliveries >= self.settings.max_deliver:
            await self._give_up(msg, f"failed {deliveries} deliveries; last error: {error}")
            return
        log.warning("nats_message_failed", sequence=msg.metadata.sequence.stream,
                    delivery=deliveries, error=error,
                    retry_in_seconds=self.settings.retry_delay)
        await msg.nak(delay=self.settings.retry_delay)

    async def _give_up(self, msg: Msg, reason: str) -> None:
        """Into the rejected log, then out of the stream; if the log cannot be written
        either, the message waits in the stream for the next try."""
        message = message_of(msg)
        rejection = Rejection(self.source, message.place, None, reason, message.text())
        try:
            await asyncio.to_thread(self.ingest, [rejection], self.source)
        except Exception as exc:
            log.error("nats_reject_failed", sequence=message.sequence, error=reason_of(exc),
                      retry_in_seconds=self.settings.retry_delay)
            await msg.nak(delay=self.settings.retry_delay)
            return
        log.error("nats_message_rejected", sequence=message.sequence, subject=message.subject,
                  reason=reason)
        await msg.term()


async def _sleep_unless(stop: threading.Event, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)


async def _on_error(exc: Exception) -> None:
    log.warning("nats_error", error=reason_of(exc))


async def _on_disconnect() -> None:
    log.warning("nats_disconnected")


async def _on_reconnect() -> None:
    log.info("nats_reconnected")
