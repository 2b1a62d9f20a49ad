"""Escalation steps and reminders, with an injected clock instead of sleeps."""

from __future__ import annotations

from sqlalchemy import select

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.actions import act
from watcher.config import Settings, load_settings
from watcher.pipeline import Pipeline
from watcher.store.schema import notifications
from watcher.timers import Timers
from watcher.validation import read_records

POLICY = {
    "channels": {"lead": {"urls": ["json://127.0.0.1:9/lead"]},
                 "boss": {"urls": ["json://127.0.0.1:9/boss"]}},
    "routes": [{"match": {"audience": "compliance"}, "channels": ["console"],
                "escalate": [{"after": "30m", "channels": ["lead"]},
                             {"after": "2h", "channels": ["boss"]}],
                "repeat_interval": "4h"}],
}


def escalating(settings: Settings) -> Settings:
    return load_settings(env={}, database_url=settings.database_url, rules=str(settings.rules),
                         **POLICY)


def sent_to(pipeline: Pipeline) -> list[tuple[str, str]]:
    with pipeline.db.engine.connect() as conn:
        rows = conn.execute(select(notifications.c.channel, notifications.c.alert)
                            .order_by(notifications.c.id)).all()
    return [(channel, alert["kind"]) for channel, alert in rows]


class TestTimers:
    def test_steps_fire_in_order_once_each_and_reminders_repeat(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = escalating(settings)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        clock.advance(minutes=29)
        assert timers.run_once() == 0
        clock.advance(minutes=2)
        assert timers.run_once() == 1
        assert timers.run_once() == 0  # a step is taken once
        clock.advance(hours=2)
        assert timers.run_once() == 1
        clock.advance(hours=2)
        assert timers.run_once() == 1  # 4 h after opening: the first reminder
        assert sent_to(pipeline) == [("console", "opened"), ("lead", "escalated"),
                                     ("boss", "escalated"), ("boss", "reminder"),
                                     ("console", "reminder"), ("lead", "reminder")]
        [incident] = incidents(pipeline)
        assert events(pipeline, incident.id) == ["opened", "escalated", "escalated", "reminded"]

    def test_acknowledging_stops_escalation(self, pipeline: Pipeline, settings: Settings,
                                            clock: Clock):
        pipeline.settings = escalating(settings)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        [incident] = incidents(pipeline)
        act(pipeline.db, incident.id, "ack", "ana", None, now=clock())
        clock.advance(hours=10)
        assert Timers(pipeline.db, pipeline.settings, clock=clock).run_once() == 0

    def test_routes_without_a_policy_do_nothing(self, pipeline: Pipeline, clock: Clock):
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        clock.advance(days=3)
        assert Timers(pipeline.db, pipeline.settings, clock=clock).run_once() == 0


class TestLeader:
    def test_only_the_replica_holding_the_lock_runs_timers(self, pipeline: Pipeline,
                                                           settings: Settings, clock: Clock):
        from sqlalchemy import text

        from watcher.timers import TIMERS_LOCK
        pipeline.settings = escalating(settings)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        clock.advance(hours=1)
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        if pipeline.db.engine.dialect.name != "postgresql":
            assert timers.run_once() == 1  # one process: always the leader
            return
        other = pipeline.db.engine.connect()  # another replica holds the lock
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": TIMERS_LOCK})
        assert timers.run_once() == 0
        other.invalidate()  # that replica dies: its lock goes with its connection
        assert timers.run_once() == 1
