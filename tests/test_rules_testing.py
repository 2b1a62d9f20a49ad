"""Rule unit tests (``watcher rules test``): the runner, its file format and its verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.errors import ConfigError
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack, rule_files
from watcher.rules.testing import (
    ActualIncident,
    CaseResult,
    ExpectedIncident,
    compare,
    default_rules,
    replay,
    rule_test_files,
    run_file,
)
from watcher.snapshot import Snapshot

# Two-key variants and a tie: what "the most specific matching variant" means.
PACK = """
rules:
  - id: margin-low
    description: Net margin by stage and category
    condition: net_margin < 0.20
    variants:
      - when: {stage: mature}
        condition: net_margin < 0.25
      - when: {category: apparel}
        condition: net_margin < 0.10
      - when: {stage: mature, category: apparel}
        condition: net_margin < 0.30
    severity: medium
    audience: manager
    message: {en: "margin {value}", zh-CN: "利润率 {value}"}
  - id: gmv-low
    description: GMV below target
    condition: gmv < target
    severity: low
    audience: manager
    message: {en: "gmv {value}", zh-CN: "销售额 {value}"}
  - id: pip
    kind: streak
    subject: operator
    months: 3
    description: Three missed months
    severity: high
    audience: manager
    message: {en: "pip {operator}", zh-CN: "PIP {operator}"}
"""


def pack_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    (folder / "tests").mkdir(parents=True)
    (folder / "rules.yaml").write_text(PACK, encoding="utf-8")
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def actual(rule: str, subject: str, severity: str = "medium", metric: str | None = None,
           status: str = "open") -> ActualIncident:
    return ActualIncident(rule, "store", subject, severity, metric, status)


class TestRuleTestFiles:
    def test_finds_tests_folders_and_dot_test_files_but_not_rules(self, tmp_path: Path):
        folder = pack_folder(tmp_path)
        one = write(folder / "tests" / "one.yaml", "tests: []\n")
        two = write(folder / "two.test.yaml", "tests: []\n")
        assert rule_test_files(folder) == sorted([one, two])
        assert rule_test_files(folder / "tests") == [one]
        assert rule_test_files(one) == [one]

    def test_the_rule_loader_never_reads_them(self, tmp_path: Path):
        folder = pack_folder(tmp_path)
        write(folder / "tests" / "one.yaml", "not: a rule file\n")
        write(folder / "two.test.yml", "not: a rule file\n")
        assert rule_files(folder) == [folder / "rules.yaml"]
        assert len(load_pack(folder).rules) == 3

    def test_a_missing_path_is_a_config_error(self, tmp_path: Path):
        with pytest.raises(ConfigError, match="no such file"):
            rule_test_files(tmp_path / "nope")

    def test_the_default_pack_is_the_folder_holding_tests(self, tmp_path: Path):
        assert default_rules(tmp_path / "pack" / "tests" / "a.yaml") == tmp_path / "pack"
        assert default_rules(tmp_path / "pack" / "a.test.yaml") == tmp_path / "pack"


class TestExpectedIncident:
    def test_rule_and_subject_must_match(self):
        expected = ExpectedIncident(rule="margin-low", subject="s1")
        assert expected.matches(actual("margin-low", "s1"))
        assert not expected.matches(actual("margin-low", "s2"))
        assert not expected.matches(actual("gmv-low", "s1"))

    def test_optional_fields_are_checked_only_when_given(self):
        expected = ExpectedIncident.model_validate(
            {"rule": "margin-low", "subject": "s1", "severity": "high", "status": "resolved"})
        assert expected.matches(actual("margin-low", "s1", "high", status="resolved"))
        assert not expected.matches(actual("margin-low", "s1", "medium", status="resolved"))
        assert not expected.matches(actual("margin-low", "s1", "high", status="open"))

    def test_an_unknown_severity_is_refused(self):
        with pytest.raises(ValueError, match="severity"):
            ExpectedIncident.model_validate({"rule": "r", "subject": "s", "severity": "urgent"})


class TestCompare:
    def test_each_incident_answers_one_expectation(self):
        one = ExpectedIncident(rule="r", subject="s")
        missing, unexpected = compare([one, one], [actual("r", "s")])
        assert missing == (one,) and unexpected == ()

    def test_incidents_nobody_expected_are_reported(self):
        missing, unexpected = compare([], [actual("r", "s")])
        assert missing == () and unexpected == (actual("r", "s"),)


class TestCaseResult:
    def test_diff_marks_missing_unexpected_and_differing(self):
        result = CaseResult("c", 3, missing=(
            ExpectedIncident.model_validate({"rule": "a", "subject": "s1", "severity": "high"}),
            ExpectedIncident(rule="b", subject="s1")),
            unexpected=(actual("a", "s1", "critical"), actual("c", "s1", metric="gmv")))
        assert not result.passed
        assert result.diff() == [
            "~ a for s1: severity expected high, got critical",
            "- expected, not opened: b for s1",
            "+ opened, not expected: c for store s1 (severity medium, metric gmv, status open)",
        ]

    def test_passes_when_nothing_differs(self):
        assert CaseResult("c", None, (), ()).passed


class TestRunFile:
    def test_a_passing_file(self, tmp_path: Path):
        folder = pack_folder(tmp_path)
        path = write(folder / "tests" / "margin.yaml", """
defaults: {store: s1, platform: amazon, period: 2026-10}
tests:
  - name: at the mature bar
    snapshots: [{segment: {stage: mature}, metrics: {net_margin: 0.25}}]
  - name: under it
    snapshots: [{segment: {stage: mature}, metrics: {net_margin: 0.24}}]
    incidents: [{rule: margin-low, subject: s1, severity: medium, metric: net_margin}]
""")
        result = run_file(path)
        assert result.passed and result.rules == folder and len(result.cases) == 2
        assert result.report() == [f"PASS {path} (2 case(s), rules {folder})"]

    @pytest.mark.parametrize(("segment", "margin", "fires"), [
        ({"stage": "mature", "category": "apparel"}, 0.29, True),  # two keys beat one
        ({"stage": "mature", "category": "apparel"}, 0.30, False),
        ({"stage": "mature", "category": "shoes"}, 0.24, True),
        ({"stage": "novice", "category": "apparel"}, 0.11, False),
        ({"stage": "novice", "category": "apparel"}, 0.09, True),
        ({"stage": "novice"}, 0.19, True),                          # the default
        ({"stage": "novice"}, 0.20, False),
    ])
    def test_the_most_specific_matching_variant_decides(
            self, tmp_path: Path, segment: dict[str, str], margin: float, fires: bool):
        folder = pack_folder(tmp_path)
        expected = "[{rule: margin-low, subject: s1}]" if fires else "[]"
        path = write(folder / "tests" / "v.yaml", f"""
tests:
  - name: variant
    snapshots:
      - {{store: s1, platform: amazon, period: 2026-10, segment: {segment},
          metrics: {{net_margin: {margin}}}}}
    incidents: {expected}
""")
        assert run_file(path).passed

    def test_a_failing_case_reports_its_line_and_a_diff(self, tmp_path: Path):
        folder = pack_folder(tmp_path)
        path = write(folder / "tests" / "margin.yaml", """
defaults: {store: s1, platform: amazon, period: 2026-10}
tests:
  - name: fine
    snapshots: [{metrics: {net_margin: 0.5}}]
  - name: wrong
    snapshots: [{metrics: {net_margin: 0.1, gmv: 1}, targets: {gmv: 2}}]
    incidents: [{rule: margin-low, subject: s1, severity: high}]
""")
        result = run_file(path)
        assert not result.passed and [c.name for c in result.failed] == ["wrong"]
        assert result.report() == [
            f"FAIL {path}: 1 of 2 case(s) failed (rules {folder})",
            "  case 'wrong' (line 6):",
            "    ~ margin-low for s1: severity expected high, got medium",
            "    + opened, not expected: gmv-low for store s1 "
            "(severity low, metric gmv, status open)",
        ]

    def test_the_rules_key_points_at_the_pack_relative_to_the_file(self, tmp_path: Path):
        pack_folder(tmp_path)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        path = write(elsewhere / "t.yaml", """
rules: ../pack/rules.yaml
tests:
  - name: fires
    snapshots: [{store: s1, platform: amazon, period: 2026-10, metrics: {net_margin: 0}}]
    incidents: [{rule: margin-low, subject: s1}]
""")
        result = run_file(path)
        assert result.passed and result.rules == elsewhere / "../pack/rules.yaml"

    def test_a_malformed_file_names_its_line_and_key(self, tmp_path: Path):
        path = write(pack_folder(tmp_path) / "tests" / "bad.yaml", """
tests:
  - name: typo
    snapshots: [{store: s1, platform: amazon, period: 2026-10, metrics: {gmv: 1}}]
    incident: []
""")
        with pytest.raises(ConfigError, match="is not a known key") as caught:
            run_file(path)
        assert (caught.value.file, caught.value.line) == (str(path), 5)
        assert caught.value.key == "tests.0.incident"

    def test_an_invalid_snapshot_names_its_line_and_field(self, tmp_path: Path):
        path = write(pack_folder(tmp_path) / "tests" / "bad.yaml", """
tests:
  - name: a rate of 3.5
    snapshots:
      - {store: s1, platform: amazon, period: 2026-10, metrics: {net_margin: 0.1}}
      - store: s1
        platform: amazon
        period: 2026-10
        metrics:
          net_margin: 3.5
""")
        with pytest.raises(ConfigError, match="a rate is a fraction") as caught:
            run_file(path)
        assert caught.value.key == "tests.0.snapshots.1.metrics.net_margin"
        assert caught.value.line == 10


class TestReplay:
    @pytest.fixture
    def engine(self, tmp_path: Path) -> RuleEngine:
        return RuleEngine(load_pack(pack_folder(tmp_path)))

    @staticmethod
    def month(period: str, gmv: float, store: str = "s1") -> Snapshot:
        return Snapshot.model_validate({
            "store": store, "platform": "amazon", "period": period, "operator": "li.wei",
            "metrics": {"gmv": gmv}, "targets": {"gmv": 100}})

    def test_three_missed_months_of_any_stores_make_a_pip(self, engine: RuleEngine):
        opened = replay(engine, [self.month("2026-07", 1, "a"), self.month("2026-08", 1, "b"),
                                 self.month("2026-09", 1, "a")])
        assert [(i.rule, i.subject) for i in opened] == [
            ("gmv-low", "a"), ("gmv-low", "b"), ("pip", "li.wei")]
        pip = opened[-1]
        assert [e["period"] for e in pip.evidence] == ["2026-07", "2026-08", "2026-09"]
        assert [e["store"] for e in pip.evidence] == ["a", "b", "a"]

    def test_a_met_month_resolves_the_store_incident_and_the_pip_waits_for_a_manager(
            self, engine: RuleEngine):
        opened = replay(engine, [self.month(m, 1) for m in ("2026-07", "2026-08", "2026-09")]
                        + [self.month("2026-10", 100)])
        assert [(i.rule, i.status.value) for i in opened] == [
            ("gmv-low", "resolved"), ("pip", "open")]

    def test_a_restatement_updates_the_live_incident_instead_of_opening_another(
            self, engine: RuleEngine):
        opened = replay(engine, [self.month("2026-07", 1), self.month("2026-07", 1),
                                 self.month("2026-07", 2)])
        [incident] = opened
        assert incident.value == 2 and incident.status.value == "open"

    def test_nothing_is_opened_by_snapshots_that_breach_nothing(self, engine: RuleEngine):
        assert replay(engine, [self.month("2026-07", 100)]) == []
