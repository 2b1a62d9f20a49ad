"""``kind: change``: a metric against its own trailing baseline.

"Visitors halved since last week" is no fixed threshold: 400 visitors is a
good day for one store and a disaster for another. The rule compares the
snapshot's value with the mean (or median) of the same store's prior periods of
the same kind within ``baseline:`` (``7d``: the seven days before; ``4w``: the
28 days, or the four weeks, before) and fires on

* ``drop: 30%`` (relative: at or below 70 % of the baseline), ``drop: 0.5x``
  (at or below half of it) or ``drop: 200`` (absolute: 200 or more below it);
* ``rise: 50%``, ``rise: 2x`` (at or above double) or ``rise: 0.02`` (absolute);

both may be given (either fires). ``min_baseline:`` keeps a quiet store from
paging anybody (a fall from 6 visitors to 2 is no incident), ``condition:``
must hold as well (``return_rate > 0.05``), and too short a history judges
nothing: at least ``min_periods`` prior periods, by default half the window's.
"""

from __future__ import annotations

import functools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from watcher.evaluation import PerLanguage
from watcher.rules.expression import holds, requirements
from watcher.rules.history import Dated, Verdict, Window, amount, enough, fires, prior, settles
from watcher.snapshot import Snapshot

if TYPE_CHECKING:
    from watcher.rules.model import Rule

_AMOUNT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(%|x)?$")
Way = Literal["drop", "rise"]
_WAYS: tuple[Way, ...] = ("drop", "rise")


@dataclass(frozen=True, slots=True)
class Step:
    """How far a value must move from its baseline: ``30%``, ``2x`` or ``200``."""

    how: Literal["relative", "factor", "absolute"]
    size: float

    @classmethod
    @functools.lru_cache(maxsize=256, typed=True)  # asked for each rule on each snapshot
    def parse(cls, value: str | float, direction: Way) -> Step:
        m = _AMOUNT.match(str(value).strip().lower())
        if isinstance(value, bool) or not m:
            raise ValueError(f"{direction}: '{value}' is not a change; write 30% (relative), "
                             "2x (a factor) or a number in the metric's unit (absolute)")
        size, sign = float(m.group(1)), m.group(2)
        how: Literal["relative", "factor", "absolute"] = (
            "relative" if sign == "%" else "factor" if sign == "x" else "absolute")
        step = cls(how, size / 100 if how == "relative" else size)
        if step.size <= 0 or (how == "relative" and direction == "drop" and step.size > 1):
            raise ValueError(f"{direction}: '{value}' is no possible {direction}")
        if how == "factor" and (step.size >= 1 if direction == "drop" else step.size <= 1):
            raise ValueError(f"{direction}: a factor {'below' if direction == 'drop' else 'above'}"
                             f" 1 {direction}s ('{value}' does not)")
        return step

    def line(self, base: float, direction: Way) -> float:
        """The value at which the step is reached (float noise rounded off, so that 5 %
        down 30 % is exactly the 3.5 % sent)."""
        sign = -1 if direction == "drop" else 1
        if self.how == "relative":
            return round(base * (1 + sign * self.size), 12)
        if self.how == "factor":
            return round(base * self.size, 12)
        return round(base + sign * self.size, 12)


def check(rule: Rule) -> None:
    """A change rule's keys, checked at load (the error names the rule)."""
    if not rule.metric or not rule.baseline:
        raise ValueError("a change rule needs 'metric' and 'baseline' (7d, 4w)")
    if rule.drop is None and rule.rise is None:
        raise ValueError("a change rule needs 'drop' or 'rise' (or both)")
    steps(rule)  # each parses, or the rule is refused
    if rule.crosses or rule.within:
        raise ValueError("'crosses' and 'within' belong to trend rules")


@dataclass(frozen=True, slots=True)
class Judgement:
    """How a change rule judges one snapshot: its value, its baseline, the level each way
    (``lines``) and the ways crossed, ``condition:`` included (empty: it does not fire).
    The engine's verdict and the incident page's chart both read it."""

    value: float
    base: float
    window: Window
    lines: tuple[tuple[Way, float], ...]
    crossed: tuple[tuple[Way, float], ...]


def judgement(rule: Rule, snap: Snapshot, history: Sequence[Dated]) -> Judgement | None:
    """``snap`` judged against its own trailing baseline in ``history``; None when the rule
    cannot judge it (no value, too short a history, too small a baseline, ...)."""
    metric = rule.metric
    assert metric is not None and rule.baseline is not None
    value = snap.metrics.get(metric)
    targets = {k: t.value for k, t in snap.targets.items()}
    if value is None or (rule.compiled is not None and not _evaluable(rule, snap, targets)):
        return None
    window = Window.parse(rule.baseline)
    past = [s.metrics[metric] for s in prior(snap, history, window) if metric in s.metrics]
    if not enough(rule, window, snap.period.kind, len(past)):
        return None
    base = statistics.median(past) if rule.statistic == "median" else statistics.fmean(past)
    if rule.min_baseline is not None and base < rule.min_baseline:
        return None
    ways = steps(rule)
    if base <= 0 and any(step.how != "absolute" for _, step in ways):
        return None  # no relative change from nothing
    lines = tuple((way, step.line(base, way)) for way, step in ways)
    crossed = tuple((way, line) for way, line in lines
                    if (value <= line if way == "drop" else value >= line))
    if crossed and rule.compiled is not None \
            and not holds(rule.compiled, snap.metrics, targets):
        crossed = ()
    return Judgement(value, base, window, lines, crossed)


def evaluate(rule: Rule, version: str, snap: Snapshot, history: Sequence[Dated]) -> Verdict:
    found = judgement(rule, snap, history)
    if found is None:
        return Verdict()
    metric = rule.metric
    assert metric is not None
    value, base, window = found.value, found.base, found.window
    words = describe(rule, metric, value, base, window)
    if not found.crossed:
        return settles(rule, snap, f"recovered: {words['en']} in {snap.period.text}")
    direction, line = found.crossed[0]
    return fires(rule, version, snap, metric, value, line, {
        "baseline": amount(metric, base), "summary": PerLanguage(words),
        "change": PerLanguage(_change(value, base)),
        "window": PerLanguage({"en": window.words("en"), "zh-CN": window.words("zh-CN")}),
    }, {"period": snap.period.text, "value": value, "target": line,
        "comparator": "<=" if direction == "drop" else ">="})


def steps(rule: Rule) -> list[tuple[Way, Step]]:
    """The rule's ``drop`` and ``rise``, parsed (a rule may have both)."""
    found: list[tuple[Way, Step]] = []
    for way in _WAYS:
        given = rule.drop if way == "drop" else rule.rise
        if given is not None:
            found.append((way, Step.parse(given, way)))
    return found


def describe(rule: Rule, metric: str, value: float, base: float, window: Window
             ) -> dict[str, str]:
    """"Visitors 420, down 58 % from the 7-day mean 1,000", in each language."""
    from watcher import indicators

    indicator = indicators.get(metric)
    change = _change(value, base)
    stat_en, stat_zh = ("median", "中位数") if rule.statistic == "median" else ("mean", "均值")
    name_en = indicator.name_en if indicator else metric
    name_zh = indicator.name_zh if indicator else metric
    return {
        "en": f"{name_en} {amount(metric, value)}, {change['en']} from the "
              f"{window.words('en')} {stat_en} {amount(metric, base)}",
        "zh-CN": f"{name_zh} {amount(metric, value)}，较 {window.words('zh-CN')}{stat_zh} "
                 f"{amount(metric, base)} {change['zh-CN']}",
    }


def _change(value: float, base: float) -> dict[str, str]:
    if base <= 0:
        return {"en": f"up {_num(value - base)}", "zh-CN": f"增加 {_num(value - base)}"}
    ratio = value / base
    if ratio >= 2:
        return {"en": f"up to {ratio:.1f}x", "zh-CN": f"升至 {ratio:.1f} 倍"}
    percent = round(abs(ratio - 1) * 100)
    if value < base:
        return {"en": f"down {percent} %", "zh-CN": f"下降 {percent}%"}
    return {"en": f"up {percent} %", "zh-CN": f"上升 {percent}%"}


def _num(value: float) -> str:
    return f"{value:,.4g}"


def _evaluable(rule: Rule, snap: Snapshot, targets: dict[str, float]) -> bool:
    assert rule.compiled is not None
    metrics, needed_targets = requirements(rule.compiled)
    return metrics <= snap.metrics.keys() and needed_targets <= targets.keys()
