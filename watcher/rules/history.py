"""Rules on a metric's history (``kind: change``, ``kind: trend``): the shared parts.

A threshold rule judges one snapshot; these judge a snapshot against the same
store's earlier periods of the same kind (days against days, weeks against
weeks). That history is read from the store, so any replica evaluates any
snapshot the same way: the pipeline loads the window for every store of a batch
in one query (``load_history``), adds the batch's own earlier snapshots, and
each rule is then a pure function of (rule, snapshot, prior snapshots).

They are evaluated here in plain Python, not in durable-rules: the engine
matches one fact at a time, and a mean, a median or a least-squares line over
a series is arithmetic, not matching. The compiler gives these kinds no forms.

A kind is one module registered in ``kinds()`` (``watcher/rules/change.py``,
``watcher/rules/trend.py``); the YAML keys they read are ``HistoryFields``,
which the rule model inherits.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, Text, cast, select

from watcher import indicators
from watcher.incidents import Firing, Recovery, fingerprint
from watcher.indicators import Unit
from watcher.limits import HISTORY_MAX_WINDOW_DAYS
from watcher.period import Period, PeriodKind
from watcher.snapshot import Snapshot

if TYPE_CHECKING:
    from watcher.evaluation import Outcome
    from watcher.rules.model import Rule

HISTORY_KINDS = ("change", "trend")
_WINDOW = re.compile(r"^([1-9][0-9]{0,3})([dw])$")
_DAYS_OF = {PeriodKind.DAY: 1, PeriodKind.WEEK: 7}


@dataclass(frozen=True, slots=True)
class Window:
    """A span of time written ``7d`` or ``4w``; ``periods`` of a kind fit in it."""

    text: str
    days: int

    @classmethod
    @functools.lru_cache(maxsize=256)  # asked for each rule on each snapshot
    def parse(cls, text: str) -> Window:
        m = _WINDOW.match(text.strip())
        if not m:
            raise ValueError(f"'{text}' is not a window; write days or weeks: 7d, 4w")
        days = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
        if days > HISTORY_MAX_WINDOW_DAYS:
            raise ValueError(f"'{text}' is longer than {HISTORY_MAX_WINDOW_DAYS} days "
                             "(limit HISTORY_MAX_WINDOW_DAYS)")
        return cls(text.strip(), days)

    def periods(self, kind: PeriodKind) -> int:
        """How many periods of ``kind`` the window holds (0: the kind is too long for it)."""
        return self.days // _DAYS_OF[kind] if kind in _DAYS_OF else 0

    def words(self, language: str) -> str:
        """``7-day`` / ``7 日``; ``4-week`` / ``4 周`` (a space between a number and Chinese,
        as everywhere in the product's Chinese)."""
        number, unit = int(self.text[:-1]), self.text[-1]
        if language.lower().startswith("zh"):
            return f"{number} {'日' if unit == 'd' else '周'}"
        return f"{number}-{'day' if unit == 'd' else 'week'}"


def _window(value: str | None) -> str | None:
    if value is not None:
        Window.parse(value)
    return value


class HistoryFields(BaseModel):
    """The YAML keys of the history kinds (README "Rules", docs/rules.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str | None = Field(default=None, description="change: the metric watched")
    baseline: str | None = Field(default=None, description="change: the window the baseline "
                                 "is taken over, 7d or 4w (the periods before this one)")
    statistic: Literal["mean", "median"] = Field(
        default="mean", description="change: the baseline is the mean or the median")
    drop: str | float | None = Field(default=None, description="change: fires on a fall of "
                                     "30% (relative), 0.5x (to half) or 200 (absolute)")
    rise: str | float | None = Field(default=None, description="change: fires on a rise of "
                                     "50% (relative), 2x (to double) or 0.02 (absolute)")
    min_baseline: float | None = Field(
        default=None, description="change: a baseline below this is too quiet to judge")
    crosses: str | None = Field(default=None, description="trend: the line, e.g. "
                                "'order_defect_rate >= 0.01'")
    within: str | None = Field(default=None, description="trend: the horizon, e.g. 7d")
    over: str = Field(default="14d", description="trend: the periods the line is fitted to")
    min_periods: int | None = Field(
        default=None, ge=2, le=HISTORY_MAX_WINDOW_DAYS,
        description="the fewest prior periods to judge by (default: half the window's)")

    @field_validator("baseline", "within", "over")
    @classmethod
    def _windows(cls, value: str | None) -> str | None:
        return _window(value)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a history rule says of one snapshot: a firing, a recovery, or nothing
    (None for both: not evaluable, e.g. too little history)."""

    firing: Firing | None = None
    recovery: Recovery | None = None


class Dated(Protocol):
    """What a history rule reads of an earlier period: a ``Snapshot`` of the batch, or a
    stored one as ``load_history`` reads it (``Past``)."""

    @property
    def store(self) -> str: ...

    @property
    def platform(self) -> str: ...

    @property
    def period(self) -> Period: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


@dataclass(frozen=True, slots=True)
class Past:
    """A stored period of a store as the history rules read it. Its row was validated
    and its rates derived when the pipeline accepted it (the row holds the completed
    metrics), so it is not validated again: a day's batch of 5,000 stores reads 140,000
    of them for a 28-day window (bench/README.md, "Rules on history")."""

    store: str
    platform: str
    period: Period
    metrics: Mapping[str, float]

    @property
    def key(self) -> str:
        """As ``Snapshot.key``: a period of the batch replaces its stored one."""
        return f"{self.platform}|{self.store}|{self.period.text}"


class Kind(Protocol):
    """A history kind's module: ``check`` at load, ``evaluate`` per snapshot."""

    def check(self, rule: Rule) -> None: ...

    def evaluate(self, rule: Rule, version: str, snap: Snapshot,
                 history: Sequence[Dated]) -> Verdict: ...


def kinds() -> Mapping[str, Kind]:
    """The history kinds, one module each: the one place a kind is registered."""
    from watcher.rules import change, trend

    return {"change": change, "trend": trend}


def check(rule: Rule) -> None:
    """A history rule's keys, checked at load by its kind (the error names the rule)."""
    if set(rule.periods) - set(_DAYS_OF):
        raise ValueError(f"a {rule.kind} rule judges daily and weekly snapshots: "
                         "'periods' may name day and week")
    kinds()[rule.kind].check(rule)


def history_metrics(rule: Rule) -> list[tuple[str, str]]:
    """(key, metric) the rule's history keys name, for the loader's check that every
    metric a rule names is known (a misspelt one is refused, never silently idle)."""
    from watcher.rules import trend

    named = [("metric", rule.metric)] if rule.metric else []
    if rule.crosses:
        named.append(("crosses", trend.line_of(rule.crosses).metric))
    return named


def needed_days(rules: Iterable[Rule]) -> int:
    """How far back a batch's history is read: the longest window of the rules."""
    spans = [Window.parse(w).days for r in rules if r.enabled and r.kind in HISTORY_KINDS
             for w in (r.baseline, r.over if r.kind == "trend" else None) if w]
    return max(spans, default=0)


def needed_metrics(rules: Iterable[Rule]) -> frozenset[str]:
    """The metrics a batch's history is read for: those the history rules judge over time
    (their conditions are asked of the snapshot judged, never of its history)."""
    return frozenset(metric for r in rules if r.enabled and r.kind in HISTORY_KINDS
                     for _key, metric in history_metrics(r))


def prior(snapshot: Snapshot, history: Sequence[Dated], window: Window) -> list[Dated]:
    """The store's periods of the snapshot's kind that end within ``window`` before it."""
    # asked for each rule on each snapshot: the snapshot's side read once
    period, store, platform = snapshot.period, snapshot.store, snapshot.platform
    kind, before, first = period.kind, period.start, period.start - timedelta(days=window.days)
    return [s for s in history
            if first <= (p := s.period).start and p.end < before and p.kind is kind
            and s.store == store and s.platform == platform]


def enough(rule: Rule, window: Window, kind: PeriodKind, found: int) -> bool:
    """A rule judges only with enough history: ``min_periods``, else half the window's."""
    expected = window.periods(kind)
    if expected == 0:
        return False
    return found >= (rule.min_periods or max(1, math.ceil(expected / 2)))


# -- the store edge ---------------------------------------------------------------------------


def load_history(conn: Connection, batch: Sequence[Snapshot], days: int,
                 metrics: Collection[str] | None = None) -> list[Dated]:
    """The stored daily and weekly periods of the batch's stores in the ``days`` before
    its earliest period, plus the batch itself (a restated period: the batch's wins), in
    period order. One query for the whole batch. The stored ones keep only ``metrics``
    (``needed_metrics``; None: all of them)."""
    wanted = [s for s in batch if s.period.kind in _DAYS_OF]
    if not wanted or days <= 0:
        return []
    first = min(s.period.start for s in wanted) - timedelta(days=days)
    last = max(s.period.end for s in wanted)
    found: dict[str, Dated] = {}
    periods: dict[str, Period] = {}
    for store, platform, text, stored in history_rows(conn, sorted({s.store for s in wanted}),
                                                      first, last):
        period = periods.get(text) or periods.setdefault(text, Period.parse(text))
        found[f"{platform}|{store}|{text}"] = Past(
            store, platform, period, stored if metrics is None else
            {m: float(stored[m]) for m in metrics if m in stored})
    found.update({s.key: s for s in wanted})
    return sorted(found.values(), key=lambda s: (s.store, s.period.start))


def history_rows(conn: Connection, stores: Sequence[str], first: date, last: date
                 ) -> Iterator[tuple[str, str, str, dict[str, float]]]:
    """(store, platform, period, metrics) of the stored daily and weekly rows of ``stores``
    within ``first`` .. ``last`` (the stores 500 to a statement, to stay within the
    drivers' parameter limits)."""
    from watcher.store.schema import snapshots

    for chunk in (stores[i:i + 500] for i in range(0, len(stores), 500)):
        # the metrics as text, parsed here: the JSON type's result processing cost more
        # than the parse itself
        query = select(snapshots.c.store, snapshots.c.platform, snapshots.c.period,
                       cast(snapshots.c.metrics, Text)).where(
            snapshots.c.store.in_(chunk),
            snapshots.c.period_kind.in_([k.value for k in _DAYS_OF]),
            snapshots.c.period_start >= first, snapshots.c.period_end <= last)
        for store, platform, period, metrics in conn.execute(query):
            yield store, platform, period, orjson.loads(metrics)


def by_store(history: Iterable[Dated]) -> dict[str, list[Dated]]:
    grouped: dict[str, list[Dated]] = defaultdict(list)
    for snap in history:
        grouped[snap.store].append(snap)
    return grouped


# -- words ------------------------------------------------------------------------------------


def amount(metric: str, value: float) -> str:
    """A value as people read it: ``1,000``, ``0.8 %``, ``12.5``."""
    indicator = indicators.get(metric)
    if indicator is not None and indicator.unit is Unit.FRACTION:
        return f"{_short(value * 100)} %"
    return _short(value)


def _short(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{round(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.3g}"


def fires(rule: Rule, version: str, snap: Snapshot, metric: str, value: float,
          threshold: float, words: dict[str, Any], evidence: dict[str, Any]) -> Verdict:
    """The firing of a history rule on ``snap``: its message rendered with the usual
    values (``{store}``, ``{value}``, metrics by id) and the kind's own ``words``;
    ``evidence`` follows the alert's contract (period, metric, value, target, comparator)."""
    from watcher.evaluation import _values, render_title  # evaluation imports this module

    targets = {k: t.value for k, t in snap.targets.items()}
    return Verdict(firing=Firing(
        rule=rule.id, rule_version=version, subject_kind="store", subject=snap.store,
        store=snap.store, platform=snap.platform, operator=snap.operator,
        severity=rule.severity.value, audience=rule.audience, metric=metric, value=value,
        threshold=threshold, period=snap.period.text, period_end=snap.period.end,
        title=render_title(rule, {**_values(snap, metric, value, threshold), **words},
                           snap.metrics, targets),
        labels={**rule.labels, "platform": snap.platform, "store": snap.store,
                **({"operator": snap.operator} if snap.operator else {})},
        evidence=[{"store": snap.store, "metric": metric, **evidence}]))


def settles(rule: Rule, snap: Snapshot, note: str) -> Verdict:
    """Evaluable and not firing: what resolves the rule's live incident for the store."""
    return Verdict(recovery=Recovery(fingerprint(rule.id, "store", snap.store),
                                     snap.period.text, snap.period.end, note))


# -- into an outcome --------------------------------------------------------------------------


def judge(result: Outcome, version: str, history: Sequence[Dated]) -> Outcome:
    """``result`` with the pack's history rules judged on its snapshot and ``history``
    (the store's snapshots, in period order): their firings added, and the ones that
    were evaluable and did not fire recorded for recovery."""
    snap = result.snapshot
    judges = kinds()
    firings, fired, settled = list(result.firings), set(result.fired), dict(result.settled)
    for rule in result.pack.rules:
        if not rule.enabled or rule.kind not in judges or not rule.applies_to(snap):
            continue
        verdict = judges[rule.kind].evaluate(rule, version, snap, history)
        if verdict.firing is not None:
            firings.append(verdict.firing)
            fired.add((rule.id, None))
        elif verdict.recovery is not None:
            settled[rule.id] = verdict.recovery
    return replace(result, firings=firings, fired=frozenset(fired), settled=settled)
