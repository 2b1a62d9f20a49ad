"""Rule hot reload: edited rule files take effect without a restart.

The rule folder is polled for changed modification times (no inotify
dependency; rule edits are rare and a second of delay is fine). A pack that
fails to load is refused with its file and line in the log, and the rules
already running stay in force. The new engine is built on the engine thread,
the only thread that touches durable-rules. The targets file is reloaded the
same way: a broken edit is refused with file and line, the previous targets
stay in force. So is the roster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import structlog

from watcher.assessment.roster import load_roster
from watcher.assessment.targets import load_targets
from watcher.errors import ConfigError
from watcher.observability import record_rule_reload
from watcher.pipeline import Pipeline
from watcher.platforms import Platforms
from watcher.rules import trial
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack, rule_files
from watcher.rules.status import ReloadOutcome, RulesStatus
from watcher.store.database import utcnow

log = structlog.get_logger(__name__)


def _stamp(path: Path) -> tuple[tuple[str, float, int], ...]:
    try:
        files = rule_files(path)
    except ConfigError:
        return ()
    stamps = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        stamps.append((str(file), stat.st_mtime, stat.st_size))
    return tuple(stamps)


class _Watcher:
    """Polls a stamp (modification times and sizes); on a change, ``reload`` runs.

    A reload that fails is logged and the previous version stays in force; the
    next change is tried again.
    """

    name = "reload"

    def __init__(self, stamp: Callable[[], object]) -> None:
        self._stamp = stamp
        self._seen = stamp()

    def check(self) -> bool:
        """Reload when the stamp changed; True when a new version took effect."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return self.reload()

    def reload(self) -> bool:
        raise NotImplementedError

    def run_forever(self, stop: threading.Event, poll_seconds: float) -> None:
        while not stop.wait(poll_seconds):
            try:
                self.check()
            except Exception:
                log.exception(f"{self.name}_failed")


class RuleReloader(_Watcher):
    """Loads and trial-compiles a changed pack on its own thread (a child process compiles
    it first, ``watcher.rules.trial``), then builds the engine on the engine thread: a pack
    that would stall durable-rules is refused before the engine thread ever sees it."""

    name = "rules_reload"

    def __init__(self, path: Path, pipeline: Pipeline, engine_thread: Executor,
                 on_reload: Callable[[str], None] = lambda version: None,
                 status: RulesStatus | None = None,
                 platforms: Platforms | None = None) -> None:
        self.path = path
        self.platforms = platforms
        self.pipeline = pipeline
        self.engine_thread = engine_thread
        self.on_reload = on_reload
        self.status = status or RulesStatus()
        super().__init__(lambda: _stamp(path))

    def reload(self) -> bool:
        try:
            pack = load_pack(self.path, self.platforms)
            trial.check(pack)
            engine = self.engine_thread.submit(RuleEngine, pack).result()
        except ConfigError as exc:
            return self._refuse(exc.reason, exc.file, exc.line)
        except Exception as exc:
            return self._refuse(f"cannot compile: {exc}", None, None)
        if engine.version == self.pipeline.engine.version:
            return False
        self.engine_thread.submit(self.pipeline.use_engine, engine).result()
        log.info("rules_reloaded", version=engine.version, rules=len(pack.rules))
        self._record(ReloadOutcome(utcnow(), True, engine.version))
        self.on_reload(engine.version)
        return True

    def _refuse(self, error: str, file: str | None, line: int | None) -> bool:
        keeping = self.pipeline.engine.version
        log.error("rules_reload_refused", error=error, file=file, line=line,
                  keeping_version=keeping)
        self._record(ReloadOutcome(utcnow(), False, keeping, error, file, line))
        return False

    def _record(self, outcome: ReloadOutcome) -> None:
        self.status.last_reload = outcome
        record_rule_reload(outcome.accepted, outcome.version)


def _file_stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size


class FileReloader(_Watcher):
    """Reloads one file when it changes; the new version is swapped in on the engine
    thread, between batches, so one batch never mixes two versions of the file. A
    broken edit is refused with file, line and key, and the previous version stays."""

    def __init__(self, path: Path, engine_thread: Executor, load: Callable[[Path], Any],
                 use: Callable[[Any], None], size: Callable[[], int]) -> None:
        self.path = path
        self.engine_thread = engine_thread
        self._load, self._use, self._size = load, use, size
        super().__init__(lambda: _file_stamp(path))

    def reload(self) -> bool:
        try:
            loaded = self._load(self.path)
        except ConfigError as exc:
            log.error(f"{self.name}_refused", error=str(exc), file=exc.file, line=exc.line,
                      key=exc.key, keeping_entries=self._size())
            return False
        self.engine_thread.submit(self._use, loaded).result()
        log.info(f"{self.name}ed", file=str(self.path))
        return True


class TargetsReloader(FileReloader):
    name = "targets_reload"

    def __init__(self, path: Path, pipeline: Pipeline, engine_thread: Executor) -> None:
        self.pipeline = pipeline
        super().__init__(path, engine_thread, load_targets, pipeline.use_targets,
                         lambda: len(pipeline.targets.entries))


class RosterReloader(FileReloader):
    name = "roster_reload"

    def __init__(self, path: Path, pipeline: Pipeline, engine_thread: Executor) -> None:
        self.pipeline = pipeline
        super().__init__(path, engine_thread, load_roster, pipeline.use_roster,
                         lambda: len(pipeline.roster.people))
