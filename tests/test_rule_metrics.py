"""Nothing is guessed, for rules: a rule names a metric the registry knows or one its pack
declares (``metrics:``); a misspelt metric is refused naming file, line and the closest
known id, and declared metrics are validated in snapshots like registry ones (issue 14,
item 5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import jsonl, snapshot
from tests.test_reload import edit_and_reload
from watcher.cli import app
from watcher.errors import ConfigError
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.rules.status import RulesStatus
from watcher.rules.testing import run_files
from watcher.snapshot import Snapshot
from watcher.validation import RawRecord, Rejection, read_records, validate

TYPO = """\
rules:
  - id: penalty-typo
    description: a misspelt metric
    condition: penalti_count > 0
    severity: high
    audience: compliance
    message: {en: x, zh-CN: x}
"""

DECLARED = """\
metrics:
  ad_spend_share:
    unit: fraction
    direction: lower
    range: [0, 1]
    names: {en: Ad spend share, zh-CN: 广告花费占比}
rules:
  - id: ad-spend-high
    description: ad spend above 40 % of GMV
    condition: ad_spend_share > 0.4
    severity: medium
    audience: manager
    message: {en: "{store}: ad spend {value}", zh-CN: "{store}：广告花费 {value}"}
"""


def refusal(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_pack(path)
    return caught.value


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


class TestUnknownMetrics:
    def test_a_misspelt_metric_is_refused_with_the_closest_known_id(self, tmp_path: Path):
        path = write(tmp_path, "typo.yaml", TYPO)
        error = refusal(path)
        assert (error.file, error.line, error.key) == (str(path), 4, "rules.0.condition")
        assert "'penalti_count' is not a known metric" in error.reason
        assert "did you mean penalty_count?" in error.reason

    def test_rules_check_refuses_it(self, tmp_path: Path):
        result = CliRunner().invoke(app, ["rules", "check", str(write(tmp_path, "t.yaml", TYPO))])
        assert result.exit_code != 0
        assert "line 4" in result.output and "did you mean penalty_count?" in result.output

    def test_a_misspelt_metric_in_a_variant_names_the_variants_line(self, tmp_path: Path):
        path = write(tmp_path, "v.yaml", TYPO.replace("penalti_count", "penalty_count") + (
            "    variants:\n      - when: {stage: novice}\n"
            "        condition: dispute_rat > 0.05\n"))
        error = refusal(path)
        assert (error.line, error.key) == (10, "rules.0.variants.0.condition")
        assert "did you mean dispute_rate?" in error.reason

    def test_nothing_close_gets_no_suggestion(self, tmp_path: Path):
        error = refusal(write(tmp_path, "t.yaml", TYPO.replace("penalti_count", "zzz")))
        assert "did you mean" not in error.reason and "metrics:" in error.reason

    def test_a_reload_with_a_misspelt_metric_is_refused_and_says_why(
            self, pipeline: Pipeline, tmp_path: Path, default_pack_path: Path):
        status, version = RulesStatus(), pipeline.engine.version
        took, file = edit_and_reload(pipeline, tmp_path, default_pack_path,
                                     "condition: penalty_count > 0",
                                     "condition: penalti_count > 0", status)
        assert took is False and pipeline.engine.version == version
        last = status.last_reload
        assert last is not None and not last.accepted and last.version == version
        assert last.file == str(file) and last.line is not None
        assert last.error is not None and "did you mean penalty_count?" in last.error


class TestDeclaredMetrics:
    def test_a_declared_metric_may_be_named(self, tmp_path: Path):
        pack = load_pack(write(tmp_path, "d.yaml", DECLARED))
        spec = pack.metrics["ad_spend_share"]
        assert (spec.unit, spec.direction, spec.minimum, spec.maximum) == (
            "fraction", "lower", 0.0, 1.0)
        assert spec.name_zh == "广告花费占比"
        assert pack.get("ad-spend-high") is not None

    def test_a_declaration_in_another_file_of_the_pack_counts(self, tmp_path: Path):
        head, rules = DECLARED.split("rules:\n")
        write(tmp_path, "a-metrics.yaml", head + "rules: []\n")
        write(tmp_path, "b-rules.yaml", "rules:\n" + rules)
        assert set(load_pack(tmp_path).metrics) == {"ad_spend_share"}

    def test_declarations_change_the_pack_version_and_no_declaration_keeps_it(
            self, tmp_path: Path, default_pack_path: Path):
        plain = load_pack(default_pack_path)
        rules = tmp_path / "rules"
        shutil.copytree(default_pack_path, rules)
        write(rules, "extra.yaml", DECLARED.split("rules:\n")[0] + "rules: []\n")
        assert load_pack(rules).version != plain.version
        assert load_pack(default_pack_path).version == plain.version

    @pytest.mark.parametrize(("spec", "message"), [
        ("{unit: count, direction: lower}", "is required"),
        ("{unit: count, range: [0, 5]}", "is required"),
        ("{unit: furlongs, direction: lower, range: [0, 5]}", "Input should be"),
        ("{unit: count, direction: lower, range: [5, 0]}", "is empty"),
        ("{unit: count, direction: lower, range: [0, 5], colour: red}", "not a known key"),
    ])
    def test_a_declaration_needs_unit_direction_and_a_range(
            self, tmp_path: Path, spec: str, message: str):
        error = refusal(write(tmp_path, "d.yaml", f"metrics:\n  widgets: {spec}\nrules: []\n"))
        assert error.line == 2 and message in error.reason

    def test_a_registry_metric_cannot_be_redeclared(self, tmp_path: Path):
        text = ("metrics:\n  penalty_count: {unit: count, direction: lower, range: [0, null]}\n"
                "rules: []\n")
        error = refusal(write(tmp_path, "d.yaml", text))
        assert error.key == "metrics.penalty_count" and "registry metric" in error.reason

    def test_a_metric_declared_twice_is_refused(self, tmp_path: Path):
        head = DECLARED.split("rules:\n")[0]
        write(tmp_path, "a.yaml", head + "rules: []\n")
        second = write(tmp_path, "b.yaml", head + "rules: []\n")
        error = refusal(tmp_path)
        assert error.file == str(second) and "already declared" in error.reason


def record(**metrics: object) -> RawRecord:
    body = {"store": "s1", "platform": "amazon", "period": "2026-10", "metrics": metrics}
    return RawRecord("line 1", "{}", body)


class TestDeclaredMetricsInSnapshots:
    def test_a_declared_range_is_enforced_when_the_pack_is_passed(self, tmp_path: Path):
        declared = load_pack(write(tmp_path, "d.yaml", DECLARED)).metrics
        verdict = validate(record(ad_spend_share=3.5), "t", declared)
        assert isinstance(verdict, Rejection) and verdict.field == "metrics.ad_spend_share"
        assert "fraction" in verdict.error
        assert isinstance(validate(record(ad_spend_share=0.35), "t", declared), Snapshot)

    def test_without_the_pack_the_metric_is_not_range_checked(self):
        assert isinstance(validate(record(ad_spend_share=3.5), "t"), Snapshot)

    def test_the_pipeline_validates_with_the_pack_in_force(
            self, pipeline: Pipeline, tmp_path: Path):
        pipeline.use_engine(RuleEngine(load_pack(write(tmp_path, "d.yaml", DECLARED))))
        report = pipeline.ingest(read_records(jsonl(
            snapshot(store="bad", ad_spend_share=-0.5),
            snapshot(store="good", ad_spend_share=0.5))), "t")
        [rejection] = report.rejected
        assert (rejection.field, report.accepted) == ("metrics.ad_spend_share", 1)

    def test_rule_tests_validate_snapshots_against_the_packs_declarations(
            self, tmp_path: Path):
        write(tmp_path, "d.yaml", DECLARED)
        tests = tmp_path / "tests"
        tests.mkdir()
        case = write(tests, "ad.yaml", (
            "defaults: {store: s1, platform: amazon, period: 2026-10}\ntests:\n"
            "  - name: a share of 50 % fires\n"
            "    snapshots: [{metrics: {ad_spend_share: 0.5}}]\n"
            "    incidents: [{rule: ad-spend-high, subject: s1}]\n"))
        [result] = run_files([case])
        assert result.passed, [c.diff() for c in result.cases]
        case.write_text(case.read_text().replace("0.5}", "50}"))
        with pytest.raises(ConfigError) as caught:
            run_files([case])
        assert caught.value.key == "tests.0.snapshots.0.metrics.ad_spend_share"
