"""Charts: the SVG holds the data where it belongs, and the pages show the right data.

The geometry is read back from the SVG itself: the y axis's labelled guides give the
scale, the x axis's labels the periods' positions, and each series' dots and lines are
mapped back to values. So a point drawn at the wrong height, a threshold line at the
wrong level or a breach mark on the wrong month fails, whatever pygal's layout.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, jsonl, snapshot
from tests.test_auth import client_for
from watcher.config import Settings
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.model import Rule
from watcher.snapshot import Snapshot
from watcher.web.charts import Legend, Point, line_chart
from watcher.web.history import previous_periods, rule_point

LEGEND = Legend("value", "threshold", "breaching", "restated", "no data")
NUMBER = re.compile(r"-?[\d.]+")


@dataclass
class Geometry:
    """A pygal line chart read back: positions of the periods, values of the marks."""

    title: str
    desc: str
    x_of: dict[str, float]
    dots: dict[int, list[tuple[float, float]]]  # series index -> [(x, value)]
    lines: dict[int, list[tuple[float, float]]]
    value: Callable[[float], float]  # the value at a height of the plot, by the y axis

    def period_at(self, x: float) -> str:
        return min(self.x_of, key=lambda p: abs(self.x_of[p] - x))

    def marked(self, series: int) -> dict[str, float]:
        return {self.period_at(x): v for x, v in self.dots.get(series, [])}


def _label_value(text: str) -> float:
    value = float(text.replace(",", "").rstrip("%"))
    return value / 100 if text.endswith("%") else value


def geometry(svg: str) -> Geometry:
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    find = (lambda el, path: el.findall(path, ns)) if root.tag.startswith("{") \
        else (lambda el, path: el.findall(path.replace("s:", "")))
    plot = next(g for g in find(root, ".//s:g") if g.get("class") == "plot")
    guides = []
    for guide in find(plot, "./s:g[@class='axis y always_show']/s:g[@class='guides']"):
        path = find(guide, "./s:path")[0].get("d", "")
        y = float(NUMBER.findall(path)[1])
        guides.append((y, _label_value(find(guide, "./s:text")[0].text or "")))
    assert len(guides) >= 2, "the y axis has labelled guides"
    (y0, v0), (y1, v1) = guides[0], guides[-1]

    def value(y: float) -> float:
        return v0 + (y - y0) * (v1 - v0) / (y1 - y0)

    x_of = {t.text or "": float(t.get("x", "0"))
            for t in find(plot, "./s:g[@class='axis x']/s:g/s:text")}
    dots: dict[int, list[tuple[float, float]]] = {}
    lines: dict[int, list[tuple[float, float]]] = {}
    for g in find(root, ".//s:g"):
        match = re.search(r"serie-(\d+)", g.get("class", ""))
        if not match:
            continue
        index = int(match.group(1))
        for circle in find(g, ".//s:circle"):
            dots.setdefault(index, []).append(
                (float(circle.get("cx", "0")), value(float(circle.get("cy", "0")))))
        for path in find(g, "./s:path"):
            numbers = [float(n) for n in NUMBER.findall(path.get("d", ""))]
            lines.setdefault(index, []).extend(
                (numbers[i], value(numbers[i + 1])) for i in range(0, len(numbers), 2))
    title = find(root, "./s:title")[0].text or ""
    desc = find(root, "./s:desc")[0].text or ""
    return Geometry(title, desc, x_of, dots, lines, value)


def svgs(markup: str) -> dict[str, str]:
    """Each chart of a page or of ``line_chart``'s output, by its size class."""
    return {m.group(1): m.group(0) for m in
            re.finditer(r'<svg [^>]*class="chart-svg (\w+)[^"]*".*?</svg>', markup, re.S)}


POINTS = [Point("2026-01", 0.010, 0.03), Point("2026-02", 0.020, 0.03),
          Point("2026-03", None, None), Point("2026-04", 0.035, 0.03, breaching=True),
          Point("2026-05", 0.041, 0.03, breaching=True, restated=True),
          Point("2026-06", 0.022, 0.03), Point("2026-07", 0.025, 0.03, restated=True),
          Point("2026-08", 0.031, 0.03, breaching=True), Point("2026-09", 0.018, 0.03),
          Point("2026-10", 0.015, 0.03), Point("2026-11", 0.012, 0.03),
          Point("2026-12", 0.029, 0.03)]


def close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= scale * 0.01


class TestTheSvgHoldsTheData:
    @pytest.mark.parametrize("size", ["wide", "narrow"])
    def test_points_threshold_breaches_and_restatements_where_they_belong(self, size: str):
        chart = svgs(line_chart("Dispute rate at s1", "summary words", "dispute_rate",
                                POINTS, LEGEND))[size]
        drawn = geometry(chart)
        scale = 0.041 - 0.010
        assert list(drawn.x_of) == [p.period for p in POINTS]
        values = drawn.marked(0)
        assert values.keys() == {p.period for p in POINTS if p.value is not None}
        for point in POINTS:
            if point.value is not None:
                assert close(values[point.period], point.value, scale), point
        threshold = drawn.lines[1]
        assert threshold and all(close(v, 0.03, scale) for _x, v in threshold)
        # the line spans the chart, from the first period to the last
        assert drawn.period_at(min(x for x, _v in threshold)) == "2026-01"
        assert drawn.period_at(max(x for x, _v in threshold)) == "2026-12"
        assert drawn.marked(2).keys() == {"2026-04", "2026-05", "2026-08"}
        assert all(close(v, next(p.value for p in POINTS if p.period == period) or 0, scale)
                   for period, v in drawn.marked(2).items())
        assert drawn.marked(3).keys() == {"2026-05", "2026-07"}
        assert (drawn.title, drawn.desc) == ("Dispute rate at s1", "summary words")

    def test_a_constant_threshold_line_says_its_level(self):
        chart = svgs(line_chart("GMV", "s", "gmv", [Point("2026-09", 120000, 150000),
                                                    Point("2026-10", 118000, 150000)],
                                LEGEND, small=True))["small"]
        drawn = geometry(chart)
        [level] = re.findall(r'<text class="level" x="[^"]*" y="([^"]*)">([^<]*)</text>', chart)
        assert level[1] == "150,000"
        assert abs(drawn.value(float(level[0])) - 150000) < 0.15 * (150000 - 118000)

    def test_a_target_that_changes_is_drawn_at_each_periods_level(self):
        points = [Point("2026-07", 131000, 150000, True), Point("2026-08", 128500, 140000, True),
                  Point("2026-09", 122000, 130000, True), Point("2026-10", 135000, 120000)]
        chart = svgs(line_chart("GMV", "s", "gmv", points, LEGEND, small=True))["small"]
        drawn = geometry(chart)
        assert 'class="level"' not in chart  # no one level to name: the dots say each
        at = {drawn.period_at(x): v for x, v in drawn.lines[1]}
        assert at.keys() == {p.period for p in points}
        assert all(close(at[p.period], p.threshold or 0, 30000) for p in points)
        assert drawn.marked(2).keys() == {"2026-07", "2026-08", "2026-09"}

    def test_nothing_a_content_security_policy_without_scripts_or_inline_styles_blocks(self):
        chart = line_chart("t", "s", "dispute_rate", POINTS, LEGEND)
        assert "<script" not in chart and "<style" not in chart
        assert " style=" not in chart and "onclick" not in chart
        assert 'role="img"' in chart and "<!--" not in chart

    def test_the_title_and_summary_are_escaped(self):
        chart = line_chart("<b>x</b>", "a & b", "gmv", POINTS[:2], LEGEND, small=True)
        assert "<b>" not in chart and "&lt;b&gt;x&lt;/b&gt;" in chart and "a &amp; b" in chart


class TestRulePoints:
    RULE = Rule.model_validate({
        "id": "margin-low", "description": "Net margin low", "condition": "net_margin < 0.20",
        "variants": [{"when": {"stage": "novice"}, "condition": "net_margin < 0.15"}],
        "severity": "medium", "audience": "manager", "message": {"en": "x", "zh-CN": "x"}})

    def snap(self, value: float, **segment: str) -> Snapshot:
        return Snapshot.model_validate(snapshot(net_margin=value, segment=segment or None))

    def test_the_variant_for_the_stores_segment_sets_the_line_and_the_verdict(self):
        mature = rule_point(self.RULE, "net_margin", self.snap(0.17), 1)
        novice = rule_point(self.RULE, "net_margin", self.snap(0.17, stage="novice"), 2)
        assert (mature.threshold, mature.breaching, mature.restated) == (0.20, True, False)
        assert (novice.threshold, novice.breaching, novice.restated) == (0.15, False, True)

    def test_a_target_rule_draws_the_snapshots_target(self):
        rule = Rule.model_validate({
            "id": "gmv-below-target", "description": "GMV below target",
            "condition": "gmv < target", "severity": "medium", "audience": "manager",
            "message": {"en": "x", "zh-CN": "x"}})
        snap = Snapshot.model_validate(snapshot(gmv=100, targets={"gmv": 120}))
        assert rule_point(rule, "gmv", snap, 1) == Point("2026-10", 100, 120, True, False)
        untargeted = Snapshot.model_validate(snapshot(gmv=100))
        assert rule_point(rule, "gmv", untargeted, 1) == Point("2026-10", 100, None, False)

    def test_previous_periods_of_each_kind(self):
        assert [p.text for p in previous_periods(Period.parse("2026-02"), 3)] == [
            "2025-12", "2026-01", "2026-02"]
        assert [p.text for p in previous_periods(Period.parse("2026-Q1"), 3)] == [
            "2025-Q3", "2025-Q4", "2026-Q1"]
        assert [p.text for p in previous_periods(Period.parse("2026"), 2)] == ["2025", "2026"]


@pytest.fixture
def page(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        yield client


class TestChartsOnThePages:
    def test_an_incident_shows_its_stores_history_judged_by_its_rule(self, page: TestClient):
        rates = {"2026-03": 0.01, "2026-04": 0.035, "2026-05": 0.02, "2026-06": 0.04}
        page.post("/v1/snapshots", headers=JSONL, content=jsonl(*(
            snapshot("shopee-my-02", period, platform="shopee", dispute_rate=rate)
            for period, rate in rates.items())))
        # June restated, still above 3 %
        page.post("/v1/snapshots", json=snapshot("shopee-my-02", "2026-06", platform="shopee",
                                                 dispute_rate=0.045))
        # April opened one, May resolved it, June opened another: the page of the latest
        latest, first = page.get("/v1/incidents", params={"rule": "dispute-rate-high"}).json()
        assert (first["period"], latest["period"]) == ("2026-04", "2026-06")
        html = page.get(f"/incidents/{latest['id']}").text
        assert 'id="chart-history"' in html
        drawn = geometry(svgs(html)["wide"])
        rates["2026-06"] = 0.045
        assert drawn.marked(0).keys() == rates.keys()
        assert all(close(drawn.marked(0)[p], v, 0.035) for p, v in rates.items())
        assert all(close(v, 0.03, 0.035) for _x, v in drawn.lines[1])
        assert drawn.marked(2).keys() == {"2026-04", "2026-06"}  # what the rule fired on
        assert drawn.marked(3).keys() == {"2026-06"}
        assert "2 of 4 periods" in drawn.desc and "restated: 2026-06" in drawn.desc

    def test_an_incident_without_a_store_metric_has_no_chart(self, page: TestClient):
        for period in ("2026-07", "2026-08", "2026-09"):
            page.post("/v1/snapshots", json=snapshot(period=period, gmv=120000,
                                                     targets={"gmv": 150000}))
        [pip] = page.get("/v1/incidents", params={"rule": "pip-recommended"}).json()
        assert "<svg" not in page.get(f"/incidents/{pip['id']}").text
        pip_page = page.get("/pip").text
        drawn = geometry(svgs(pip_page)["small"])
        assert drawn.marked(2).keys() == {"2026-07", "2026-08", "2026-09"}
        assert all(close(v, 150000, 30000) for _x, v in drawn.lines[1])

    def test_a_scorecard_shows_each_indicator_over_the_last_six_months(
            self, page: TestClient):
        gmv = {"2026-05": 160000, "2026-07": 140000, "2026-10": 155000}
        page.post("/v1/snapshots", headers=JSONL, content=jsonl(*(
            snapshot(period=period, gmv=value, targets={"gmv": 150000})
            for period, value in gmv.items())))
        html = page.get("/scorecards/li.wei", params={"period": "2026-10"}).text
        chart = re.search(r'<figure class="chart card" id="chart-gmv">.*?</figure>', html, re.S)
        assert chart is not None
        drawn = geometry(svgs(chart.group(0))["small"])
        assert list(drawn.x_of) == [f"2026-{m:02d}" for m in range(5, 11)]
        assert drawn.marked(0).keys() == gmv.keys()
        assert drawn.marked(2).keys() == {"2026-07"}  # the card that failed GMV
