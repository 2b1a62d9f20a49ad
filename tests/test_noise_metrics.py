"""/metrics says what the daemon holds back, withdraws, releases, escalates and reminds."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import generate_latest

from tests.conftest import Clock, jsonl, snapshot
from watcher.config import Settings, load_settings
from watcher.observability import REGISTRY
from watcher.pipeline import Pipeline
from watcher.silences import Silence
from watcher.store import repository as repo
from watcher.timers import Timers
from watcher.validation import read_records


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much each series moved while the block ran (the counters are process-wide)."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.series = series
        self.before = [sample(name, **labels) for name, labels in series]

    def __call__(self) -> list[float]:
        return [sample(name, **labels) - before
                for (name, labels), before in zip(self.series, self.before, strict=True)]


def held(reason: str) -> tuple[str, dict[str, str]]:
    return "watcher_notifications_held_total", {"reason": reason}


def ingest(pipeline: Pipeline, **metrics: object) -> None:
    pipeline.ingest(read_records(jsonl(snapshot(**metrics))), "t")  # type: ignore[arg-type]


class TestHeldBack:
    def test_every_reason_is_a_series_from_the_start(self):
        text = generate_latest(REGISTRY).decode()
        for reason in ("silenced", "inhibited", "grouped", "rate_limited", "reopen_hold"):
            assert f'watcher_notifications_held_total{{reason="{reason}"}}' in text
        for name in ("watcher_resolutions_withdrawn_total", "watcher_holds_released_total",
                     "watcher_escalations_total", "watcher_reminders_total"):
            assert f"# TYPE {name} counter" in text

    def test_silenced_inhibited_and_grouped_are_counted(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = load_settings(
            env={}, database_url=settings.database_url, rules=str(settings.rules),
            routes=[{"match": {"audience": "compliance"}, "channels": ["console"],
                     "group_by": ["store"], "group_wait": "30s"}],
            inhibit=[{"source": {"rule": "penalty-received"}, "target": {"severity": "high"},
                      "equal": ["store"]}])
        with pipeline.db.engine.begin() as conn:
            repo.add_silence(conn, Silence(
                matchers={"store": "quiet"}, starts_at=clock(),
                ends_at=clock() + timedelta(hours=1), created_by="ana", comment="c",
                created_at=clock()))
        delta = Delta(held("silenced"), held("inhibited"), held("grouped"))
        ingest(pipeline, store="quiet", penalty_count=1)
        ingest(pipeline, store="loud", penalty_count=1, dispute_rate=0.05)
        assert delta() == [1, 1, 1]  # quiet's penalty; loud's dispute rate; loud's penalty

    def test_a_resolution_held_by_reopen_hold_and_withdrawn_on_a_reopen(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = load_settings(env={}, database_url=settings.database_url,
                                          rules=str(settings.rules), reopen_hold="20s")
        delta = Delta(held("reopen_hold"), ("watcher_resolutions_withdrawn_total", {}))
        for score in (85, 95, 85):
            ingest(pipeline, period="2026-11", account_health_score=score)
            clock.advance(seconds=2)
        assert delta() == [1, 1]


POLICY = {
    "channels": {"lead": {"urls": ["json://127.0.0.1:9/lead"]}},
    "routes": [{"match": {"audience": "compliance"}, "channels": ["console"],
                "escalate": [{"after": "30m", "channels": ["lead"]}],
                "repeat_interval": "1h"}],
}


class TestEscalationsAndReleases:
    def test_escalations_and_reminders_by_step_and_releases_by_reason(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        pipeline.settings = load_settings(env={}, database_url=settings.database_url,
                                          rules=str(settings.rules), **POLICY)
        delta = Delta(("watcher_escalations_total", {"step": "1"}),
                      ("watcher_reminders_total", {"step": "1"}),
                      ("watcher_holds_released_total", {"reason": "silence"}),
                      held("silenced"))
        ingest(pipeline, penalty_count=1)
        timers = Timers(pipeline.db, pipeline.settings, clock=clock)
        clock.advance(minutes=30)
        timers.run_once()  # step 1
        with pipeline.db.engine.begin() as conn:
            repo.add_silence(conn, Silence(
                matchers={"store": "amz-us-01"}, starts_at=clock(),
                ends_at=clock() + timedelta(minutes=40), created_by="ana", comment="c",
                created_at=clock()))
        clock.advance(minutes=30)
        timers.run_once()  # the reminder is due, and held
        clock.advance(minutes=10)
        timers.run_once()  # released, then the reminder goes out
        assert delta() == [1, 1, 1, 1]


class TestRateLimited:
    def test_alerts_folded_for_a_channels_rate_count_as_rate_limited(
            self, pipeline: Pipeline, clock: Clock):
        from tests.test_storms import limited, queue
        from watcher.dispatcher import Dispatcher
        delta = Delta(held("rate_limited"))
        queue(pipeline, clock, "high", 30, "bot")
        channel = limited("bot", "20/min")
        Dispatcher(pipeline.db, {"bot": channel}, pipeline.settings, clock=clock,
                   jitter=lambda: 1.0).run_once()
        folded = sum(a.digest.total for a in channel.sent if a.digest is not None)
        assert folded > 0 and delta() == [folded]
