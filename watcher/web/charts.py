"""Charts for the page: a metric's values over periods against its threshold, as inline SVG.

pygal draws the axes, scales and points; this module says what to draw and makes the result
fit the page's Content-Security-Policy, which allows no script and no inline style: the
SVG's own ``<style>``, ``<script>`` and script-driven tooltip layer are dropped, and the
page's stylesheet (``static/page.css``, section "charts") colours the series by their
pygal class. Every chart has the same four series in the same order, so the stylesheet
can name them:

``serie-0``  the value, a line through the periods that have one;
``serie-1``  the threshold or target (dashed);
``serie-2``  the periods that breach it (a large red dot);
``serie-3``  the restated periods (a ring around the dot);
``serie-4``  a guide, when the rule has one (faint): a change rule's baseline (the 7-day
             mean the alert level is taken from), a trend rule's fitted line projected to
             its horizon, with a ring and a label where it meets the level.

The score chart (``score_chart``) draws an operator's card score over periods on a 0-1
scale, with the grade bands behind it (alternate stripes, each band's grade named in the
right margin, a guide line at each band's lower bound), the pass mark as ``serie-1``,
the failed periods as ``serie-2`` and each card's grade written above its point.

An SVG carries its ``<title>`` and a ``<desc>`` with the text summary, and the page shows
that summary beside it, so a screen reader or a printout loses nothing; pygal's own
``<desc>`` per point (raw coordinates, for its script's tooltips) is dropped as noise.
Pure: data in, markup out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pygal
from markupsafe import Markup
from pygal.etree import etree
from pygal.style import Style

from watcher.evaluation import format_value

# pygal lays text out by these sizes; page.css sets the same ones
_STYLE = Style(background="transparent", plot_background="transparent",
               font_family="system-ui, sans-serif", label_font_size=13,
               major_label_font_size=13, legend_font_size=13, no_data_font_size=16)
_SMALL = Style(background="transparent", plot_background="transparent",
               font_family="system-ui, sans-serif", label_font_size=12,
               major_label_font_size=12, legend_font_size=12, no_data_font_size=14)


@dataclass(frozen=True, slots=True)
class Point:
    """One period of a chart: its value and threshold, and what the page says of them."""

    period: str
    value: float | None
    threshold: float | None
    breaching: bool = False
    restated: bool = False
    guide: float | None = None  # serie-4: a baseline, a projection


@dataclass(frozen=True, slots=True)
class Legend:
    """The series' names in the visitor's language."""

    value: str
    threshold: str
    breaching: str
    restated: str
    no_data: str
    guide: str = ""


@dataclass(frozen=True, slots=True)
class Crossing:
    """Where the guide meets the threshold: ``at`` a (fractional) index of the points."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class _Size:
    kind: str  # the SVG's class beside chart-svg: what page.css shows where
    width: int
    height: int
    style: Style
    legend: bool
    rotate_after: int  # x labels are slanted when there are more of them than this
    dots: float
    max_scale: int = 6  # y axis labels at most
    legend_columns: int = 4


# a wide chart for a desktop, a narrow one with the same text size for a phone (the page's
# stylesheet shows one of them), and the small multiples of a scorecard
WIDE = _Size("wide", 760, 300, _STYLE, True, 8, 3.5)
NARROW = _Size("narrow", 380, 320, _STYLE, True, 4, 3.5, legend_columns=2)
SMALL = _Size("small", 320, 200, _SMALL, False, 4, 3, max_scale=4)


def line_chart(title: str, summary: str, metric: str, points: Sequence[Point],
               legend: Legend, *, small: bool = False,
               crossing: Crossing | None = None) -> Markup:
    """``points`` in period order as SVG line charts with the threshold as a line: one
    small chart, or a wide and a narrow one (for a phone) of the same data."""
    sizes = (SMALL,) if small else (WIDE, NARROW)
    return Markup("").join(_render(title, summary, metric, points, legend, size, crossing)
                           for size in sizes)


def _render(title: str, summary: str, metric: str, points: Sequence[Point], legend: Legend,
            size: _Size, crossing: Crossing | None = None) -> Markup:
    """One chart. A threshold that is the same in every period that has one is drawn across
    the whole chart; one that changes is drawn where it is known."""
    known = {p.threshold for p in points if p.threshold is not None}
    constant = known.pop() if len(known) == 1 else None
    guided = [i for i, p in enumerate(points) if p.guide is not None]
    series = 5 if guided else 4
    # a fifth series (the guide) fits the wide chart's legend row; the narrow one's takes
    # a row more, and a phone names every few periods when there are many
    columns = size.legend_columns + (1 if guided and size.legend_columns > 2 else 0)
    crowded = size.kind == "narrow" and len(points) > 12
    chart = pygal.Line(
        js=[], css=[], no_prefix=True, disable_xml_declaration=True, explicit_size=False,
        width=size.width, height=size.height, style=size.style, allow_interruptions=True,
        show_legend=size.legend, legend_at_bottom=True, truncate_legend=-1,
        legend_at_bottom_columns=columns, legend_box_size=11, margin=10,
        margin_bottom=10 + _legend_rows_short(series, columns, size.style), margin_right=28,
        spacing=8, x_label_rotation=0 if len(points) <= size.rotate_after else 40,
        truncate_label=-1, show_minor_x_labels=not crowded,
        x_labels_major_every=math.ceil(len(points) / 6) if crowded else None,
        show_x_guides=False, dots_size=size.dots, max_scale=size.max_scale,
        value_formatter=_formatter(metric), no_data_text=legend.no_data)
    chart.x_labels = [p.period for p in points]
    chart.add(legend.value, [p.value for p in points])
    chart.add(legend.threshold,
              [constant if constant is not None else p.threshold for p in points],
              show_dots=constant is None)
    chart.add(legend.breaching, [p.value if p.breaching else None for p in points],
              stroke=False, dots_size=size.dots * 1.7)
    chart.add(legend.restated, [p.value if p.restated else None for p in points],
              stroke=False, dots_size=size.dots * 2.6)
    if guided:
        chart.add(legend.guide, [p.guide for p in points], show_dots=False)
    chart.xml_filters.append(_fit_for_page(title, summary, size.kind))
    if constant is not None:
        chart.xml_filters.append(_label_line(1, format_value(metric, constant)))
    if crossing is not None and guided:
        chart.xml_filters.append(_mark_crossing(4, guided, crossing))
    return Markup(chart.render(is_unicode=True))


def _legend_rows_short(series: int, columns: int, style: Style) -> float:
    """The height pygal leaves out under a legend whose last row is not full: it counts
    ``series // columns`` rows, not the rows drawn."""
    if not columns:
        return 0.0
    missing = math.ceil(series / columns) - series // columns
    return float(missing * max(float(style.legend_font_size), 11.0) * 1.5)


def _mark_crossing(series: int, indices: Sequence[int], crossing: Crossing
                   ) -> Callable[[Any], Any]:
    """A ring on series ``series``'s line at ``crossing.at`` (an index of the points; the
    line's vertices are the points ``indices``, consecutive), and its label beside it."""
    def mark(root: Any) -> Any:
        group = next((g for g in root.iter() if _name(g) == "g"
                      and {"series", f"serie-{series}"} <= set(g.get("class", "").split())
                      and any(_name(c) == "path" for c in g)), None)
        path = next((c for c in group if _name(c) == "path"), None) \
            if group is not None else None
        numbers = [float(n) for n in _NUMBER.findall(path.get("d", ""))] \
            if path is not None else []
        vertices = list(zip(numbers[0::2], numbers[1::2], strict=False))
        if group is None or len(vertices) != len(indices) or len(vertices) < 2:
            return root
        j = min(max(int(crossing.at - indices[0]), 0), len(vertices) - 2)
        share = crossing.at - indices[0] - j
        (x0, y0), (x1, y1) = vertices[j], vertices[j + 1]
        x, y = x0 + (x1 - x0) * share, y0 + (y1 - y0) * share
        etree.SubElement(group, "circle", {"class": "crossing", "cx": f"{x:.2f}",
                                           "cy": f"{y:.2f}", "r": "6"})
        text = etree.SubElement(group, "text", {  # left of the ring, above the line
            "class": "crossing", "x": f"{x - 8:.2f}", "y": f"{y - 10:.2f}"})
        text.text = crossing.label
        return root
    return mark


def _label_line(series: int, text: str) -> Callable[[Any], Any]:
    """Write ``text`` (the level) just above the start of series ``series``'s line: a
    threshold often lies beyond the y axis's last label, and a dashed line of unknown
    level says little."""
    def label(root: Any) -> Any:
        group = next((g for g in root.iter() if _name(g) == "g"
                      and {"series", f"serie-{series}"} <= set(g.get("class", "").split())
                      and any(_name(c) == "path" for c in g)), None)
        path = next((c for c in group if _name(c) == "path"), None) \
            if group is not None else None
        numbers = _NUMBER.findall(path.get("d", "")) if path is not None else []
        if group is None or len(numbers) < 2:
            return root
        y = float(numbers[1])
        level = etree.SubElement(group, "text", {  # below the line when it tops the plot
            "class": "level", "x": f"{float(numbers[0]) + 4:.2f}",
            "y": f"{y - 5 if y > 14 else y + 14:.2f}"})
        level.text = text
        return root
    return label


@dataclass(frozen=True, slots=True)
class ScoreMark:
    """One period of a score chart: the card's score and grade, whether it failed."""

    period: str
    score: float | None
    grade: str | None
    failed: bool = False


@dataclass(frozen=True, slots=True)
class ScoreLegend:
    score: str
    pass_mark: str
    failed: str
    no_data: str


def score_chart(title: str, desc: str, marks: Sequence[ScoreMark],
                bands: Sequence[tuple[str, float]], pass_score: float,
                legend: ScoreLegend) -> Markup:
    """``marks`` in period order against the grade ``bands`` (grade, lowest score), best
    first: a wide chart and a narrow one (for a phone) of the same data."""
    return Markup("").join(_render_scores(title, desc, marks, bands, pass_score, legend, size)
                           for size in (WIDE, NARROW))


def _score_label(value: float) -> str:
    return f"{value:.2f}"


def _render_scores(title: str, desc: str, marks: Sequence[ScoreMark],
                   bands: Sequence[tuple[str, float]], pass_score: float,
                   legend: ScoreLegend, size: _Size) -> Markup:
    longest = max((len(grade) for grade, _low in bands), default=1)
    chart = pygal.Line(
        js=[], css=[], no_prefix=True, disable_xml_declaration=True, explicit_size=False,
        width=size.width, height=size.height, style=size.style, allow_interruptions=True,
        show_legend=size.legend, legend_at_bottom=True, truncate_legend=-1,
        legend_at_bottom_columns=3, legend_box_size=11, margin=10, margin_top=24,
        margin_right=16 + 8 * min(longest, 8), spacing=8,
        x_label_rotation=0 if len(marks) <= size.rotate_after else 40, truncate_label=-1,
        show_x_guides=False, dots_size=size.dots, range=(0, 1), include_x_axis=True,
        value_formatter=_score_label, no_data_text=legend.no_data)
    chart.x_labels = [m.period for m in marks]
    # a guide at each band's lower bound, labelled with it; the top (1.00) is left
    # unlabelled, as the best band is often thin and its label would overlap
    lows = sorted({low for _grade, low in bands})
    chart.y_labels = lows if len(lows) > 1 else [*lows, 1.0]
    chart.add(legend.score, [m.score for m in marks])
    chart.add(legend.pass_mark, [pass_score] * len(marks), show_dots=False)
    chart.add(legend.failed, [m.score if m.failed else None for m in marks],
              stroke=False, dots_size=size.dots * 1.7)
    chart.xml_filters.append(_fit_for_page(title, desc, f"{size.kind} scores"))
    chart.xml_filters.append(_label_line(1, _score_label(pass_score)))
    chart.xml_filters.append(_draw_bands(bands, [m.grade for m in marks if m.score is not None],
                                         size.dots))
    return Markup(chart.render(is_unicode=True))


def _draw_bands(bands: Sequence[tuple[str, float]], grades: Sequence[str | None],
                dots: float) -> Callable[[Any], Any]:
    """Stripe the plot by grade band, name each band in the right margin, and write each
    point's grade above its dot (``grades``: one per drawn point, in order)."""
    def draw(root: Any) -> Any:
        plot = next((g for g in root.iter() if _name(g) == "g"
                     and g.get("class", "").split() == ["plot"]), None)
        if plot is None:
            return root
        guide_y: dict[str, float] = {}
        width = 0.0
        for axis in plot.iter():
            if _name(axis) != "g" or "y" not in axis.get("class", "").split():
                continue
            for guide in axis:
                path = next((c for c in guide if _name(c) == "path"), None)
                text = next((c for c in guide if _name(c) == "text"), None)
                if path is None or text is None:
                    continue
                numbers = [float(n) for n in _NUMBER.findall(path.get("d", ""))]
                guide_y[text.text or ""] = numbers[1]
                width = max(width, numbers[2])
        levels = sorted((float(label), y) for label, y in guide_y.items())
        if len(levels) < 2 or not width:
            return root
        (v0, y0), (v1, y1) = levels[0], levels[-1]

        def y_of(value: float) -> float:
            return y0 + (value - v0) * (y1 - y0) / (v1 - v0)

        group = etree.Element("g", {"class": "bands"})
        upper = y_of(1.0)
        for index, (grade, low) in enumerate(bands):
            lower = y_of(low)
            etree.SubElement(group, "rect", {
                "class": f"band band-{index % 2}", "data-grade": grade, "x": "0",
                "y": f"{upper:.2f}", "width": f"{width:.2f}",
                "height": f"{max(lower - upper, 0):.2f}"})
            name = etree.SubElement(group, "text", {
                "class": "band-name", "x": f"{width + 6:.2f}",
                "y": f"{(upper + lower) / 2 + 4:.2f}"})
            name.text = grade
            upper = lower
        background = next((i for i, c in enumerate(plot) if _name(c) == "rect"), -1)
        plot.insert(background + 1, group)
        # the score's dots, one per drawn point in order: its grade goes just above each
        first = next((g for g in root.iter() if _name(g) == "g"
                      and {"series", "serie-0"} <= set(g.get("class", "").split())
                      and any(_name(c) == "circle" for c in g.iter())), None)
        circles = [c for c in first.iter() if _name(c) == "circle"] if first is not None else []
        for circle, label in zip(circles, grades, strict=False):
            if label:
                text = etree.SubElement(first, "text", {
                    "class": "grade", "x": circle.get("cx", "0"),
                    "y": f"{float(circle.get('cy', '0')) - dots - 5:.2f}"})
                text.text = label
        return root
    return draw


_NUMBER = re.compile(r"-?[\d.]+")


def _formatter(metric: str) -> Callable[[float], str]:
    def label(value: float) -> str:
        return format_value(metric, value)
    return label


def _name(node: Any) -> str:
    """A node's tag without its namespace ("" for a comment), with etree or lxml alike."""
    return node.tag.rpartition("}")[2] if isinstance(node.tag, str) else ""


def _dropped(node: Any) -> bool:
    """What the page cannot use: styles, scripts, the tooltips' layer and pygal's per-point
    ``<desc>`` (raw coordinates, noise to a screen reader; the chart's own ``<desc>``, the
    summary, is put back by ``_fit_for_page``)."""
    return (_name(node) in ("", "style", "script", "desc")
            or "tooltip-overlay" in node.get("class", "").split())


def _fit_for_page(title: str, summary: str, kind: str) -> Callable[[Any], Any]:
    """Drop what the CSP would block (or what needs a script), name and describe the chart."""
    def fit(root: Any) -> Any:
        for parent in list(root.iter()):
            for child in list(parent):
                if _dropped(child):
                    parent.remove(child)
        root.attrib.pop("id", None)
        root.set("class", f"chart-svg {kind}")
        root.set("role", "img")
        for child in list(root):
            if _name(child) == "title":
                root.remove(child)
        name = etree.Element("title")
        name.text = title
        desc = etree.Element("desc")
        desc.text = summary
        root.insert(0, name)
        root.insert(1, desc)
        return root
    return fit
