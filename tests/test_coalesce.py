"""Requests that queue for the engine thread are committed together, each with its report."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import jsonl, snapshot
from watcher.daemon.coalesce import Coalescer
from watcher.pipeline import IngestReport, Pipeline
from watcher.validation import read_records


def request(*records: dict[str, Any]) -> list[Any]:
    return list(read_records(jsonl(*records)))


class TestPipelineIngestMany:
    def test_each_request_gets_its_own_counts_and_incidents(self, pipeline: Pipeline):
        quiet = request(snapshot(store="a", penalty_count=0))
        breach = request(snapshot(store="b", penalty_count=2),
                         snapshot(store="c", dispute_rate=3.5))  # rejected: not a fraction
        [first, second] = pipeline.ingest_many([(quiet, "http"), (breach, "drop:x.jsonl")])
        assert (first.accepted, first.opened, len(first.rejected)) == (1, 0, 0)
        assert (second.accepted, second.opened, len(second.rejected)) == (1, 1, 1)
        assert second.rejected[0].source == "drop:x.jsonl"

    def test_a_later_request_restating_an_earlier_one_wins_as_if_they_came_in_turn(
            self, pipeline: Pipeline):
        before = request(snapshot(store="a", penalty_count=1))
        after = request(snapshot(store="a", penalty_count=0))
        pipeline.ingest_many([(before, "http"), (after, "http")])
        again = pipeline.ingest(request(snapshot(store="a", penalty_count=0)), "http")
        assert again.unchanged == 1  # what is stored is the later statement

    def test_a_resolution_is_reported_to_the_request_that_caused_it(self, pipeline: Pipeline):
        pipeline.ingest(request(snapshot(store="a", period="2026-09", dispute_rate=0.05)),
                        "http")
        other = request(snapshot(store="b", penalty_count=0))
        recovery = request(snapshot(store="a", period="2026-10", dispute_rate=0.01))
        [first, second] = pipeline.ingest_many([(other, "http"), (recovery, "http")])
        assert (first.resolved, second.resolved) == (0, 1)


class TestCoalescer:
    def test_requests_queued_behind_a_busy_engine_thread_share_one_turn(self):
        engine_thread = ThreadPoolExecutor(max_workers=1)
        release = threading.Event()
        engine_thread.submit(release.wait)  # the engine thread is busy
        turns: list[list[str]] = []

        def ingest_many(requests: Any) -> list[IngestReport]:
            turns.append([source for _, source in requests])
            return [IngestReport(accepted=len(list(records))) for records, _ in requests]

        coalescer = Coalescer(ingest_many, engine_thread)
        futures = [coalescer.ingest([], f"req-{n}") for n in range(5)]
        release.set()
        assert [f.result(timeout=5).accepted for f in futures] == [0] * 5
        assert turns == [[f"req-{n}" for n in range(5)]]

    def test_a_failed_turn_fails_every_request_in_it(self):
        engine_thread = ThreadPoolExecutor(max_workers=1)

        def ingest_many(requests: Any) -> list[IngestReport]:
            raise ConnectionError("database is down")

        future = Coalescer(ingest_many, engine_thread).ingest([], "http")
        with pytest.raises(ConnectionError):
            future.result(timeout=5)

    def test_a_turn_is_capped_in_records_and_the_rest_follows(self):
        engine_thread = ThreadPoolExecutor(max_workers=1)
        release = threading.Event()
        engine_thread.submit(release.wait)
        sizes: list[int] = []

        def ingest_many(requests: Any) -> list[IngestReport]:
            sizes.append(sum(len(r) for r, _ in requests))
            return [IngestReport() for _ in requests]

        coalescer = Coalescer(ingest_many, engine_thread, max_records=4)
        futures = [coalescer.ingest([object()] * 3, "http") for _ in range(4)]  # type: ignore[list-item]
        release.set()
        for future in futures:
            future.result(timeout=5)
        assert sizes == [6, 6]

    def test_after_the_engine_thread_stopped_a_request_fails_at_once(self):
        engine_thread = ThreadPoolExecutor(max_workers=1)
        engine_thread.shutdown()
        future = Coalescer(lambda requests: [], engine_thread).ingest([], "drop:x.jsonl")
        with pytest.raises(RuntimeError):
            future.result(timeout=5)
