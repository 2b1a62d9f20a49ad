"""``kind: trend``: a least-squares line over the last periods, projected ahead.

Amazon deactivates at 1 % order defects; the seller wants to hear at 0.8 %
and rising, not at 1 %. The rule fits a straight line (least squares, x in
days) to the metric over ``over:`` (default ``14d``: the snapshot and its store's
prior periods of the same kind within the 14 days before) and fires when the
line, moving towards the line of ``crosses:`` (``order_defect_rate >= 0.01``),
is across it ``within:`` days from the snapshot's period (``7d``), the way
Prometheus' ``predict_linear`` is used. It resolves when the projection no
longer crosses (the trend flattened, turned, or slowed enough). A line already
crossed is the threshold rules' business; the trend rule keeps warning only
while the value keeps moving the wrong way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from watcher import indicators
from watcher.evaluation import PerLanguage
from watcher.indicators import Unit
from watcher.rules.expression import Comparison, ExpressionError, parse
from watcher.rules.history import Dated, Verdict, Window, amount, enough, fires, prior, settles
from watcher.snapshot import Snapshot

if TYPE_CHECKING:
    from watcher.rules.model import Rule

_UPWARD = (">", ">=")
_ORDERED = ("<", "<=", ">", ">=")


@functools.lru_cache(maxsize=1024)
def line_of(crosses: str) -> Comparison:
    """``crosses:`` as one comparison of a metric with a number."""
    try:
        condition = parse(crosses)
    except ExpressionError as exc:
        raise ValueError(f"crosses: {exc}") from None
    if not isinstance(condition, Comparison) or condition.value is None \
            or condition.op not in _ORDERED:
        raise ValueError(f"crosses: '{crosses}' is not one line; write a metric, <, <=, > or "
                         ">=, and a number: order_defect_rate >= 0.01")
    return condition


def check(rule: Rule) -> None:
    """A trend rule's keys, checked at load (the error names the rule)."""
    if not rule.crosses or not rule.within:
        raise ValueError("a trend rule needs 'crosses' (order_defect_rate >= 0.01) and "
                         "'within' (7d)")
    line_of(rule.crosses)
    if rule.metric or rule.baseline or rule.drop is not None or rule.rise is not None \
            or rule.min_baseline is not None or rule.compiled is not None:
        raise ValueError("a trend rule takes its metric from 'crosses'; 'metric', 'baseline', "
                         "'drop', 'rise', 'min_baseline' and 'condition' belong to change rules")


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(value at x = 0, slope per unit of x) of the least-squares line through ``points``."""
    n = len(points)
    mean_x = math.fsum(x for x, _ in points) / n
    mean_y = math.fsum(y for _, y in points) / n
    spread = math.fsum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return mean_y, 0.0
    slope = math.fsum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


@dataclass(frozen=True, slots=True)
class Projection:
    """How a trend rule judges one snapshot: the least-squares line through ``points`` (x in
    days from the snapshot's period, 0 the snapshot) and where it stands ``horizon`` days on.
    ``fires``: it moves towards ``threshold`` and is across it by then; ``days``: when it
    crosses (0: already across). The engine's verdict and the incident page's chart both
    read it."""

    metric: str
    value: float
    threshold: float
    op: str
    points: tuple[tuple[float, float], ...]
    level: float
    slope: float
    horizon: int
    projected: float
    fires: bool
    days: float

    def at(self, x: float) -> float:
        """The fitted line's value ``x`` days from the snapshot's period."""
        return self.level + self.slope * x


def projection(rule: Rule, snap: Snapshot, history: Sequence[Dated]) -> Projection | None:
    """``snap``'s metric over ``over:`` fitted and projected ``within:`` ahead; None when the
    rule cannot judge it (no value, too short a history)."""
    assert rule.crosses is not None and rule.within is not None
    line = line_of(rule.crosses)
    metric, threshold = line.metric, float(line.value or 0.0)
    value = snap.metrics.get(metric)
    if value is None:
        return None
    window = Window.parse(rule.over)
    past = [s for s in prior(snap, history, window) if metric in s.metrics]
    if not enough(rule, window, snap.period.kind, len(past)):
        return None
    now = snap.period.end
    points = (*((float((s.period.end - now).days), s.metrics[metric]) for s in past),
              (0.0, value))
    level, slope = fit(points)
    horizon = Window.parse(rule.within).days
    toward = slope > 0 if line.op in _UPWARD else slope < 0
    projected = level + slope * horizon
    fires = toward and line.holds({metric: projected}, {})
    days = max(0.0, (threshold - level) / slope) if fires else math.inf
    if fires and line.holds({metric: value}, {}):
        days = 0.0  # already across, and still moving the wrong way
    return Projection(metric, value, threshold, line.op, points, level, slope, horizon,
                      projected, fires, days)


def evaluate(rule: Rule, version: str, snap: Snapshot, history: Sequence[Dated]) -> Verdict:
    found = projection(rule, snap, history)
    if found is None:
        return Verdict()
    metric, value, projected = found.metric, found.value, found.projected
    if not found.fires:
        return settles(rule, snap, f"recovered: {metric} projected at "
                       f"{amount(metric, projected)} in {rule.within}, not crossing "
                       f"{rule.crosses} ({snap.period.text})")
    return fires(rule, version, snap, metric, value, found.threshold, {
        "summary": PerLanguage(describe(metric, value, found.slope, found.threshold,
                                        found.days)),
        "projected": amount(metric, projected), "days": str(max(1, round(found.days))),
        "slope": PerLanguage(_pace(metric, found.slope)),
    }, {"period": f"{snap.period.text} + {rule.within}", "value": projected,
        "target": found.threshold, "comparator": found.op})


def describe(metric: str, value: float, slope: float, threshold: float, days: float
             ) -> dict[str, str]:
    """"Order defect rate 0.8 %, rising 0.05 pt a day, reaches 1 % in about 4 days"."""
    indicator = indicators.get(metric)
    name_en = indicator.name_en if indicator else metric
    name_zh = indicator.name_zh if indicator else metric
    pace = _pace(metric, slope)
    whole = max(1, round(days))
    line = amount(metric, threshold)
    if days <= 0:
        reach_en, reach_zh = f"already past {line}", f"已越过 {line}"
    elif days < 0.5:
        reach_en, reach_zh = f"reaches {line} within a day", f"一天内达到 {line}"
    else:
        reach_en = f"reaches {line} in about {whole} day{'s' if whole != 1 else ''}"
        reach_zh = f"约 {whole} 天后达到 {line}"
    return {"en": f"{name_en} {amount(metric, value)}, {pace['en']}, {reach_en}",
            "zh-CN": f"{name_zh} {amount(metric, value)}，{pace['zh-CN']}，{reach_zh}"}


def _pace(metric: str, slope: float) -> dict[str, str]:
    indicator = indicators.get(metric)
    en, zh = ("rising", "上升") if slope > 0 else ("falling", "下降")
    if indicator is not None and indicator.unit is Unit.FRACTION:
        step = f"{abs(slope) * 100:.2g}"
        return {"en": f"{en} {step} pt a day", "zh-CN": f"每天{zh} {step} 个百分点"}
    step = f"{abs(slope):,.3g}"
    return {"en": f"{en} {step} a day", "zh-CN": f"每天{zh} {step}"}
