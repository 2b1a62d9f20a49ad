"""The database going away and coming back, as the daemon's loops see it.

A database restart or a network cut is not a bug: the daemon's start and its
polling loops (dispatcher, timers, drop folder) wait it out; retention, hourly, just
tries again on its next pass. What they owe the
operator is one clear line when an outage starts (which database, the URL with
its password masked, the reason), one when it ends, and retries that back off
instead of hammering the server or flooding the log every half second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from watcher.redact import redact_text

log = structlog.get_logger(__name__)

# What "the database is unreachable" raises: a refused or dropped connection, a
# server shutting down, a pool with no connection to give.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
FIRST_RETRY_SECONDS = 0.5
LONGEST_RETRY_SECONDS = 10.0

T = TypeVar("T")


def masked(url: str) -> str:
    """The URL as a log may show it: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(not a database URL)"


def reason(exc: BaseException) -> str:
    """The driver's own first line (``Connection refused``), not SQLAlchemy's wrapping."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return redact_text(lines[0] if lines else type(cause).__name__)[:300]


class Outage:
    """One loop's view of the database: down since when, and how long to wait next."""

    def __init__(self, loop: str, url: str | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.database = masked(url) if url else None
        self.clock = clock
        self.failures = 0
        self.since: float | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def _named(self) -> dict[str, str]:
        return {"database": self.database} if self.database else {}

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; the seconds to wait before the next one."""
        self.failures += 1
        delay = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** (self.failures - 1))
        if self.since is None:
            self.since = self.clock()
            log.error("database_unavailable", loop=self.loop, reason=reason(exc),
                      retrying=f"with backoff, up to every {LONGEST_RETRY_SECONDS:g} s",
                      **self._named())
        return delay

    def ok(self) -> None:
        """Note a successful attempt (logs the end of an outage, once)."""
        if self.since is not None:
            log.warning("database_available", loop=self.loop,
                        down_seconds=round(self.clock() - self.since, 1),
                        attempts=self.failures, **self._named())
        self.failures, self.since = 0, None


def when_available(attempt: Callable[[], T], outage: Outage, stop: threading.Event
                   ) -> T | None:
    """``attempt()`` until the database answers; None if ``stop`` is set meanwhile."""
    while not stop.is_set():
        try:
            result = attempt()
        except DATABASE_DOWN as exc:
            stop.wait(outage.failed(exc))
            continue
        outage.ok()
        return result
    return None
