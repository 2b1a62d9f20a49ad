"""How several values of one metric make one: months into a quarter, stores into an operator.

The same arithmetic serves both, because the question is the same: what is the
value of the whole?

* Amounts and counts add up (``gmv``, ``penalty_count``, ``orders``): a quarter's
  GMV is its months' GMV, an operator's penalties are every store's penalties.
* Rates, ratios, hours and turnover are means weighted by volume: two stores at
  2 % and 6 % disputes are 5 % overall when the second has three times the
  orders. The weight is ``orders`` when every part states it, else ``gmv``, else
  every part weighs the same.
* A value per order (``average_order_value``, derived in ``watcher.derive``) is a
  mean like a rate, though its unit is money: two days' order values do not add up.
* Scores and yes/no flags keep the worst (``account_health_score``,
  ``account_suspended``): a platform scores each account on its own and acts on
  each account on its own, so one account at 85 is at risk of suspension however
  healthy the others are; an average would hide exactly what the score is for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from enum import StrEnum

from watcher import indicators
from watcher.derive import RATIOS
from watcher.indicators import Direction, Unit

_QUOTIENTS = frozenset(r.metric for r in RATIOS if not r.annualised)


class Combine(StrEnum):
    SUM = "sum"
    MEAN = "weighted_mean"
    WORST = "worst"


@functools.lru_cache(maxsize=1024)  # asked per item and store of every card built
def combine_kind(metric: str) -> Combine:
    indicator = indicators.get(metric)
    if indicator is None:
        return Combine.SUM if metric in indicators.COUNT_FIELDS else Combine.MEAN
    if metric in _QUOTIENTS:
        return Combine.MEAN
    if indicator.unit is Unit.CURRENCY:
        return Combine.SUM
    if indicator.unit is Unit.COUNT:
        # a bounded count is a flag or a tier (account_suspended, punishment_tier_max)
        return Combine.WORST if indicator.maximum is not None else Combine.SUM
    if indicator.unit is Unit.SCORE:
        return Combine.WORST
    return Combine.MEAN


def weights_of(parts: Sequence[Mapping[str, float]]) -> tuple[str, list[float]]:
    """(basis, weights) for a weighted mean over ``parts`` (each part's metrics)."""
    for basis in ("orders", "gmv"):
        found = [part.get(basis) for part in parts]
        if all(w is not None for w in found) and sum(w or 0.0 for w in found) > 0:
            return basis, [float(w or 0.0) for w in found]
    return "equal", [1.0] * len(parts)


def combine(metric: str, values: Sequence[float], weights: Sequence[float]) -> float:
    """One value of ``metric`` from several (``weights`` only matter for means)."""
    if not values:
        raise ValueError(f"nothing to combine for {metric}")
    kind = combine_kind(metric)
    if kind is Combine.SUM:
        return _clean(sum(values))
    if kind is Combine.WORST:
        return worst(metric, values)
    total = sum(weights)
    if total <= 0:
        return _clean(sum(values) / len(values))
    return _clean(sum(v * w for v, w in zip(values, weights, strict=True)) / total)


def worst(metric: str, values: Sequence[float]) -> float:
    indicator = indicators.get(metric)
    higher_is_better = indicator is None or indicator.direction is Direction.HIGHER_IS_BETTER
    return min(values) if higher_is_better else max(values)


def _clean(value: float) -> float:
    """Round off float noise so that 3 % averaged with 3 % is exactly 3 % at a boundary."""
    return round(value, 12)
