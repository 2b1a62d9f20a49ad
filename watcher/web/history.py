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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from markupsafe import Markup

from watcher.assessment.scorecard import ItemStatus, Scorecard
from watcher.assessment.trend import ScoreHistory, previous_periods
from watcher.evaluation import format_value
from watcher.period import Period, PeriodKind
from watcher.rules import change, trend
from watcher.rules.engine import applicable_variant, normalise_segment
from watcher.rules.expression import comparisons, holds
from watcher.rules.history import Window, amount, needed_days
from watcher.rules.model import Rule
from watcher.snapshot import Snapshot
from watcher.web.charts import (
    Crossing,
    Legend,
    Point,
    ScoreLegend,
    ScoreMark,
    line_chart,
    score_chart,
)
from watcher.web.i18n import translator
from watcher.web.views import indicator_name

__all__ = ["CARD_PERIODS", "HISTORY_PERIODS", "Figure", "card_figures", "history_needed",
           "incident_figure", "previous_periods", "score_figure", "streak_figures"]

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


def history_needed(rule: Rule | None) -> int:
    """How many stored periods an incident's chart reads: the periods it shows, and before
    them the window a history rule judges each of them by (its baseline, its fit)."""
    return HISTORY_PERIODS + (needed_days([rule]) if rule is not None else 0)


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


def change_point(rule: Rule, snap: Snapshot, history: Sequence[Snapshot],
                 revision: int) -> Point:
    """One snapshot judged by a change rule against its own trailing baseline, by the
    engine's own ``change.judgement``: the level it must not cross (the line crossed when
    it fires), its baseline as the guide; no line where the rule cannot judge it."""
    assert rule.metric is not None
    value = snap.metrics.get(rule.metric)
    found = change.judgement(rule, snap, history) if rule.applies_to(snap) else None
    if found is None:
        return Point(snap.period.text, value, None, False, revision > 1)
    _way, line = found.crossed[0] if found.crossed else found.lines[0]
    return Point(snap.period.text, value, line, bool(found.crossed), revision > 1,
                 guide=found.base)


def _judged(rule: Rule, snap: Snapshot, history: Sequence[Snapshot]
            ) -> trend.Projection | None:
    return trend.projection(rule, snap, history) if rule.applies_to(snap) else None


def trend_points(rule: Rule, shown: Sequence[tuple[Snapshot, int]],
                 history: Sequence[Snapshot]) -> tuple[list[Point], trend.Projection | None,
                                                       Crossing | None]:
    """A trend rule's chart: each period judged by ``trend.projection`` (a breach: the early
    warning holds there), the ``crosses`` level across, and the latest period's fitted line
    through the periods it was fitted to and on to the horizon (periods to come added),
    with where it meets the level."""
    assert rule.crosses is not None
    level = float(trend.line_of(rule.crosses).value or 0.0)
    metric = trend.line_of(rule.crosses).metric
    judged = [(snap, revision, _judged(rule, snap, history)) for snap, revision in shown]
    latest = next(((s, p) for s, _r, p in reversed(judged)
                   if s.metrics.get(metric) is not None), None)
    projection = latest[1] if latest else None
    now = latest[0].period.end if latest else None
    fitted = {x for x, _y in projection.points} if projection else set()
    points = []
    for snap, revision, found in judged:
        x = float((snap.period.end - now).days) if now is not None else None
        points.append(Point(snap.period.text, snap.metrics.get(metric), level,
                            found is not None and found.fires, revision > 1,
                            guide=projection.at(x) if projection and x is not None
                            and fitted and x >= min(fitted) else None))
    crossing = None
    if latest is not None and projection is not None:
        step = 7 if latest[0].period.kind is PeriodKind.WEEK else 1
        anchor = next(i for i, p in enumerate(points) if p.period == latest[0].period.text)
        for ahead in range(step, projection.horizon + 1, step):
            day = latest[0].period.end + timedelta(days=ahead)
            text = (Period.week_of(day).text if step == 7 else day.isoformat())
            points.append(Point(text, None, level, guide=projection.at(float(ahead))))
        if projection.fires and 0 < projection.days <= projection.horizon:
            when = latest[0].period.end + timedelta(days=max(1, round(projection.days)))
            crossing = Crossing(anchor + projection.days / step,
                                f"{format_value(metric, level)} ≈ {when.isoformat()}")
    return points, projection, crossing


def incident_figure(rule: Rule | None, metric: str, store: str,
                    history: Sequence[tuple[Snapshot, int]], lang: str) -> Figure | None:
    """The store's ``metric`` over its last ``HISTORY_PERIODS`` stored periods against the
    incident's rule (``history`` may reach further back: a history rule judges each period
    shown by the ones before it)."""
    shown = history[-HISTORY_PERIODS:]
    snaps = [snap for snap, _revision in history]
    t = translator(lang)
    name = indicator_name(metric, lang)
    crossing = None
    kind = rule.kind if rule is not None else None
    if rule is not None and kind == "change" and rule.metric == metric:
        points = [change_point(rule, snap, snaps, revision) for snap, revision in shown]
        lines = legend(lang)
        window = Window.parse(rule.baseline or "7d").words(lang)
        stat = t(f"chart.{rule.statistic}")
        lines = Legend(lines.value, t("chart.alert_level"), lines.breaching, lines.restated,
                       lines.no_data, guide=t("chart.baseline", window=window, statistic=stat))
    elif rule is not None and kind == "trend" and rule.crosses \
            and trend.line_of(rule.crosses).metric == metric:
        points, _projection, crossing = trend_points(rule, shown, snaps)
        base = legend(lang)
        lines = Legend(base.value, t("chart.crosses_level"), t("chart.early_warning"),
                       base.restated, base.no_data, guide=t("chart.projection"))
    else:
        kind = None
        if rule is not None and rule.kind in ("change", "trend"):
            rule = None  # another metric than the one the rule judges: the values alone
        points = [rule_point(rule, metric, snap, revision) for snap, revision in shown]
        lines = legend(lang, target=rule is not None and rule.kind == "platform_target")
    if not any(p.value is not None for p in points):
        return None
    heading = t("chart.history", metric=name, store=store, count=len(shown))
    summary = summarise(points, metric, lang, rule=rule if kind else None,
                        history=snaps, shown=shown)
    return Figure("history", heading, summary,
                  line_chart(heading, summary, metric, points, lines, crossing=crossing))


def _breaches(t: Callable[..., str], verb: str, count: int, total: int, periods: str) -> str:
    """"; 1 of 12 periods with a value breaches it (...)", with the number agreeing."""
    if total == 0:
        return ""
    if total == 1:
        return t(f"chart.{verb}_only" if count else f"chart.{verb}_only_none",
                 periods=periods)
    if count == 0:
        return t(f"chart.{verb}_none", total=total)
    return t(f"chart.{verb}_one" if count == 1 else f"chart.{verb}", count=count, total=total,
             periods=periods)


def summarise(points: Sequence[Point], metric: str, lang: str, *, rule: Rule | None = None,
              history: Sequence[Snapshot] = (),
              shown: Sequence[tuple[Snapshot, int]] = ()) -> str:
    """The chart in one or two sentences: the latest value (for a history rule, in the
    incident's own words), how many periods breach, what was restated."""
    t = translator(lang)
    latest = next(p for p in reversed(points) if p.value is not None)
    verb = "breaches"
    words = None
    snap = next((s for s, _r in reversed(shown) if s.period.text == latest.period), None)
    if rule is not None and snap is not None and rule.kind == "change" and rule.metric:
        found = change.judgement(rule, snap, history) if rule.applies_to(snap) else None
        if found is not None:
            words = change.describe(rule, rule.metric, found.value, found.base,
                                    found.window)[_lang(lang)]
    elif rule is not None and snap is not None and rule.kind == "trend":
        verb = "warned"
        found_trend = _judged(rule, snap, history)
        if found_trend is not None and found_trend.fires:
            words = trend.describe(found_trend.metric, found_trend.value, found_trend.slope,
                                   found_trend.threshold, found_trend.days)[_lang(lang)]
        elif found_trend is not None:
            words = t("chart.not_crossing", level=amount(metric, found_trend.threshold),
                      projected=amount(metric, found_trend.projected),
                      days=found_trend.horizon)
    if words:
        text = t("chart.latest_words", period=latest.period, words=words)
    else:
        text = t("chart.latest", period=latest.period,
                 value=format_value(metric, latest.value))
    if latest.threshold is not None and verb == "warned":
        if not words:
            text += t("chart.against", threshold=format_value(metric, latest.threshold))
    elif latest.threshold is not None:
        text += t("chart.against_level" if rule is not None else "chart.against",
                  threshold=format_value(metric, latest.threshold))
    breaching = [p.period for p in points if p.breaching]
    text += _breaches(t, verb, len(breaching), sum(p.value is not None for p in points),
                      ", ".join(breaching))
    restated = [p.period for p in points if p.restated]
    if restated:
        text += t("chart.restated_in", periods=", ".join(restated))
    return text


def _lang(lang: str) -> str:
    return "zh-CN" if lang.lower().startswith("zh") else "en"


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
    summary += _breaches(t, "score_failed", len(failed), len(judged), ", ".join(failed))
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
