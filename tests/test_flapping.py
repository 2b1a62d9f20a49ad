"""Flapping stays quiet: hysteresis (`resolve:`), `for:`, and the re-open hold-down,
through the real pipeline and dispatcher with a capturing channel and an injected clock."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.channels.memory import MemoryChannel
from watcher.config import Settings, load_settings
from watcher.dispatcher import Dispatcher
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.store import Database
from watcher.validation import read_records


def configured(settings: Settings, rules: Path | None = None, **extra: object) -> Settings:
    return load_settings(env={}, database_url=settings.database_url,
                         rules=str(rules or settings.rules), **extra)


def health(pipeline: Pipeline, score: float, store: str = "s1") -> None:
    pipeline.ingest(read_records(jsonl(snapshot(store=store, period="2026-11",
                                                account_health_score=score))), "t")


def kinds(channel: MemoryChannel) -> list[str]:
    return [a.kind.value for a in channel.sent]


class TestFlapHoldDown:
    def test_six_flaps_send_one_opened_and_one_resolved_message(
            self, db: Database, settings: Settings, clock: Clock, default_pack_path: Path):
        quiet = configured(settings, reopen_hold="20s")
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)), quiet, clock=clock)
        channel = MemoryChannel.named("console")
        sender = Dispatcher(db, {"console": channel}, quiet, clock=clock, jitter=lambda: 1.0)
        for score in (85, 95, 85, 95, 85, 95):  # restatements of one period, 2 s apart
            health(pipeline, score)
            sender.run_once()
            clock.advance(seconds=2)
        assert kinds(channel) == ["opened"]
        [incident] = incidents(pipeline)
        assert incident.status.value == "resolved"
        timeline = [e for e in events(pipeline, incident.id) if e != "notified"]
        assert timeline == ["opened", "resolved", "reopened", "resolved", "reopened",
                            "resolved"]
        clock.advance(seconds=7)  # the last recovery was 9 s ago: still held
        sender.run_once()
        assert kinds(channel) == ["opened"]
        clock.advance(seconds=12)  # recovered for longer than the hold
        sender.run_once()
        assert kinds(channel) == ["opened", "resolved"]
