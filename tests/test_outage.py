"""A database that is down at start or goes away meanwhile (issue 14, item 8).

The daemon says so in one line (which database, its URL masked, the reason), retries
with backoff, stops cleanly on SIGTERM while waiting, and says once when it is back;
its loops do not log every half second meanwhile, and /readyz says not ready.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from tests.conftest import ROOT, jsonl, snapshot
from tests.daemon_harness import free_port
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from tests.test_faults import wait_until
from watcher.config import load_settings
from watcher.dispatcher import Dispatcher
from watcher.outage import LONGEST_RETRY_SECONDS, Outage, masked
from watcher.store import Database, open_database


class Watcher:
    """``watcher run`` as a subprocess that may not come up (the harness waits for it)."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.port = free_port()
        self.log = folder / "daemon.log"
        config = folder / "config.yaml"
        config.write_text(json.dumps({
            "database_url": database_url, "rules": str(ROOT / "rules"),
            "drop_folder": str(folder / "inbox"), "port": self.port,
            "dispatch_poll_seconds": 0.1}), encoding="utf-8")
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        environment.pop("WATCHER_CONFIG", None)
        environment.pop("WATCHER_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher.cli", "--log-json", "run", "--config", str(config)],
            cwd=folder, env=environment, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                found.append({"event": "(not JSON)", "text": line})
        return found

    def events(self, event: str, loop: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.lines()
                if e.get("event") == event and (loop is None or e.get("loop") == loop)]

    def status(self, path: str) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code
        except httpx.HTTPError:
            return None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Watcher]]:
    daemons: list[Watcher] = []
    yield daemons
    for daemon in daemons:
        daemon.kill()


class TestDatabaseDownAtStart:
    def test_one_clear_line_then_a_clean_exit_on_sigterm(self, tmp_path: Path,
                                                         started: list[Watcher]):
        closed = free_port()  # nothing listens there
        url = f"postgresql+psycopg://kpiwatch:s3cret-pw@127.0.0.1:{closed}/kpiwatch"
        daemon = Watcher(tmp_path, url)
        started.append(daemon)
        wait_until(lambda: daemon.events("database_unavailable"), 30, "the outage line")
        time.sleep(4)  # retries after 0.5, 1 and 2 s meanwhile
        [line] = daemon.events("database_unavailable")
        assert line["loop"] == "start" and line["level"] == "error"
        assert f"127.0.0.1:{closed}/kpiwatch" in line["database"]
        assert "Connection refused" in line["reason"]
        text = daemon.log.read_text()
        assert "s3cret-pw" not in text and "Traceback" not in text
        assert daemon.status("/healthz") is None  # not serving while it waits
        assert daemon.stop() == 0
        assert daemon.events("daemon_stopped")


@pytest.mark.postgres
class TestOutageOfAPrivateCluster:
    @pytest.fixture
    def database(self) -> Iterator[PrivatePostgres]:
        yield from private_postgres()

    def test_start_waits_for_it_then_an_outage_is_logged_once_and_its_end_once(
            self, tmp_path: Path, database: PrivatePostgres, started: list[Watcher]):
        open_database(database.url, auto_upgrade=True).dispose()
        database.stop()
        daemon = Watcher(tmp_path, database.url)
        started.append(daemon)
        wait_until(lambda: daemon.events("database_unavailable", "start"), 30, "outage line")
        database.start()
        wait_until(lambda: daemon.status("/readyz") == 200, 40, "ready once it is up")
        assert len(daemon.events("database_available", "start")) == 1

        database.stop()
        wait_until(lambda: daemon.status("/readyz") == 503, 10, "not ready while down")
        wait_until(lambda: daemon.events("database_unavailable", "dispatcher"), 10,
                   "the dispatcher's outage line")
        (tmp_path / "inbox" / "late.jsonl").write_bytes(jsonl(snapshot(store="late")))
        time.sleep(4)  # at dispatch_poll_seconds=0.1 this used to be 40 tracebacks
        for loop in ("dispatcher", "drop-folder"):
            assert len(daemon.events("database_unavailable", loop)) == 1, loop
        assert not daemon.events("dispatch_failed")
        assert not daemon.events("drop_folder_scan_failed")
        assert "Traceback" not in daemon.log.read_text()
        assert (tmp_path / "inbox" / "late.jsonl").exists()  # waits, neither lost nor rejected

        database.start()
        wait_until(lambda: daemon.events("database_available", "dispatcher"), 20,
                   "the dispatcher's recovery line")
        wait_until(lambda: daemon.status("/readyz") == 200, 10, "ready again")
        wait_until(lambda: list((tmp_path / "inbox" / "processed").glob("*late.jsonl")), 20,
                   "the waiting file ingested")
        assert len(daemon.events("database_available", "dispatcher")) == 1
        assert len(daemon.events("database_available", "drop-folder")) == 1
        assert daemon.stop() == 0


class TestCommands:
    def test_a_command_says_the_database_is_unavailable_in_one_line(
            self, env: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
        monkeypatch.setenv("WATCHER_DATABASE_URL",
                           f"postgresql+psycopg://u:pw@127.0.0.1:{free_port()}/x")
        code, out = watcher("incidents", "list")
        assert code == 1 and "Traceback" not in out
        assert out.strip().startswith("error: the database is unavailable: connection failed")
        assert "Connection refused" in out and "pw" not in out


class TestLoops:
    def test_the_dispatcher_on_a_missing_sqlite_volume_logs_once_and_recovers(
            self, tmp_path: Path):
        """The SQLite file's folder is not there (an unmounted volume), then it is."""
        volume = tmp_path / "volume"
        url = f"sqlite:///{volume / 'watcher.db'}"
        fast = load_settings(env={}, database_url=url, dispatch_poll_seconds=0.02)
        dispatcher = Dispatcher(Database(create_engine(url), url), {}, fast)
        stop = threading.Event()
        with capture_logs() as logs:
            loop = threading.Thread(target=dispatcher.run_forever, args=(stop,))
            loop.start()
            time.sleep(2)  # 100 polls' worth
            down = [e for e in logs if e["event"] == "database_unavailable"]
            volume.mkdir()
            open_database(url).dispose()  # the volume is back, with its schema
            wait_until(lambda: any(e["event"] == "database_available" for e in logs), 15,
                       "the recovery line")
            stop.set()
            loop.join(timeout=10)
        assert [(e["loop"], "unable to open database file" in e["reason"]) for e in down] \
            == [("dispatcher", True)]
        assert not [e for e in logs if e["event"] == "dispatch_failed"]
        assert sum(e["event"] == "database_available" for e in logs) == 1
        assert not loop.is_alive()


class TestOutage:
    def test_backoff_doubles_to_its_cap_and_each_edge_is_logged_once(self):
        now = [100.0]
        outage = Outage("timers", "postgresql+psycopg://u:pw@db:5432/k", clock=lambda: now[0])
        refused = OperationalError("SELECT 1", {}, Exception("connection refused\ndetail"))
        with capture_logs() as logs:
            delays = [outage.failed(refused) for _ in range(8)]
            now[0] += 42
            outage.ok()
            outage.ok()
        assert delays == [0.5, 1, 2, 4, 8, LONGEST_RETRY_SECONDS, LONGEST_RETRY_SECONDS,
                          LONGEST_RETRY_SECONDS]
        assert [e["event"] for e in logs] == ["database_unavailable", "database_available"]
        assert logs[0]["reason"] == "connection refused"
        assert "pw" not in logs[0]["database"] and "db:5432/k" in logs[0]["database"]
        assert logs[1]["down_seconds"] == 42 and logs[1]["attempts"] == 8
        assert outage.failed(refused) == 0.5  # a new outage starts over

    def test_a_url_is_masked(self):
        assert "pw" not in masked("postgresql://u:pw@h/d") and masked("::") != "::"
