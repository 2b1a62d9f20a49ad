"""Derived metrics: rates computed from the raw counts a sender has, when it lacks the rate.

Many sources (ERP exports, customer-service desks) report counts, not rates:
orders and disputes, not the dispute rate. Rules are written against the
reference's rates, so a snapshot that carries both parts of a rate but not the
rate itself gets the rate here, once, before it is stored and evaluated; the
stored snapshot then shows exactly what the rules saw.

* A rate that was sent always wins: the sender may know better (e.g. a
  platform's own dispute rate counts only some kinds of dispute).
* A zero denominator derives nothing: "no orders" is not "no disputes". But a part of
  a whole of zero (3 disputes of 0 orders) is refused as the contradiction it is.
* A numerator larger than its denominator cannot make a rate (a rate outside
  [0, 1] is a rejected record, whether sent or derived): the record is refused,
  naming the numerator, so the contradiction is fixed at its source. The same holds
  for any quotient above its indicator's maximum (ACOS above 1,000 %).
* Inventory turnover is "times per year" (annual COGS / average inventory), so
  the COGS of a shorter period is annualised by the number of such periods in a
  year (12 months, 4 quarters, 365 days); a monthly 1,000 of COGS on 3,000 of
  inventory turns 4 times a year. Multiplying before dividing keeps exact
  quotients exact (12 * 1000 / 3000 is 4.0, not 3.9999...), so a derived value
  that lands on a threshold is judged as the same value sent would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from watcher import indicators
from watcher.errors import InputError
from watcher.indicators import Unit
from watcher.period import PeriodKind

PER_YEAR: Final[dict[PeriodKind, int]] = {
    PeriodKind.DAY: 365, PeriodKind.WEEK: 52, PeriodKind.MONTH: 12, PeriodKind.QUARTER: 4,
    PeriodKind.YEAR: 1,
}


@dataclass(frozen=True, slots=True)
class Ratio:
    """``metric = numerator / denominator`` (times the periods per year when annualised)."""

    metric: str
    numerator: str
    denominator: str
    annualised: bool = False

    def __str__(self) -> str:
        per_year = " (annualised)" if self.annualised else ""
        return f"{self.metric} = {self.numerator} / {self.denominator}{per_year}"


RATIOS: Final[tuple[Ratio, ...]] = (
    Ratio("conversion_rate", "orders", "visitors"),
    Ratio("ad_share_of_gmv", "gmv_ads", "gmv"),
    Ratio("inventory_turnover", "cogs", "average_inventory", annualised=True),
    Ratio("stockout_rate", "stockout_orders", "orders"),
    Ratio("delivery_success_rate", "delivered", "shipped"),
    Ratio("positive_review_rate", "positive_reviews", "reviews"),
    Ratio("dispute_rate", "disputes", "orders"),
    Ratio("dispute_win_rate", "disputes_won", "disputes_closed"),
    Ratio("repurchase_rate", "repeat_buyers", "buyers"),
    Ratio("average_order_value", "gmv", "orders"),
    Ratio("acos", "ad_spend", "gmv_ads"),
    Ratio("ad_roi", "gmv_ads", "ad_spend"),
    Ratio("return_rate", "returns", "orders"),
    Ratio("cs_resolution_rate", "tickets_resolved", "tickets"),
)
NUMERATORS: Final[frozenset[str]] = frozenset(r.numerator for r in RATIOS)


def derived_metrics(metrics: Mapping[str, float], period: PeriodKind) -> dict[str, float]:
    """The rates ``metrics`` lets us compute and does not already carry.

    Raises ``InputError`` (field ``metrics.<numerator>``) when a numerator exceeds
    its denominator for a rate, which no consistent data can do.
    """
    derived: dict[str, float] = {}
    for ratio in RATIOS:
        if ratio.metric in metrics:
            continue
        top, bottom = metrics.get(ratio.numerator), metrics.get(ratio.denominator)
        if top is None or bottom is None:
            continue
        ceiling = None if ratio.annualised else _ceiling(ratio.metric)
        if ceiling == 1 and bottom == 0 and top > 0:
            # a part of nothing (2 tickets resolved of 0): no rate, and no consistent data
            raise InputError(
                f"{top:g} is more than {ratio.denominator} (0): {ratio.numerator} counts a "
                f"part of {ratio.denominator}; correct the counts, or send {ratio.metric} "
                "itself", field=f"metrics.{ratio.numerator}")
        if bottom == 0:
            continue
        if ratio.annualised:
            top *= PER_YEAR[period]
        elif ceiling is not None and top > bottom * ceiling:
            what = ("more than" if ceiling == 1 else
                    f"more than {ceiling:g} times") + f" {ratio.denominator} ({bottom:g})"
            raise InputError(
                f"{top:g} is {what}, so {ratio} would be {top / bottom:.4g}, not a value "
                f"in [0, {ceiling:g}]; correct the counts, or send {ratio.metric} itself",
                field=f"metrics.{ratio.numerator}")
        derived[ratio.metric] = top / bottom
    return derived


def completed(metrics: dict[str, float], period: PeriodKind) -> dict[str, float]:
    """``metrics`` with its derivable rates added (the same dict when there are none).

    Called by ``Snapshot`` validation, so every snapshot, from any source, is
    complete before it is stored or evaluated.
    """
    if metrics.keys().isdisjoint(NUMERATORS):
        return metrics  # the common case: a sender of rates pays one set test
    derived = derived_metrics(metrics, period)
    return {**metrics, **derived} if derived else metrics


def _ceiling(metric: str) -> float | None:
    """The largest quotient a fraction can be (1 for a rate); None for amounts and ratios."""
    indicator = indicators.get(metric)
    if indicator is None or indicator.unit is not Unit.FRACTION:
        return None
    return indicator.maximum
