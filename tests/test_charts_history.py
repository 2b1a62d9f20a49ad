"""The incident charts of the rules on a store's history (``kind: change``, ``kind: trend``).

Issue #16: the quick start's two daily incidents showed a chart with no threshold, no breach
and a summary ("0 of 12 periods ... breach it (-)") that contradicted the incident. Here the
quick start's own data (``examples/daily.jsonl``) goes through the API, and the incident's
page is read back the way ``tests/test_charts.py`` reads a chart: each period's alert level
must be the one the engine judged that period by (its own trailing 7-day mean, less 30 %),
the breach mark where the engine fired; a trend rule's limit, fitted line and crossing
where ``trend.fit`` puts them.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, ROOT
from tests.test_auth import client_for
from tests.test_charts import geometry, svgs
from watcher.assessment.scorecard import CardResult
from watcher.assessment.trend import Band, ScoreHistory, ScorePoint
from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.rules import change, trend
from watcher.rules.loader import load_pack
from watcher.snapshot import Snapshot
from watcher.web.charts import Point
from watcher.web.history import (
    HISTORY_PERIODS,
    history_needed,
    incident_figure,
    score_figure,
    summarise,
)

DAILY = ROOT / "examples" / "daily.jsonl"
PACK = load_pack(ROOT / "rules" / "default")


def daily(store: str) -> list[Snapshot]:
    return [s for s in (Snapshot.model_validate(json.loads(line))
                        for line in DAILY.read_text().splitlines() if line.strip())
            if s.store == store]


@pytest.fixture
def page(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        assert client.post("/v1/snapshots", headers=JSONL,
                           content=DAILY.read_bytes()).status_code < 300
        yield client


def incident(page: TestClient, rule: str) -> dict[str, object]:
    [found] = page.get("/v1/incidents", params={"rule": rule}).json()
    return dict(found)


def near(a: float, b: float, within: float) -> bool:
    return abs(a - b) <= within


class TestAChangeRulesChart:
    """visitors-drop: visitors at or below 70 % of the store's own 7-day mean."""

    def test_each_period_is_drawn_against_the_level_of_its_own_baseline(
            self, page: TestClient):
        found = incident(page, "visitors-drop")
        assert (found["store"], found["period"]) == ("shopee-my-02", "2026-11-21")
        html = page.get(f"/incidents/{found['id']}?lang=en").text
        for size in ("wide", "narrow"):
            drawn = geometry(svgs(html)[size])
            history = daily("shopee-my-02")
            shown = history[-HISTORY_PERIODS:]
            assert list(drawn.x_of) == [s.period.text for s in shown]
            level = {drawn.period_at(x): v for x, v in drawn.lines[1]}
            baseline = {drawn.period_at(x): v for x, v in drawn.lines[4]}
            for snap in shown:
                # the 7 days before, by hand: the rule's words, not the engine's code
                week = [s.metrics["visitors"] for s in history
                        if snap.period.start - timedelta(days=7) <= s.period.start
                        < snap.period.start]
                mean = statistics.fmean(week)
                judged = change.judgement(PACK.get("visitors-drop"), snap, history)
                assert judged is not None and judged.lines[0][1] == pytest.approx(mean * 0.7)
                assert near(level[snap.period.text], mean * 0.7, 0.05), snap.period.text
                assert near(baseline[snap.period.text], mean, 0.05), snap.period.text
            # the one period the engine fired on is marked, at its value
            assert drawn.marked(2).keys() == {"2026-11-21"}
            assert near(drawn.marked(2)["2026-11-21"], 420, 0.05)
            # the incident's threshold is the line drawn at its period: one verdict
            assert near(level["2026-11-21"], float(str(found["threshold"])), 0.05)

    def test_the_summary_says_what_the_incident_says(self, page: TestClient):
        found = incident(page, "visitors-drop")
        en = geometry(svgs(page.get(f"/incidents/{found['id']}?lang=en").text)["wide"])
        assert en.desc == ("2026-11-21: Visitors 420, down 58 % from the 7-day mean 1,000; "
                           "alert level 700; 1 of 12 periods with a value breaches it "
                           "(2026-11-21)")
        title = dict(found["title"])  # type: ignore[call-overload]
        assert title["en"] == "Visitors 420, down 58 % from the 7-day mean 1,000 " \
            "(shopee-my-02, 2026-11-21)"
        assert title["zh-CN"] == \
            "访客数 420，较 7 日均值 1,000 下降 58%（shopee-my-02，2026-11-21）"
        zh_page = page.get(f"/incidents/{found['id']}?lang=zh-CN").text
        zh = geometry(svgs(zh_page)["wide"])
        assert zh.desc == ("2026-11-21：访客数 420，较 7 日均值 1,000 下降 58%；告警线 700；"
                           "有数据的 12 个周期中 1 个未达标（2026-11-21）")
        assert "访客数 420，较 7 日均值 1,000 下降 58%（shopee-my-02，2026-11-21）" in zh_page
        assert ">告警线<" in zh_page and ">7 日均值<" in zh_page  # the legend, in Chinese

    def test_only_the_charts_own_desc_is_left(self, page: TestClient):
        found = incident(page, "visitors-drop")
        for svg in svgs(page.get(f"/incidents/{found['id']}").text).values():
            assert svg.count("<desc") == 1  # the summary; pygal's raw coordinates dropped

    def test_a_period_too_quiet_or_too_new_to_judge_has_no_line(self):
        rule = PACK.get("visitors-drop")  # min_baseline: 100; at least 4 prior days
        quiet = [Snapshot.model_validate({
            "store": "quiet", "platform": "shopee", "period": (date(2026, 11, 1)
                                                               + timedelta(days=i)).isoformat(),
            "metrics": {"visitors": 60 if i < 6 else 150}}) for i in range(12)]
        figure = incident_figure(rule, "visitors", "quiet", [(s, 1) for s in quiet], "en")
        assert figure is not None
        drawn = geometry(svgs(str(figure.svg))["wide"])
        level = {drawn.period_at(x) for x, _v in drawn.lines.get(1, [])}
        # days 1-4: too little history; days 5-10: a mean under min_baseline (60 to 99);
        # days 11 and 12: the mean climbs over 100 (111, 124) and a level is drawn
        judged = {s.period.text for s in quiet if change.judgement(rule, s, quiet)}
        assert judged == level == {"2026-11-11", "2026-11-12"}
        assert "2026-11-01" not in level and "2026-11-06" not in level
        assert "none of the 12 periods with a value breaches it" in figure.summary
        assert "(-)" not in figure.summary


class TestATrendRulesChart:
    """odr-rising: the least-squares line over 14 days reaches 1 % within 7."""

    def test_the_limit_the_fitted_line_and_where_it_crosses(self, page: TestClient):
        found = incident(page, "odr-rising")
        assert found["store"] == "amz-us-01"
        html = page.get(f"/incidents/{found['id']}?lang=en").text
        history = daily("amz-us-01")
        latest = history[-1]
        points = [(float((s.period.end - latest.period.end).days),
                   s.metrics["order_defect_rate"]) for s in history
                  if latest.period.start - timedelta(days=14) <= s.period.start]
        level, slope = trend.fit(points)  # the engine's own fit, over the rule's 14 days
        crossing_days = (0.01 - level) / slope
        assert 3.5 < crossing_days < 4.5  # "reaches 1 % in about 4 days"
        future = [(latest.period.end + timedelta(days=d)).isoformat() for d in range(1, 8)]
        periods = [s.period.text for s in history[-12:]] + future
        for size in ("wide", "narrow"):
            drawn = geometry(svgs(html)[size])
            if size == "narrow":  # a phone names every 4th of the 19 periods, evenly spaced
                assert list(drawn.x_of) == periods[::4]
                first, step = drawn.x_of[periods[0]], (drawn.x_of[periods[4]]
                                                       - drawn.x_of[periods[0]]) / 4
                drawn.x_of = {p: first + i * step for i, p in enumerate(periods)}
            assert list(drawn.x_of) == periods
            assert {drawn.period_at(x) for x, _v in drawn.lines[1]} == set(drawn.x_of)
            assert all(near(v, 0.01, 1e-6) for _x, v in drawn.lines[1])
            projection = {drawn.period_at(x): v for x, v in drawn.lines[4]}
            assert projection.keys() == set(drawn.x_of)
            for period, value in projection.items():
                x = (date.fromisoformat(period) - latest.period.end).days
                assert near(value, level + slope * x, 1e-6), period
            # the ring where the line meets 1 %: between the 4th and 5th day ahead
            [ring] = re.findall(r'<circle class="crossing" cx="([^"]+)" cy="([^"]+)"',
                                svgs(html)[size])
            x_now, x_next = drawn.x_of[latest.period.text], drawn.x_of[future[0]]
            assert near(float(ring[0]), x_now + crossing_days * (x_next - x_now), 0.05)
            assert near(drawn.value(float(ring[1])), 0.01, 1e-6)
            assert "1.00% ≈ 2026-11-25" in svgs(html)[size]
            # the early warning marked where the engine gives it, the incident's period too
            warned = {s.period.text for s in history[-12:]
                      if (p := trend.projection(PACK.get("odr-rising"), s, history))
                      and p.fires}
            assert drawn.marked(2).keys() == warned and found["period"] in warned

    def test_the_summary_says_it_in_words_as_the_incident_does(self, page: TestClient):
        found = incident(page, "odr-rising")
        desc = geometry(svgs(page.get(f"/incidents/{found['id']}?lang=en").text)["wide"]).desc
        words = "Order defect rate 0.8 %, rising 0.05 pt a day, reaches 1 % in about 4 days"
        assert words in dict(found["title"])["en"]  # type: ignore[call-overload]
        assert desc.startswith(f"2026-11-21: {words}; ")
        zh = geometry(svgs(page.get(f"/incidents/{found['id']}?lang=zh-CN").text)["wide"])
        assert zh.desc.startswith("2026-11-21：订单缺陷率 0.8 %，每天上升 0.05 个百分点，"
                                  "约 4 天后达到 1 %；")
        assert re.search(r"；有数据的 12 个周期中 \d+ 个发出预警（[^）]*2026-11-21）$", zh.desc)

    def test_the_chart_reads_the_window_before_the_periods_it_shows(self):
        assert history_needed(PACK.get("odr-rising")) == HISTORY_PERIODS + 14
        assert history_needed(PACK.get("visitors-drop")) == HISTORY_PERIODS + 7
        assert history_needed(None) == HISTORY_PERIODS


class TestATrendThatNoLongerWarns:
    def test_says_where_the_line_stands_and_draws_no_crossing(self):
        rule = PACK.get("odr-rising")
        flat = [Snapshot.model_validate({
            "store": "s1", "platform": "amazon",
            "period": (date(2026, 11, 1) + timedelta(days=i)).isoformat(),
            "metrics": {"order_defect_rate": 0.004 + 0.0002 * i if i < 12 else 0.004}})
            for i in range(14)]
        figure = incident_figure(rule, "order_defect_rate", "s1", [(s, 1) for s in flat], "en")
        assert figure is not None
        last = trend.projection(rule, flat[-1], flat)
        assert last is not None and not last.fires
        assert figure.summary.startswith("2026-11-14: projected at ")
        assert "in 7 days, not reaching 1 %" in figure.summary
        assert 'class="crossing"' not in str(figure.svg)
        warned = {s.period.text for s in flat[-12:]
                  if (p := trend.projection(rule, s, flat)) and p.fires}
        assert geometry(svgs(str(figure.svg))["wide"]).marked(2).keys() == warned


class TestTheCountAgreesWithItsNumber:
    @pytest.mark.parametrize(("values", "breaching", "en", "zh"), [
        ([5.0], [True], "; the one period with a value breaches it (p0)",
         "；唯一有数据的周期未达标（p0）"),
        ([5.0], [False], "; the one period with a value does not breach it",
         "；唯一有数据的周期达标"),
        ([5.0, 6.0, 7.0], [False, False, False],
         "; none of the 3 periods with a value breaches it", "；有数据的 3 个周期均达标"),
        ([5.0, 6.0, 7.0], [False, True, False],
         "; 1 of 3 periods with a value breaches it (p1)",
         "；有数据的 3 个周期中 1 个未达标（p1）"),
        ([5.0, 6.0, 7.0], [True, True, False],
         "; 2 of 3 periods with a value breach it (p0, p1)",
         "；有数据的 3 个周期中 2 个未达标（p0, p1）"),
    ])
    def test_one_none_some(self, values: list[float], breaching: list[bool], en: str,
                           zh: str):
        points = [Point(f"p{i}", v, 4.0, b) for i, (v, b) in
                  enumerate(zip(values, breaching, strict=True))]
        assert summarise(points, "gmv", "en").endswith(en)
        assert summarise(points, "gmv", "zh-CN").endswith(zh)
        assert "(-)" not in summarise(points, "gmv", "en")

    def test_a_single_scored_period_is_the_one_period(self):
        history = ScoreHistory(
            operator="li.wei", period="2026-10", pass_score=0.6,
            grades=(Band(grade="A", min_score=0.8), Band(grade="C", min_score=0.0)),
            points=(ScorePoint(period="2026-10", score=0.55, grade="C",
                               result=CardResult.FAIL),))
        figure = score_figure(history, "en")
        assert figure is not None
        assert figure.summary.endswith("; the one period with a card failed (2026-10).")
        zh = score_figure(history, "zh-CN")
        assert zh is not None and zh.summary.endswith("；唯一有考核数据的周期不合格（2026-10）。")


def test_daily_example_is_the_quick_starts() -> None:
    assert Path(DAILY).is_file() and len(daily("shopee-my-02")) == 21
