"""API tokens: roles, hashing, revocation, and the loopback-only open mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from tests.conftest import LOCAL, http_app, snapshot
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from watcher.auth import Authenticator, Role, create_token, hash_token, is_loopback, revoke_token
from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.store.schema import api_tokens


@contextmanager
def client_for(pipeline: Pipeline, settings: Settings, host: str) -> Iterator[TestClient]:
    runtime = Runtime(settings.model_copy(update={"host": host}), pipeline.db, pipeline)
    with http_app(runtime) as app, TestClient(app, base_url=LOCAL) as client:
        yield client


@pytest.fixture
def loopback(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        yield client


class TestRole:
    @pytest.mark.parametrize(("role", "needed", "allowed"), [
        (Role.ADMIN, Role.INGEST, True), (Role.RESPONDER, Role.VIEWER, True),
        (Role.VIEWER, Role.RESPONDER, False), (Role.INGEST, Role.VIEWER, False),
        (Role.VIEWER, Role.INGEST, False), (Role.INGEST, Role.INGEST, True)])
    def test_roles_are_cumulative_except_ingest(self, role: Role, needed: Role, allowed: bool):
        assert role.allows(needed) is allowed


class TestAuthentication:
    def test_loopback_without_tokens_runs_open(self, loopback: TestClient):
        assert loopback.get("/v1/incidents").status_code == 200

    def test_any_other_address_always_needs_a_token(self, pipeline: Pipeline,
                                                    settings: Settings):
        with client_for(pipeline, settings, "0.0.0.0") as client:
            assert client.get("/v1/incidents").status_code == 401

    def test_once_a_token_exists_every_request_needs_one(self, loopback: TestClient,
                                                         pipeline: Pipeline):
        _, viewer = create_token(pipeline.db, "dash", Role.VIEWER)
        assert loopback.get("/v1/incidents").status_code == 401
        ok = loopback.get("/v1/incidents", headers={"Authorization": f"Bearer {viewer}"})
        assert ok.status_code == 200
        denied = loopback.post("/v1/snapshots", json=snapshot(),
                               headers={"Authorization": f"Bearer {viewer}"})
        assert denied.status_code == 403 and "needs ingest" in denied.json()["detail"]

    def test_a_revoked_token_is_refused(self, loopback: TestClient, pipeline: Pipeline):
        token, clear = create_token(pipeline.db, "feed", Role.INGEST)
        headers = {"Authorization": f"Bearer {clear}"}
        assert loopback.post("/v1/snapshots", json=snapshot(), headers=headers).status_code == 200
        assert revoke_token(pipeline.db, token.id)
        assert loopback.post("/v1/snapshots", json=snapshot(), headers=headers).status_code == 401

    def test_the_first_token_closes_the_open_mode_at_once_on_every_replica(
            self, pipeline: Pipeline, settings: Settings):
        """It used to stay open for up to 5 s (a cached "no token yet")."""
        with client_for(pipeline, settings, "127.0.0.1") as one, \
                client_for(pipeline, settings, "::1") as two:
            assert one.get("/v1/incidents").status_code == 200
            assert two.get("/v1/incidents").status_code == 200
            create_token(pipeline.db, "first", Role.ADMIN)
            assert one.get("/v1/incidents").status_code == 401
            assert two.get("/v1/incidents").status_code == 401
            assert two.post("/v1/snapshots", json=snapshot()).status_code == 401

    def test_once_a_token_exists_the_open_mode_costs_no_query(self, pipeline: Pipeline):
        create_token(pipeline.db, "first", Role.ADMIN)
        auth = Authenticator(pipeline.db, "127.0.0.1")
        queries: list[str] = []

        def record(*args: Any) -> None:
            queries.append(args[2])

        event.listen(pipeline.db.engine, "before_cursor_execute", record)
        try:
            assert [auth.open_mode() for _ in range(5)] == [False] * 5
        finally:
            event.remove(pipeline.db.engine, "before_cursor_execute", record)
        assert len(queries) == 1

    def test_only_the_hash_is_stored(self, pipeline: Pipeline):
        _, clear = create_token(pipeline.db, "x", Role.ADMIN)
        with pipeline.db.engine.connect() as conn:
            stored = conn.execute(select(api_tokens.c.token_hash)).scalar_one()
        assert stored == hash_token(clear) and clear not in stored

    @pytest.mark.parametrize(("host", "loop"), [("127.0.0.1", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False),
                                                ("10.1.2.3", False)])
    def test_loopback_addresses(self, host: str, loop: bool):
        assert is_loopback(host) is loop


class TestTokensCommand:
    def test_create_list_revoke(self, env):  # noqa: F811
        code, out = watcher("tokens", "create", "ci-feed", "--role", "ingest")
        assert code == 0 and "kw_" in out
        clear = next(line for line in out.splitlines() if line.startswith("kw_"))
        code, out = watcher("tokens", "list", "--format", "json")
        assert '"role": "ingest"' in out and clear not in out
        assert watcher("tokens", "revoke", "1")[0] == 0
        assert watcher("tokens", "revoke", "1")[0] == 1
