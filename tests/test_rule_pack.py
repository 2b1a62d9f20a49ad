"""The shipped rule pack: all 17 indicators, every variant under test, and its own tests pass."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT
from watcher.cli import app
from watcher.indicators import INDICATORS
from watcher.rules.engine import RuleEngine, normalise_segment
from watcher.rules.expression import comparisons
from watcher.rules.loader import load_pack
from watcher.rules.model import RulePack
from watcher.rules.testing import replay
from watcher.snapshot import Snapshot
from watcher.validation import RawRecord, read_records, validate

PACK = ROOT / "rules" / "default"
REFERENCE_INDICATORS = {  # kpi-reference.md §1, in its order
    "gmv", "net_margin", "conversion_rate", "new_customer_share", "new_category_share",
    "inventory_turnover", "stockout_rate", "order_processing_hours", "delivery_success_rate",
    "positive_review_rate", "dispute_rate", "dispute_win_rate", "repurchase_rate",
    "ltv_growth", "account_health_score", "penalty_count", "risk_response_hours",
}
runner = CliRunner()


def watcher(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--log-json", *args])
    return result.exit_code, result.output


def pack_tests() -> list[dict[str, Any]]:
    """Every case of the shipped tests, with its file's defaults applied to its snapshots."""
    cases = []
    for path in sorted((PACK / "tests").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in data["tests"]:
            snapshots = [{**data.get("defaults", {}), **s} for s in case["snapshots"]]
            cases.append({**case, "snapshots": snapshots})
    return cases


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(PACK)


class TestDefaultPack:
    def test_every_reference_indicator_has_a_rule_labelled_with_it(self, pack: RulePack):
        threshold = [r for r in pack.rules if r.kind == "threshold"]
        assert {r.labels["indicator"] for r in threshold} >= REFERENCE_INDICATORS
        for rule in threshold:
            assert rule.metrics() == {rule.labels["indicator"]}, rule.id

    def test_the_ids_that_tests_and_docs_use_are_kept(self, pack: RulePack):
        assert {"account-health-low", "penalty-received", "dispute-rate-high",
                "pip-recommended", "platform-target"} <= {r.id for r in pack.rules}

    def test_every_rule_carries_dimension_cycle_indicator_and_both_languages(self, pack: RulePack):
        for rule in pack.rules:
            assert rule.labels["dimension"] in {"performance", "efficiency", "customer",
                                                "compliance"}, rule.id
            assert rule.labels["cycle"] in {"realtime", "daily", "monthly", "quarterly",
                                            "annual"}
            assert rule.labels["indicator"], rule.id
            assert set(rule.message) == {"en", "zh-CN"}, rule.id

    def test_message_cases_name_known_metrics_in_both_languages(self, pack: RulePack):
        # a misspelt metric in `when:` would never match: the alert would fall back silently
        for rule in pack.rules:
            for case in rule.message_cases:
                assert {c.metric for c in comparisons(case.compiled)} <= set(INDICATORS), \
                    (rule.id, case.when)
                assert set(case.text) == {"en", "zh-CN"}, (rule.id, case.when)

    def test_audiences_follow_the_dimension(self, pack: RulePack):
        for rule in pack.rules:
            dimension = rule.labels["dimension"]
            if dimension == "compliance":
                assert rule.audience == "compliance", rule.id
            elif dimension in ("performance", "efficiency"):
                assert rule.audience in ("manager", "operations"), rule.id

    def test_the_whole_pack_compiles_and_judges_a_snapshot_with_everything(self, pack: RulePack):
        # durable-rules refuses large $or forms (error 113) at registration: register the
        # whole pack, then assert a fact that every form has to look at.
        engine = RuleEngine(pack)
        metrics = {m: 0.0 for m in REFERENCE_INDICATORS}
        metrics.update(account_health_score=50, penalty_count=3, major_penalty_count=1,
                       dispute_rate=0.5,
                       order_processing_hours=100, risk_response_hours=100,
                       stockout_rate=0.5, ad_share_of_gmv=0.9, penalty_points=3,
                       ahr_score=50)
        snapshot = Snapshot.model_validate({
            "store": "s1", "platform": "amazon", "period": "2026-10", "operator": "o",
            "segment": {"stage": "mature", "category": "electronics", "special_category": True,
                        "fulfillment": "overseas_warehouse", "region": "remote",
                        "price_band": "high", "category_type": "fmcg"},
            "metrics": metrics, "targets": {m: 1 for m in (
                "gmv", "conversion_rate", "new_customer_share", "new_category_share")}})
        fired: set[str] = set()
        for platform in ("amazon", "shopee"):  # a platform's own line judges its stores only
            verdict = engine.evaluate(snapshot.model_copy(update={"platform": platform}))
            on_platform = {form.rule.id for form in verdict.fired}
            others = {r.id for r in pack.rules if r.platforms and platform not in r.platforms}
            assert not on_platform & others, platform
            fired |= on_platform
        threshold = {r.id for r in pack.rules if r.kind == "threshold"
                     and (not r.periods or "month" in r.periods)}  # daily ones: daily.yaml tests
        assert fired >= threshold
        # the PIP is judged on monthly cards, not per snapshot: no form of it in the engine
        assert "pip-recommended" not in fired

    def test_every_threshold_rule_and_variant_is_exercised_by_the_pack_tests(self, pack: RulePack):
        cases = pack_tests()
        expected = {i["rule"] for c in cases for i in c.get("incidents", [])}
        segments = [normalise_segment(s.get("segment", {}))
                    for c in cases for s in c["snapshots"]]
        for rule in pack.rules:
            if rule.kind == "threshold":
                assert rule.id in expected, f"no case makes {rule.id} fire"
            for variant in rule.variants:
                assert any(variant.matches(s) for s in segments), \
                    f"no case tests {rule.id} when {variant.when}"


class TestRulesTestCommand:
    def test_the_shipped_tests_pass(self):
        code, out = watcher("rules", "test", str(ROOT / "rules"))
        assert code == 0, out
        assert out.count("PASS ") == len(list((PACK / "tests").glob("*.yaml")))
        assert "FAIL" not in out and out.rstrip().endswith("0 failed")

    def test_without_arguments_it_runs_the_configured_packs_tests(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        config = tmp_path / "watcher.yaml"
        config.write_text(f"rules: {ROOT / 'rules'}\n", encoding="utf-8")
        monkeypatch.setenv("WATCHER_CONFIG", str(config))
        code, out = watcher("rules", "test")
        assert code == 0 and f"PASS {PACK / 'tests' / 'pip.yaml'}" in out

    def test_a_changed_threshold_fails_with_a_diff_and_exit_1(self, tmp_path: Path):
        pack = tmp_path / "default"
        shutil.copytree(PACK, pack)
        efficiency = pack / "efficiency.yaml"
        efficiency.write_text(efficiency.read_text(encoding="utf-8").replace(
            "stockout_rate > 0.05", "stockout_rate > 0.06"), encoding="utf-8")
        code, out = watcher("rules", "test", str(pack))
        assert code == 1
        assert f"FAIL {pack / 'tests' / 'efficiency.yaml'}: 2 of 21 case(s) failed" in out
        assert "  case 'stockouts 5.01 % fire, medium' (line" in out
        assert ("    - expected, not opened: stockout-rate-high for s1 "
                "(severity medium, metric stockout_rate)") in out
        assert f"PASS {pack / 'tests' / 'compliance.yaml'}" in out
        assert out.rstrip().endswith("3 failed")

    def test_a_folder_without_tests_is_an_error(self, tmp_path: Path):
        shutil.copy(PACK / "compliance.yaml", tmp_path / "compliance.yaml")
        code, out = watcher("rules", "test", str(tmp_path))
        assert code == 2 and "no rule tests" in out

    def test_a_malformed_test_file_exits_2_naming_file_and_line(self, tmp_path: Path):
        path = tmp_path / "bad.test.yaml"
        path.write_text(f"rules: {PACK}\ntests:\n  - name: x\n    snapshots: [{{store: s}}]\n",
                        encoding="utf-8")
        code, out = watcher("rules", "test", str(path))
        assert code == 2
        assert f"{path}, line 4, key 'tests.0.snapshots.0.platform'" in out


class TestExamples:
    """The quick start's story holds with the full pack (README, examples/README.md)."""

    def test_the_examples_open_the_incidents_the_story_tells(self):
        records = [*read_records((ROOT / "examples" / "snapshots.jsonl").read_bytes()),
                   *read_records((ROOT / "examples" / "stores.csv").read_bytes())]
        snapshots = [validate(r) for r in records if isinstance(r, RawRecord)]
        assert len(snapshots) == 12 and all(isinstance(s, Snapshot) for s in snapshots)
        in_order = sorted((s for s in snapshots if isinstance(s, Snapshot)),
                          key=lambda s: s.period)
        opened = replay(RuleEngine(load_pack(ROOT / "rules")), in_order)
        assert {(i.rule, i.subject, i.status.value) for i in opened} == {
            ("pip-recommended", "li.wei", "open"),
            ("account-health-low", "amz-us-01", "open"),
            ("account-health-low", "amz-de-04", "open"),
            ("penalty-received", "tts-uk-03", "open"),
            ("dispute-rate-high", "shopee-my-02", "resolved"),
            ("gmv-below-target", "amz-us-01", "open"),
            ("net-margin-low", "amz-us-01", "open"),  # 21 %, and a mature store needs 25 %
        }
