"""Run the real daemon as a subprocess, and a loopback webhook that records what it gets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import JSON, ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webhook:
    """A real HTTP server on loopback recording each POST as ``{path, headers, json}``.

    ``fail`` makes it answer 500 that many times; ``listening=False`` reserves the port
    without serving yet (a channel that is down), until ``start()``; ``delay`` holds
    each answer that many seconds after the request was recorded (a slow channel).
    """

    def __init__(self, *, listening: bool = True) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.fail = 0
        self.delay = 0.0
        self._server: ThreadingHTTPServer | None = None
        if listening:
            self.start()

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if hook.fail:
                    hook.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    payload: Any = json.loads(body or b"{}")
                except ValueError:
                    payload = body.decode(errors="replace")
                hook.received.append({"path": self.path, "headers": dict(self.headers),
                                      "json": payload})
                time.sleep(hook.delay)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received) < count:
            time.sleep(0.05)
        return self.received


class Daemon:
    def __init__(self, folder: Path, config: dict[str, Any],
                 env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.env = env or {}
        self.port = free_port()
        self.config = {"database_url": f"sqlite:///{folder / 'watcher.db'}",
                       "rules": str(ROOT / "rules"), "drop_folder": str(folder / "inbox"),
                       "port": self.port, "dispatch_poll_seconds": 0.1,
                       "drop_poll_seconds": 0.2, **config}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> Daemon:
        path = self.folder / "config.yaml"
        path.write_text(json.dumps(self.config), encoding="utf-8")  # JSON is YAML
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("WATCHER_CONFIG", None)
        env.pop("WATCHER_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher.cli", "--log-json", "run", "--config", str(path),
             *extra], cwd=self.folder, env=env, stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"daemon did not start: {self.log.read_text()[-3000:]}")

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/snapshots", content=body, headers=JSON, timeout=30)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running(folder: Path, config: dict[str, Any], *extra: str,
            env: dict[str, str] | None = None) -> Iterator[Daemon]:
    daemon = Daemon(folder, config, env).start(*extra)
    try:
        yield daemon
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def alerting_config(hook: Webhook) -> dict[str, Any]:
    """Config sending compliance alerts to ``hook`` (json:// posts the alert itself)."""
    return {"channels": {"hook": {"urls": [f"json://127.0.0.1:{hook.port}/compliance"]}},
            "routes": [{"match": {"audience": "compliance"}, "channels": ["hook"]}]}


def store_of(notification: dict[str, Any]) -> str:
    """The store an alert received by the webhook was about."""
    return str(notification["json"]["alert"]["store"])
