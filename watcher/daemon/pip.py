"""HTTP endpoints of PIP plans: read one, start it, review it, close it.

The same actions as ``watcher pip`` (``watcher.plans``); reading needs a viewer
token, acting a responder (or admin) token, as for incidents.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from watcher import plans
from watcher.assessment.pip import Goal, Outcome, passing_side
from watcher.daemon.schemas import MAX_ID, PipCheckpointIn, PipCloseIn, PipStartIn
from watcher.echo import shown
from watcher.errors import InputError, InvalidTransition, NotFound
from watcher.indicators import get as indicator
from watcher.plans import PipAction, PipView
from watcher.runtime import Runtime
from watcher.snapshot import Comparator

IncidentId = Annotated[int, Path(ge=1, le=MAX_ID)]
_ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}, 422: {}}


def pip_router(runtime: Runtime, viewer: Any, responder: Any) -> APIRouter:
    router = APIRouter(tags=["pip"])

    def pip_rules() -> list[str]:
        return [r.id for r in runtime.pipeline.engine.pack.rules if r.kind == "streak"]

    def run(incident: int, action: PipAction, **kwargs: Any) -> PipView:
        try:
            return plans.act(runtime.db, incident, action, pip_rules(), runtime.settings,
                             runtime.pipeline.clock(), **kwargs)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from None
        except InputError as exc:
            raise HTTPException(422, [{"loc": ["body", exc.field or "body"], "msg": exc.reason,
                                       "type": "value_error"}]) from None

    @router.get("/v1/pip/{incident}", response_model=PipView, dependencies=[viewer],
                responses={401: {}, 403: {}, 404: {}})
    def show(incident: IncidentId) -> PipView:
        """A PIP: status, goals with their latest values, checkpoints, end date, timeline."""
        try:
            return plans.show(runtime.db, incident, pip_rules(), runtime.pipeline.clock())
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @router.post("/v1/pip/{incident}/start", response_model=PipView, dependencies=[responder],
                 responses=_ERRORS)
    def start(incident: IncidentId, body: PipStartIn) -> PipView:
        goals = []
        for index, goal in enumerate(body.goals or []):
            if indicator(goal.metric) is None:
                raise HTTPException(422, [{"loc": ["body", "goals", index, "metric"],
                                           "msg": f"'{shown(goal.metric, 80)}' is not a "
                                                  "known metric id",
                                           "type": "value_error"}])
            goals.append(Goal(metric=goal.metric, target=goal.target,
                              comparator=Comparator(goal.comparator) if goal.comparator
                              else passing_side(goal.metric)))
        return run(incident, "start", by=body.by, days=body.days, goals=goals)

    @router.post("/v1/pip/{incident}/checkpoint", response_model=PipView,
                 dependencies=[responder], responses=_ERRORS)
    def checkpoint(incident: IncidentId, body: PipCheckpointIn) -> PipView:
        return run(incident, "checkpoint", by=body.by, note=body.note)

    @router.post("/v1/pip/{incident}/close", response_model=PipView, dependencies=[responder],
                 responses=_ERRORS)
    def close(incident: IncidentId, body: PipCloseIn) -> PipView:
        return run(incident, "close", by=body.by, note=body.note, days=body.days,
                   outcome=Outcome(body.outcome))

    return router
