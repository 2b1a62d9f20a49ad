"""Operator scorecards: one operator, one assessment period, every indicator of its cycle.

The card answers the manager's question "did this operator pass the month (or
quarter, or year), and on what?". Its thresholds are not a second table: they
come from the rule pack that is loaded (threshold rules labelled with the
indicator, or whose condition is about that one metric) and from targets (sent
with the snapshots or from the targets file). A target, being the goal set for
this store and period, comes before a rule's generic threshold.

Cycles follow the reference: a month assesses performance and efficiency, a
quarter customer experience and compliance, a year the strategic indicators
(``new_category_share``, ``ltv_growth``). A quarter or a year uses, per store
and metric, the snapshot of the period itself when one was sent, else rolls up
the snapshots within it (each part by the coarsest snapshot there is); an operator's
stores are then aggregated (``watcher.assessment.rollup``). Each store's threshold is
chosen with its own segment (a novice store's margin threshold is not a mature
one's) and aggregated like the value, so value and threshold always describe
the same stores.

Pure functions over frozen models, plus two thin queries at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, computed_field
from sqlalchemy import Connection

from watcher import indicators
from watcher.assessment.grades import Grade, grade_of
from watcher.assessment.rollup import Combine, combine, combine_kind, weights_of
from watcher.assessment.roster import Roster
from watcher.assessment.targets import TargetBook
from watcher.assessment.weights import ScorecardSettings
from watcher.echo import shown
from watcher.errors import InputError
from watcher.indicators import Cycle, Dimension, Direction, Indicator
from watcher.period import Period, PeriodKind
from watcher.rules.engine import applicable_variant, normalise_segment
from watcher.rules.expression import Comparison, Condition, comparisons, holds
from watcher.rules.model import Rule, RulePack
from watcher.snapshot import Comparator, Snapshot, Target
from watcher.store import repository as repo

# a week is judged on the monthly indicators, over its days (the daily watch, issue #17)
CYCLES = {PeriodKind.WEEK: Cycle.MONTHLY, PeriodKind.MONTH: Cycle.MONTHLY,
          PeriodKind.QUARTER: Cycle.QUARTERLY, PeriodKind.YEAR: Cycle.ANNUAL}
# the shorter periods a period is rolled up from, coarsest first
_FINER = {PeriodKind.YEAR: (PeriodKind.QUARTER, PeriodKind.MONTH, PeriodKind.DAY),
          PeriodKind.QUARTER: (PeriodKind.MONTH, PeriodKind.DAY),
          PeriodKind.MONTH: (PeriodKind.DAY,), PeriodKind.WEEK: (PeriodKind.DAY,)}
# a rule's condition says when a metric fails; the card states the side that passes
_PASSING_SIDE = {"<": Comparator.GE, "<=": Comparator.GT, ">": Comparator.LE,
                 ">=": Comparator.LT}


class ItemStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"            # a threshold or target exists, no value was sent
    NO_CRITERION = "no_criterion"  # a value was sent, nothing to judge it by


class CardResult(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCOMPLETE = "incomplete"  # nothing on the card could be judged


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CardItem(_Frozen):
    indicator: str
    name_en: str
    name_zh: str
    dimension: str
    value: float | None
    threshold: float | None
    comparator: Comparator | None  # passes when ``value <comparator> threshold``
    basis: Literal["target", "rule", "mixed", "per_store"] | None
    rule: str | None  # the rule the threshold came from
    status: ItemStatus
    weight: float
    stores: tuple[str, ...]  # the stores whose values (and thresholds) were aggregated
    weighted_by: str | None  # orders, gmv or equal, for a weighted mean


_ITEM_FIELDS = set(CardItem.model_fields)


class Veto(_Frozen):
    """A major violation: fails the card whatever its score, and lowers its grade one band.

    From a metric of ``scorecard: veto:`` above zero, or a rule marked
    ``downgrades_assessment`` that holds on one of the card's snapshots (``rule``).
    """

    metric: str
    value: float
    store: str
    period: str
    rule: str | None = None

    def __str__(self) -> str:
        return f"{self.metric} = {self.value:g} at {self.store} in {self.period}"


class Scorecard(_Frozen):
    operator: str
    period: str
    cycle: Cycle
    level: str | None  # segment.level as sent
    tier: str  # the tier whose weights apply: the roster's, else segment.level's, else default
    team: str | None = None  # from the roster
    stores: tuple[str, ...]
    periods: tuple[str, ...]  # the snapshot periods the card was built from
    items: tuple[CardItem, ...]
    score: float | None
    pass_score: float
    result: CardResult
    vetoes: tuple[Veto, ...]
    grade: str | None  # None when nothing could be judged (an incomplete card)
    grading: Grade | None  # the grade's band, meaning, bonus and any downgrade

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(i.indicator for i in self.items if i.status is ItemStatus.FAIL)


class TeamRow(_Frozen):
    operator: str
    tier: str
    team: str | None = None
    stores: tuple[str, ...]
    score: float | None
    result: CardResult
    grade: str | None
    bonus: float | None
    failing: tuple[str, ...]
    vetoes: tuple[Veto, ...]

    @classmethod
    def of(cls, card: Scorecard) -> TeamRow:
        return cls(operator=card.operator, tier=card.tier, team=card.team, stores=card.stores,
                   score=card.score, result=card.result, grade=card.grade,
                   bonus=card.grading.bonus if card.grading else None, failing=card.failing,
                   vetoes=card.vetoes)


def card_period(text: str) -> Period:
    """The period of a card; a day or a malformed period names the ``period`` field."""
    try:
        period = Period.parse(text)
    except ValueError as exc:
        raise InputError(str(exc), field="period") from None
    if period.kind not in CYCLES:
        raise InputError(f"'{shown(text, 40)}' is a day; a scorecard covers a week (2026-W45), "
                         "a month (2026-10), a quarter (2026-Q3) or a year (2026)",
                         field="period")
    return period


def card_indicators(cycle: Cycle) -> list[Indicator]:
    """The indicators a cycle assesses; real-time compliance signals count each quarter."""
    if cycle is Cycle.MONTHLY:
        return [i for i in indicators.INDICATORS.values() if i.cycle is Cycle.MONTHLY
                and i.dimension in (Dimension.PERFORMANCE, Dimension.EFFICIENCY)]
    if cycle is Cycle.QUARTERLY:
        return [i for i in indicators.INDICATORS.values()
                if i.cycle in (Cycle.QUARTERLY, Cycle.REALTIME)
                and i.dimension in (Dimension.CUSTOMER, Dimension.COMPLIANCE)]
    return [i for i in indicators.INDICATORS.values() if i.cycle is Cycle.ANNUAL]


# -- one store's view of the period ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StoreView:
    store: str
    platform: str
    segment: dict[str, str]
    values: dict[str, float]
    targets: dict[str, Target]

    @property
    def segment_key(self) -> tuple[str, frozenset[tuple[str, str]]]:
        """What the rule criterion depends on: the platform (a rule's ``platforms``) and
        the segment (its variants)."""
        return self.platform.lower(), frozenset(self.segment.items())


@dataclass(frozen=True, slots=True)
class _Criterion:
    comparator: Comparator
    threshold: float
    basis: Literal["target", "rule"]
    rule: str | None = None

    def passes(self, value: float) -> bool:
        return passes(value, self.comparator, self.threshold)


def passes(value: float, comparator: Comparator, threshold: float) -> bool:
    return {Comparator.LT: value < threshold, Comparator.LE: value <= threshold,
            Comparator.GT: value > threshold, Comparator.GE: value >= threshold,
            Comparator.EQ: value == threshold}[comparator]


def _store_view(snaps: Sequence[Snapshot], period: Period, operator: str,
                book: TargetBook) -> _StoreView:
    """Values and targets of one store for ``period``: its own snapshot's, else rolled up.

    A rolled-up metric's target is the one stated for the period itself (its snapshot's,
    or the file's entry for exactly that period), else its parts' targets rolled up.
    """
    latest = snaps[-1]
    exact = next((s for s in snaps if s.period == period), None)
    if exact is not None and len(snaps) == 1:  # the period's own snapshot alone: as sent
        return _StoreView(exact.store, exact.platform, normalise_segment(exact.segment),
                          dict(exact.metrics), {
            **book.lookup(exact.store, operator, period, segment=exact.segment),
            **book.lookup(exact.store, operator, period, segment=exact.segment,
                          exact_only=True),
            **exact.targets})
    file_targets = {s.period.text: book.lookup(s.store, operator, s.period, segment=s.segment)
                    for s in snaps}
    stated = {**book.lookup(latest.store, operator, period, segment=latest.segment,
                            exact_only=True),
              **(exact.targets if exact else {})}
    targets = {**book.lookup(latest.store, operator, period, segment=latest.segment), **stated}
    coarsest_first = [*([exact] if exact else []),
                      *(s for kind in _FINER[period.kind] for s in snaps if s.period.kind is kind)]
    values: dict[str, float] = {}
    for metric in dict.fromkeys(m for s in snaps for m in s.metrics):
        parts = _cover(metric, coarsest_first)
        if parts[0] is exact:
            values[metric] = parts[0].metrics[metric]
            continue
        _basis, weights = weights_of([p.metrics for p in parts])
        values[metric] = combine(metric, [p.metrics[metric] for p in parts], weights)
        target = stated.get(metric) or _rolled_target(
            metric, [p.targets.get(metric) or file_targets[p.period.text].get(metric)
                     for p in parts], weights)
        if target is not None:
            targets[metric] = target
        else:
            targets.pop(metric, None)
    segment = next((s.segment for s in reversed(snaps) if s.segment), {})
    return _StoreView(latest.store, latest.platform, normalise_segment(segment), values,
                      targets)


def _cover(metric: str, coarsest_first: Sequence[Snapshot]) -> list[Snapshot]:
    """Snapshots with ``metric`` that cover the period without overlap, each part of it by
    the coarsest snapshot there is (Q1-Q3 by their quarters, October by its month)."""
    taken: list[Snapshot] = []
    for snap in coarsest_first:
        if metric in snap.metrics and not any(
                snap.period.start <= t.period.end and t.period.start <= snap.period.end
                for t in taken):
            taken.append(snap)
    return taken


def _rolled_target(metric: str, found: Sequence[Target | None],
                   weights: Sequence[float]) -> Target | None:
    """The sub-periods' targets rolled up like the values, when every one of them has one."""
    if any(t is None for t in found):
        return None
    given = [t for t in found if t is not None]
    comparators = {t.comparator for t in given}
    if len(comparators) != 1:
        return None
    comparator = comparators.pop()
    value = combine_threshold(metric, [t.value for t in given], weights,
                              comparator or _passing_side(metric))
    return Target(value=value, comparator=comparator)


def combine_threshold(metric: str, thresholds: Sequence[float], weights: Sequence[float],
                      comparator: Comparator) -> float:
    """Thresholds aggregate like values, except that for a worst-value metric the
    strictest threshold applies (the worst store must meet it)."""
    if combine_kind(metric) is Combine.WORST:
        higher = comparator in (Comparator.GE, Comparator.GT)
        return max(thresholds) if higher else min(thresholds)
    return combine(metric, thresholds, weights)


def _passing_side(metric: str) -> Comparator:
    indicator = indicators.get(metric)
    lower = indicator is not None and indicator.direction is Direction.LOWER_IS_BETTER
    return Comparator.LE if lower else Comparator.GE


# -- thresholds from the rule pack ----------------------------------------------------------


def _single(condition: Condition | None, metric: str) -> Comparison | None:
    if (isinstance(condition, Comparison) and condition.metric == metric
            and condition.op in _PASSING_SIDE):
        return condition
    return None


@dataclass(slots=True)
class _PackRules:
    """A pack's card rules per metric for one period kind, and the rule criterion per
    metric and segment as found: a card is built per operator and month on the ingestion
    path, and must not scan the pack once per indicator and store."""

    pack: RulePack  # kept, so that the id keying the cache stays this pack's
    rules: dict[str, list[Rule]]
    # (platform, segment) -> metric -> criterion
    criteria: dict[tuple[str, frozenset[tuple[str, str]]], dict[str, _Criterion | None]]


_PACK_RULES: dict[tuple[int, PeriodKind], _PackRules] = {}


def _pack_rules(pack: RulePack, kind: PeriodKind) -> _PackRules:
    cached = _PACK_RULES.get((id(pack), kind))
    if cached is None or cached.pack is not pack:
        if len(_PACK_RULES) >= 8:
            _PACK_RULES.clear()
        cached = _PackRules(pack, {m: card_rules(pack, m, kind) for m in indicators.INDICATORS},
                            {})
        _PACK_RULES[(id(pack), kind)] = cached
    elif len(cached.criteria) > 50_000:  # segments are few in practice; bound them anyway
        cached.criteria.clear()
    return cached


def card_rules(pack: RulePack, metric: str, kind: PeriodKind) -> list[Rule]:
    """Threshold rules that judge ``metric`` in a period of ``kind``, in pack order: labelled
    with the indicator (or unlabelled), with a single comparison of the metric (a compound
    condition is an alerting refinement, not an assessment threshold)."""
    return [rule for rule in pack.rules
            if rule.enabled and rule.kind == "threshold"
            and rule.labels.get("indicator", metric) == metric
            and (not rule.periods or kind.value in rule.periods)
            and any(_single(c, metric) for c in (rule.compiled,
                                                  *(v.compiled for v in rule.variants)))]


def _criterion(metric: str, view: _StoreView, pack: _PackRules,
               known: dict[str, _Criterion | None]) -> _Criterion | None:
    """The target of the store's, else the rule criterion for its segment (``known``:
    the criteria found for that segment so far)."""
    target = view.targets.get(metric)
    if target is not None:
        return _Criterion(target.comparator or _passing_side(metric), target.value, "target")
    if metric not in known:
        known[metric] = _rule_criterion(metric, view.platform, view.segment,
                                        pack.rules[metric])
    return known[metric]


def _rule_criterion(metric: str, platform: str, segment: dict[str, str],
                    rules: Sequence[Rule]) -> _Criterion | None:
    for rule in rules:
        if not rule.applies_to_platform(platform):
            continue  # another platform's line (``platforms``)
        variant = applicable_variant(rule, segment) if rule.variants else None
        comparison = _single(variant.compiled if variant else rule.compiled, metric)
        if comparison is not None and comparison.value is not None:
            return _Criterion(_PASSING_SIDE[comparison.op], comparison.value, "rule", rule.id)
    return None


Criterion = _Criterion
StoreView = _StoreView


def snapshot_view(snap: Snapshot, book: TargetBook) -> StoreView:
    """One store's snapshot as a card sees it: its values, its segment, and its targets
    (the snapshot's own, else the targets file's)."""
    targets = {**book.lookup(snap.store, snap.operator, snap.period, segment=snap.segment),
               **snap.targets}
    return _StoreView(snap.store, snap.platform, normalise_segment(snap.segment),
                      dict(snap.metrics), targets)


def view_criterion(metric: str, view: StoreView, pack: RulePack,
                   kind: PeriodKind) -> Criterion | None:
    """What a store is judged by for ``metric`` in a period of ``kind``, exactly as its card
    judges it: the target, else the first card rule (``card_rules``) in the form for the
    store's segment. The health board asks this, so a cell and a card never disagree on a
    threshold."""
    rules = _pack_rules(pack, kind)
    return _criterion(metric, view, rules, rules.criteria.setdefault(view.segment_key, {}))


# -- the card ---------------------------------------------------------------------------------


def _item(indicator: Indicator, views: Sequence[_StoreView], pack: _PackRules,
          known: Sequence[dict[str, _Criterion | None]], weight: float) -> CardItem | None:
    metric = indicator.id
    rules = pack.rules[metric]

    def item(status: ItemStatus, stores: Sequence[_StoreView], value: float | None = None,
             weighted_by: str | None = None, **judged: Any) -> CardItem:
        criterion = {"threshold": None, "comparator": None, "basis": None, "rule": None,
                     **judged}
        mean = combine_kind(metric) is Combine.MEAN and value is not None
        fields: dict[str, Any] = {
            "indicator": metric, "name_en": indicator.name_en, "name_zh": indicator.name_zh,
            "dimension": indicator.dimension.value, "value": value, "status": status,
            "weight": weight, "stores": tuple(v.store for v in stores),
            "weighted_by": weighted_by if mean else None, **criterion}
        # every field given, of its type; one shared set of them (a set per item would be
        # one more object for the garbage collector to walk, for every card kept)
        return CardItem.model_construct(_ITEM_FIELDS, **fields)

    with_value = [(v, k) for v, k in zip(views, known, strict=True) if metric in v.values]
    if not with_value:
        judgeable = bool(rules) or any(metric in v.targets for v in views)
        return item(ItemStatus.NO_DATA, ()) if judgeable else None
    judged = [(v, c) for v, k in with_value
              if (c := _criterion(metric, v, pack, k)) is not None]
    stores = [v for v, _c in judged] or [v for v, _k in with_value]
    weighted_by, weights = weights_of([v.values for v in stores])
    value = combine(metric, [v.values[metric] for v in stores], weights)
    if not judged:
        return item(ItemStatus.NO_CRITERION, stores, value, weighted_by)
    comparators = {c.comparator for _v, c in judged}
    if len(comparators) > 1:  # e.g. one platform states "<", another ">=": judge each store
        ok = all(c.passes(v.values[metric]) for v, c in judged)
        return item(ItemStatus.PASS if ok else ItemStatus.FAIL, stores, value, weighted_by,
                    basis="per_store")
    comparator = comparators.pop()
    threshold = combine_threshold(metric, [c.threshold for _v, c in judged], weights,
                                  comparator)
    sources = {(c.basis, c.rule) for _v, c in judged}
    source, rule = sources.pop() if len(sources) == 1 else ("mixed", None)
    status = ItemStatus.PASS if passes(value, comparator, threshold) else ItemStatus.FAIL
    return item(status, stores, value, weighted_by, threshold=threshold,
                comparator=comparator, basis=source, rule=rule)


def build_card(operator: str, period: Period, snapshots: Iterable[Snapshot], pack: RulePack,
               book: TargetBook, settings: ScorecardSettings,
               roster: Roster | None = None) -> Scorecard:
    """The card of ``operator`` for ``period`` from the snapshots within it; the tier is
    the roster's, else the latest ``segment.level``, else the default tier."""
    mine = sorted((s for s in snapshots if s.operator == operator
                   and period.start <= s.period.start and s.period.end <= period.end),
                  key=lambda s: (s.period.end, s.period.start, s.platform, s.store))
    by_store: dict[tuple[str, str], list[Snapshot]] = {}
    for snap in mine:
        by_store.setdefault((snap.platform, snap.store), []).append(snap)
    views = [_store_view(snaps, period, operator, book) for snaps in by_store.values()]
    level = next((str(s.segment["level"]) for s in reversed(mine) if "level" in s.segment), None)
    roster = roster or Roster()
    tier = settings.tier_of(roster.tier_of(operator) or level)
    cycle = CYCLES[period.kind]
    rules = _pack_rules(pack, period.kind)
    known = [rules.criteria.setdefault(v.segment_key, {}) for v in views]  # per store
    items = [item for indicator in card_indicators(cycle)
             if (item := _item(indicator, views, rules, known,
                               settings.weight(tier, indicator))) is not None]
    vetoes = card_vetoes(mine, pack, book, settings.veto)
    assessed = [i for i in items if i.status in (ItemStatus.PASS, ItemStatus.FAIL)]
    total = sum(i.weight for i in assessed)
    score = (sum(i.weight for i in assessed if i.status is ItemStatus.PASS) / total
             if total > 0 else None)
    if score is not None:
        score = round(score, 4)
    if vetoes:
        result = CardResult.FAIL
    elif score is None:
        result = CardResult.INCOMPLETE
    else:
        result = CardResult.PASS if score >= settings.pass_score else CardResult.FAIL
    grading = grade_of(score, settings.grades, str(vetoes[0]) if vetoes else None)
    return Scorecard(
        operator=operator, period=period.text, cycle=cycle, level=level, tier=tier,
        team=roster.team_of(operator),
        stores=tuple(dict.fromkeys(v.store for v in views)),
        periods=tuple(dict.fromkeys(s.period.text for s in mine)), items=tuple(items),
        score=score, pass_score=settings.pass_score, result=result, vetoes=vetoes,
        grade=grading.grade if grading else None, grading=grading)


def card_vetoes(snapshots: Sequence[Snapshot], pack: RulePack, book: TargetBook,
                metrics: Sequence[str]) -> tuple[Veto, ...]:
    """The major violations among ``snapshots``: a veto metric above zero, or a rule marked
    ``downgrades_assessment`` that holds (its variant for the store's segment, its periods);
    one per metric, store and period, a rule's naming it."""
    rules = [r for r in pack.rules if r.enabled and r.downgrades_assessment
             and r.kind == "threshold" and r.compiled is not None]
    found: dict[tuple[str, str, str], Veto] = {}
    for snap in snapshots:
        for metric in metrics:
            if snap.metrics.get(metric, 0) > 0:
                found[(metric, snap.store, snap.period.text)] = Veto(
                    metric=metric, value=snap.metrics[metric], store=snap.store,
                    period=snap.period.text)
        for rule in rules:
            if not rule.applies_to(snap):
                continue
            variant = (applicable_variant(rule, normalise_segment(snap.segment))
                       if rule.variants else None)
            condition = variant.compiled if variant else rule.compiled
            targets = {m: t.value for m, t in book.fill(snap).targets.items()}
            if condition is None or not holds(condition, snap.metrics, targets):
                continue
            metric = next(c.metric for c in comparisons(condition)
                          if holds(c, snap.metrics, targets))
            found[(metric, snap.store, snap.period.text)] = Veto(
                metric=metric, value=snap.metrics[metric], store=snap.store,
                period=snap.period.text, rule=rule.id)
    return tuple(found.values())


def build_team(period: Period, snapshots: Iterable[Snapshot], pack: RulePack,
               book: TargetBook, settings: ScorecardSettings, roster: Roster | None = None,
               team: str | None = None) -> list[Scorecard]:
    """A card for every operator with snapshots in ``period``, by operator name; with
    ``team``, only the operators the roster puts in that team."""
    roster = roster or Roster()
    by_operator: dict[str, list[Snapshot]] = {}
    for snap in snapshots:
        if snap.operator and period.start <= snap.period.start and snap.period.end <= period.end \
                and (team is None or roster.team_of(snap.operator) == team):
            by_operator.setdefault(snap.operator, []).append(snap)
    return [build_card(operator, period, snaps, pack, book, settings, roster)
            for operator, snaps in sorted(by_operator.items())]


# -- the store edge ---------------------------------------------------------------------------


def operator_card(conn: Connection, operator: str, period: Period, pack: RulePack,
                  book: TargetBook, settings: ScorecardSettings,
                  roster: Roster | None = None) -> Scorecard | None:
    """The operator's card, or None when the operator has no snapshot in the period."""
    snaps = repo.snapshots_within(conn, period.start, period.end, operator)
    return build_card(operator, period, snaps, pack, book, settings, roster) if snaps else None


def team_cards(conn: Connection, period: Period, pack: RulePack, book: TargetBook,
               settings: ScorecardSettings, roster: Roster | None = None,
               team: str | None = None) -> list[Scorecard]:
    snaps = repo.snapshots_within(conn, period.start, period.end)
    return build_team(period, snaps, pack, book, settings, roster, team)
