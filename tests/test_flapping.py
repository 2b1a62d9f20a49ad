"""Flapping stays quiet: hysteresis (`resolve:`), `for:`, and the re-open hold-down,
through the real pipeline and dispatcher with a capturing channel and an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.backtest import backtest
from watcher.channels.memory import MemoryChannel
from watcher.config import Settings, load_settings
from watcher.dispatcher import Dispatcher
from watcher.errors import ConfigError
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.rules.testing import run_file
from watcher.store import Database
from watcher.store import repository as repo
from watcher.timers import Timers
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

    def test_a_flap_within_one_batch_keeps_one_incident_and_says_nothing_more(
            self, db: Database, settings: Settings, clock: Clock, default_pack_path: Path):
        quiet = configured(settings, reopen_hold="20s")
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)), quiet, clock=clock)
        channel = MemoryChannel.named("console")
        sender = Dispatcher(db, {"console": channel}, quiet, clock=clock, jitter=lambda: 1.0)
        pipeline.ingest(read_records(jsonl(*(  # a backfill: breach, recovery, breach
            snapshot(store="s1", period=p, account_health_score=score)
            for p, score in (("2026-07", 85), ("2026-08", 95), ("2026-09", 85))))), "t")
        clock.advance(seconds=30)
        sender.run_once()
        assert kinds(channel) == ["opened"]
        [incident] = incidents(pipeline)
        assert (incident.status.value, incident.period) == ("open", "2026-09")
        assert "2026-09" in incident.title["en"]  # the title follows the latest data
        timeline = [e for e in events(pipeline, incident.id) if e != "notified"]
        assert timeline == ["opened", "resolved", "reopened"]

    def test_a_channel_already_told_resolved_hears_it_is_back(
            self, db: Database, settings: Settings, clock: Clock, default_pack_path: Path):
        quiet = configured(settings, reopen_hold="20s")
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)), quiet, clock=clock)
        channel = MemoryChannel.named("console")
        sender = Dispatcher(db, {"console": channel}, quiet, clock=clock, jitter=lambda: 1.0)
        health(pipeline, 85)
        health(pipeline, 95)
        clock.advance(seconds=20)  # the hold has just passed: "resolved" goes out...
        sender.run_once()
        health(pipeline, 85)  # ...and the breach is back on the same instant
        sender.run_once()
        assert kinds(channel) == ["opened", "resolved", "opened"]
        assert channel.sent[-1].note_key == "reopened"
        [incident] = incidents(pipeline)
        assert incident.status.value == "open"


HEALTH_RULE = """
rules:
  - id: health
    description: Account health below 90
    condition: account_health_score < 90
    {extra}
    severity: critical
    audience: compliance
    message: {{en: "{{store}}: account health {{value}}", zh-CN: "{{store}}：账户健康 {{value}}"}}
"""


def pack(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "health.yaml"
    path.write_text(HEALTH_RULE.format(extra=extra), encoding="utf-8")
    return path


def pipeline_for(db: Database, settings: Settings, clock: Clock, rules: Path,
                 **extra: object) -> Pipeline:
    configured_settings = configured(settings, rules, **extra)
    return Pipeline(db, RuleEngine(load_pack(rules)), configured_settings, clock=clock)


def monthly(pipeline: Pipeline, period: str, score: float) -> None:
    pipeline.ingest(read_records(jsonl(snapshot(store="s1", period=period,
                                                account_health_score=score))), "t")


def statuses(pipeline: Pipeline) -> list[str]:
    return [i.status.value for i in incidents(pipeline)]


class TestResolveCondition:
    def test_the_incident_stays_open_between_90_and_92(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(
            tmp_path, "resolve: account_health_score >= 92"))
        health(pipeline, 85)
        for score in (90, 91, 91.99):  # no longer firing, not yet recovered
            health(pipeline, score)
            assert statuses(pipeline) == ["open"]
        health(pipeline, 92)
        assert statuses(pipeline) == ["resolved"]
        [incident] = incidents(pipeline)
        assert "account_health_score >= 92" in str(
            next(e for e in _events(pipeline, incident.id) if e["kind"] == "resolved")["note"])

    def test_without_resolve_the_incident_resolves_as_soon_as_the_condition_fails(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(tmp_path, ""))
        health(pipeline, 85)
        health(pipeline, 90)
        assert statuses(pipeline) == ["resolved"]

    def test_a_resolve_condition_on_a_metric_the_snapshot_lacks_keeps_it_open(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(
            tmp_path, "resolve: account_health_score >= 92 and dispute_rate < 0.01"))
        health(pipeline, 85)
        health(pipeline, 95)
        assert statuses(pipeline) == ["open"]


class TestFor:
    def test_three_periods_in_a_row_before_it_opens(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(tmp_path, "for: 3"))
        monthly(pipeline, "2026-08", 85)
        monthly(pipeline, "2026-08", 84)  # a restatement is not another period
        monthly(pipeline, "2026-09", 85)
        assert statuses(pipeline) == []
        monthly(pipeline, "2026-10", 85)
        assert statuses(pipeline) == ["open"]

    def test_a_good_period_or_a_gap_starts_the_count_again(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(tmp_path, "for: 2"))
        monthly(pipeline, "2026-05", 85)
        monthly(pipeline, "2026-06", 95)  # the run ends
        monthly(pipeline, "2026-07", 85)
        monthly(pipeline, "2026-09", 85)  # August has no data: a new run
        assert statuses(pipeline) == []
        monthly(pipeline, "2026-10", 85)
        assert statuses(pipeline) == ["open"]

    def test_a_duration_opens_on_data_after_it_has_passed(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(tmp_path, "for: 10m"))
        health(pipeline, 85)
        clock.advance(minutes=9)
        health(pipeline, 84)
        assert statuses(pipeline) == []
        clock.advance(minutes=1)
        health(pipeline, 83)
        assert statuses(pipeline) == ["open"]
        [incident] = incidents(pipeline)
        assert incident.value == 83

    def test_a_duration_that_passes_without_data_opens_on_the_timer(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(tmp_path, "for: 10m"))
        timers = Timers(db, pipeline.settings, clock=clock)
        health(pipeline, 85)
        clock.advance(minutes=9)
        assert timers.run_once() == 0 and statuses(pipeline) == []
        clock.advance(minutes=1)
        assert timers.run_once() == 1
        assert statuses(pipeline) == ["open"]
        [incident] = incidents(pipeline)
        assert [e["kind"] for e in _events(pipeline, incident.id)] == ["opened"]
        assert timers.run_once() == 0  # the run became the incident: nothing waits

    def test_recovering_within_the_duration_ends_the_run(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path):
        pipeline = pipeline_for(db, settings, clock, pack(
            tmp_path, "for: 10m\n    resolve: account_health_score >= 92"))
        timers = Timers(db, pipeline.settings, clock=clock)
        health(pipeline, 85)
        clock.advance(minutes=5)
        health(pipeline, 91)  # the condition no longer holds (resolve is for incidents)
        clock.advance(minutes=10)
        assert timers.run_once() == 0
        assert statuses(pipeline) == []

    def test_a_resolve_condition_on_an_unknown_metric_is_refused(self, tmp_path: Path):
        with pytest.raises(ConfigError) as error:
            load_pack(pack(tmp_path, "resolve: acount_health_score >= 92"))
        assert error.value.key == "rules.0.resolve" and "acount_health_score" in str(error.value)

    def test_for_is_refused_unless_it_is_periods_or_a_duration(self, tmp_path: Path):
        with pytest.raises(ConfigError) as error:
            load_pack(pack(tmp_path, "for: 600x"))
        assert error.value.key == "rules.0.for" and "duration" in str(error.value)


def _events(pipeline: Pipeline, incident_id: int) -> list[dict[str, object]]:
    with pipeline.db.engine.connect() as conn:
        return repo.incident_events_of(conn, incident_id)


class TestRuleTestsAndBacktest:
    def test_rule_tests_judge_resolve_and_for_with_observed_times(self, tmp_path: Path):
        pack(tmp_path, "resolve: account_health_score >= 92\n    for: 10m")
        cases = tmp_path / "health.test.yaml"
        cases.write_text("""
rules: health.yaml
defaults: {store: s1, platform: amazon, period: 2026-11}
tests:
  - name: ten minutes below 90 opens, 91 keeps it open
    snapshots:
      - {observed_at: "2026-11-01T08:00:00Z", metrics: {account_health_score: 85}}
      - {observed_at: "2026-11-01T08:10:00Z", metrics: {account_health_score: 84}}
      - {observed_at: "2026-11-01T08:20:00Z", metrics: {account_health_score: 91}}
    incidents: [{rule: health, subject: s1, status: open}]
  - name: nine minutes opens nothing
    snapshots:
      - {observed_at: "2026-11-01T08:00:00Z", metrics: {account_health_score: 85}}
      - {observed_at: "2026-11-01T08:09:00Z", metrics: {account_health_score: 84}}
  - name: 92 resolves
    snapshots:
      - {observed_at: "2026-11-01T08:00:00Z", metrics: {account_health_score: 85}}
      - {observed_at: "2026-11-01T08:10:00Z", metrics: {account_health_score: 84}}
      - {observed_at: "2026-11-01T08:20:00Z", metrics: {account_health_score: 92}}
    incidents: [{rule: health, subject: s1, status: resolved}]
""", encoding="utf-8")
        result = run_file(cases)
        assert [c.passed for c in result.cases] == [True, True, True], result.report()

    def test_a_rule_test_that_expects_the_wrong_thing_fails(self, tmp_path: Path):
        pack(tmp_path, "for: 2")
        cases = tmp_path / "health.test.yaml"
        cases.write_text("""
rules: health.yaml
defaults: {store: s1, platform: amazon}
tests:
  - name: one month is not two
    snapshots: [{period: 2026-10, metrics: {account_health_score: 85}}]
    incidents: [{rule: health, subject: s1}]
""", encoding="utf-8")
        [case] = run_file(cases).cases
        assert case.diff() == ["- expected, not opened: health for s1"]

    def test_backtest_replays_for_periods(self, db: Database, settings: Settings,
                                          clock: Clock, tmp_path: Path):
        now = pipeline_for(db, settings, clock, pack(tmp_path, ""))
        for period in ("2026-08", "2026-09", "2026-10"):
            monthly(now, period, 85 if period != "2026-08" else 95)
        edited = RuleEngine(load_pack(pack(tmp_path, "for: 3")))
        report = backtest(db, edited, now.settings, Period.parse("2026-01"),
                          Period.parse("2026-12"))
        assert report.as_dict()["recorded_not_reproduced"] == [{"rule": "health",
                                                                "subject": "s1"}]
        edited = RuleEngine(load_pack(pack(tmp_path, "for: 2")))
        report = backtest(db, edited, now.settings, Period.parse("2026-01"),
                          Period.parse("2026-12"))
        assert report.as_dict()["recorded_not_reproduced"] == []
