"""Rules on history (issue #17): ``kind: change`` against a trailing baseline and
``kind: trend`` projected ahead; pure evaluation, loading, and the pipeline reading the
history from the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import ROOT, jsonl
from watcher import backtest
from watcher.config import Settings
from watcher.errors import ConfigError
from watcher.pipeline import Pipeline
from watcher.rules import change, trend
from watcher.rules.compiler import compile_pack
from watcher.rules.engine import RuleEngine
from watcher.rules.history import HistoryFields, Window, load_history
from watcher.rules.loader import load_pack
from watcher.rules.model import Rule, RulePack
from watcher.snapshot import Snapshot
from watcher.store import repository as repo
from watcher.validation import read_records

MESSAGE = {"en": "{summary}", "zh-CN": "{summary}"}


def rule(**keys: Any) -> Rule:
    return Rule.model_validate({"id": "r", "description": "d", "severity": "high",
                                "audience": "ops", "message": MESSAGE, **keys})


def days(metric: str, values: list[float], *, first: date = date(2026, 11, 1),
         store: str = "s1", **extra: float) -> list[Snapshot]:
    return [Snapshot.model_validate({
        "store": store, "platform": "amazon", "period": (first + timedelta(i)).isoformat(),
        "metrics": {metric: v, **extra}}) for i, v in enumerate(values)]


def judge(r: Rule, series: list[Snapshot]) -> Any:
    kind = change if r.kind == "change" else trend
    return kind.evaluate(r, "v1", series[-1], series[:-1])


DROP = {"kind": "change", "metric": "visitors", "baseline": "7d", "drop": "30%"}


class TestChange:
    def test_a_fall_to_the_line_fires_and_says_what_changed_and_from_what(self):
        verdict = judge(rule(**DROP), days("visitors", [1000] * 7 + [420]))
        assert verdict.firing.title == {
            "en": "Visitors 420, down 58 % from the 7-day mean 1,000",
            "zh-CN": "访客数 420，较 7 日均值 1,000 下降 58%"}
        assert (verdict.firing.value, verdict.firing.threshold) == (420, 700)

    def test_a_value_above_the_line_is_a_recovery(self):
        verdict = judge(rule(**DROP), days("visitors", [1000] * 7 + [701]))
        assert verdict.firing is None and verdict.recovery is not None

    def test_the_median_ignores_one_wild_day(self):
        ordinary = days("visitors", [1000] * 6 + [50_000] + [1000])  # the mean is 8,000
        assert judge(rule(**DROP), ordinary).firing is not None
        assert judge(rule(**DROP, statistic="median"), ordinary).firing is None
        fallen = days("visitors", [1000] * 6 + [50_000] + [650])
        firing = judge(rule(**DROP, statistic="median"), fallen).firing
        assert firing.title["en"] == "Visitors 650, down 35 % from the 7-day median 1,000"

    def test_a_quiet_store_pages_nobody(self):
        assert judge(rule(**DROP, min_baseline=100), days("visitors", [99] * 7 + [1])) \
            .firing is None

    def test_too_short_a_history_judges_nothing(self):
        verdict = judge(rule(**DROP), days("visitors", [1000] * 3 + [1]))
        assert verdict.firing is None and verdict.recovery is None
        assert judge(rule(**DROP, min_periods=3), days("visitors", [1000] * 3 + [1])).firing

    def test_only_the_window_before_the_period_counts(self):
        # 14 days of 100, then 7 of 1,000: the 7-day mean is 1,000, not the 21-day one
        series = days("visitors", [100] * 14 + [1000] * 7 + [650])
        assert judge(rule(**DROP), series).firing is not None

    def test_a_rise_to_double_and_an_absolute_drop(self):
        spike = {"kind": "change", "metric": "return_rate", "baseline": "4w", "rise": "2x"}
        assert judge(rule(**spike), days("return_rate", [0.03] * 28 + [0.06])).firing
        assert not judge(rule(**spike), days("return_rate", [0.03] * 28 + [0.0599])).firing
        fall = {"kind": "change", "metric": "visitors", "baseline": "7d", "drop": 300}
        assert judge(rule(**fall), days("visitors", [1000] * 7 + [700])).firing
        assert not judge(rule(**fall), days("visitors", [1000] * 7 + [701])).firing

    def test_weeks_are_judged_against_weeks(self):
        weeks = [Snapshot.model_validate({"store": "s1", "platform": "amazon",
                                          "period": f"2026-W{w}", "metrics": {"visitors": v}})
                 for w, v in ((41, 7000), (42, 7000), (43, 7000), (44, 7000), (45, 4000))]
        r = rule(**{**DROP, "baseline": "4w"})
        assert "from the 4-week mean 7,000" in judge(r, weeks).firing.title["en"]

    def test_a_condition_must_hold_as_well(self):
        r = rule(**DROP, condition="conversion_rate < 0.02")
        assert not judge(r, days("visitors", [1000] * 7 + [500], conversion_rate=0.03)).firing
        assert judge(r, days("visitors", [1000] * 7 + [500], conversion_rate=0.01)).firing

    def test_other_stores_are_not_history(self):
        series = days("visitors", [1000] * 7, store="other") + days(
            "visitors", [100], first=date(2026, 11, 8))
        verdict = judge(rule(**DROP), series)
        assert verdict.firing is None and verdict.recovery is None


ODR = {"kind": "trend", "crosses": "order_defect_rate >= 0.01", "within": "7d"}


class TestTrend:
    def test_the_fit_is_least_squares(self):
        assert trend.fit([(0, 1.0), (1, 3.0), (2, 5.0)]) == (1.0, 2.0)
        assert trend.fit([(0, 2.0), (0, 4.0)]) == (3.0, 0.0)

    def test_it_warns_before_the_line_with_the_projection_in_words(self):
        series = days("order_defect_rate", [0.0045 + 0.0005 * i for i in range(8)])
        firing = judge(rule(**ODR), series).firing
        assert firing.title["en"] == ("Order defect rate 0.8 %, rising 0.05 pt a day, "
                                      "reaches 1 % in about 4 days")
        assert firing.threshold == 0.01 and firing.evidence[0]["value"] > 0.01

    def test_too_slow_flat_or_falling_does_not_warn_and_recovers(self):
        for values in ([0.0045 + 0.0002 * i for i in range(8)], [0.009] * 8,
                       [0.0095 - 0.0002 * i for i in range(8)]):
            verdict = judge(rule(**ODR), days("order_defect_rate", values))
            assert verdict.firing is None and verdict.recovery is not None

    def test_a_falling_line_warns_on_a_lower_bound(self):
        r = rule(kind="trend", crosses="chat_response_rate < 0.7", within="7d")
        values = [0.9 - 0.02 * i for i in range(8)]  # 76 %, falling 2 pt a day
        firing = judge(r, days("chat_response_rate", values)).firing
        assert firing.title["en"] == ("Chat response rate 76 %, falling 2 pt a day, "
                                      "reaches 70 % in about 3 days")

    def test_past_the_line_and_still_rising_keeps_warning(self):
        series = days("order_defect_rate", [0.008 + 0.0005 * i for i in range(8)])
        assert judge(rule(**ODR), series).firing.title["en"] == (
            "Order defect rate 1.15 %, rising 0.05 pt a day, already past 1 %")

    def test_too_short_a_history_judges_nothing(self):
        verdict = judge(rule(**ODR), days("order_defect_rate", [0.005, 0.007, 0.009]))
        assert verdict.firing is None and verdict.recovery is None


class TestLoading:
    @pytest.mark.parametrize(("keys", "error"), [
        ({**DROP, "drop": "130%"}, "no possible drop"),
        ({**DROP, "drop": "2x"}, "a factor below 1 drops"),
        ({**DROP, "drop": "thirty"}, "is not a change"),
        ({**DROP, "baseline": "1m"}, "is not a window"),
        ({**DROP, "baseline": "60w"}, "HISTORY_MAX_WINDOW_DAYS"),
        ({"kind": "change", "metric": "visitors", "baseline": "7d"}, "needs 'drop' or 'rise'"),
        ({"kind": "change", "metric": "visitors", "drop": "30%"}, "needs 'metric' and"),
        ({**ODR, "crosses": "order_defect_rate >= 0.01 and gmv > 1"}, "is not one line"),
        ({**ODR, "crosses": "gmv < target"}, "is not one line"),
        ({**ODR, "metric": "gmv"}, "takes its metric from 'crosses'"),
        ({"kind": "trend", "crosses": "gmv < 1"}, "needs 'crosses'"),
        ({"condition": "gmv < 1", "baseline": "7d"}, "'baseline' belongs to change and trend"),
        ({**DROP, "periods": ["day", "month"]}, "'periods' may name day and week"),
    ])
    def test_a_malformed_rule_is_refused_saying_why(self, keys: dict[str, Any], error: str):
        with pytest.raises(ValidationError, match=error):
            rule(**keys)

    def test_history_rules_compile_to_nothing_in_the_engine(self):
        pack = RulePack(rules=(rule(**DROP, condition="visitors > 1"), rule(id="t", **ODR)))
        assert compile_pack(pack) == {}

    def test_windows(self):
        assert Window.parse("4w").days == 28
        assert Window.parse("7d").periods(Snapshot.model_validate(
            {"store": "s", "platform": "amazon", "period": "2026-W45",
             "metrics": {"gmv": 1}}).period.kind) == 1


class TestPipeline:
    """The history is read from the store: a snapshot sent alone, days after the rest, is
    judged against them (any replica, any batch)."""

    def ingest(self, pipeline: Pipeline, records: list[dict[str, Any]]) -> None:
        pipeline.ingest(read_records(jsonl(*records)), "test")

    def records(self, values: list[float], first: int = 1) -> list[dict[str, Any]]:
        return [{"store": "amz-us-01", "platform": "amazon", "period": f"2026-11-{first + i:02d}",
                 "metrics": {"visitors": v}} for i, v in enumerate(values)]

    def test_a_drop_is_judged_against_the_stored_days_and_resolves(self, pipeline: Pipeline):
        self.ingest(pipeline, self.records([1000] * 7))
        self.ingest(pipeline, self.records([400], first=8))
        with pipeline.db.engine.connect() as conn:
            [incident] = repo.list_incidents(conn)
        assert incident.rule == "visitors-drop" and incident.status.value == "open"
        assert incident.title["en"].startswith("Visitors 400, down 60 % from the 7-day mean")
        self.ingest(pipeline, self.records([1000], first=9))
        with pipeline.db.engine.connect() as conn:
            [incident] = repo.list_incidents(conn)
        assert incident.status.value == "resolved"

    def test_one_batch_is_its_own_history(self, pipeline: Pipeline):
        self.ingest(pipeline, self.records([1000] * 7 + [400]))
        with pipeline.db.engine.connect() as conn:
            assert [i.rule for i in repo.list_incidents(conn)] == ["visitors-drop"]

    def test_the_history_of_a_batch_is_one_read_of_its_window(self, pipeline: Pipeline):
        self.ingest(pipeline, self.records([1000] * 20))
        batch = [Snapshot.model_validate(r) for r in self.records([5], first=21)]
        with pipeline.db.engine.connect() as conn:
            found = load_history(conn, batch, 7)
        assert [s.period.text for s in found] == [f"2026-11-{d}" for d in range(14, 22)]
        assert found[-1].metrics["visitors"] == 5


class TestReplay:
    """``watcher rules backtest`` and ``rules test`` replay through the same pipeline: the
    history of a replay is the replay's own earlier snapshots, in one batch or one by one."""

    @pytest.mark.parametrize("one_by_one", [False, True])
    def test_a_replay_opens_the_drop_and_the_early_warning(self, one_by_one: bool):
        history = days("visitors", [1000] * 7 + [400]) + days(
            "order_defect_rate", [0.0045 + 0.0005 * i for i in range(8)], store="s2")
        engine = RuleEngine(load_pack(ROOT / "rules"))
        found = backtest.replay(engine, history, Settings(), one_by_one=one_by_one)
        assert sorted((i.rule, i.subject) for i in found) == [
            ("odr-rising", "s2"), ("visitors-drop", "s1")]


class TestExamples:
    def test_the_daily_examples_open_a_traffic_drop_and_an_odr_early_warning(
            self, pipeline: Pipeline):
        pipeline.ingest(read_records((ROOT / "examples" / "daily.jsonl").read_bytes()), "ex")
        with pipeline.db.engine.connect() as conn:
            found = {i.rule: i for i in repo.list_incidents(conn)}
        assert set(found) == {"visitors-drop", "odr-rising"}
        assert found["visitors-drop"].title["en"] == (
            "Visitors 420, down 58 % from the 7-day mean 1,000 (shopee-my-02, 2026-11-21)")
        assert found["odr-rising"].title["en"] == (
            "Early warning: Order defect rate 0.8 %, rising 0.05 pt a day, reaches 1 % in "
            "about 4 days (amz-us-01, 2026-11-21)")


class TestPack:
    def test_a_misspelt_metric_is_refused_naming_the_key(self, tmp_path: Any):
        for key, text in (("metric", "metric: visitros\n    baseline: 7d\n    drop: 30%"),
                          ("crosses", 'crosses: "order_defect_rte >= 0.01"\n    within: 7d')):
            kind = "change" if key == "metric" else "trend"
            path = tmp_path / f"{key}.yaml"
            path.write_text(f"""rules:
  - id: r
    description: d
    kind: {kind}
    {text}
    severity: high
    audience: ops
    message: {{en: x, zh-CN: x}}
""", encoding="utf-8")
            with pytest.raises(ConfigError, match="did you mean") as caught:
                load_pack(path)
            assert caught.value.key == f"rules.0.{key}"

    def test_packs_without_history_rules_keep_their_version(self):
        plain = rule(condition="gmv < 1")
        dumped = plain.model_dump(mode="json")
        assert RulePack(rules=(plain,)).version == RulePack(rules=(plain,)).version
        assert "baseline" in dumped  # present on the model, left out of the version:
        later = {*HistoryFields.model_fields, "platforms"}  # keys added since, unwritten here
        legacy = {k: v for k, v in dumped.items() if k not in later}
        body = json.dumps([legacy], sort_keys=True)
        assert RulePack(rules=(plain,)).version == hashlib.sha256(body.encode()).hexdigest()[:12]
