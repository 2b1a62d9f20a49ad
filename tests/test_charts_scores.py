"""The operator's score and grade over time: drawn where the data says, and the same verdict
as the card of each period (the page, the API and the stored monthly card).

The SVG is read back as in ``test_charts``: the y axis's labelled guides give the scale, the
x axis's labels the periods; the grade bands are read from their stripes and the grades from
the labels above the points.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import JSONL, Clock, jsonl, snapshot
from tests.test_auth import client_for
from tests.test_charts import close, geometry, svgs
from watcher.assessment.grades import GradeBand
from watcher.assessment.roster import Person, Roster
from watcher.assessment.trend import previous_periods
from watcher.assessment.weights import ScorecardSettings
from watcher.config import Settings
from watcher.limits import SCORE_HISTORY_MAX_PERIODS
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.store import Database
from watcher.store.schema import monthly_cards
from watcher.web.charts import ScoreLegend, ScoreMark, score_chart

SVG = "{http://www.w3.org/2000/svg}"
BANDS = [("gold", 0.9), ("silver", 0.6), ("bronze", 0.0)]
LEGEND = ScoreLegend("score", "pass mark", "failed", "no data")
MARKS = [ScoreMark("2026-03", 1.0, "gold"), ScoreMark("2026-04", 0.6667, "silver"),
         ScoreMark("2026-05", 0.3333, "bronze", failed=True), ScoreMark("2026-06", None, None),
         ScoreMark("2026-07", 0.0, "bronze", failed=True), ScoreMark("2026-08", 0.95, "silver",
                                                                       failed=True)]


def stripes(svg: str) -> list[tuple[str, float, float]]:
    """(grade, top y, bottom y) of each band's stripe, and its name in the margin."""
    root = ET.fromstring(svg)
    rects = [r for r in root.iter(f"{SVG}rect") if "band" in r.get("class", "").split()]
    return [(r.get("data-grade", ""), float(r.get("y", "0")),
             float(r.get("y", "0")) + float(r.get("height", "0"))) for r in rects]


def texts(svg: str, cls: str) -> list[tuple[str, float, float]]:
    root = ET.fromstring(svg)
    return [(t.text or "", float(t.get("x", "0")), float(t.get("y", "0")))
            for t in root.iter(f"{SVG}text") if t.get("class") == cls]


class TestTheScoreChartHoldsTheData:
    @pytest.mark.parametrize("size", ["wide", "narrow"])
    def test_scores_bands_grades_pass_mark_and_failures_where_they_belong(self, size: str):
        svg = svgs(score_chart("li.wei", "every month", MARKS, BANDS, 0.6, LEGEND))[size]
        drawn = geometry(svg)
        assert list(drawn.x_of) == [m.period for m in MARKS]
        scores = drawn.marked(0)
        assert scores.keys() == {m.period for m in MARKS if m.score is not None}
        assert all(close(scores[m.period], m.score, 1) for m in MARKS if m.score is not None)
        assert drawn.lines[1] and all(close(v, 0.6, 1) for _x, v in drawn.lines[1])
        assert drawn.marked(2).keys() == {"2026-05", "2026-07", "2026-08"}
        # each band a stripe from its lowest score up to the next band's, named beside it
        drawn_bands = stripes(svg)
        assert [g for g, _top, _bottom in drawn_bands] == ["gold", "silver", "bronze"]
        bounds = [(1.0, 0.9), (0.9, 0.6), (0.6, 0.0)]
        for (_grade, top, bottom), (high, low) in zip(drawn_bands, bounds, strict=True):
            assert close(drawn.value(top), high, 1) and close(drawn.value(bottom), low, 1)
        names = texts(svg, "band-name")
        assert [n for n, _x, _y in names] == ["gold", "silver", "bronze"]
        for (_name, _x, y), (_g, top, bottom) in zip(names, drawn_bands, strict=True):
            assert top < y < bottom
        # each point's grade written just above it (the card's grade, not the band's:
        # August's veto lowered it)
        grades = texts(svg, "grade")
        assert {drawn.period_at(x): g for g, x, _y in grades} == {
            m.period: m.grade for m in MARKS if m.grade}
        for grade, x, y in grades:
            point = next(p for p in MARKS if p.period == drawn.period_at(x))
            assert 0 < drawn.value(y) - (point.score or 0) < 0.15, grade
        assert (drawn.title, drawn.desc) == ("li.wei", "every month")

    def test_the_pass_mark_line_says_its_level(self):
        svg = svgs(score_chart("t", "d", MARKS, BANDS, 0.6, LEGEND))["wide"]
        drawn = geometry(svg)
        [(text, _x, y)] = texts(svg, "level")
        assert text == "0.60" and 0 < drawn.value(y) - 0.6 < 0.1  # just above the line

    def test_a_single_band_still_spans_the_scale(self):
        svg = svgs(score_chart("t", "d", MARKS, [("all", 0.0)], 0.6, LEGEND))["narrow"]
        drawn = geometry(svg)
        [(grade, top, bottom)] = stripes(svg)
        assert grade == "all" and close(drawn.value(top), 1.0, 1)
        assert close(drawn.value(bottom), 0.0, 1)

    def test_nothing_a_content_security_policy_without_scripts_blocks(self):
        chart = score_chart("t", "d", MARKS, BANDS, 0.6, LEGEND)
        assert "<script" not in chart and "<style" not in chart and " style=" not in chart
        assert chart.count('role="img"') == 2  # the desktop's and the phone's

    def test_previous_periods_of_a_week_are_weeks(self):
        assert [p.text for p in previous_periods(Period.parse("2027-W02"), 3)] == [
            "2026-W53", "2027-W01", "2027-W02"]


GRADES = ScorecardSettings(
    pass_score=0.6, grades=[GradeBand(grade=g, min_score=m, bonus=1, meaning={"en": g,
                                                                             "zh-CN": g})
                            for g, m in BANDS])
# gmv against its target (performance), stockout rate against the pack's rule (efficiency):
# a junior's card weighs efficiency twice, so the month that only misses GMV scores 2/3
MONTHS = {"2026-03": (160000, 0.01), "2026-04": (140000, 0.01), "2026-05": (160000, 0.09),
          "2026-07": (140000, 0.09), "2026-08": (160000, 0.01), "2026-09": (140000, 0.01),
          "2026-10": (160000, 0.09)}
EXPECTED = {"2026-03": (1.0, "gold", "pass"), "2026-04": (0.6667, "silver", "pass"),
            "2026-05": (0.3333, "bronze", "fail"), "2026-06": (None, None, None),
            "2026-07": (0.0, "bronze", "fail"), "2026-08": (1.0, "gold", "pass"),
            "2026-09": (0.6667, "silver", "pass"), "2026-10": (0.3333, "bronze", "fail")}


@pytest.fixture
def graded(db: Database, settings: Settings, clock: Clock,
           default_pack_path: Path) -> Iterator[TestClient]:
    """li.wei, a junior by the roster, graded gold/silver/bronze, seven months of cards."""
    configured = settings.model_copy(update={"scorecard": GRADES})
    pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)), configured, clock=clock,
                        roster=Roster(people=(Person(operator="li.wei", tier="junior"),)))
    with client_for(pipeline, configured, "127.0.0.1") as client:
        response = client.post("/v1/snapshots", headers=JSONL, content=jsonl(*(
            snapshot(period=month, gmv=gmv, stockout_rate=stockout, targets={"gmv": 150000})
            for month, (gmv, stockout) in MONTHS.items())))
        assert response.json()["accepted"] == len(MONTHS)
        yield client


def score_svg(html: str, size: str) -> str:
    figure = re.search(r'<figure class="chart card" id="chart-scores">.*?</figure>', html, re.S)
    assert figure is not None, "the card shows the score chart"
    return svgs(figure.group(0))[size]


class TestOneVerdictOverTime:
    def test_each_point_is_the_card_of_its_month_on_the_page_the_api_and_the_store(
            self, graded: TestClient, db: Database):
        html = graded.get("/scorecards/li.wei", params={"period": "2026-10"}).text
        svg = score_svg(html, "wide")
        drawn = geometry(svg)
        # from the first month with a card (more than six before October) to October
        assert list(drawn.x_of) == list(EXPECTED)
        drawn_grades = {drawn.period_at(x): g for g, x, _y in texts(svg, "grade")}
        with db.engine.connect() as conn:
            stored = {r.period: r for r in conn.execute(select(monthly_cards).where(
                monthly_cards.c.operator == "li.wei"))}
        history = graded.get("/v1/scorecards/li.wei/history",
                             params={"period": "2026-10", "count": 8}).json()
        assert [p["period"] for p in history["points"]] == list(EXPECTED)
        assert history["grades"] == [{"grade": g, "min_score": m} for g, m in BANDS]
        assert history["pass_score"] == 0.6
        for point, (month, (score, grade, result)) in zip(history["points"], EXPECTED.items(),
                                                          strict=True):
            assert (point["score"], point["grade"], point["result"]) == (score, grade, result)
            if score is None:
                assert month not in drawn.marked(0) and month not in drawn_grades
                assert month not in stored
                continue
            card = graded.get("/v1/scorecards/li.wei", params={"period": month}).json()
            page = graded.get("/scorecards/li.wei", params={"period": month}).text
            assert (card["score"], card["grade"], card["result"]) == (score, grade, result)
            assert f'data-grade="{grade}"' in page
            assert f'id="score">{score:.2f} ' in page
            assert (stored[month].score, stored[month].grade, stored[month].result) == (
                score, grade, result)
            assert close(drawn.marked(0)[month], score, 1) and drawn_grades[month] == grade
        assert drawn.marked(2).keys() == {m for m, e in EXPECTED.items() if e[2] == "fail"}
        assert {g for g, _t, _b in stripes(svg)} == {"gold", "silver", "bronze"}

    def test_the_summary_says_it_in_the_pages_language(self, graded: TestClient):
        en = graded.get("/scorecards/li.wei", params={"period": "2026-10", "lang": "en"}).text
        assert "Latest 2026-10: score 0.33, grade bronze, fail" in en
        assert "3 of 7 periods with a card failed (2026-05, 2026-07, 2026-10)" in en
        zh = graded.get("/scorecards/li.wei", params={"period": "2026-10",
                                                      "lang": "zh-CN"}).text
        assert "得分与绩效等级（最近 8 个周期）" in zh
        assert "最新 2026-10：得分 0.33，等级 bronze，不合格" in zh
        desc = geometry(score_svg(zh, "narrow")).desc
        assert "2026-06 无得分（无数据）" in desc and "silver ≥ 0.60" in desc

    def test_a_card_with_nothing_before_it_still_draws_six_periods(self, graded: TestClient):
        drawn = geometry(score_svg(graded.get("/scorecards/li.wei",
                                              params={"period": "2026-04"}).text, "wide"))
        assert list(drawn.x_of) == [p.text for p in previous_periods(Period.parse("2026-04"),
                                                                     6)]
        assert drawn.marked(0).keys() == {"2026-03", "2026-04"}


class TestTheHistoryApi:
    def test_count_periods_up_to_the_period_oldest_first(self, graded: TestClient):
        body = graded.get("/v1/scorecards/li.wei/history", params={"period": "2026-10"}).json()
        assert [p["period"] for p in body["points"]] == [
            p.text for p in previous_periods(Period.parse("2026-10"), 12)]
        assert body["points"][0] == {"period": "2025-11", "score": None, "grade": None,
                                     "result": None}

    @pytest.mark.parametrize(("params", "field"), [
        ({"period": "2026-10", "count": SCORE_HISTORY_MAX_PERIODS + 1}, "count"),
        ({"period": "2026-10", "count": 0}, "count"),
        ({"period": "2026-10-05"}, "period")])
    def test_a_bad_query_is_refused_naming_the_field(self, graded: TestClient,
                                                     params: dict[str, object], field: str):
        response = graded.get("/v1/scorecards/li.wei/history", params=params)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", field]

    def test_an_operator_without_cards_is_not_found(self, graded: TestClient):
        response = graded.get("/v1/scorecards/nobody/history", params={"period": "2026-10"})
        assert response.status_code == 404 and "nobody" in response.json()["detail"]
