"""Shared fixtures: the store under test runs on SQLite and on PostgreSQL.

PostgreSQL tests use ``WATCHER_TEST_POSTGRES_URL`` (default: the local server,
database ``test``), each in a schema of its own. Without a reachable server they
skip with the reason, unless ``WATCHER_REQUIRE_POSTGRES=1`` (set by CI), where
they fail instead: CI must run them.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from watcher.config import Settings, load_settings
from watcher.daemon.coalesce import Coalescer
from watcher.daemon.http import create_app
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime
from watcher.store import Database, open_database

ROOT = Path(__file__).resolve().parent.parent
# The base URL of in-process API clients: the daemon answers only to its own host
# names (watcher/daemon/edge.py), and TestClient's default, "testserver", is none.
LOCAL = "http://localhost"
# Bodies sent without these would be refused in the open mode (a browser's simple request).
JSON = {"content-type": "application/json"}
JSONL = {"content-type": "application/x-ndjson"}

# Property tests judge behaviour, not speed: on a loaded 2-core machine input
# generation may be slow, which is not a failure of the code under test.
hypothesis_settings.register_profile(
    "kpi-watch", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("kpi-watch")

PG_URL = os.environ.get("WATCHER_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}"


_PG_PROBLEM = _postgres_reachable()


def unavailable(reason: str, require: str) -> NoReturn:
    """A service a test needs is missing: skip, or fail where ``require`` (an
    environment variable, set by CI) is 1."""
    if os.environ.get(require) == "1":
        pytest.fail(f"{reason} ({require}=1)")
    pytest.skip(reason)


def postgres_url() -> str:
    if _PG_PROBLEM:
        unavailable(_PG_PROBLEM, "WATCHER_REQUIRE_POSTGRES")
    return PG_URL


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    url = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'watcher.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url, auto_upgrade=True)
    yield database
    database.dispose()


class Clock:
    """An injected clock: tests move time by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def default_pack_path() -> Path:
    return ROOT / "rules"


@pytest.fixture
def settings(database_url: str, default_pack_path: Path) -> Settings:
    return load_settings(env={}, database_url=database_url, rules=str(default_pack_path))


@pytest.fixture
def pipeline(db: Database, settings: Settings, clock: Clock,
             default_pack_path: Path) -> Pipeline:
    return Pipeline(db, RuleEngine(load_pack(default_pack_path)), settings, clock=clock)


def snapshot(store: str = "amz-us-01", period: str = "2026-10", *, platform: str = "amazon",
             operator: str | None = "li.wei", targets: dict[str, Any] | None = None,
             segment: dict[str, Any] | None = None, **metrics: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"store": store, "platform": platform, "period": period,
                              "metrics": metrics or {"gmv": 1000}}
    if operator:
        record["operator"] = operator
    if targets:
        record["targets"] = targets
    if segment:
        record["segment"] = segment
    return record


def jsonl(*records: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


@contextmanager
def http_app(runtime: Runtime) -> Iterator[FastAPI]:
    """The HTTP app over ``runtime``, wired as the daemon wires it: posts queue
    through a Coalescer onto one engine thread, which stops with the app."""
    engine_thread = ThreadPoolExecutor(max_workers=1)
    coalescer = Coalescer(runtime.pipeline.ingest_many, engine_thread)
    try:
        yield create_app(runtime, coalescer.ingest_async)
    finally:
        engine_thread.shutdown()
