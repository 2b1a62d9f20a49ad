"""The memory channel: a stub that records alerts, for tests of what gets sent.

``fail_times`` makes it refuse the next N sends (then succeed), which is how
retries, backoff and the timeline of a failing channel are tested without a
network.
"""

from __future__ import annotations

import threading

from watcher.alerts import Alert
from watcher.channels.base import Channel, ChannelDef, DeliveryReport, UrlOutcome
from watcher.channels.render import Renderer

URL = "memory://"


class MemoryChannel(Channel):
    """Records every delivered alert in ``sent``; every attempt in ``attempts``."""

    def __init__(self, defn: ChannelDef | None = None, *, renderer: Renderer | None = None,
                 fail_times: int = 0, reason: str = "simulated failure",
                 retryable: bool = True) -> None:
        super().__init__(defn or ChannelDef(name="memory", kind="memory"))
        self.sent: list[Alert] = []
        self.attempts: list[Alert] = []
        self.fail_times = fail_times
        self.reason = reason
        self.retryable = retryable
        self._guard = threading.Lock()

    @classmethod
    def named(cls, name: str, *, fail_times: int = 0) -> MemoryChannel:
        return cls(ChannelDef(name=name, kind="memory"), fail_times=fail_times)

    def fail_next(self, times: int, reason: str | None = None) -> None:
        """Refuse the next ``times`` sends with ``reason``."""
        with self._guard:
            self.fail_times = times
            if reason is not None:
                self.reason = reason

    def deliver(self, alert: Alert) -> DeliveryReport:
        with self._guard:
            self.attempts.append(alert)
            if self.fail_times > 0:
                self.fail_times -= 1
                return DeliveryReport.of([UrlOutcome(URL + self.name, False, self.reason,
                                                     self.retryable)])
            self.sent.append(alert)
        return DeliveryReport.of([UrlOutcome(URL + self.name, True)])
