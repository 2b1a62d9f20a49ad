"""The memory channel: a stub for tests of what gets sent, and of retries."""

from __future__ import annotations

from tests.channels.conftest import health_alert
from watcher.channels.memory import MemoryChannel


class TestMemoryChannel:
    def test_records_what_it_delivers(self):
        channel = MemoryChannel.named("team")
        alert = health_alert()
        report = channel.send(alert)
        assert report.ok and channel.sent == [alert] and channel.name == "team"
        assert report.outcomes[0].url == "memory://team"

    def test_fails_n_times_then_delivers(self):
        channel = MemoryChannel.named("team", fail_times=2)
        reports = [channel.send(health_alert()) for _ in range(3)]
        assert [r.ok for r in reports] == [False, False, True]
        assert reports[0].retryable and reports[0].summary() == (
            "memory://team: simulated failure")
        assert len(channel.attempts) == 3 and len(channel.sent) == 1

    def test_fail_next_switches_failure_on_later(self):
        channel = MemoryChannel()
        channel.fail_next(1, reason="HTTP 503")
        assert channel.send(health_alert()).outcomes[0].reason == "HTTP 503"
        assert channel.send(health_alert()).ok
