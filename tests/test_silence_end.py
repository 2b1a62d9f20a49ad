"""Silences and inhibitions end honestly: a live incident they held is told about once
they end, and while held it neither escalates nor reminds (its clock pauses)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.config import Settings, load_settings
from watcher.pipeline import Pipeline
from watcher.silences import Silence
from watcher.store import repository as repo
from watcher.store.schema import notifications
from watcher.timers import Timers
from watcher.validation import read_records
from watcher.web.views import timeline

POLICY = {
    "channels": {"lead": {"urls": ["json://127.0.0.1:9/lead"]}},
    "routes": [{"match": {"audience": "compliance"}, "channels": ["console"],
                "escalate": [{"after": "30m", "channels": ["lead"]}]}],
}


def with_policy(settings: Settings, **extra: object) -> Settings:
    return load_settings(env={}, database_url=settings.database_url, rules=str(settings.rules),
                         **{**POLICY, **extra})


def silence_for(pipeline: Pipeline, clock: Clock, hours: float) -> int:
    with pipeline.db.engine.begin() as conn:
        return repo.add_silence(conn, Silence(
            matchers={"store": "amz-us-01"}, starts_at=clock(),
            ends_at=clock() + timedelta(hours=hours), created_by="ana",
            comment="store migration", created_at=clock())).id


def outbox(pipeline: Pipeline) -> list[tuple[str, str, str | None]]:
    with pipeline.db.engine.connect() as conn:
        rows = conn.execute(select(notifications.c.channel, notifications.c.alert)
                            .order_by(notifications.c.id)).all()
    return [(channel, alert["kind"], alert.get("note")) for channel, alert in rows]


class TestSilenceEnds:
    def test_an_expired_silence_on_a_live_incident_sends_one_message_with_the_time_held(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = with_policy(settings)
        silence_for(pipeline, clock, hours=2)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        assert outbox(pipeline) == []
        clock.advance(hours=1)
        assert timers.run_once() == 0  # held: no escalation, no message
        assert outbox(pipeline) == []
        clock.advance(hours=1)
        assert timers.run_once() == 1
        assert outbox(pipeline) == [("console", "released",
                                     "silence 1 ended after 2h: still open")]
        [alert] = _alerts(pipeline)
        assert alert["note_key"] == "released_silence"
        assert alert["note_args"] == {"id": 1, "held": 7200}
        assert timers.run_once() == 0  # told once
        [incident] = incidents(pipeline)
        assert events(pipeline, incident.id) == ["opened", "silenced", "released"]
        with pipeline.db.engine.connect() as conn:
            shown = timeline(repo.incident_events_of(conn, incident.id), "zh-CN")
        assert (shown[-1].label, shown[-1].details) == ("静默/抑制已结束",
                                                       ("静默 1 已结束，持续 120 分钟",))

    def test_the_escalation_clock_resumes_after_the_silence(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = with_policy(settings)
        silence_for(pipeline, clock, hours=2)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        clock.advance(hours=2)
        timers.run_once()  # released; the 2 h held do not count towards "after: 30m"
        clock.advance(minutes=29)
        assert timers.run_once() == 0
        clock.advance(minutes=1)
        assert timers.run_once() == 1
        assert [k for _c, k, _n in outbox(pipeline)] == ["released", "escalated"]

    def test_a_silence_that_starts_later_pauses_escalation_from_then(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = with_policy(settings, **{"routes": [
            {**POLICY["routes"][0], "escalate": [{"after": "30m", "channels": ["lead"]},  # type: ignore[index]
                                                {"after": "1h", "channels": ["lead"]}]}]})
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        clock.advance(minutes=30)
        assert timers.run_once() == 1  # step 1, before any silence
        silence_for(pipeline, clock, hours=1)
        clock.advance(minutes=30)
        assert timers.run_once() == 0  # step 2 is due but held: recorded, not sent
        clock.advance(minutes=20)
        assert timers.run_once() == 0  # still held
        clock.advance(minutes=10)
        # the silence ended: released, and step 2, held since it fell due, goes out
        assert timers.run_once() == 2
        assert [(c, k) for c, k, _n in outbox(pipeline)] == [
            ("console", "opened"), ("lead", "escalated"), ("console", "released"),
            ("lead", "released"), ("lead", "escalated")]
        [incident] = incidents(pipeline)
        assert events(pipeline, incident.id) == ["opened", "escalated", "silenced", "released",
                                                 "escalated"]

    def test_a_silence_expired_by_hand_sends_the_message_on_the_next_pass(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = with_policy(settings)
        silence_id = silence_for(pipeline, clock, hours=24)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        clock.advance(minutes=10)
        with pipeline.db.engine.begin() as conn:
            repo.expire_silence(conn, silence_id, clock())
        assert Timers(pipeline.db, pipeline.settings, clock=clock).run_once() == 1
        assert outbox(pipeline) == [("console", "released",
                                     "silence 1 ended after 10m: still open")]

    def test_an_incident_resolved_while_silenced_is_not_announced(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = with_policy(settings)
        silence_for(pipeline, clock, hours=1)
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=0))), "t")
        clock.advance(hours=2)
        assert Timers(pipeline.db, pipeline.settings, clock=clock).run_once() == 0
        assert outbox(pipeline) == []


class TestInhibitionEnds:
    def test_the_inhibiting_incident_resolving_tells_the_held_one(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = load_settings(
            env={}, database_url=settings.database_url, rules=str(settings.rules),
            inhibit=[{"source": {"rule": "penalty-received"}, "target": {"severity": "high"},
                      "equal": ["store"]}])
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1, dispute_rate=0.05))), "t")
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        clock.advance(minutes=5)
        assert timers.run_once() == 0  # the penalty is still live
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=0, dispute_rate=0.05))), "t")
        clock.advance(minutes=5)
        assert timers.run_once() == 1
        released = [o for o in outbox(pipeline) if o[1] == "released"]
        assert released == [("console", "released",
                             "inhibition by incident 1 ended after 10m: still open")]


def _alerts(pipeline: Pipeline) -> list[dict[str, object]]:
    with pipeline.db.engine.connect() as conn:
        return [a for a in conn.execute(select(notifications.c.alert)).scalars()
                if a["kind"] == "released"]
