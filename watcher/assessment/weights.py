"""Role-tier weights, pass mark, vetoes and grades of scorecards (the ``scorecard:`` key).

The reference weighs the assessment by role tier: a junior operator is judged
mostly on execution (order handling, efficiency), a mid-level one on strategy
(the performance indicators: margin, conversion, new customers), a senior one on
strategic contribution (new categories, customer lifetime value). Weights are
relative: an indicator's share of a card's score is its weight over the sum of
the weights of the indicators assessed on that card, so a card that lacks an
indicator is not penalised for it and the numbers need not add up to 1.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watcher import indicators
from watcher.assessment.grades import DEFAULT_GRADES, GradeBand, check_bands
from watcher.indicators import Dimension, Indicator

DIMENSIONS = tuple(d.value for d in Dimension)

DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    # execution: efficiency counts double, order handling most of all
    "junior": {"performance": 1.0, "efficiency": 2.0, "customer": 1.0, "compliance": 1.0,
               "order_processing_hours": 3.0},
    # strategy: the performance indicators count double, margin most of all
    "mid": {"performance": 2.0, "efficiency": 1.0, "customer": 1.0, "compliance": 1.0,
            "net_margin": 3.0},
    # strategic contribution: new categories, new customers, lifetime value
    "senior": {"performance": 1.0, "efficiency": 1.0, "customer": 1.0, "compliance": 1.0,
               "new_category_share": 3.0, "new_customer_share": 2.0, "ltv_growth": 2.0},
}


def _defaults() -> dict[str, dict[str, float]]:
    return {tier: dict(weights) for tier, weights in DEFAULT_WEIGHTS.items()}


# a major violation fails the card whatever its score (a minor penalty only fails the
# penalty indicator): kpi-reference §1, indicator 16
DEFAULT_VETO = ("major_penalty_count", "account_suspended", "account_deactivated")


class ScorecardSettings(BaseModel):
    """``weights`` per tier map a dimension or a metric id to a relative weight; an
    indicator weighs its own entry, else its dimension's, else 1. A configured tier
    replaces the default tier of that name; the other default tiers stay."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, dict[str, float]] = Field(default_factory=lambda: _defaults())
    default_tier: str = Field(default="mid", description="tier of a snapshot without "
                                                         "segment.level, or of an unknown one")
    pass_score: float = Field(default=0.8, ge=0.0, le=1.0)
    veto: tuple[str, ...] = Field(
        default=DEFAULT_VETO, description="metrics of which any positive value in the period "
                                          "fails the card and lowers its grade one band "
                                          "(a major penalty, a suspension)")
    grades: tuple[GradeBand, ...] = Field(
        default=DEFAULT_GRADES, description="score bands from the best down, each with what "
                                            "it means and its bonus coefficient")

    @field_validator("weights", mode="before")
    @classmethod
    def _over_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {**_defaults(), **{str(tier).lower(): w for tier, w in value.items()}}
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for tier, weights in value.items():
            for key, weight in weights.items():
                if key not in DIMENSIONS and indicators.get(key) is None:
                    raise ValueError(f"weights.{tier}: '{key}' is neither a dimension "
                                     f"({', '.join(DIMENSIONS)}) nor a metric id")
                if not 0 <= weight < float("inf"):
                    raise ValueError(f"weights.{tier}.{key}: a weight is a number >= 0, "
                                     f"got {weight}")
        return value

    @field_validator("veto")
    @classmethod
    def _veto(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in value if indicators.get(m) is None]
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not a metric id")
        return value

    @field_validator("grades")
    @classmethod
    def _grades(cls, value: tuple[GradeBand, ...]) -> tuple[GradeBand, ...]:
        return check_bands(value)

    @model_validator(mode="after")
    def _default_tier(self) -> ScorecardSettings:
        if self.default_tier not in self.weights:
            raise ValueError(f"default_tier '{self.default_tier}' has no weights (tiers: "
                             f"{', '.join(sorted(self.weights)) or 'none'})")
        return self

    def tier_of(self, level: Any) -> str:
        """The tier whose weights apply to a ``segment.level``; unknown ones get the default."""
        tier = str(level).strip().lower() if level not in (None, "") else ""
        return tier if tier in self.weights else self.default_tier

    def weight(self, tier: str, indicator: Indicator) -> float:
        weights = self.weights.get(tier, self.weights[self.default_tier])
        return weights.get(indicator.id, weights.get(indicator.dimension.value, 1.0))
