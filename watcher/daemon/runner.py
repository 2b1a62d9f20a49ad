"""``watcher run``: the daemon's threads and their orderly shutdown.

Threads: uvicorn's event loop (main thread), the engine thread (the only one
that evaluates rules or writes snapshots), the drop-folder poller and the
dispatcher. SIGTERM/SIGINT make uvicorn stop accepting requests and finish
the ones in flight; then the poller and dispatcher are stopped, the engine
thread drains, and the process exits 0.
"""

from __future__ import annotations

import errno
import shutil
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import structlog
import uvicorn
from fastapi import FastAPI

from watcher import monthly, weekly
from watcher.auth import Authenticator
from watcher.bus.nats import NatsSource
from watcher.channels import build_channels
from watcher.channels.render import DEFAULT_TEMPLATES
from watcher.config import Settings
from watcher.daemon.coalesce import Coalescer
from watcher.daemon.dropfolder import DropFolder
from watcher.daemon.http import create_app
from watcher.daemon.reload import RosterReloader, RuleReloader, TargetsReloader
from watcher.dispatcher import Dispatcher
from watcher.errors import PortInUse
from watcher.limits import KEPT_POLL_SECONDS, KEPT_REFRESH_GAP_SECONDS
from watcher.observability import show_rule_pack
from watcher.outage import DATABASE_DOWN, Outage, when_available
from watcher.pipeline import IngestReport
from watcher.retention import Retention
from watcher.runtime import Runtime
from watcher.sources import catalog_for
from watcher.sources.pollers import build_pollers, start_pollers
from watcher.store import open_database
from watcher.store.refresh_tokens import StoredRefreshTokens
from watcher.timers import Timers
from watcher.validation import RawRecord, Rejection

log = structlog.get_logger(__name__)


class Daemon:
    def __init__(self, runtime: Runtime, *, examples: Path | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.examples = examples
        self.stop = threading.Event()
        self.engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self.coalescer = Coalescer(lambda requests: runtime.pipeline.ingest_many(requests),
                                   self.engine_thread)
        channels = build_channels(self.settings, templates=self.settings.templates)
        self.dispatcher = Dispatcher(runtime.db, channels, self.settings)
        self.threads: list[threading.Thread] = []
        self.timers = Timers(runtime.db, self.settings, wake=self.dispatcher.wake.set,
                             roster=lambda: runtime.pipeline.roster,
                             monthly=lambda now: monthly.send_due(runtime, now),
                             weekly=lambda now: weekly.send_due(runtime, now),
                             pack=lambda: runtime.pipeline.engine.pack)
        self.retention = Retention(runtime.db, self.settings.retention)
        self.reloader = RuleReloader(Path(self.settings.rules), runtime.pipeline,
                                     self.engine_thread, status=runtime.rules_status,
                                     platforms=runtime.platforms)
        show_rule_pack(runtime.pipeline.engine.version)
        self.targets_reloader = (
            TargetsReloader(Path(self.settings.targets), runtime.pipeline, self.engine_thread)
            if self.settings.targets else None)
        self.roster_reloader = (
            RosterReloader(Path(self.settings.roster), runtime.pipeline, self.engine_thread)
            if self.settings.roster else None)
        self.sources = catalog_for(self.settings)
        self.kept_due = threading.Event()
        runtime.pipeline.on_commit.append(self.kept_due.set)
        self.drop = DropFolder(Path(self.settings.drop_folder), self._ingest_on_engine,
                               max_bytes=self.settings.max_file_bytes, sources=self.sources)
        self.pollers = build_pollers(self.settings, self._ingest_on_engine, stop=self.stop,
                                     tokens=StoredRefreshTokens(runtime.db))
        self.bus = (NatsSource(self.settings.nats, self._ingest_on_engine,
                               max_bytes=self.settings.max_body_bytes)
                    if self.settings.nats else None)

    def _ingest_on_engine(self, records: Iterable[RawRecord | Rejection], source: str
                          ) -> IngestReport:
        report = self.coalescer.ingest(records, source).result()
        if report.opened or report.resolved:
            self.dispatcher.wake.set()
        return report

    def start_workers(self) -> None:
        if self.examples is not None:
            self._drop_examples(self.examples)
        for name, target in (
            ("dispatcher", lambda: self.dispatcher.run_forever(self.stop)),
            ("drop-folder", lambda: self.drop.run_forever(self.stop,
                                                          self.settings.drop_poll_seconds)),
            ("timers", lambda: self.timers.run_forever(self.stop)),
            ("retention", lambda: self.retention.run_forever(self.stop)),
            ("rule-reloader", lambda: self.reloader.run_forever(
                self.stop, self.settings.rules_poll_seconds)),
            ("targets-reloader", self._reload_targets),
            ("roster-reloader", self._reload_roster),
            ("nats", self._consume_bus),
            ("kept-views", self._refresh_kept),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        self.threads += start_pollers(self.pollers, self.stop)
        if self._open_mode():
            log.warning("api_open", message="NO API TOKEN EXISTS: the API and page are open to "
                        "anyone on this machine. Bound to loopback only; create a token with "
                        "'watcher tokens create NAME --role admin' to require tokens.")
        log.info("daemon_started", host=self.settings.host, port=self.settings.port,
                 drop_folder=str(Path(self.settings.drop_folder).resolve()),
                 rules=str(Path(self.settings.rules).resolve()),
                 rule_version=self.runtime.pipeline.engine.version,
                 templates=str(Path(self.settings.templates or DEFAULT_TEMPLATES).resolve()),
                 mappings=(str(Path(self.settings.mappings).resolve())
                           if self.settings.mappings else None),
                 database=self.runtime.db.engine.url.render_as_string(hide_password=True))

    def _open_mode(self) -> bool:
        try:
            return Authenticator(self.runtime.db, self.settings.host).open_mode()
        except DATABASE_DOWN:  # gone again since start: the loops say so
            return False

    def _reload_targets(self) -> None:
        if self.targets_reloader is not None:
            self.targets_reloader.run_forever(self.stop, self.settings.rules_poll_seconds)

    def _reload_roster(self) -> None:
        if self.roster_reloader is not None:
            self.roster_reloader.run_forever(self.stop, self.settings.rules_poll_seconds)

    def _refresh_kept(self) -> None:
        refresh_kept_forever(self.runtime, self.stop, self.kept_due)

    def _consume_bus(self) -> None:
        if self.bus is not None:
            self.bus.run_forever(self.stop)

    def stop_workers(self) -> None:
        log.info("daemon_stopping")
        self.stop.set()
        self.dispatcher.wake.set()
        self.kept_due.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.engine_thread.shutdown(wait=True)
        self.runtime.close()
        log.info("daemon_stopped")

    def _drop_examples(self, folder: Path) -> None:
        for path in sorted(folder.glob("*")):
            if path.suffix in (".jsonl", ".json", ".csv") and not path.name.startswith("bad"):
                shutil.copy(path, Path(self.settings.drop_folder) / path.name)

    def app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            self.start_workers()
            try:
                yield
            finally:
                self.stop_workers()

        app = create_app(self.runtime, self.coalescer.ingest_async, self.dispatcher.wake.set,
                         self.sources)
        app.router.lifespan_context = lifespan
        return app

    def serve(self, sock: socket.socket | None = None) -> None:
        sock = sock or listen(self.settings.host, self.settings.port)
        config = uvicorn.Config(self.app(), host=self.settings.host, port=self.settings.port,
                                log_config=None, access_log=False, lifespan="on")
        _Server(config).run(sockets=[sock])


def refresh_kept_forever(runtime: Runtime, stop: threading.Event, due: threading.Event,
                         poll: float = KEPT_POLL_SECONDS) -> None:
    """The board and team cards rebuilt at start, after each batch (``due``: only what it
    touched) and after other replicas' batches (every ``poll`` seconds), so that a page
    never waits for a build."""
    while not stop.is_set():
        due.clear()
        try:
            runtime.refresh_kept()
        except Exception:  # the database away, a bad card: the next turn tries again
            log.warning("kept_views_refresh_failed", exc_info=True)
        # at most one refresh a gap while batches keep coming (200 posts a second would
        # otherwise keep this thread refreshing, and holding the GIL, between commits); a
        # request meanwhile catches up itself
        if stop.wait(KEPT_REFRESH_GAP_SECONDS):
            break
        due.wait(poll)


def listen(host: str, port: int) -> socket.socket:
    """The daemon's listening socket, bound before anything starts: a port in use is an
    error saying so, not a daemon that ingests the examples and then cannot serve."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise
    sock.set_inheritable(True)
    return sock


def open_runtime(settings: Settings) -> Runtime | None:
    """The runtime, once the database answers: a database that is down at start is
    one line in the log and retries with backoff, not a traceback. SIGTERM/SIGINT
    meanwhile stop the wait (None) and the process exits cleanly."""
    stop = threading.Event()
    on_signal = {sig: signal.signal(sig, lambda *_: stop.set())
                 for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        db = when_available(lambda: open_database(settings.database_url),
                            Outage("start", settings.database_url), stop)
    finally:
        for sig, handler in on_signal.items():
            signal.signal(sig, handler)
    if db is None:
        log.info("daemon_stopped", reason="stopped while waiting for the database")
        return None
    return Runtime.open(settings, db=db)


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGTERM after its graceful shutdown, so the process
    would die by the signal; a requested, completed shutdown is a clean exit (0)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
