"""The container image, built and started, where a Docker daemon is available.

Skipped with the reason when there is none (the static checks of the Dockerfile are in
test_deploy_kit.py). The image starts with its own defaults as the unprivileged user,
answers /healthz, turns a snapshot into an incident, renders the console message from
the packaged templates, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT
from tests.daemon_harness import free_port

pytestmark = [pytest.mark.installed, pytest.mark.timeout(1200)]


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    info = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    if info.returncode != 0:
        return f"no Docker daemon reachable: {info.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    problem = _docker_problem()
    if problem:
        pytest.skip(problem)
    tag = f"kpi-watch:test-{uuid.uuid4().hex[:8]}"
    built = docker("build", "-f", str(ROOT / "deploy" / "Dockerfile"), "-t", tag, str(ROOT),
                   timeout=1100)
    assert built.returncode == 0, built.stderr[-3000:]
    yield tag
    docker("image", "rm", "-f", tag)


def test_the_image_starts_serves_renders_and_stops(image: str) -> None:
    port = free_port()
    name = f"kpi-watch-test-{uuid.uuid4().hex[:8]}"
    started = docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", image)
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, docker("logs", name).stderr[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
        # bound beyond loopback, the API wants a token
        created = docker("exec", name, "watcher", "tokens", "create", "smoke", "--role", "admin")
        token = created.stdout.strip().splitlines()[-1]
        answer = httpx.post(f"{url}/v1/snapshots", timeout=30,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"store": "amz-us-01", "platform": "amazon",
                                  "period": "2026-11", "metrics": {"account_health_score": 80}})
        assert answer.status_code == 200 and answer.json()["incidents_opened"] == 1
        deadline = time.monotonic() + 30
        while "━━" not in (logs := docker("logs", name)).stdout:
            assert time.monotonic() < deadline, logs.stdout + logs.stderr[-3000:]
            time.sleep(0.5)
        assert "amz-us-01" in logs.stdout
        first = next(json.loads(line) for line in logs.stderr.splitlines()
                     if '"daemon_started"' in line)
        assert first["templates"].startswith("/opt/venv/lib/")
        assert first["database"] == "sqlite:////var/lib/kpi-watch/watcher.db"
    finally:
        docker("stop", "-t", "30", name, timeout=60)
        state = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        docker("rm", "-f", name)
    assert state == "0"
