"""Operator scorecards: thresholds from the rule pack, targets, tier weights, roll-ups,
multi-store aggregation, the store query, the CLI and the HTTP endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import LOCAL, Clock, http_app, jsonl, snapshot
from watcher.assessment.grades import grade_of
from watcher.assessment.rollup import Combine, combine, combine_kind, weights_of
from watcher.assessment.scorecard import (
    CardItem,
    CardResult,
    ItemStatus,
    Scorecard,
    TeamRow,
    build_card,
    build_team,
    card_period,
    operator_card,
    team_cards,
)
from watcher.assessment.scorecard_report import html_page
from watcher.assessment.targets import TargetBook, load_targets
from watcher.assessment.weights import ScorecardSettings
from watcher.auth import Role, create_token
from watcher.cli import app
from watcher.config import Settings, load_settings
from watcher.errors import ConfigError, InputError
from watcher.indicators import Cycle
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.rules.model import RulePack
from watcher.runtime import Runtime
from watcher.snapshot import Comparator, Snapshot
from watcher.store import Database
from watcher.validation import read_records

ROOT_RULES = Path(__file__).resolve().parent.parent / "rules"


def _rule(rule_id: str, condition: str, indicator: str, extra: str = "") -> str:
    return f"""
  - id: {rule_id}
    description: {rule_id}
    condition: {condition}
    severity: medium
    audience: manager
    labels: {{indicator: {indicator}}}
    message: {{en: "{rule_id} {{value}}", zh-CN: "{rule_id} {{value}}"}}{extra}"""


RULES = "rules:" + "".join([
    _rule("gmv-below-target", "gmv < target", "gmv"),
    _rule("net-margin-low", "net_margin < 0.15", "net_margin", """
    variants:
      - when: {stage: mature}
        condition: net_margin < 0.25"""),
    _rule("stockout-high", "stockout_rate > 0.05", "stockout_rate"),
    _rule("order-handling-slow", "order_processing_hours > 24", "order_processing_hours"),
    _rule("dispute-rate-high", "dispute_rate > 0.03", "dispute_rate"),
    _rule("dispute-wins-low", "dispute_win_rate < target", "dispute_win_rate"),
    _rule("account-health-low", "account_health_score < 90", "account_health_score"),
    _rule("penalty-received", "penalty_count > 0", "penalty_count"),
    _rule("ltv-growth-low", "ltv_growth < 0.2", "ltv_growth"),
    # a compound condition refines an alert; it is not an assessment threshold
    _rule("ads-carry-gmv", "ad_share_of_gmv > 0.5 and gmv > 1000", "ad_share_of_gmv"),
]) + "\n"


@pytest.fixture
def pack_path(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.fixture
def pack(pack_path: Path) -> RulePack:
    return load_pack(pack_path)


def snap(store: str = "amz-us-01", period: str = "2026-10", *, operator: str = "li.wei",
         **fields: Any) -> Snapshot:
    return Snapshot.model_validate(snapshot(store, period, operator=operator, **fields))


def card_of(pack: RulePack, *snaps: Snapshot, period: str = "2026-10",
            book: TargetBook | None = None, settings: ScorecardSettings | None = None,
            operator: str = "li.wei") -> Scorecard:
    return build_card(operator, Period.parse(period), snaps, pack, book or TargetBook(),
                      settings or ScorecardSettings())


def item(card: Scorecard, indicator: str) -> CardItem:
    return next(i for i in card.items if i.indicator == indicator)


def targets_file(tmp_path: Path, text: str) -> TargetBook:
    path = tmp_path / "targets.yaml"
    path.write_text(text, encoding="utf-8")
    return load_targets(path)


class TestScorecard:
    def test_a_value_exactly_at_a_threshold_passes_and_just_beyond_fails(self, pack: RulePack):
        at = card_of(pack, snap(period="2026-Q3", dispute_rate=0.03), period="2026-Q3")
        beyond = card_of(pack, snap(period="2026-Q3", dispute_rate=0.0301), period="2026-Q3")
        assert (item(at, "dispute_rate").status, item(beyond, "dispute_rate").status) == (
            ItemStatus.PASS, ItemStatus.FAIL)
        judged = item(beyond, "dispute_rate")
        assert (judged.threshold, judged.comparator, judged.basis, judged.rule) == (
            0.03, Comparator.LE, "rule", "dispute-rate-high")

    def test_the_stores_segment_picks_the_rule_variant(self, pack: RulePack):
        mature = {"stage": "mature"}
        low = card_of(pack, snap(net_margin=0.2499, segment=mature))
        at = card_of(pack, snap(net_margin=0.25, segment=mature))
        novice = card_of(pack, snap(net_margin=0.2))
        assert [item(c, "net_margin").status for c in (low, at, novice)] == [
            ItemStatus.FAIL, ItemStatus.PASS, ItemStatus.PASS]
        assert (item(low, "net_margin").threshold, item(novice, "net_margin").threshold) == (
            0.25, 0.15)

    def test_a_target_from_the_file_judges_gmv_unless_the_snapshot_sent_one(
            self, pack: RulePack, tmp_path: Path):
        book = targets_file(tmp_path, "targets:\n  - {operator: li.wei, gmv: 150000}\n")
        from_file = item(card_of(pack, snap(gmv=149999), book=book), "gmv")
        assert (from_file.status, from_file.threshold, from_file.comparator, from_file.basis) \
            == (ItemStatus.FAIL, 150000, Comparator.GE, "target")
        sent = item(card_of(pack, snap(gmv=149999, targets={"gmv": 140000}), book=book), "gmv")
        assert (sent.status, sent.threshold) == (ItemStatus.PASS, 140000)

    def test_a_target_comes_before_the_rule_threshold(self, pack: RulePack):
        judged = item(card_of(pack, snap(stockout_rate=0.04,
                                         targets={"stockout_rate": 0.03})), "stockout_rate")
        assert (judged.status, judged.threshold, judged.basis) == (
            ItemStatus.FAIL, 0.03, "target")

    def test_what_cannot_be_judged_is_shown_but_not_scored(self, pack: RulePack):
        card = card_of(pack, snap(gmv=100, ad_share_of_gmv=0.7, stockout_rate=0.01))
        assert item(card, "gmv").status is ItemStatus.NO_CRITERION  # gmv < target, no target
        assert item(card, "ad_share_of_gmv").status is ItemStatus.NO_CRITERION
        assert item(card, "order_processing_hours").status is ItemStatus.NO_DATA
        assert "conversion_rate" not in [i.indicator for i in card.items]  # no rule, no data
        assert (card.score, card.result) == (1.0, CardResult.PASS)

    def test_a_minor_penalty_does_not_veto_the_card(self, pack: RulePack):
        card = card_of(pack, snap(stockout_rate=0.01, penalty_count=1))
        assert (card.score, card.result, card.vetoes, card.grade) == (
            1.0, CardResult.PASS, (), "S")

    def test_a_major_penalty_fails_a_card_with_full_marks_and_lowers_its_grade(
            self, pack: RulePack):
        card = card_of(pack, snap(stockout_rate=0.01, penalty_count=1, major_penalty_count=1))
        assert card.score == 1.0
        assert card.result is CardResult.FAIL
        assert [str(v) for v in card.vetoes] == [
            "major_penalty_count = 1 at amz-us-01 in 2026-10"]
        assert card.grading is not None
        assert (card.grade, card.grading.by_score, card.grading.bonus) == ("A", "S", 1.2)
        assert card.grading.downgraded == (
            "major violation: major_penalty_count = 1 at amz-us-01 in 2026-10")

    def test_a_rule_marked_as_a_major_violation_vetoes_where_it_holds(self, tmp_path: Path):
        path = tmp_path / "major.yaml"
        path.write_text(RULES + _rule(
            "health-critical", "account_health_score < 50", "account_health_score",
            "\n    downgrades_assessment: true") + "\n", encoding="utf-8")
        pack = load_pack(path)
        card = card_of(pack, snap(stockout_rate=0.01, account_health_score=40))
        assert [(v.metric, v.value, v.rule) for v in card.vetoes] == [
            ("account_health_score", 40.0, "health-critical")]
        assert card.result is CardResult.FAIL
        assert card_of(pack, snap(stockout_rate=0.01, account_health_score=60)).vetoes == ()

    def test_nothing_to_judge_is_incomplete(self, pack: RulePack):
        card = card_of(pack, snap(gmv=100))
        assert (card.score, card.result, card.failing) == (None, CardResult.INCOMPLETE, ())

    def test_each_cycle_assesses_its_own_indicators(self, pack: RulePack):
        data = {"stockout_rate": 0.01, "dispute_rate": 0.01, "penalty_count": 0,
                "ltv_growth": 0.25}
        month = card_of(pack, snap(**data))
        quarter = card_of(pack, snap(period="2026-Q4", **data), period="2026-Q4")
        year = card_of(pack, snap(period="2026", **data), period="2026")
        judged = {c.cycle: [i.indicator for i in c.items if i.value is not None]
                  for c in (month, quarter, year)}
        assert judged == {Cycle.MONTHLY: ["stockout_rate"],
                          Cycle.QUARTERLY: ["dispute_rate", "penalty_count"],
                          Cycle.ANNUAL: ["ltv_growth"]}


MONTH: dict[str, Any] = {"gmv": 160000, "targets": {"gmv": 150000}, "net_margin": 0.3,
                         "stockout_rate": 0.02, "order_processing_hours": 30}


class TestTierWeights:
    def test_slow_order_handling_fails_a_junior_but_not_a_mid_level_operator(
            self, pack: RulePack):
        cards = {level: card_of(pack, snap(segment={"level": level}, **MONTH))
                 for level in ("junior", "mid", "senior")}
        # junior: gmv 1 + margin 1 + stockout 2 pass, order handling 3 fails -> 4/7
        # mid: gmv 2 + margin 3 + stockout 1 pass, order handling 1 fails -> 6/7
        assert {level: (c.score, c.result) for level, c in cards.items()} == {
            "junior": (0.5714, CardResult.FAIL), "mid": (0.8571, CardResult.PASS),
            "senior": (0.75, CardResult.FAIL)}
        assert cards["junior"].failing == ("order_processing_hours",)

    def test_configured_weights_and_pass_mark_decide(self, pack: RulePack):
        lenient = ScorecardSettings(weights={"mid": {"efficiency": 0.5, "performance": 1}},
                                    pass_score=0.7)
        card = card_of(pack, snap(**MONTH), settings=lenient)
        assert (card.tier, card.score, card.result) == ("mid", 0.8333, CardResult.PASS)
        assert item(card, "order_processing_hours").weight == 0.5

    def test_without_or_with_an_unknown_level_the_default_tier_applies(self, pack: RulePack):
        assert card_of(pack, snap(**MONTH)).tier == "mid"
        card = card_of(pack, snap(segment={"level": "lead"}, **MONTH))
        assert (card.level, card.tier) == ("lead", "mid")


class TestStoreAggregation:
    def test_amounts_add_up_and_rates_are_order_weighted(self, pack: RulePack):
        card = card_of(
            pack,
            snap("a", period="2026-Q3", orders=100, dispute_rate=0.02, penalty_count=0),
            snap("b", period="2026-Q3", orders=300, dispute_rate=0.04, penalty_count=0),
            period="2026-Q3")
        disputes = item(card, "dispute_rate")
        # an equal mean would be 3 % and pass; 3.5 % of all orders were disputed
        assert (disputes.value, disputes.weighted_by, disputes.status) == (
            0.035, "orders", ItemStatus.FAIL)
        assert (item(card, "penalty_count").value, card.stores) == (0, ("a", "b"))

    def test_gmv_and_its_targets_are_summed(self, pack: RulePack):
        card = card_of(pack, snap("a", gmv=100000, targets={"gmv": 90000}),
                       snap("b", gmv=50000, targets={"gmv": 70000}))
        gmv = item(card, "gmv")
        assert (gmv.value, gmv.threshold, gmv.status, gmv.weighted_by) == (
            150000, 160000, ItemStatus.FAIL, None)

    def test_without_orders_rates_weigh_by_gmv(self, pack: RulePack):
        card = card_of(pack, snap("a", gmv=100, stockout_rate=0.02),
                       snap("b", gmv=300, stockout_rate=0.06))
        assert (item(card, "stockout_rate").value, item(card, "stockout_rate").weighted_by) == (
            0.05, "gmv")

    def test_account_health_is_the_worst_stores(self, pack: RulePack):
        card = card_of(pack, snap("a", period="2026-Q3", account_health_score=99),
                       snap("b", period="2026-Q3", account_health_score=88), period="2026-Q3")
        health = item(card, "account_health_score")
        assert (health.value, health.threshold, health.status) == (88, 90, ItemStatus.FAIL)

    def test_each_store_is_held_to_its_own_variant_and_the_thresholds_are_weighted(
            self, pack: RulePack):
        card = card_of(pack,
                       snap("a", orders=100, net_margin=0.16, segment={"stage": "novice"}),
                       snap("b", orders=300, net_margin=0.26, segment={"stage": "mature"}))
        margin = item(card, "net_margin")
        # (0.16*100 + 0.26*300) / 400 against (0.15*100 + 0.25*300) / 400
        assert (margin.value, margin.threshold, margin.status) == (
            0.235, 0.225, ItemStatus.PASS)

    def test_stores_whose_targets_compare_differently_are_judged_one_by_one(
            self, pack: RulePack):
        card = card_of(pack,
                       snap("a", gmv=150, targets={"gmv": {"value": 100, "comparator": ">"}}),
                       snap("b", gmv=50, targets={"gmv": 60}))
        gmv = item(card, "gmv")
        assert (gmv.basis, gmv.threshold, gmv.status) == ("per_store", None, ItemStatus.FAIL)


class TestPeriodRollup:
    MONTHS = (("2026-07", 100, 0.02, 0, 95), ("2026-08", 100, 0.05, 1, 89),
              ("2026-09", 200, 0.02, 0, 96))

    def months(self) -> list[Snapshot]:
        return [snap("s", period, orders=orders, dispute_rate=rate, penalty_count=penalties,
                     account_health_score=health)
                for period, orders, rate, penalties, health in self.MONTHS]

    def test_a_quarter_without_its_own_snapshot_rolls_up_its_months(self, pack: RulePack):
        card = card_of(pack, *self.months(), period="2026-Q3")
        assert card.periods == ("2026-07", "2026-08", "2026-09")
        assert [(i.indicator, i.value, i.status.value) for i in card.items
                if i.value is not None] == [
            ("dispute_rate", 0.0275, "pass"),          # (2 + 5 + 4) / 400
            ("account_health_score", 89, "fail"),       # the worst month
            ("penalty_count", 1, "fail")]               # summed
        assert card.vetoes == ()  # a minor penalty fails its indicator, not the card

    def test_the_quarters_own_snapshot_wins_for_the_metrics_it_has(self, pack: RulePack):
        quarter = snap("s", "2026-Q3", dispute_rate=0.01)
        card = card_of(pack, *self.months(), quarter, period="2026-Q3")
        assert (item(card, "dispute_rate").value, item(card, "penalty_count").value) == (0.01, 1)

    def test_a_year_is_covered_by_its_quarters_and_the_months_no_quarter_covers(
            self, pack: RulePack):
        quarters = [snap("s", f"2026-Q{q}", ltv_growth=0.2, orders=100) for q in (1, 2, 3)]
        october = snap("s", "2026-10", ltv_growth=0.1, orders=100)
        july = snap("s", "2026-07", ltv_growth=0.9, orders=100)  # inside Q3: not counted
        card = card_of(pack, *quarters, july, october, period="2026")
        # (0.2 * 300 + 0.1 * 100) / 400 orders
        assert (item(card, "ltv_growth").value, item(card, "ltv_growth").status) == (
            0.175, ItemStatus.FAIL)

    def test_monthly_targets_roll_up_unless_the_quarter_has_its_own(
            self, pack: RulePack, tmp_path: Path):
        months = [snap("s", period, orders=orders, dispute_win_rate=value,
                       targets={"dispute_win_rate": target})
                  for period, orders, value, target in (("2026-07", 100, 0.85, 0.8),
                                                        ("2026-08", 100, 0.85, 0.8),
                                                        ("2026-09", 200, 0.86, 0.9))]
        rolled = item(card_of(pack, *months, period="2026-Q3"), "dispute_win_rate")
        assert (rolled.value, rolled.threshold, rolled.status) == (0.855, 0.85, ItemStatus.PASS)
        book = targets_file(tmp_path, "targets:\n"
                            "  - {store: s, period: 2026-Q3, dispute_win_rate: 0.9}\n")
        stated = item(card_of(pack, *months, period="2026-Q3", book=book), "dispute_win_rate")
        assert (stated.threshold, stated.status) == (0.9, ItemStatus.FAIL)


class TestTeam:
    def test_one_card_per_operator_with_data_in_the_period(self, pack: RulePack):
        cards = build_team(Period.parse("2026-10"), [
            snap("a", operator="zhou", stockout_rate=0.09),
            snap("b", operator="an", stockout_rate=0.01),
            snap("c", "2026-09", operator="bo", stockout_rate=0.01)], pack, TargetBook(),
            ScorecardSettings())
        assert [(c.operator, c.result, c.failing) for c in cards] == [
            ("an", CardResult.PASS, ()), ("zhou", CardResult.FAIL, ("stockout_rate",))]


class TestRollup:
    def test_how_each_kind_of_metric_combines(self):
        kinds = {m: combine_kind(m) for m in ("gmv", "orders", "penalty_count", "dispute_rate",
                                              "order_processing_hours", "account_health_score",
                                              "account_suspended")}
        assert kinds == {"gmv": Combine.SUM, "orders": Combine.SUM,
                         "penalty_count": Combine.SUM, "dispute_rate": Combine.MEAN,
                         "order_processing_hours": Combine.MEAN,
                         "account_health_score": Combine.WORST,
                         "account_suspended": Combine.WORST}

    def test_weights_are_orders_else_gmv_else_equal(self):
        assert weights_of([{"orders": 1, "gmv": 9}, {"orders": 3, "gmv": 1}]) == (
            "orders", [1, 3])
        assert weights_of([{"orders": 1, "gmv": 9}, {"gmv": 1}]) == ("gmv", [9, 1])
        assert weights_of([{"orders": 1}, {}]) == ("equal", [1, 1])

    def test_a_mean_of_equal_rates_is_exactly_that_rate(self):
        assert combine("dispute_rate", [0.03, 0.03, 0.03], [0.1, 0.7, 0.2]) == 0.03
        assert combine("order_processing_hours", [20, 30], [0, 0]) == 25  # no weight: equal


class TestCardPeriod:
    def test_a_month_quarter_or_year(self):
        assert [card_period(p).kind.value for p in ("2026-10", "2026-Q3", "2026")] == [
            "month", "quarter", "year"]

    @pytest.mark.parametrize("text", ["2026-10-01", "2026-13", "last month"])
    def test_anything_else_names_the_period_field(self, text: str):
        with pytest.raises(InputError) as caught:
            card_period(text)
        assert caught.value.field == "period"


class TestScorecardSettings:
    def test_defaults_weigh_execution_strategy_and_strategic_contribution(self):
        weights = ScorecardSettings().weights
        assert max(weights["junior"], key=lambda k: weights["junior"][k]) == \
            "order_processing_hours"
        assert max(weights["mid"], key=lambda k: weights["mid"][k]) == "net_margin"
        assert max(weights["senior"], key=lambda k: weights["senior"][k]) == \
            "new_category_share"

    def test_a_bad_weight_in_the_config_names_file_and_line(self, tmp_path: Path):
        config = tmp_path / "watcher.yaml"
        config.write_text("scorecard:\n  weights:\n    junior: {efficiency: 2, speed: 1}\n",
                          encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(config, env={})
        assert caught.value.line is not None and "'speed'" in str(caught.value)

    def test_a_configured_tier_replaces_only_that_default_tier(self):
        configured = ScorecardSettings(weights={"Junior": {"efficiency": 5}, "lead": {}})
        assert configured.weights["junior"] == {"efficiency": 5}
        assert configured.weights["mid"] == ScorecardSettings().weights["mid"]
        assert configured.tier_of("LEAD") == "lead"

    def test_the_default_tier_needs_weights(self):
        with pytest.raises(ValueError, match="default_tier 'boss' has no weights"):
            ScorecardSettings(default_tier="boss")


class TestGrades:
    def test_the_default_bands(self):
        bands = ScorecardSettings().grades
        scores = [1.0, 0.95, 0.9499, 0.85, 0.7, 0.6999, 0.5, 0.4999, 0.0]
        assert [g.grade if (g := grade_of(s, bands)) else None for s in scores] == [
            "S", "S", "A", "A", "B", "C", "C", "D", "D"]
        assert grade_of(None, bands) is None  # nothing judged, no grade
        assert [(b.grade, b.bonus) for b in bands] == [
            ("S", 1.5), ("A", 1.2), ("B", 1.0), ("C", 0.6), ("D", 0.0)]
        assert all(b.meaning["en"] and b.meaning["zh-CN"] for b in bands)

    def test_a_major_violation_lowers_one_band_and_d_stays_d(self):
        bands = ScorecardSettings().grades
        lowered = [grade_of(s, bands, "suspended") for s in (0.97, 0.9, 0.75, 0.6, 0.1)]
        assert [(g.by_score, g.grade) for g in lowered if g] == [
            ("S", "A"), ("A", "B"), ("B", "C"), ("C", "D"), ("D", "D")]
        assert [g.downgraded for g in lowered if g] == ["major violation: suspended"] * 4 + [
            None]  # D has nowhere lower to go, so it is not said to be lowered
        assert grade_of(0.97, bands).downgraded is None  # type: ignore[union-attr]

    def test_bands_are_configured_under_scorecard(self, tmp_path: Path):
        config = tmp_path / "watcher.yaml"
        config.write_text("""scorecard:
  grades:
    - {grade: pass, min_score: 0.8, bonus: 1, meaning: {en: Bonus, zh-CN: 奖金}}
    - {grade: fail, min_score: 0, bonus: 0, meaning: {en: None, zh-CN: 无}}
""", encoding="utf-8")
        bands = load_settings(config, env={}).scorecard.grades
        assert [b.grade for b in bands] == ["pass", "fail"]
        card = card_of(load_pack(ROOT_RULES), snap(stockout_rate=0.09, net_margin=0.3),
                       settings=ScorecardSettings(grades=bands))
        assert (card.score, card.grade) == (0.75, "fail")  # stockout (1) fails, margin (3)

    @pytest.mark.parametrize(("bands", "error"), [
        ("- {grade: A, min_score: 0.5, bonus: 1, meaning: {en: a, zh-CN: a}}",
         "must start at min_score 0"),
        ("- {grade: A, min_score: 0.5, bonus: 1, meaning: {en: a, zh-CN: a}}\n"
         "    - {grade: A, min_score: 0, bonus: 1, meaning: {en: a, zh-CN: a}}",
         "named twice"),
        ("- {grade: A, min_score: 0, bonus: 1, meaning: {en: a}}", "zh-CN"),
        ("- {grade: A, min_score: 1.5, bonus: 1, meaning: {en: a, zh-CN: a}}", "min_score"),
    ])
    def test_a_bad_band_names_the_file_and_what_is_wrong(self, tmp_path: Path, bands: str,
                                                          error: str):
        config = tmp_path / "watcher.yaml"
        config.write_text(f"scorecard:\n  grades:\n    {bands}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=error) as caught:
            load_settings(config, env={})
        assert "watcher.yaml" in str(caught.value)

    def test_the_team_row_carries_grade_and_bonus(self, pack: RulePack):
        card = card_of(pack, snap(stockout_rate=0.01))
        row = TeamRow.of(card)
        assert (row.grade, row.bonus) == ("S", 1.5)


# -- from the store, the command line and the API -------------------------------------------


@pytest.fixture
def pipeline(db: Database, settings: Settings, clock: Clock, pack_path: Path) -> Pipeline:
    return Pipeline(db, RuleEngine(load_pack(pack_path)), settings, clock=clock)


TEAM = [snapshot("a", "2026-07", orders=100, dispute_rate=0.02, penalty_count=0),
        snapshot("a", "2026-08", orders=100, dispute_rate=0.02, penalty_count=0),
        snapshot("b", "2026-09", orders=300, dispute_rate=0.04, penalty_count=0),
        snapshot("c", "2026-09", operator="chen.jing", dispute_rate=0.01, penalty_count=1),
        snapshot("d", "2026-10", operator="wang.fang", dispute_rate=0.01)]


def ingest(pipeline: Pipeline, records: list[dict[str, Any]]) -> None:
    pipeline.ingest(read_records(jsonl(*records)), "test")


class TestScorecardFromTheStore:
    def test_the_operators_card_is_built_from_the_stored_snapshots(
            self, pipeline: Pipeline, pack: RulePack):
        ingest(pipeline, TEAM)
        with pipeline.db.engine.connect() as conn:
            card = operator_card(conn, "li.wei", Period.parse("2026-Q3"), pack, TargetBook(),
                                 ScorecardSettings())
            nobody = operator_card(conn, "nobody", Period.parse("2026-Q3"), pack,
                                   TargetBook(), ScorecardSettings())
        assert card is not None and nobody is None
        assert card.stores == ("a", "b")
        # store a: 2 % over its two months; b: 4 %; weighted by 200 and 300 orders
        assert item(card, "dispute_rate").value == 0.032

    def test_the_team_is_every_operator_with_data_in_the_period(
            self, pipeline: Pipeline, pack: RulePack):
        ingest(pipeline, TEAM)
        with pipeline.db.engine.connect() as conn:
            cards = team_cards(conn, Period.parse("2026-Q3"), pack, TargetBook(),
                               ScorecardSettings())
        assert [(c.operator, c.result) for c in cards] == [
            ("chen.jing", CardResult.FAIL), ("li.wei", CardResult.FAIL)]


runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pack_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    (tmp_path / "targets.yaml").write_text(
        "targets:\n  - {operator: li.wei, period: 2026-*, gmv: 150000}\n", encoding="utf-8")
    config = tmp_path / "watcher.yaml"
    config.write_text(f"rules: {pack_path}\ntargets: targets.yaml\n", encoding="utf-8")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    data = tmp_path / "data.jsonl"
    data.write_bytes(jsonl(
        snapshot("a", orders=100, gmv=100000, stockout_rate=0.02, segment={"level": "junior"}),
        snapshot("b", orders=300, gmv=60000, stockout_rate=0.04),
        snapshot("c", operator="chen.jing", gmv=10, stockout_rate=0.06)))
    assert watcher("ingest", str(data))[0] == 0
    return tmp_path


def watcher(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--log-json", *args])
    return result.exit_code, result.output


class TestScorecardCommand:
    def test_a_table_with_each_indicator_and_the_result(self, cli_env: Path):
        code, out = watcher("scorecard", "li.wei", "--period", "2026-10")
        assert code == 0
        lines = out.splitlines()
        assert lines[0] == "li.wei: 2026-10 (monthly), tier junior, stores a, b"
        assert lines[1] == "result FAIL, score 0.67 (pass mark 0.80), grade C (bonus x0.6)"
        assert lines[2].startswith("means: Bonus x0.6; no promotion this period")
        # gmv: 160,000 against the file's 150,000 for each of the two stores
        assert lines[4].split() == ["gmv", "160,000", ">=", "300,000", "target", "FAIL", "1",
                                    "a,", "b"]
        stockout = next(line for line in lines if line.startswith("stockout_rate"))
        assert stockout.split()[:7] == ["stockout_rate", "3.50%", "<=", "5.00%", "rule",
                                        "stockout-high", "pass"]

    def test_json_is_the_whole_card(self, cli_env: Path):
        code, out = watcher("scorecard", "li.wei", "--period", "2026-10", "--format", "json")
        card = Scorecard.model_validate(json.loads(out))
        assert code == 0 and card.failing == ("gmv",) and card.score == 0.6667

    def test_the_team_one_row_each(self, cli_env: Path):
        code, out = watcher("scorecard", "--team", "--period", "2026-10")
        assert code == 0
        assert [line.split()[:5] for line in out.splitlines()[1:]] == [
            ["chen.jing", "mid", "1", "0.00", "fail"], ["li.wei", "junior", "2", "0.67", "fail"]]
        code, out = watcher("scorecard", "--team", "--period", "2026-10", "-f", "json")
        assert [(r["operator"], r["failing"]) for r in json.loads(out)] == [
            ("chen.jing", ["stockout_rate"]), ("li.wei", ["gmv"])]

    def test_html_is_one_self_contained_page(self, cli_env: Path):
        code, out = watcher("scorecard", "--team", "--period", "2026-10", "-f", "html")
        assert code == 0 and out.startswith("<!doctype html>")
        assert "<style>" in out and 'href="#li.wei"' in out and "缺货率" in out
        assert "<script" not in out and "http" not in out

    def test_a_bad_period_or_an_unknown_operator_is_an_error(self, cli_env: Path):
        code, out = watcher("scorecard", "li.wei", "--period", "2026-10-05")
        assert code == 2 and "--period" in out and "a day" in out
        code, out = watcher("scorecard", "nobody", "--period", "2026-10")
        assert code == 1 and "no snapshots" in out
        code, _ = watcher("scorecard", "li.wei", "--team", "--period", "2026-10")
        assert code == 2


class TestScorecardPage:
    def test_operator_names_are_escaped(self, pack: RulePack):
        card = card_of(pack, snap(operator="<b>x</b>", stockout_rate=0.01),
                       operator="<b>x</b>")
        page = html_page("t", [card])
        assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


@pytest.fixture
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with (http_app(Runtime(settings, pipeline.db, pipeline)) as app,
          TestClient(app, base_url=LOCAL) as test):
        yield test


class TestScorecardEndpoints:
    def test_an_operators_card_and_the_teams_rows(self, client: TestClient,
                                                  pipeline: Pipeline):
        ingest(pipeline, TEAM)
        card = client.get("/v1/scorecards/li.wei", params={"period": "2026-Q3"})
        assert card.status_code == 200
        body = card.json()
        assert (body["operator"], body["cycle"], body["result"]) == (
            "li.wei", "quarterly", "fail")
        assert body["failing"] == ["dispute_rate"]
        team = client.get("/v1/scorecards", params={"period": "2026-Q3"})
        assert [(r["operator"], r["vetoes"], r["grade"], r["bonus"]) for r in team.json()] == [
            ("chen.jing", [], "C", 0.6), ("li.wei", [], "C", 0.6)]

    def test_a_bad_period_is_422_naming_the_field_and_no_data_is_404(
            self, client: TestClient, pipeline: Pipeline):
        ingest(pipeline, TEAM)
        bad = client.get("/v1/scorecards/li.wei", params={"period": "2026-10-01"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "period"]
        assert client.get("/v1/scorecards", params={"period": "Q3"}).status_code == 422
        assert client.get("/v1/scorecards").status_code == 422  # period is required
        missing = client.get("/v1/scorecards/nobody", params={"period": "2026-Q3"})
        assert missing.status_code == 404 and "nobody" in missing.json()["detail"]

    def test_a_viewer_token_is_needed(self, client: TestClient, pipeline: Pipeline):
        _token, ingest_only = create_token(pipeline.db, "feeder", Role.INGEST)
        _token, viewer = create_token(pipeline.db, "boss", Role.VIEWER)
        url, params = "/v1/scorecards", {"period": "2026-10"}
        assert client.get(url, params=params).status_code == 401
        assert client.get(url, params=params, headers={
            "Authorization": f"Bearer {ingest_only}"}).status_code == 403
        assert client.get(url, params=params, headers={
            "Authorization": f"Bearer {viewer}"}).status_code == 200


class TestWeeklyCards:
    """A week (2026-W45) is carded from its days as a month is (issue #17)."""

    def test_a_week_rolls_up_its_days_and_ignores_the_days_around_it(self, pack: RulePack):
        days = [snap(period=f"2026-11-{d:02d}", gmv=1000, stockout_rate=rate, orders=100)
                for d, rate in ((1, 0.5), (2, 0.02), (3, 0.04), (8, 0.06), (9, 0.5))]
        card = card_of(pack, *days, period="2026-W45")
        assert card.cycle is Cycle.MONTHLY and card.periods == (
            "2026-11-02", "2026-11-03", "2026-11-08")
        assert item(card, "gmv").value == 3000  # 2 to 8 November: amounts add up
        assert item(card, "stockout_rate").value == 0.04  # rates: the mean by orders
        assert item(card, "stockout_rate").status.value == "pass"

