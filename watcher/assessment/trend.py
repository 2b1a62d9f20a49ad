"""An operator's cards over time: the score, grade and result of each of the last periods.

One verdict: each period's point is the card ``scorecard.build_card`` makes for that period,
with the roster, pack, targets and settings the card page and ``GET /v1/scorecards/{operator}``
use, so a point never says another score or grade than the card of its month (nor, for a
month, than the ``monthly_cards`` row the PIP streak counts, which the same builder writes).
The cards are built from one query over the whole span rather than one per period.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import CardResult, Scorecard, build_card
from watcher.assessment.targets import TargetBook
from watcher.assessment.weights import ScorecardSettings
from watcher.period import Period, PeriodKind
from watcher.rules.model import RulePack
from watcher.store import repository as repo

SCORE_PERIODS = 12  # the score chart and the API's history, at most
MIN_PERIODS = 6     # shown even when the operator's first card is more recent


def previous_periods(period: Period, count: int) -> list[Period]:
    """``count`` periods of ``period``'s kind ending with it, oldest first."""
    if period.kind is PeriodKind.MONTH:
        return [period.shift_months(-k) for k in range(count - 1, -1, -1)]
    if period.kind is PeriodKind.WEEK:
        return [Period.week_of(period.start - timedelta(weeks=k))
                for k in range(count - 1, -1, -1)]
    if period.kind is PeriodKind.QUARTER:
        index = period.start.year * 4 + (period.start.month - 1) // 3
        return [Period.parse(f"{i // 4}-Q{i % 4 + 1}")
                for i in range(index - count + 1, index + 1)]
    if period.kind is PeriodKind.YEAR:
        return [Period.parse(f"{period.start.year - k:04d}") for k in range(count - 1, -1, -1)]
    return [Period.parse((period.start - timedelta(days=k)).isoformat())
            for k in range(count - 1, -1, -1)]


def operator_cards(conn: Connection, operator: str, periods: Sequence[Period], pack: RulePack,
                   book: TargetBook, settings: ScorecardSettings,
                   roster: Roster | None = None) -> list[Scorecard | None]:
    """The operator's card of each of ``periods`` (None where the operator has no snapshot),
    exactly as ``scorecard.operator_card`` makes each one."""
    if not periods:
        return []
    snaps = repo.snapshots_within(conn, min(p.start for p in periods),
                                  max(p.end for p in periods), operator)
    cards: list[Scorecard | None] = []
    for period in periods:
        within = [s for s in snaps
                  if period.start <= s.period.start and s.period.end <= period.end]
        cards.append(build_card(operator, period, within, pack, book, settings, roster)
                     if within else None)
    return cards


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ScorePoint(_Frozen):
    """One period of the history: the card's score, grade and result, all None when the
    operator had no snapshot in the period (no card)."""

    period: str
    score: float | None
    grade: str | None
    result: CardResult | None

    @classmethod
    def of(cls, period: Period, card: Scorecard | None) -> ScorePoint:
        if card is None:
            return cls(period=period.text, score=None, grade=None, result=None)
        return cls(period=card.period, score=card.score, grade=card.grade, result=card.result)

    @property
    def failed(self) -> bool:
        return self.result is CardResult.FAIL


class Band(_Frozen):
    """A grade band as the chart draws it: scores from ``min_score`` up to the next band."""

    grade: str
    min_score: float


class ScoreHistory(_Frozen):
    """The operator's score and grade over the periods up to ``period``, oldest first."""

    operator: str
    period: str
    pass_score: float
    grades: tuple[Band, ...]  # from the best band down, as ``scorecard: grades:`` sets them
    points: tuple[ScorePoint, ...]


def history_of(operator: str, periods: Sequence[Period], cards: Sequence[Scorecard | None],
               settings: ScorecardSettings, *, keep: int = MIN_PERIODS) -> ScoreHistory:
    """The points of ``cards`` (``cards[i]`` is the card of ``periods[i]``); leading periods
    without a card are left out, keeping at least the last ``keep``."""
    first = next((i for i, card in enumerate(cards) if card is not None), len(cards))
    start = min(first, max(len(cards) - keep, 0))
    return ScoreHistory(
        operator=operator, period=periods[-1].text, pass_score=settings.pass_score,
        grades=tuple(Band(grade=b.grade, min_score=b.min_score) for b in settings.grades),
        points=tuple(ScorePoint.of(p, c)
                     for p, c in zip(periods[start:], cards[start:], strict=True)))


def score_history(conn: Connection, operator: str, period: Period, pack: RulePack,
                  book: TargetBook, settings: ScorecardSettings, roster: Roster | None = None,
                  count: int = SCORE_PERIODS) -> ScoreHistory | None:
    """The history of the ``count`` periods ending with ``period``, every one of them; None
    when the operator has no card in any."""
    periods = previous_periods(period, count)
    cards = operator_cards(conn, operator, periods, pack, book, settings, roster)
    if all(card is None for card in cards):
        return None
    return history_of(operator, periods, cards, settings, keep=count)
