"""Noise control: inhibition and the flap hold-down."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.config import Settings, load_settings
from watcher.pipeline import Pipeline
from watcher.store.schema import notifications
from watcher.validation import read_records


def configured(settings: Settings, **extra: object) -> Settings:
    return load_settings(env={}, database_url=settings.database_url, rules=str(settings.rules),
                         **extra)


def notified_rules(pipeline: Pipeline) -> list[str]:
    with pipeline.db.engine.connect() as conn:
        return [a["rule"] for a in conn.execute(select(notifications.c.alert)).scalars()]


class TestInhibition:
    def test_a_critical_alert_holds_lower_severity_alerts_for_the_same_store(
            self, pipeline: Pipeline, settings: Settings):
        pipeline.settings = configured(settings, inhibit=[{
            "source": {"rule": "penalty-received"}, "target": {"severity": "high"},
            "equal": ["store"]}])
        pipeline.ingest(read_records(jsonl(
            snapshot(store="a", penalty_count=1, dispute_rate=0.05),
            snapshot(store="b", dispute_rate=0.05))), "t")
        assert sorted(notified_rules(pipeline)) == ["dispute-rate-high", "penalty-received"]
        held = next(i for i in incidents(pipeline)
                    if i.store == "a" and i.rule == "dispute-rate-high")
        assert events(pipeline, held.id) == ["opened", "inhibited"]


class TestFlapHoldDown:
    def test_a_breach_soon_after_recovery_reopens_the_same_incident(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = configured(settings, reopen_hold="2h")
        for period, rate in (("2026-10-01", 0.05), ("2026-10-02", 0.01), ("2026-10-03", 0.05)):
            pipeline.ingest(read_records(jsonl(snapshot(period=period, dispute_rate=rate))), "t")
            clock.advance(minutes=30)
        [incident] = incidents(pipeline)
        assert incident.status.value == "open"
        assert events(pipeline, incident.id) == ["opened", "resolved", "reopened"]
        # the resolution waited out the hold and was withdrawn when the breach came back
        assert notified_rules(pipeline) == ["dispute-rate-high"]

    def test_after_the_hold_down_a_new_breach_is_a_new_incident(
            self, pipeline: Pipeline, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline.settings = configured(settings, reopen_hold="2h")
        pipeline.ingest(read_records(jsonl(snapshot(period="2026-10-01", dispute_rate=0.05))), "t")
        pipeline.ingest(read_records(jsonl(snapshot(period="2026-10-02", dispute_rate=0.01))), "t")
        clock.advance(hours=3)
        pipeline.ingest(read_records(jsonl(snapshot(period="2026-10-03", dispute_rate=0.05))), "t")
        assert [i.status.value for i in incidents(pipeline)] == ["open", "resolved"]
