"""Only this site reaches the daemon, and no body costs more than its limit (issue 14).

In-process against the app, as the daemon wires it, on both databases; the chunked
upload also against the real daemon over a socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import JSON, JSONL, LOCAL, http_app, jsonl, snapshot
from tests.daemon_harness import running
from watcher.auth import Role, create_token
from watcher.config import Settings
from watcher.daemon.edge import HostPolicy, host_name
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.store import repository as repo

LIMIT = 100_000


@pytest.fixture
def app(pipeline: Pipeline, settings: Settings) -> Iterator[FastAPI]:
    small = settings.model_copy(update={
        "max_body_bytes": LIMIT, "public_url": "https://kpi.example.com",
        "allowed_hosts": ("kpi-watch", "*.svc.cluster.local")})
    with http_app(Runtime(small, pipeline.db, pipeline)) as built:
        yield built


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=LOCAL) as test_client:
        yield test_client


def stored(pipeline: Pipeline) -> int:
    with pipeline.db.engine.connect() as conn:
        return len(repo.list_snapshots(conn, limit=1000))


class TestOnlyThisSiteReachesTheApi:
    """DNS rebinding: the attacker's page is served from a name of theirs resolving to us."""

    @pytest.mark.parametrize("path", ["/v1/incidents", "/", "/login", "/healthz", "/readyz",
                                      "/metrics", "/openapi.json"])
    def test_a_host_that_is_not_ours_is_misdirected_everywhere(self, client: TestClient,
                                                                path: str):
        response = client.get(path, headers={"host": "rebind.attacker.example:8080"})
        assert response.status_code == 421
        assert "allowed_hosts" in response.json()["detail"]

    def test_a_rebound_write_is_misdirected_and_stores_nothing(self, client: TestClient,
                                                               pipeline: Pipeline):
        response = client.post("/v1/snapshots", json=snapshot(penalty_count=1),
                               headers={"host": "rebind.attacker.example"})
        assert response.status_code == 421 and stored(pipeline) == 0
        form = client.post("/login", data={"token": "x"},
                           headers={"host": "rebind.attacker.example",
                                    "origin": "http://rebind.attacker.example"})
        assert form.status_code == 421

    @pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1:8080",
                                      "[::1]:8080", "LOCALHOST.", "kpi.example.com",
                                      "kpi-watch:8080", "kpi-watch.default.svc.cluster.local"])
    def test_loopback_public_url_and_allowed_hosts_are_ours(self, client: TestClient,
                                                            host: str):
        assert client.get("/healthz", headers={"host": host}).status_code == 200

    def test_a_probe_by_the_address_the_connection_arrived_on_is_ours(self, app: FastAPI):
        """A Kubernetes probe sends the pod IP as Host; an IP literal cannot be rebound."""
        probe = {"host": "10.1.2.3:8080"}
        with TestClient(app, base_url="http://10.1.2.3:8080") as on_pod_ip:
            assert on_pod_ip.get("/healthz", headers=probe).status_code == 200
        with TestClient(app, base_url="http://10.9.9.9:8080") as elsewhere:
            assert elsewhere.get("/healthz", headers=probe).status_code == 421

    def test_a_simple_cross_site_post_is_refused_in_the_open_mode(self, client: TestClient,
                                                                  pipeline: Pipeline):
        """What a page anywhere can make a browser send with no preflight."""
        body = jsonl(snapshot(penalty_count=1))
        for headers in ({"content-type": "text/plain"},
                        {"content-type": "application/x-www-form-urlencoded"},
                        {"content-type": "multipart/form-data; boundary=x"}, {}):
            response = client.post("/v1/snapshots", content=body, headers=headers)
            assert response.status_code == 403, headers
            assert "Content-Type" in response.json()["detail"]
        assert stored(pipeline) == 0

    def test_a_post_the_api_reads_passes_in_the_open_mode(self, client: TestClient,
                                                          pipeline: Pipeline):
        csv = b"store,platform,period,metrics.penalty_count\ns3,amazon,2026-10,0\n"
        assert client.post("/v1/snapshots", json=snapshot(store="s1")).status_code == 200
        assert client.post("/v1/snapshots", headers=JSONL,
                           content=jsonl(snapshot(store="s2"))).status_code == 200
        assert client.post("/v1/snapshots", headers={"content-type": "text/csv"},
                           content=csv).status_code == 200
        same_site = client.post("/v1/snapshots", content=jsonl(snapshot(store="s4")),
                                headers={"content-type": "text/plain", "origin": LOCAL})
        assert same_site.status_code == 200
        assert stored(pipeline) == 4

    def test_a_delete_needs_no_content_type(self, client: TestClient):
        """A browser preflights every DELETE, so the open mode lets curl -X DELETE through."""
        assert client.delete("/v1/silences/99").status_code == 404

    @pytest.mark.parametrize("origin", ["https://evil.example", "null",
                                        "http://localhost.evil.example"])
    def test_a_cross_site_origin_is_refused_in_every_mode(self, client: TestClient,
                                                          pipeline: Pipeline, origin: str):
        open_mode = client.post("/v1/snapshots", json=snapshot(), headers={"origin": origin})
        assert open_mode.status_code == 403 and "another site" in open_mode.json()["detail"]
        _, clear = create_token(pipeline.db, "feed", Role.ADMIN)
        with_token = client.post("/v1/snapshots", json=snapshot(),
                                 headers={"origin": origin, "authorization": f"Bearer {clear}"})
        assert with_token.status_code == 403
        assert stored(pipeline) == 0

    def test_the_public_url_is_a_same_site_origin(self, client: TestClient):
        response = client.post("/v1/snapshots", json=snapshot(),
                               headers={"host": "kpi.example.com",
                                        "origin": "https://kpi.example.com"})
        assert response.status_code == 200

    def test_with_a_token_the_content_type_rule_gives_way_to_the_token(
            self, client: TestClient, pipeline: Pipeline):
        """No browser sends an Authorization header cross-site without a preflight."""
        _, clear = create_token(pipeline.db, "feed", Role.INGEST)
        body = jsonl(snapshot())
        anonymous = client.post("/v1/snapshots", content=body,
                                headers={"content-type": "text/plain"})
        assert anonymous.status_code == 401
        fed = client.post("/v1/snapshots", content=body,
                          headers={"content-type": "text/plain",
                                   "authorization": f"Bearer {clear}"})
        assert fed.status_code == 200


class TestHostPolicy:
    @pytest.mark.parametrize(("header", "name"), [
        ("LocalHost:8080", "localhost"), ("[::1]:8080", "::1"), ("[::1]", "::1"),
        ("kpi.example.com.", "kpi.example.com"), ("10.0.0.1", "10.0.0.1")])
    def test_the_host_part_of_a_header(self, header: str, name: str):
        assert host_name(header) == name

    def test_the_bound_address_is_ours_unless_a_wildcard(self):
        bound = HostPolicy(bound="10.0.0.5", public_url=None, allowed=())
        assert bound.allows("10.0.0.5:8080") and not bound.allows("10.0.0.6")
        wildcard = HostPolicy(bound="0.0.0.0", public_url=None, allowed=())
        assert not wildcard.allows("0.0.0.0") and not wildcard.allows("10.0.0.5")
        assert wildcard.allows("10.0.0.5", local_address="::ffff:10.0.0.5")

    def test_nothing_else_is(self):
        policy = HostPolicy(bound="127.0.0.1", public_url="https://kpi.example.com",
                            allowed=("*.corp.example",))
        assert policy.allows("a.corp.example") and not policy.allows("corp.example.evil")
        assert not policy.allows(None) and not policy.allows("") and not policy.allows("[::1")
        assert not policy.allows("kpi.example.com.evil.example")


class TestBoundedBodies:
    def test_a_declared_length_over_the_limit_is_refused_before_reading(self, app: FastAPI):
        status, pulled = asyncio.run(_post(app, chunks=0, declared=LIMIT + 1))
        assert status == 413 and pulled == 0

    def test_a_chunked_body_over_the_limit_is_read_only_up_to_it(self, app: FastAPI,
                                                                 pipeline: Pipeline):
        """300 MB in used to be read whole; now reading stops at the limit."""
        chunk = 16_384
        status, pulled = asyncio.run(_post(app, chunks=3_000, chunk=chunk))  # 49 MB offered
        assert status == 413
        assert pulled * chunk <= LIMIT + chunk
        assert stored(pipeline) == 0

    @pytest.mark.parametrize("path", ["/v1/snapshots", "/v1/sources/shopee?store=s",
                                      "/v1/silences", "/v1/incidents/1/ack"])
    def test_the_refusal_names_the_limit_and_the_setting(self, client: TestClient, path: str):
        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b" " * 10_000
        response = client.post(path, content=chunks(), headers=JSON)
        assert response.status_code == 413
        assert response.headers["connection"] == "close"
        assert f"{LIMIT} bytes" in response.json()["detail"]
        assert "max_body_bytes" in response.json()["detail"]

    def test_a_form_body_is_bounded_too(self, client: TestClient):
        response = client.post("/login", headers={"origin": LOCAL},
                               data={"token": "x" * (LIMIT + 1)})
        assert response.status_code == 413

    def test_the_real_daemon_stops_reading_a_chunked_upload(self, tmp_path: Path):
        """Over a socket: the daemon answers 413 while the client is still sending, and
        what it accepted from the socket stays near the limit (kernel buffers aside)."""
        with running(tmp_path, {"max_body_bytes": 1_000_000}) as daemon:
            sent, answer = _chunked_upload(daemon.port, total=200_000_000)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 50_000_000  # the daemon stopped reading and closed (main: all 200 MB)


async def _post(app: FastAPI, *, chunks: int, chunk: int = 16_384,
                declared: int | None = None) -> tuple[int, int]:
    """POST ``chunks`` pieces through the ASGI app; (status, pieces the app pulled)."""
    pulled = 0
    statuses: list[int] = []
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json")]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                             "method": "POST", "scheme": "http", "path": "/v1/snapshots",
                             "raw_path": b"/v1/snapshots", "query_string": b"", "root_path": "",
                             "headers": headers, "client": ("127.0.0.1", 5000),
                             "server": ("127.0.0.1", 8080)}

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b" " * chunk, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0], pulled


def _chunked_upload(port: int, *, total: int) -> tuple[int, bytes]:
    """Send up to ``total`` bytes chunked until the daemon answers or stops reading."""
    piece = b" " * 65_536
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.settimeout(2)
        try:
            while sent < total:
                sock.sendall(frame)
                sent += len(piece)
        except (TimeoutError, ConnectionError):
            pass  # the daemon answered and closed, or stopped reading
        sock.settimeout(10)
        answer = b""
        try:
            while not answer.endswith(b"}") and (data := sock.recv(65_536)):
                answer += data
        except (TimeoutError, ConnectionError):
            pass
    return sent, answer
