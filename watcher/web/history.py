"""What the charts show, as points: a store's metric under its rule, a card's indicators over
its last periods, the operator's score and grade over them, the months of a PIP streak.

Each point's threshold and verdict come from where the product decides them, never from a
second table: an incident's chart asks the incident's rule (the variant for the store's
segment, the snapshot's target, ``holds`` as the firing used it), a scorecard's charts the
cards themselves (``watcher.assessment.scorecard``, ``watcher.assessment.trend``), a PIP's
chart the streak's evidence.
Pure functions; the pages do the queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from watcher.assessment.scorecard import ItemStatus, Scorecard
from watcher.assessment.trend import ScoreHistory, previous_periods
from watcher.evaluation import format_value
from watcher.period import Period
from watcher.rules.engine import applicable_variant, normalise_segment
from watcher.rules.expression import comparisons, holds
from watcher.rules.model import Rule
from watcher.snapshot import Snapshot
from watcher.web.charts import Legend, Point, ScoreLegend, ScoreMark, line_chart, score_chart
from watcher.web.i18n import translator
from watcher.web.views import indicator_name

__all__ = ["CARD_PERIODS", "HISTORY_PERIODS", "Figure", "card_figures", "incident_figure",
           "previous_periods", "score_figure", "streak_figures"]

HISTORY_PERIODS = 12  # an incident's chart
CARD_PERIODS = 6      # a scorecard's small multiples


@dataclass(frozen=True, slots=True)
class Figure:
    """A chart and the sentence that says what it shows (beside it on the page)."""

    key: str
    heading: str
    summary: str
    svg: Markup


def legend(lang: str, *, target: bool = False) -> Legend:
    t = translator(lang)
    return Legend(value=t("chart.value"), threshold=t("chart.target" if target else
                                                      "chart.threshold"),
                  breaching=t("chart.breaching"), restated=t("chart.restated"),
                  no_data=t("chart.no_data"))


def rule_point(rule: Rule | None, metric: str, snap: Snapshot, revision: int) -> Point:
    """One stored snapshot judged by ``rule`` as the engine judges it."""
    value = snap.metrics.get(metric)
    threshold, breaching = None, False
    targets = {k: t.value for k, t in snap.targets.items()}
    if rule is None or not rule.applies_to(snap):
        pass
    elif rule.kind == "platform_target":
        target = snap.targets.get(metric)
        if target is not None:
            threshold = target.value
            breaching = (value is not None and target.comparator is not None
                         and target.breached_by(metric, value))
    else:
        variant = (applicable_variant(rule, normalise_segment(snap.segment))
                   if rule.variants and snap.segment else None)
        condition = variant.compiled if variant else rule.compiled
        if condition is not None:
            own = next((c for c in comparisons(condition) if c.metric == metric), None)
            if own is not None:
                threshold = targets.get(metric) if own.value is None else own.value
            breaching = value is not None and holds(condition, snap.metrics, targets)
    return Point(snap.period.text, value, threshold, breaching, revision > 1)


def incident_figure(rule: Rule | None, metric: str, store: str,
                    history: Sequence[tuple[Snapshot, int]], lang: str) -> Figure | None:
    """The store's ``metric`` over its last stored periods against the incident's rule."""
    points = [rule_point(rule, metric, snap, revision) for snap, revision in history]
    if not any(p.value is not None for p in points):
        return None
    t = translator(lang)
    name = indicator_name(metric, lang)
    heading = t("chart.history", metric=name, store=store, count=len(points))
    summary = summarise(points, metric, lang)
    return Figure("history", heading, summary,
                  line_chart(heading, summary, metric, points,
                             legend(lang, target=rule is not None
                                    and rule.kind == "platform_target")))


def summarise(points: Sequence[Point], metric: str, lang: str) -> str:
    """The chart in one or two sentences: the latest value, how many periods breach, what
    was restated."""
    t = translator(lang)
    latest = next(p for p in reversed(points) if p.value is not None)
    text = t("chart.latest", period=latest.period, value=format_value(metric, latest.value))
    if latest.threshold is not None:
        text += t("chart.against", threshold=format_value(metric, latest.threshold))
    breaching = [p.period for p in points if p.breaching]
    text += t("chart.breaches", count=len(breaching),
              total=sum(p.value is not None for p in points),
              periods=", ".join(breaching) or "-")
    restated = [p.period for p in points if p.restated]
    if restated:
        text += t("chart.restated_in", periods=", ".join(restated))
    return text


def card_figures(cards: Sequence[Scorecard | None], periods: Sequence[Period],
                 lang: str) -> list[Figure]:
    """One small chart per indicator of the latest card: its value against its target or
    rule threshold in each period (``cards[i]`` is the card of ``periods[i]``, None when
    the operator had no snapshot then); a breach is an item that failed."""
    latest = cards[-1]
    if latest is None:
        return []
    t = translator(lang)
    figures = []
    for item in latest.items:
        points = []
        for period, card in zip(periods, cards, strict=True):
            found = next((i for i in card.items if i.indicator == item.indicator),
                         None) if card else None
            points.append(Point(period.text, found.value if found else None,
                                found.threshold if found else None,
                                found is not None and found.status is ItemStatus.FAIL))
        if not any(p.value is not None for p in points):
            continue
        name = indicator_name(item.indicator, lang)
        summary = summarise(points, item.indicator, lang)
        figures.append(Figure(item.indicator, name, summary,
                              line_chart(t("chart.card", metric=name, count=len(points)),
                                         summary, item.indicator, points, legend(lang),
                                         small=True)))
    return figures


def streak_figures(evidence: Sequence[Mapping[str, Any]], lang: str) -> list[Figure]:
    """A PIP's streak: per store and indicator, the missed months' values against target."""
    t = translator(lang)
    series: dict[tuple[str, str], list[Point]] = {}
    for item in sorted(evidence, key=lambda e: str(e.get("period", ""))):
        metric, store = str(item.get("metric", "")), str(item.get("store", ""))
        value, target = item.get("value"), item.get("target")
        if not metric or not isinstance(value, int | float):
            continue
        series.setdefault((store, metric), []).append(Point(
            str(item.get("period", "")), float(value),
            float(target) if isinstance(target, int | float) else None, True))
    figures = []
    for (store, metric), points in series.items():
        name = indicator_name(metric, lang)
        heading = t("chart.streak", metric=name, store=store)
        summary = summarise(points, metric, lang)
        figures.append(Figure(f"{store}-{metric}", heading, summary,
                              line_chart(heading, summary, metric, points,
                                         legend(lang, target=True), small=True)))
    return figures


def score_figure(history: ScoreHistory, lang: str) -> Figure | None:
    """The operator's score over ``history``'s periods against the grade bands, each point
    labelled with its card's grade, failed periods marked; None without a scored card."""
    points = history.points
    scored = [p for p in points if p.score is not None]
    if not scored:
        return None
    t = translator(lang)
    heading = t("chart.scores", count=len(points))
    latest = scored[-1]
    summary = t("chart.score_latest", period=latest.period, score=f"{latest.score:.2f}",
                grade=latest.grade or "-", result=t(f"result.{latest.result}"))
    failed = [p.period for p in points if p.failed]
    judged = [p for p in points if p.result is not None]
    summary += t("chart.score_failed", count=len(failed), total=len(judged),
                 periods=", ".join(failed) or "-")
    each = t("list.separator").join(
        t("chart.score_point", period=p.period, score=f"{p.score:.2f}", grade=p.grade or "-",
          result=t(f"result.{p.result}"))
        if p.score is not None else
        t("chart.score_none", period=p.period,
          result=t(f"result.{p.result}") if p.result else t("chart.no_card"))
        for p in points)
    bands = t("list.separator").join(t("chart.band", grade=b.grade, min=f"{b.min_score:.2f}")
                                     for b in history.grades)
    desc = f"{summary} {t('chart.score_each', points=each, bands=bands)}"
    marks = [ScoreMark(p.period, p.score, p.grade, p.failed) for p in points]
    # the pass mark's line is labelled with its level; the legend names it only, so that
    # the three fit one row on a phone
    legend = ScoreLegend(score=t("chart.score"), pass_mark=t("chart.pass_mark"),
                         failed=t("chart.failed"), no_data=t("chart.no_data"))
    return Figure("scores", heading, summary,
                  score_chart(heading, desc, marks,
                              [(b.grade, b.min_score) for b in history.grades],
                              history.pass_score, legend))
