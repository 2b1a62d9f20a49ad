"""The targets file: resolution order, errors with file and line, the pipeline, hot reload."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.assessment.targets import TargetBook, load_optional, load_targets
from watcher.config import Settings, load_settings
from watcher.daemon.reload import TargetsReloader
from watcher.errors import ConfigError
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.snapshot import Comparator, Snapshot, Target
from watcher.store import Database
from watcher.store.schema import snapshots
from watcher.validation import read_records

RULES = """
rules:
  - id: gmv-below-target
    description: GMV below target
    condition: gmv < target
    severity: medium
    audience: manager
    labels: {dimension: performance, cycle: monthly, indicator: gmv}
    message: {en: "{store} GMV {value} below {threshold}", zh-CN: "{store} 销售额 {value}"}
  - id: pip-recommended
    kind: streak
    months: 3
    subject: operator
    description: Three months below target
    severity: high
    audience: manager
    message: {en: "{operator} PIP {months}", zh-CN: "{operator} PIP {months}"}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def book(tmp_path: Path, text: str) -> TargetBook:
    return load_targets(write(tmp_path / "targets.yaml", text))


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        book(tmp_path, text)
    return caught.value


def month(text: str) -> Period:
    return Period.parse(text)


class TestTargetBook:
    def test_a_store_entry_wins_over_its_operators(self, tmp_path: Path):
        found = book(tmp_path, """targets:
  - {operator: li.wei, period: 2026-10, gmv: 100000, net_margin: 0.2}
  - {store: amz-us-01, period: 2026-10, gmv: 150000}
""").lookup("amz-us-01", "li.wei", month("2026-10"))
        assert found == {"gmv": Target(value=150000), "net_margin": Target(value=0.2)}

    def test_an_exact_period_wins_over_the_years_default_which_wins_over_any(
            self, tmp_path: Path):
        targets = book(tmp_path, """targets:
  - {store: s, gmv: 1}
  - {store: s, period: 2026-*, gmv: 2}
  - {store: s, period: 2026-10, gmv: 3}
""")
        assert targets.lookup("s", None, month("2026-10"))["gmv"].value == 3
        assert targets.lookup("s", None, month("2026-11"))["gmv"].value == 2
        assert targets.lookup("s", None, Period.parse("2026-Q3"))["gmv"].value == 2
        assert targets.lookup("s", None, month("2027-01"))["gmv"].value == 1

    def test_store_wins_even_as_a_default_over_an_exact_operator_entry(self, tmp_path: Path):
        targets = book(tmp_path, """targets:
  - {operator: li.wei, period: 2026-10, gmv: 100}
  - {store: s, period: "*", gmv: 200}
""")
        assert targets.lookup("s", "li.wei", month("2026-10"))["gmv"].value == 200
        assert targets.lookup("other", "li.wei", month("2026-10"))["gmv"].value == 100

    def test_exact_only_ignores_defaults(self, tmp_path: Path):
        targets = book(tmp_path, "targets:\n  - {store: s, period: 2026-*, gmv: 2}\n")
        assert targets.lookup("s", None, month("2026-10"), exact_only=True) == {}

    def test_periods_as_yaml_reads_them_a_year_a_day_and_a_percent(self, tmp_path: Path):
        targets = book(tmp_path, """targets:
  - {store: s, period: 2026, ltv_growth: 0.2}
  - {store: s, period: 2026-10-05, penalty_count: 0}
  - {store: s, period: 2026-Q3, dispute_rate: "3%"}
""")
        assert targets.lookup("s", None, Period.parse("2026")) == {"ltv_growth": Target(
            value=0.2)}
        assert targets.lookup("s", None, Period.parse("2026-10-05"))["penalty_count"].value == 0
        assert targets.lookup("s", None, Period.parse("2026-Q3"))["dispute_rate"].value == 0.03

    def test_a_comparator_is_kept_as_in_a_snapshot(self, tmp_path: Path):
        targets = book(tmp_path, """targets:
  - {store: s, order_defect_rate: {value: 0.01, comparator: "<"}}
""")
        assert targets.lookup("s", None, month("2026-10"))["order_defect_rate"] == Target(
            value=0.01, comparator=Comparator.LT)

    def test_fill_keeps_every_target_the_snapshot_sent(self, tmp_path: Path):
        targets = book(tmp_path, "targets:\n  - {store: s, gmv: 150000, net_margin: 0.2}\n")
        sent = Snapshot.model_validate(snapshot("s", gmv=1, targets={"gmv": 90000}))
        filled = targets.fill(sent)
        assert filled.targets == {"gmv": Target(value=90000), "net_margin": Target(value=0.2)}
        assert sent.targets == {"gmv": Target(value=90000)}

    def test_no_file_is_an_empty_book(self):
        assert load_optional(None).entries == ()


class TestTargetFileErrors:
    def test_an_unknown_metric_names_file_line_and_a_likely_fix(self, tmp_path: Path):
        error = refused(tmp_path, """targets:
  - store: amz-us-01
    period: 2026-10
    gvm: 150000
""")
        assert (error.file, error.line, error.key) == (
            str(tmp_path / "targets.yaml"), 4, "targets.0.gvm")
        assert "did you mean 'gmv'" in str(error)

    def test_a_rate_written_as_a_percent_number_is_refused(self, tmp_path: Path):
        error = refused(tmp_path, "targets:\n  - {store: s, dispute_rate: 3}\n")
        assert error.line == 2 and error.key == "targets.0.dispute_rate"
        assert "0.035" in error.reason

    def test_an_entry_names_one_store_or_one_operator(self, tmp_path: Path):
        both = refused(tmp_path, "targets:\n  - {store: s, operator: o, gmv: 1}\n")
        neither = refused(tmp_path, "targets:\n  - {period: 2026-10, gmv: 1}\n")
        assert "exactly one" in both.reason and "exactly one" in neither.reason

    def test_a_bad_period_says_which_forms_are_accepted(self, tmp_path: Path):
        error = refused(tmp_path, "targets:\n  - {store: s, period: 2026-13, gmv: 1}\n")
        assert error.key == "targets.0.period" and "YYYY-*" in error.reason

    def test_a_bad_comparator_names_the_metric(self, tmp_path: Path):
        error = refused(tmp_path, """targets:
  - {store: s, gmv: {value: 1, comparator: "=<"}}
""")
        assert error.key == "targets.0.gmv" and error.line == 2

    def test_the_same_target_twice_names_the_first_line(self, tmp_path: Path):
        error = refused(tmp_path, """targets:
  - {store: s, period: 2026-10, gmv: 1}
  - {store: s, period: 2026-10, gmv: 2}
""")
        assert error.line == 3 and "line 2" in error.reason

    def test_an_entry_without_a_target_is_refused(self, tmp_path: Path):
        assert "sets no target" in refused(tmp_path, "targets:\n  - {store: s}\n").reason

    def test_broken_yaml_and_a_wrong_shape_name_the_line(self, tmp_path: Path):
        assert refused(tmp_path, "targets:\n  - {store: s, gmv: [\n").line is not None
        assert "'targets:' list" in refused(tmp_path, "- {store: s, gmv: 1}\n").reason
        assert refused(tmp_path, "targets: []\nextra: 1\n").key == "extra"

    def test_the_config_reads_the_path_relative_to_the_config_file(self, tmp_path: Path):
        write(tmp_path / "targets.yaml", "targets: []\n")
        config = write(tmp_path / "watcher.yaml", "targets: targets.yaml\n")
        assert load_settings(config, env={}).targets == tmp_path / "targets.yaml"


@pytest.fixture
def pack_path(tmp_path: Path) -> Path:
    return write(tmp_path / "rules.yaml", RULES)


def targets_pipeline(db: Database, settings: Settings, clock: Clock, pack_path: Path,
                     targets: Path) -> Pipeline:
    configured = settings.model_copy(update={"targets": targets})
    return Pipeline(db, RuleEngine(load_pack(pack_path)), configured, clock=clock)


def ingest(pipeline: Pipeline, *records: dict[str, object]) -> None:
    pipeline.ingest(read_records(jsonl(*records)), "test")


class TestPipelineWithTargets:
    def test_gmv_below_the_files_target_opens_the_gmv_incident(
            self, db: Database, settings: Settings, clock: Clock, pack_path: Path,
            tmp_path: Path):
        file = write(tmp_path / "targets.yaml",
                     "targets:\n  - {store: amz-us-01, period: 2026-10, gmv: 150000}\n")
        pipeline = targets_pipeline(db, settings, clock, pack_path, file)
        ingest(pipeline, snapshot(gmv=118000), snapshot("amz-us-02", gmv=118000))
        [incident] = incidents(pipeline)
        assert (incident.rule, incident.subject, incident.value, incident.threshold) == (
            "gmv-below-target", "amz-us-01", 118000, 150000)

    def test_a_target_sent_with_the_snapshot_wins_and_the_store_keeps_it_as_sent(
            self, db: Database, settings: Settings, clock: Clock, pack_path: Path,
            tmp_path: Path):
        file = write(tmp_path / "targets.yaml", "targets:\n  - {operator: li.wei, gmv: 150000}\n")
        pipeline = targets_pipeline(db, settings, clock, pack_path, file)
        ingest(pipeline, snapshot(gmv=118000, targets={"gmv": 100000}))
        assert incidents(pipeline) == []
        with db.engine.connect() as conn:
            assert conn.execute(select(snapshots.c.targets)).scalar_one() == {"gmv": 100000}

    def test_three_months_below_the_files_target_recommend_a_pip(
            self, db: Database, settings: Settings, clock: Clock, pack_path: Path,
            tmp_path: Path):
        file = write(tmp_path / "targets.yaml",
                     "targets:\n  - {operator: li.wei, period: 2026-*, gmv: 150000}\n")
        pipeline = targets_pipeline(db, settings, clock, pack_path, file)
        ingest(pipeline, *(snapshot(period=p, gmv=120000)
                           for p in ("2026-07", "2026-08", "2026-09")))
        [pip] = incidents(pipeline, rule="pip-recommended")
        assert pip.subject == "li.wei"
        assert {e["target"] for e in pip.evidence} == {150000}

    def test_a_broken_file_at_start_is_refused_with_its_line(
            self, db: Database, settings: Settings, clock: Clock, pack_path: Path,
            tmp_path: Path):
        file = write(tmp_path / "targets.yaml", "targets:\n  - {store: s, gmv: lots}\n")
        with pytest.raises(ConfigError) as caught:
            targets_pipeline(db, settings, clock, pack_path, file)
        assert caught.value.line == 2


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


class TestTargetsReloader:
    def test_an_edited_target_applies_to_the_next_snapshot(
            self, db: Database, settings: Settings, clock: Clock, pack_path: Path,
            tmp_path: Path):
        file = write(tmp_path / "targets.yaml", "targets:\n  - {store: amz-us-01, gmv: 100000}\n")
        pipeline = targets_pipeline(db, settings, clock, pack_path, file)
        with ThreadPoolExecutor(max_workers=1) as engine_thread:
            reloader = TargetsReloader(file, pipeline, engine_thread)
            assert reloader.check() is False  # unchanged
            write(file, "targets:\n  - {store: amz-us-01, gmv: 150000}\n")
            touch_later(file)
            assert reloader.check() is True
        ingest(pipeline, snapshot(gmv=118000))
        assert [i.threshold for i in incidents(pipeline)] == [150000]

    def test_a_broken_edit_is_refused_with_file_and_line_and_the_old_targets_stay(
            self, db: Database, settings: Settings, clock: Clock, pack_path: Path,
            tmp_path: Path):
        file = write(tmp_path / "targets.yaml", "targets:\n  - {store: amz-us-01, gmv: 150000}\n")
        pipeline = targets_pipeline(db, settings, clock, pack_path, file)
        with ThreadPoolExecutor(max_workers=1) as engine_thread:
            reloader = TargetsReloader(file, pipeline, engine_thread)
            write(file, "targets:\n  - {store: amz-us-01, gmv: 150000}\n  - {stor: x, gmv: 1}\n")
            touch_later(file)
            with capture_logs() as logs:
                assert reloader.check() is False
        [refusal] = [e for e in logs if e["event"] == "targets_reload_refused"]
        assert (refusal["file"], refusal["line"]) == (str(file), 3)
        ingest(pipeline, snapshot(gmv=118000))
        assert [i.threshold for i in incidents(pipeline)] == [150000]
