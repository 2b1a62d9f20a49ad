"""HTTP endpoint of the store health board: every store's latest value of every indicator
against its threshold, for other tools (the page at ``/board`` shows the same board).

Read with the rule pack and targets file in force, like the scorecards, so the board,
the cards and the alerts judge by the same thresholds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from watcher.assessment.board import Board
from watcher.daemon.schemas import MAX_OFFSET
from watcher.indicators import Dimension
from watcher.runtime import Runtime

Name = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


def board_router(runtime: Runtime, viewer: Any) -> APIRouter:
    """``viewer`` is the dependency that requires a viewer token."""
    router = APIRouter(dependencies=[viewer], tags=["board"])

    @router.get("/v1/board", response_model=Board, responses={401: {}, 403: {}, 422: {}})
    def board(platform: Name = None, operator: Name = None, team: Name = None,
              dimension: Dimension | None = None,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
              offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> Response:
        """Stores × indicators: each cell the latest value, its threshold and whether it is
        ok, near (within 10 %), breaching or has no data; the worst stores first, ``limit``
        of them from ``offset`` (``total`` says how many there are; ``counts`` are over
        all of them). A ``platform`` that is neither a known platform nor one of a stored
        store is refused (422), with the name meant: it would show an empty board."""
        pipeline = runtime.pipeline
        with runtime.db.engine.connect() as conn:
            layout = runtime.kept.board.board(
                conn, pipeline.engine.pack, pipeline.targets, pipeline.roster,
                platform=platform, operator=operator, dimension=dimension, team=team)
        problem = (runtime.platforms.problem(platform,
                                             seen=runtime.kept.board.facets()["platform"])
                   if platform else None)
        if problem is not None:
            raise HTTPException(422, [{"loc": ["query", "platform"], "msg": problem,
                                       "type": "value_error"}])
        # serialised once per page until the data changes (``response_model`` documents it)
        return Response(layout.page_json(offset, limit), media_type="application/json")

    return router
