"""HTTP endpoints of the scorecards: one operator's card, or the team's rows, for a period;
an operator's score and grade over the periods up to one (the card page's chart).

Cards are read from the store with the rule pack and targets file in force
(both reload while the daemon runs), so the card and the alerts never judge
by different thresholds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from watcher.assessment.scorecard import Scorecard, TeamRow, card_period, operator_card
from watcher.assessment.trend import SCORE_PERIODS, ScoreHistory, score_history
from watcher.errors import InputError
from watcher.limits import SCORE_HISTORY_MAX_PERIODS
from watcher.period import Period
from watcher.runtime import Runtime

PeriodQuery = Annotated[str, Query(max_length=20, description="2026-W45, 2026-10, 2026-Q3 or 2026")]


def _period(text: str) -> Period:
    try:
        return card_period(text)
    except InputError as exc:
        raise HTTPException(422, [{"loc": ["query", "period"], "msg": exc.reason,
                                   "type": "value_error"}]) from None


def scorecard_router(runtime: Runtime, viewer: Any) -> APIRouter:
    """``viewer`` is the dependency that requires a viewer token."""
    router = APIRouter(dependencies=[viewer], tags=["scorecards"])
    pipeline, settings = runtime.pipeline, runtime.settings.scorecard

    @router.get("/v1/scorecards", response_model=list[TeamRow],
                responses={401: {}, 403: {}, 422: {}})
    def team(period: PeriodQuery, team: Annotated[str | None, Query(
            max_length=200, pattern=r"^[^\x00]*$",
            description="only this team's operators (by the roster)")] = None) -> list[TeamRow]:
        """Every operator with snapshots in the period (or one team's): score, result,
        failing indicators."""
        chosen = _period(period)
        with runtime.db.engine.connect() as conn:
            cards = runtime.kept.teams.cards(conn, chosen, pipeline.engine.pack,
                                             pipeline.targets, settings, pipeline.roster, team)
        return [TeamRow.of(card) for card in cards]

    @router.get("/v1/scorecards/{operator}", response_model=Scorecard,
                responses={401: {}, 403: {}, 404: {}, 422: {}})
    def card(operator: str, period: PeriodQuery) -> Scorecard:
        """One operator's card: each indicator of the period's cycle, weights, result."""
        chosen = _period(period)
        with runtime.db.engine.connect() as conn:
            found = operator_card(conn, operator, chosen, pipeline.engine.pack,
                                  pipeline.targets, settings, pipeline.roster)
        if found is None:
            raise HTTPException(404, f"operator '{operator}' has no snapshots in {chosen}")
        return found

    @router.get("/v1/scorecards/{operator}/history", response_model=ScoreHistory,
                responses={401: {}, 403: {}, 404: {}, 422: {}})
    def history(operator: str, period: PeriodQuery, count: Annotated[int, Query(
            ge=1, le=SCORE_HISTORY_MAX_PERIODS,
            description="periods ending with `period` (SCORE_HISTORY_MAX_PERIODS at most)")]
            = SCORE_PERIODS) -> ScoreHistory:
        """The operator's card score, grade and result in each period up to ``period``
        (oldest first; ``result`` null where there is no card), the grade bands and the
        pass mark: the card page's chart as data. Each point is that period's card."""
        chosen = _period(period)
        with runtime.db.engine.connect() as conn:
            found = score_history(conn, operator, chosen, pipeline.engine.pack,
                                  pipeline.targets, settings, pipeline.roster, count)
        if found is None:
            raise HTTPException(404, f"operator '{operator}' has no snapshots in the {count} "
                                     f"periods up to {chosen}")
        return found

    return router
