"""HTTP API (FastAPI): ingestion, incidents, silences, rules, health, and the web page.

Every ingestion runs on the daemon's single engine thread (``ingest_records``, which
batches requests that arrive together: watcher/daemon/coalesce.py); handlers only
parse, wait and answer, so a slow batch never blocks the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from watcher import echo
from watcher.actions import ActionKind, act
from watcher.auth import Authenticator, Role, bearer
from watcher.daemon.board import board_router
from watcher.daemon.edge import HostPolicy, SiteGuard
from watcher.daemon.pip import pip_router
from watcher.daemon.schemas import (
    MAX_ID,
    MAX_OFFSET,
    NO_NUL,
    SNAPSHOTS_BODY,
    Name,
    PeriodText,
    RulesOut,
    RunbookOut,
    SilenceIn,
    SilenceOut,
    SnapshotOut,
)
from watcher.daemon.scorecards import scorecard_router
from watcher.errors import InputError, InputTooLarge, InvalidTransition, NotFound, WatcherError
from watcher.incidents import Incident, IncidentSort
from watcher.observability import REGISTRY, watch_store
from watcher.outage import DATABASE_DOWN
from watcher.pipeline import IngestReport
from watcher.rules.model import Severity
from watcher.runtime import Runtime
from watcher.silences import Silence
from watcher.sources import Catalog, catalog_for
from watcher.store import repository as repo
from watcher.store.database import utcnow
from watcher.validation import Format, RawRecord, Rejection, read_records
from watcher.web.pages import page_router

log = structlog.get_logger(__name__)
# Records and their source in, the report once committed (watcher/daemon/coalesce.py).
Ingest = Callable[[list[RawRecord | Rejection], str], Awaitable[IngestReport]]
Filter = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


class IngestResult(BaseModel):
    accepted: int
    rejected: int
    unchanged: int
    restated: int
    incidents_opened: int
    incidents_resolved: int
    errors: list[dict[str, Any]]
    # accepted records with something to say (a metric the registry does not know)
    warnings: list[dict[str, Any]] = []


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
    rule_description: str | None = Field(
        default=None, description="the rule's description in English, from the pack in force")
    rule_descriptions: dict[str, str] | None = Field(
        default=None, description="the rule's description by language (en, zh-CN)")
    runbook: RunbookOut | None = Field(
        default=None, description="what to do, from the rule in force (GET /v1/rules)")


class Action(BaseModel):
    by: Name
    note: str | None = Field(default=None, max_length=5000, pattern=NO_NUL)


def incident_json(incident: Incident) -> dict[str, Any]:
    return IncidentOut.model_validate(incident.model_dump()).model_dump(mode="json")


RETRY_AFTER_SECONDS = 5


def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database is down or restarting: a retryable 503, neither a 200 (nothing
    may have been stored) nor a 500 (nothing is broken that a retry will not fix)."""
    log.warning("database_unavailable", error=type(exc).__name__)
    return JSONResponse({"detail": "the database is unavailable; retry later (sending the "
                                   "same snapshots again is safe)"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, with every value it repeats made safe to show (watcher/echo.py): a
    bidi override or a control character sent in a parameter is not echoed as sent."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": echo.shown_value(jsonable_encoder(exc.errors()),
                                                    ECHO_MAX)}, status_code=422)


ECHO_MAX = 1_000  # characters of one sent value a 422 repeats


def create_app(runtime: Runtime, ingest_records: Ingest,
               wake_dispatcher: Callable[[], None] = lambda: None,
               sources: Catalog | None = None) -> FastAPI:
    settings = runtime.settings
    max_bytes = settings.max_body_bytes
    app = FastAPI(title="kpi-watch", version="0.1.0",
                  description="KPI snapshots in, rule incidents with a timeline out. "
                              "Send `Authorization: Bearer <token>` (see `watcher tokens`).")
    db = runtime.db
    auth = Authenticator(db, settings.host)
    app.state.auth = auth
    app.add_middleware(SiteGuard, auth=auth, public_url=settings.public_url,
                       max_body_bytes=max_bytes, hosts=HostPolicy(
                           bound=settings.host, public_url=settings.public_url,
                           allowed=settings.allowed_hosts))
    for error in DATABASE_DOWN:
        app.add_exception_handler(error, database_unavailable)
    app.add_exception_handler(RequestValidationError, invalid_request)

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
    catalog = sources if sources is not None else catalog_for(runtime.settings)

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
              responses={422: {"model": IngestResult}, 413: {}, 401: {}, 403: {}},
              openapi_extra=SNAPSHOTS_BODY)
    async def post_snapshots(request: Request) -> JSONResponse:
        body = await _body(request)
        kind = (request.headers.get("content-type") or "").split(";")[0].strip()
        fmt = {"text/csv": Format.CSV, "application/x-ndjson": Format.JSONL,
               "application/jsonl": Format.JSONL}.get(kind, Format.AUTO)
        try:  # off the event loop: parsing a large body must not stall /healthz
            records = await run_in_threadpool(
                lambda: list(read_records(body, fmt, max_bytes=max_bytes)))
        except InputTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        return await _ingest(records, "http")

    @app.post("/v1/sources/{name}", response_model=IngestResult, dependencies=[ingest],
              responses={422: {"model": IngestResult}, 400: {}, 413: {}, 404: {}, 401: {},
                         403: {}})
    async def post_source(name: str, request: Request,
                          store: Annotated[str | None, Query(min_length=1, max_length=200)]
                          = None,
                          operator: Annotated[str | None, Query(max_length=200)] = None,
                          period: Annotated[str | None, Query(max_length=10)] = None,
                          ) -> JSONResponse:
        """A platform payload as it comes (Amazon SP-API report, Shopee, TikTok, Lingxing),
        or an ERP export (CSV/XLSX) read by the column mapping called ``name``."""
        if name not in catalog:
            raise HTTPException(404, f"unknown source '{name}'; known: "
                                     f"{', '.join(catalog.names())}")
        if store is None and catalog.needs_store(name):
            raise HTTPException(400, f"query parameter 'store' is required for source '{name}' "
                                     "(its payloads do not name our store ids)")
        body = await _body(request)
        try:  # off the event loop, as above
            records = await run_in_threadpool(lambda: list(catalog.records(
                name, body, store=store, operator=operator, period=period)))
        except WatcherError as exc:
            raise HTTPException(400, str(exc)) from None
        return await _ingest(records, f"source:{name}")

    async def _body(request: Request) -> bytes:
        return await request.body()  # bounded by SiteGuard (413)

    async def _ingest(records: list[RawRecord | Rejection], source: str) -> JSONResponse:
        report: IngestReport = await ingest_records(records, source)
        if report.opened or report.resolved:
            wake_dispatcher()
        status = 422 if not report.accepted else 200
        return JSONResponse(report.as_dict(), status_code=status)

    @app.get("/v1/incidents", response_model=list[IncidentOut], dependencies=[viewer],
             responses={401: {}, 403: {}})
    def list_incidents(
        status: Literal["open", "acknowledged", "resolved"] | None = None,
        severity: Severity | None = None, store: Filter = None, operator: Filter = None,
        rule: Filter = None, since: datetime | None = None, until: datetime | None = None,
        resolved_since: datetime | None = None, resolved_until: datetime | None = None,
        limit: Limit = 100, offset: Offset = 0,
        sort: Annotated[IncidentSort, Query(
            description="newest (first) or severity (the most severe first, newest first "
                        "within each): the page's orders")] = "newest",
    ) -> list[dict[str, Any]]:
        with db.engine.connect() as conn:
            found = repo.list_incidents(conn, status=status,
                                        severity=severity.value if severity else None, store=store,
                                        operator=operator, rule=rule, since=since, until=until,
                                        resolved_since=resolved_since,
                                        resolved_until=resolved_until,
                                        limit=limit, offset=offset, sort=sort)
        return [incident_json(i) for i in found]

    @app.get("/v1/incidents/{incident_id}", response_model=IncidentDetail,
             dependencies=[viewer], responses={404: {}, 401: {}, 403: {}})
    def get_incident(incident_id: Id) -> dict[str, Any]:
        with db.engine.connect() as conn:
            incident = repo.get_incident(conn, incident_id)
            if incident is None:
                raise HTTPException(404, f"no incident {incident_id}")
            events = repo.incident_events_of(conn, incident_id)
        rule = runtime.pipeline.engine.pack.get(incident.rule.partition("/")[0])
        runbook = RunbookOut.of(rule.runbook if rule else None)
        return {**incident_json(incident),
                "events": [EventOut.model_validate(e).model_dump(mode="json") for e in events],
                "rule_description": rule.description_of("en") if rule else None,
                "rule_descriptions": rule.descriptions if rule else None,
                "runbook": runbook.model_dump(mode="json") if runbook else None}

    def _act(incident_id: int, action: Action, kind: ActionKind) -> dict[str, Any]:
        try:
            act(db, incident_id, kind, action.by, action.note,
                public_url=runtime.settings.public_url)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from None
        return get_incident(incident_id)

    @app.post("/v1/incidents/{incident_id}/ack", response_model=IncidentDetail,
              dependencies=[responder], responses={404: {}, 409: {}, 401: {}, 403: {}})
    def ack(incident_id: Id, action: Action) -> dict[str, Any]:
        return _act(incident_id, action, "ack")

    @app.post("/v1/incidents/{incident_id}/resolve", response_model=IncidentDetail,
              dependencies=[responder], responses={404: {}, 409: {}, 401: {}, 403: {}})
    def resolve(incident_id: Id, action: Action) -> dict[str, Any]:
        return _act(incident_id, action, "resolve")

    @app.post("/v1/incidents/{incident_id}/notes", response_model=IncidentDetail,
              dependencies=[responder], responses={404: {}, 401: {}, 403: {}})
    def note(incident_id: Id, action: Action) -> dict[str, Any]:
        return _act(incident_id, action, "note")

    @app.get("/v1/snapshots", response_model=list[SnapshotOut], dependencies=[viewer],
             responses={401: {}, 403: {}})
    def list_snapshots(
        store: Filter = None, platform: Filter = None, operator: Filter = None,
        period: Annotated[PeriodText | None, Query(
            description="2026-10-05, 2026-W41, 2026-10, 2026-Q4 or 2026")] = None,
        limit: Limit = 100, offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        """Stored snapshots, latest period first (restatements show their revision). A
        ``platform`` that is neither known nor stored is refused (422) with the name meant."""
        with db.engine.connect() as conn:
            if platform and platform not in runtime.platforms:
                stored = repo.list_snapshots(conn, platform=platform, limit=1)
                problem = runtime.platforms.problem(platform,
                                                    seen={platform} if stored else ())
                if problem is not None:
                    raise HTTPException(422, [{"loc": ["query", "platform"], "msg": problem,
                                               "type": "value_error"}])
            return repo.list_snapshots(conn, store=store, period=period, platform=platform,
                                       operator=operator, limit=limit, offset=offset)

    @app.get("/v1/snapshots/{platform}/{store}/{period}", response_model=SnapshotOut,
             dependencies=[viewer], responses={404: {}, 401: {}, 403: {}})
    def get_snapshot(platform: Annotated[str, Path(max_length=200, pattern=NO_NUL)],
                     store: Annotated[str, Path(max_length=200, pattern=NO_NUL)],
                     period: Annotated[PeriodText, Path(
                         description="2026-10-05, 2026-W41, 2026-10, 2026-Q4 or 2026")]
                     ) -> dict[str, Any]:
        """The snapshot of one store on one platform for one period (its identity)."""
        with db.engine.connect() as conn:
            found = repo.get_snapshot(conn, platform, store, period)
        if found is None:
            raise HTTPException(404, f"no snapshot of {echo.shown(store)} on "
                                     f"{echo.shown(platform)} for {period}")
        return found

    @app.post("/v1/silences", response_model=SilenceOut, status_code=201,
              dependencies=[responder], responses={401: {}, 403: {}})
    def add_silence(body: SilenceIn) -> SilenceOut:
        """Hold back matching notifications from now for ``duration``."""
        now = utcnow()
        silence = Silence(matchers=body.matchers, starts_at=now,
                          ends_at=now + timedelta(seconds=body.seconds), created_by=body.by,
                          comment=body.comment, created_at=now)
        with db.engine.begin() as conn:
            return SilenceOut.of(repo.add_silence(conn, silence), now)

    @app.get("/v1/silences", response_model=list[SilenceOut], dependencies=[viewer],
             responses={401: {}, 403: {}})
    def list_silences(include_ended: Annotated[bool, Query(alias="all")] = False,
                      limit: Limit = 200) -> list[SilenceOut]:
        """Active silences, newest first; ``all=true`` adds the ended ones."""
        now = utcnow()
        with db.engine.connect() as conn:
            found = repo.list_silences(conn, active_at=None if include_ended else now,
                                       limit=limit)
        return [SilenceOut.of(s, now) for s in found]

    @app.delete("/v1/silences/{silence_id}", response_model=SilenceOut,
                dependencies=[responder], responses={404: {}, 401: {}, 403: {}})
    def expire_silence(silence_id: Id) -> SilenceOut:
        """End a silence now (it stays listed with ``all=true``, as on the timelines)."""
        now = utcnow()
        with db.engine.begin() as conn:
            silence = repo.expire_silence(conn, silence_id, now)
        if silence is None:
            raise HTTPException(404, f"no silence {silence_id}")
        return SilenceOut.of(silence, now)

    @app.get("/v1/rules", response_model=RulesOut, dependencies=[viewer],
             responses={401: {}, 403: {}})
    def rules() -> RulesOut:
        """The rule pack in force (hot reload swaps it; ``version`` says which)."""
        return RulesOut.of(runtime.pipeline.engine.pack, runtime.rules_status.last_reload)

    app.include_router(scorecard_router(runtime, viewer))
    app.include_router(board_router(runtime, viewer))
    app.include_router(pip_router(runtime, viewer, responder))
    app.include_router(page_router(runtime, auth))
    return app
