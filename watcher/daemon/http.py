"""HTTP API (FastAPI): ingestion, incidents and health.

Every engine call runs on the daemon's single engine thread (``submit``);
handlers only parse, wait and answer, so a slow batch never blocks the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from watcher.actions import ActionKind, act
from watcher.auth import Authenticator, Role, bearer
from watcher.errors import InputError, InputTooLarge, InvalidTransition, NotFound, WatcherError
from watcher.incidents import Incident
from watcher.observability import REGISTRY, watch_store
from watcher.pipeline import IngestReport
from watcher.runtime import Runtime
from watcher.sources import SOURCES
from watcher.sources import records as source_records
from watcher.store import repository as repo
from watcher.validation import Format, RawRecord, Rejection, read_records

Submit = Callable[..., Awaitable[Any]]


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    unchanged: int
    restated: int
    incidents_opened: int
    incidents_resolved: int
    errors: list[dict[str, Any]]


class IncidentOut(BaseModel):
    id: int
    rule: str
    rule_version: str
    subject: str
    subject_kind: str
    store: str | None
    platform: str | None
    operator: str | None
    status: str
    severity: str
    audience: str
    metric: str | None
    value: float | None
    threshold: float | None
    period: str | None
    title: dict[str, str]
    labels: dict[str, str]
    evidence: list[dict[str, Any]]
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


class EventOut(BaseModel):
    id: int
    at: datetime
    kind: str
    actor: str
    note: str | None
    data: dict[str, Any]


class IncidentDetail(IncidentOut):
    events: list[EventOut]


class Action(BaseModel):
    by: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=5000)


def incident_json(incident: Incident) -> dict[str, Any]:
    return IncidentOut.model_validate(incident.model_dump()).model_dump(mode="json")


def create_app(runtime: Runtime, submit: Submit,
               wake_dispatcher: Callable[[], None] = lambda: None) -> FastAPI:
    app = FastAPI(title="kpi-watch", version="0.1.0",
                  description="KPI snapshots in, rule incidents with a timeline out. "
                              "Send `Authorization: Bearer <token>` (see `watcher tokens`).")
    db = runtime.db
    auth = Authenticator(db, runtime.settings.host)
    app.state.auth = auth

    def require(role: Role) -> Any:
        def check(authorization: Annotated[str | None, Header()] = None) -> None:
            if auth.open_mode():
                return
            token = bearer(authorization)
            if token is None:
                raise HTTPException(401, "a bearer token is required",
                                    headers={"WWW-Authenticate": "Bearer"})
            granted = auth.role_of(token)
            if granted is None:
                raise HTTPException(401, "the token is unknown or revoked",
                                    headers={"WWW-Authenticate": "Bearer"})
            if not granted.allows(role):
                raise HTTPException(403, f"a {granted.value} token cannot do this; it needs "
                                         f"{role.value}")
        return Depends(check)

    ingest, viewer, responder = require(Role.INGEST), require(Role.VIEWER), require(
        Role.RESPONDER)
    max_bytes = runtime.settings.max_body_bytes

    watch_store(db)

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(REGISTRY).decode(),
                                 media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        if db.ping():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "database unreachable"}, status_code=503)

    @app.post("/v1/snapshots", response_model=IngestResult, dependencies=[ingest],
              responses={422: {"model": IngestResult}, 413: {}, 401: {}, 403: {}})
    async def post_snapshots(request: Request) -> JSONResponse:
        body = await _body(request)
        kind = (request.headers.get("content-type") or "").split(";")[0].strip()
        fmt = {"text/csv": Format.CSV, "application/x-ndjson": Format.JSONL,
               "application/jsonl": Format.JSONL}.get(kind, Format.AUTO)
        try:
            records = list(read_records(body, fmt, max_bytes=max_bytes))
        except InputTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        return await _ingest(records, "http")

    @app.post("/v1/sources/{name}", response_model=IngestResult, dependencies=[ingest],
              responses={422: {"model": IngestResult}, 413: {}, 404: {}, 401: {}, 403: {}})
    async def post_source(name: str, request: Request,
                          store: Annotated[str, Query(min_length=1, max_length=200)],
                          operator: Annotated[str | None, Query(max_length=200)] = None,
                          period: Annotated[str | None, Query(max_length=10)] = None,
                          ) -> JSONResponse:
        """A platform payload as it comes (Amazon SP-API report, Shopee, TikTok, Lingxing)."""
        if name not in SOURCES:
            raise HTTPException(404, f"unknown source '{name}'; known: {', '.join(SOURCES)}")
        body = await _body(request)
        try:
            records = source_records(name, body, store=store, operator=operator, period=period)
        except WatcherError as exc:
            raise HTTPException(400, str(exc)) from None
        return await _ingest(records, f"source:{name}")

    async def _body(request: Request) -> bytes:
        declared = int(request.headers.get("content-length") or 0)
        if declared > max_bytes:
            raise HTTPException(413, f"body is {declared} bytes; the limit is {max_bytes}")
        body = await request.body()
        if len(body) > max_bytes:
            raise HTTPException(413, f"body is {len(body)} bytes; the limit is {max_bytes}")
        return body

    async def _ingest(records: list[RawRecord | Rejection], source: str) -> JSONResponse:
        report: IngestReport = await submit(runtime.pipeline.ingest, records, source)
        if report.opened or report.resolved:
            wake_dispatcher()
        status = 422 if not report.accepted else 200
        return JSONResponse(report.as_dict(), status_code=status)

    @app.get("/v1/incidents", response_model=list[IncidentOut], dependencies=[viewer],
             responses={401: {}, 403: {}})
    def list_incidents(
        status: Literal["open", "acknowledged", "resolved"] | None = None,
        severity: str | None = None, store: str | None = None, operator: str | None = None,
        rule: str | None = None, since: datetime | None = None, until: datetime | None = None,
        limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
    ) -> list[dict[str, Any]]:
        with db.engine.connect() as conn:
            found = repo.list_incidents(conn, status=status, severity=severity, store=store,
                                        operator=operator, rule=rule, since=since, until=until,
                                        limit=limit, offset=offset)
        return [incident_json(i) for i in found]

    @app.get("/v1/incidents/{incident_id}", response_model=IncidentDetail,
             dependencies=[viewer], responses={404: {}, 401: {}, 403: {}})
    def get_incident(incident_id: int) -> dict[str, Any]:
        with db.engine.connect() as conn:
            incident = repo.get_incident(conn, incident_id)
            if incident is None:
                raise HTTPException(404, f"no incident {incident_id}")
            events = repo.incident_events_of(conn, incident_id)
        return {**incident_json(incident),
                "events": [EventOut.model_validate(e).model_dump(mode="json") for e in events]}

    def _act(incident_id: int, action: Action, kind: ActionKind) -> dict[str, Any]:
        try:
            act(db, incident_id, kind, action.by, action.note)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from None
        return get_incident(incident_id)

    @app.post("/v1/incidents/{incident_id}/ack", response_model=IncidentDetail,
              dependencies=[responder], responses={404: {}, 409: {}, 401: {}, 403: {}})
    def ack(incident_id: int, action: Action) -> dict[str, Any]:
        return _act(incident_id, action, "ack")

    @app.post("/v1/incidents/{incident_id}/resolve", response_model=IncidentDetail,
              dependencies=[responder], responses={404: {}, 409: {}, 401: {}, 403: {}})
    def resolve(incident_id: int, action: Action) -> dict[str, Any]:
        return _act(incident_id, action, "resolve")

    @app.post("/v1/incidents/{incident_id}/notes", response_model=IncidentDetail,
              dependencies=[responder], responses={404: {}, 401: {}, 403: {}})
    def note(incident_id: int, action: Action) -> dict[str, Any]:
        return _act(incident_id, action, "note")

    return app
