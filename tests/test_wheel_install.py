"""kpi-watch as a user installs it: a wheel in a fresh virtualenv, run from an empty folder.

Nothing of the repository is on the path: the wheel is built from the tree, installed
with its dependencies (from the configured package index, with constraints.txt) into a
new venv, and the daemon runs there from an empty temporary folder with no config, so
the rule pack and the templates can only come from the package. It takes about half a
minute (most of it the install). Skip it locally with ``-m "not installed"``; without a
package index it skips with the reason, unless ``WATCHER_REQUIRE_INSTALLED=1`` (set by
CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, unavailable
from tests.daemon_harness import free_port

pytestmark = [pytest.mark.installed, pytest.mark.timeout(300)]


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # from a copy without build artefacts: setuptools reuses a stale build/ folder, which
    # would put modules and migrations that no longer exist into the wheel
    source = tmp_path_factory.mktemp("source") / "kpi-watch"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "test-artifacts",
        ".mypy_cache", ".ruff_cache", ".pytest_cache", "inbox", "watcher.db*"))
    built = run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", source, "-w", out)
    if built.returncode != 0:
        unavailable(f"cannot build the wheel: {built.stderr[-1500:]}",
                    "WATCHER_REQUIRE_INSTALLED")
    (found,) = out.glob("kpi_watch-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("venv")
    assert run(sys.executable, "-m", "venv", folder).returncode == 0
    installed = run(folder / "bin" / "pip", "install", "-q", "-c", ROOT / "constraints.txt",
                    wheel, cwd=folder)
    if installed.returncode != 0:
        unavailable(f"cannot install the wheel's dependencies: {installed.stderr[-1500:]}",
                    "WATCHER_REQUIRE_INSTALLED")
    return folder


@pytest.fixture
def user(tmp_path: Path, venv: Path) -> Iterator[dict[str, str]]:
    """The environment of a user of that venv: nothing of the clone, a data folder of
    their own, no kpi-watch variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WATCHER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", HOME=str(tmp_path / "home"),
               XDG_DATA_HOME=str(tmp_path / "home" / "data"), PYTHONUNBUFFERED="1",
               NO_COLOR="1")
    yield env


class TestTheWheel:
    def test_holds_the_rule_pack_templates_mappings_and_examples_as_files(self, wheel: Path):
        names = set(zipfile.ZipFile(wheel).namelist())
        for needed in ("watcher/defaults/rules/default/pip.yaml",
                       "watcher/defaults/rules/default/tests/pip.yaml",
                       "watcher/defaults/templates/console.j2",
                       "watcher/defaults/templates/strings.yaml",
                       "watcher/defaults/mappings/saihu.yaml",
                       "watcher/defaults/examples/snapshots.jsonl",
                       "watcher/defaults/init/config.yaml",
                       "watcher/store/migrations/env.py",
                       "watcher/web/templates/base.html"):
            assert needed in names, needed
        assert not any(n.startswith(("tests/", "rules/", "channels/")) for n in names)
        for link, folder in (("rules", "rules"), ("templates", "channels/templates"),
                             ("mappings", "mappings"), ("examples", "examples")):
            source = ROOT / folder
            expected = {f"watcher/defaults/{link}/{p.relative_to(source).as_posix()}"
                        for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
            assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
        assert wheel.stat().st_size < 1_000_000


class TestFromAnEmptyFolder:
    def test_init_run_ingest_notify_show_list_and_stop(self, venv: Path, user: dict[str, str],
                                                       tmp_path: Path) -> None:
        watcher = venv / "bin" / "watcher"
        project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
        project.mkdir()
        elsewhere.mkdir()

        done = run(watcher, "init", cwd=project, env=user)
        assert done.returncode == 0, done.stderr
        assert (project / "rules" / "default" / "tests").is_dir()
        checked = run(watcher, "rules", "test", "--config", "config.yaml", cwd=project, env=user)
        assert checked.returncode == 0 and " 0 failed" in checked.stdout, checked.stdout

        port = free_port()
        out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        daemon = subprocess.Popen(
            [str(watcher), "--log-json", "run", "--port", str(port)], cwd=project, env=user,
            stdout=out.open("w"), stderr=err.open("w"))
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert daemon.poll() is None, err.read_text()[-3000:]
                assert time.monotonic() < deadline, err.read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            started = next(json.loads(line) for line in err.read_text().splitlines()
                           if '"daemon_started"' in line)
            assert "./config.yaml is not read unless named" in err.read_text()
            site = str(venv / "lib")
            assert started["rules"].startswith(site), started  # the packaged pack
            assert started["templates"].startswith(site), started
            data = Path(user["XDG_DATA_HOME"]) / "kpi-watch" / "watcher.db"
            assert started["database"] == f"sqlite:///{data}"

            answer = httpx.post(f"{url}/v1/snapshots", timeout=30, json={
                "store": "amz-us-01", "platform": "amazon", "period": "2026-11",
                "operator": "li.wei", "metrics": {"account_health_score": 80}})
            assert answer.status_code == 200 and answer.json()["incidents_opened"] == 1

            deadline = time.monotonic() + 20
            while "amz-us-01" not in out.read_text():
                assert time.monotonic() < deadline, out.read_text() + err.read_text()[-2000:]
                time.sleep(0.1)
            message = out.read_text()
            assert "━━" in message and "80" in message  # console.j2, as packaged

            page = httpx.get(f"{url}/", timeout=10)
            assert page.status_code == 200 and "amz-us-01" in page.text
            assert "account-health-low" in page.text or "Account health" in page.text

            listed = run(watcher, "incidents", "list", "--format", "json", cwd=elsewhere,
                         env=user)
            assert listed.returncode == 0, listed.stderr
            (incident,) = json.loads(listed.stdout)["incidents"]
            assert incident["rule"] == "account-health-low"
            assert incident["store"] == "amz-us-01"
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=30)
        assert code == 0, err.read_text()[-3000:]
        assert not (project / "watcher.db").exists() and not (elsewhere / "watcher.db").exists()
