"""The outbox dispatcher: delivery, retries with backoff, and a timeline entry per attempt."""

from __future__ import annotations

import threading
import time

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.alerts import Alert
from watcher.channels.base import DeliveryReport
from watcher.channels.memory import MemoryChannel
from watcher.channels.render import Renderer
from watcher.dispatcher import Dispatcher, backoff
from watcher.limits import CLAIM_MESSAGES_PER_CHANNEL
from watcher.pipeline import Pipeline
from watcher.store import repository as repo
from watcher.validation import read_records


def dispatcher(pipeline: Pipeline, channel: MemoryChannel, clock: Clock) -> Dispatcher:
    return Dispatcher(pipeline.db, {"console": channel}, pipeline.settings, clock=clock,
                      jitter=lambda: 1.0)


class TestBackoff:
    def test_doubles_up_to_the_cap_with_jitter_between_half_and_full(self):
        assert [backoff(n, 5, 60, 1.0) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
        assert backoff(3, 5, 60, 0.0) == 10


class TestDispatcher:
    def test_delivers_once_and_records_notified(self, pipeline: Pipeline, clock: Clock):
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        channel = MemoryChannel.named("console")
        sender = dispatcher(pipeline, channel, clock)
        assert sender.run_once() == 1
        assert sender.run_once() == 0  # a delivered notification is not sent again
        assert len(channel.sent) == 1
        [incident] = incidents(pipeline)
        assert events(pipeline, incident.id) == ["opened", "notified"]

    def test_failures_are_retried_with_backoff_and_each_attempt_is_on_the_timeline(
            self, pipeline: Pipeline, clock: Clock):
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        channel = MemoryChannel.named("console", fail_times=2)
        sender = dispatcher(pipeline, channel, clock)
        assert sender.run_once() == 1  # attempt 1 fails: retry in 5 s
        clock.advance(seconds=4)
        assert sender.run_once() == 0  # not due yet
        clock.advance(seconds=1)
        assert sender.run_once() == 1  # attempt 2 fails: retry in 10 s
        with pipeline.db.engine.connect() as conn:
            [status] = repo.channel_status(conn)
        assert (status["pending"], status["failing"]) == (1, 1)
        assert status["last_error"]
        clock.advance(seconds=10)
        assert sender.run_once() == 1  # attempt 3 succeeds
        [incident] = incidents(pipeline)
        assert events(pipeline, incident.id) == [
            "opened", "delivery_failed", "delivery_failed", "notified"]
        with pipeline.db.engine.connect() as conn:
            [status] = repo.channel_status(conn)
        assert (status["sent"], status["pending"]) == (1, 0)

    def test_an_unconfigured_channel_is_kept_and_retried_not_dropped(
            self, pipeline: Pipeline, clock: Clock):
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        sender = Dispatcher(pipeline.db, {}, pipeline.settings, clock=clock, jitter=lambda: 1.0)
        assert sender.run_once() == 1
        with pipeline.db.engine.connect() as conn:
            backlog, _ = repo.outbox_backlog(conn)
        assert backlog == 1


class TestClaims:
    def test_a_slow_channel_keeps_its_claims_and_another_replica_sends_nothing_twice(
            self, pipeline: Pipeline, clock: Clock):
        """Each send renews the lease: a replica that looks while the first is still
        working through a slow channel's queue finds nothing due."""
        for store in ("a", "b", "c"):
            pipeline.ingest(read_records(jsonl(snapshot(store=store, penalty_count=1))), "t")
        other = MemoryChannel.named("console")
        second = dispatcher(pipeline, other, clock)

        class Slow(MemoryChannel):
            def deliver(self, alert: Alert) -> DeliveryReport:
                clock.advance(seconds=7)  # each send takes most of a 10 s lease
                second.run_once()
                return super().deliver(alert)

        slow = Slow(MemoryChannel.named("console").defn)
        assert dispatcher(pipeline, slow, clock).run_once() == 3
        assert len(slow.sent) == 3 and other.sent == []

    def test_a_claim_taken_over_after_its_lease_ran_out_is_not_sent_by_its_first_holder(
            self, pipeline: Pipeline, clock: Clock):
        """A replica stalled past its lease (one send took 20 s, its renewer stalled too)
        loses what is left of its queue to the replica that took it over, and does not
        send it as well."""
        for store in ("a", "b"):
            pipeline.ingest(read_records(jsonl(snapshot(store=store, penalty_count=1))), "t")
        other = MemoryChannel.named("console")
        second = dispatcher(pipeline, other, clock)

        class Stalled(MemoryChannel):
            def deliver(self, alert: Alert) -> DeliveryReport:
                if not self.sent:
                    clock.advance(seconds=20)
                    second.run_once()
                return super().deliver(alert)

        stalled = Stalled(MemoryChannel.named("console").defn)
        dispatcher(pipeline, stalled, clock).run_once()
        # The send in flight past its lease is the one duplicate at-least-once allows;
        # the rest of the queue goes out once, from the replica that took it over.
        assert [a.incident_id for a in stalled.sent] == [1]
        assert sorted(a.incident_id for a in other.sent) == [1, 2]


    def test_a_send_longer_than_the_lease_keeps_its_claims_and_the_rest_stays_claimable(
            self, pipeline: Pipeline, clock: Clock):
        """Claims are small (what is about to be sent) and renewed while a send takes:
        a replica looking for work during a send three leases long finds only what the
        first did not claim, and nothing goes out twice. Real time, a 2 s lease (short,
        yet long enough for a loaded machine to schedule the renewer within a third)."""
        lease = 2.0
        pipeline.settings = pipeline.settings.model_copy(update={"claim_lease_seconds": lease})
        stores = [f"s{n}" for n in range(CLAIM_MESSAGES_PER_CHANNEL + 3)]
        pipeline.ingest(read_records(jsonl(*[snapshot(store=s, penalty_count=1)
                                             for s in stores])), "t")
        started, release = threading.Event(), threading.Event()

        class Blocking(MemoryChannel):
            def deliver(self, alert: Alert) -> DeliveryReport:
                started.set()
                release.wait(10)
                return super().deliver(alert)

        blocking = Blocking(MemoryChannel.named("console").defn)
        first = Dispatcher(pipeline.db, {"console": blocking}, pipeline.settings)
        worker = threading.Thread(target=first.run_once)
        worker.start()
        assert started.wait(10)
        other = MemoryChannel.named("console")
        second = Dispatcher(pipeline.db, {"console": other}, pipeline.settings)
        deadline = time.monotonic() + 2.5 * lease
        while time.monotonic() < deadline:
            second.run_once()
            time.sleep(0.05)
        release.set()
        worker.join(10)
        assert len(blocking.sent) == CLAIM_MESSAGES_PER_CHANNEL
        assert len(other.sent) == 3
        assert sorted(a.store for a in blocking.sent + other.sent) == sorted(stores)


class TestGrouping:
    def test_alerts_of_one_store_within_the_wait_go_out_as_one_message(
            self, pipeline: Pipeline, clock: Clock):
        from watcher.config import load_settings
        pipeline.settings = load_settings(env={}, rules=str(pipeline.settings.rules), routes=[
            {"match": {"audience": "compliance"}, "channels": ["console"],
             "group_by": ["store"], "group_wait": "30s"}])
        pipeline.ingest(read_records(jsonl(snapshot(store="a", penalty_count=1))), "t")
        clock.advance(seconds=10)
        pipeline.ingest(read_records(jsonl(snapshot(store="a", period="2026-11",
                                                    account_health_score=50),
                                           snapshot(store="b", penalty_count=1))), "t")
        channel = MemoryChannel.named("console")
        sender = dispatcher(pipeline, channel, clock)
        assert sender.run_once() == 0  # everyone waits for the group
        clock.advance(seconds=21)
        assert sender.run_once() == 2  # store a's group, 30 s after its first alert
        clock.advance(seconds=10)
        assert sender.run_once() == 1  # store b's own group
        assert len(channel.sent) == 2  # store a: one message for two incidents; store b: one
        grouped = next(a for a in channel.sent if a.rule == "group")
        assert grouped.severity == "critical" and len(grouped.items) == 2
        renderer = Renderer()
        english = renderer.render(grouped, "text", "en")
        assert english.subject == "[CRITICAL] a: 2 new incidents"
        assert "#1 [CRITICAL] a (amazon): 1 platform penalty" in english.body
        chinese = renderer.render(grouped, "text", "zh-CN")
        assert chinese.subject == "[严重] a：新增 2 个事件"
        for incident in incidents(pipeline):
            assert events(pipeline, incident.id)[-1] == "notified"
