"""Requests that queue for the engine thread are ingested together.

Every ingestion (an HTTP post, a dropped file, a NATS message, a poll) runs on
the one engine thread. One transaction per request caps a daemon fed many
small posts at a few hundred a second, spent mostly on per-transaction work
(look-ups, commit). So requests that arrive while the engine thread is busy
wait in a queue, and the next turn of the thread takes all of them as one
batch (``Pipeline.ingest_many``), each with its own report. An idle daemon
adds no delay: a lone request is taken at once.

If the batch fails, each of its requests is tried alone, so a failure caused
by one request fails that request only; when the database is down, every
request gets the error: none of them was committed, and each client is told so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from watcher.pipeline import IngestReport
from watcher.validation import RawRecord, Rejection

Records = Iterable[RawRecord | Rejection]
IngestMany = Callable[[Sequence[tuple[Records, str]]], list[IngestReport]]


@dataclass
class _Request:
    records: list[RawRecord | Rejection]
    source: str
    done: Future[IngestReport] = field(default_factory=Future)


class Coalescer:
    def __init__(self, ingest_many: IngestMany, engine_thread: Executor, *,
                 max_records: int = 5000) -> None:
        self._ingest_many = ingest_many
        self._engine_thread = engine_thread
        self._max_records = max_records
        self._queue: list[_Request] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def ingest(self, records: Records, source: str) -> Future[IngestReport]:
        """Queue a request; its future holds its report once its batch is committed."""
        request = _Request(list(records), source)
        with self._lock:
            self._queue.append(request)
            if not self._scheduled:
                self._schedule()
        return request.done

    def _schedule(self) -> None:
        """Queue a turn on the engine thread (under the lock); after shutdown, the
        waiting requests fail at once rather than wait for a turn that never comes."""
        try:
            self._engine_thread.submit(self._turn)
            self._scheduled = True
        except RuntimeError as exc:  # the executor is shut down: the daemon is stopping
            waiting, self._queue, self._scheduled = self._queue, [], False
            for request in waiting:
                request.done.set_exception(exc)

    async def ingest_async(self, records: Records, source: str) -> IngestReport:
        """``ingest`` for the event loop: waits for the report without blocking it."""
        return await asyncio.wrap_future(self.ingest(records, source))

    def _take(self) -> list[_Request]:
        """The queued requests, up to about ``max_records`` records (at least one)."""
        with self._lock:
            taken, size = 0, 0
            while taken < len(self._queue) and (taken == 0 or size < self._max_records):
                size += len(self._queue[taken].records)
                taken += 1
            batch, self._queue = self._queue[:taken], self._queue[taken:]
            self._scheduled = False
            if self._queue:
                self._schedule()  # the rest after this batch
            return batch

    def _turn(self) -> None:
        batch = self._take()
        if not batch:
            return
        try:
            reports = self._ingest_many([(r.records, r.source) for r in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].done.set_exception(exc)
                return
            # Whatever failed the batch, it must fail only the request it came from:
            # each is tried alone (a database outage fails them all again, at once).
            for request in batch:
                self._alone(request)
            return
        for request, report in zip(batch, reports, strict=True):
            request.done.set_result(report)

    def _alone(self, request: _Request) -> None:
        try:
            [report] = self._ingest_many([(request.records, request.source)])
        except Exception as exc:
            request.done.set_exception(exc)
        else:
            request.done.set_result(report)
