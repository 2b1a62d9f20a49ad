"""watcher channels test / status, against a real loopback webhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon_harness import Webhook
from tests.test_cli import watcher
from watcher.alerts import Alert, AlertKind
from watcher.channels.base import ChannelDef
from watcher.channels.memory import MemoryChannel
from watcher.config import load_settings
from watcher.dispatcher import Dispatcher
from watcher.store import open_database
from watcher.store import repository as repo
from watcher.store.database import utcnow


@pytest.fixture
def hook() -> Webhook:
    server = Webhook()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Webhook) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-t0ken")
    config = tmp_path / "watcher.yaml"
    config.write_text(json.dumps({
        "channels": {"hook": {"urls": [f"json://127.0.0.1:{hook.port}/${{HOOK_TOKEN}}"]},
                     "dead": {"urls": ["json://127.0.0.1:9/nothing"]}}}), encoding="utf-8")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    return config


class TestChannelsTest:
    def test_a_configured_channel_gets_a_test_message(self, configured: Path, hook: Webhook):
        code, out = watcher("channels", "test", "hook")
        assert code == 0 and "test message delivered" in out
        [received] = hook.wait_for(1)
        assert "test message" in json.dumps(received)
        assert "s3cr3t-t0ken" not in out  # the token in the URL path is masked

    def test_a_failing_channel_reports_the_reason(self, configured: Path):
        code, out = watcher("channels", "test", "dead")
        assert code == 1 and "FAILED" in out

    def test_an_adhoc_url(self, configured: Path, hook: Webhook):
        code, _ = watcher("channels", "test", "--url", f"json://127.0.0.1:{hook.port}/adhoc")
        assert code == 0 and hook.wait_for(1)[0]["path"] == "/adhoc"

    def test_an_unknown_channel_lists_the_configured_ones(self, configured: Path):
        code, out = watcher("channels", "test", "nope")
        assert code == 2 and "hook" in out


class TestChannelsStatus:
    def test_status_lists_channels_with_counts(self, configured: Path):
        assert watcher("db", "upgrade")[0] == 0  # a database with nothing sent yet
        code, out = watcher("channels", "status", "--format", "json")
        assert code == 0 and json.loads(out) == []

    def test_status_shows_the_rate_and_what_was_folded_or_held_for_it(
            self, configured: Path, tmp_path: Path):
        """A 2/min channel: six alerts at once go as one digest; the five after them wait
        for the next digest, at the storm's pace (rate-limited)."""
        config = json.loads(configured.read_text(encoding="utf-8"))
        config["channels"]["bot"] = {"kind": "memory", "rate": "2/min"}
        configured.write_text(json.dumps(config), encoding="utf-8")
        settings = load_settings(configured)
        db = open_database(settings.database_url)
        bot = MemoryChannel(ChannelDef.from_config("bot", config["channels"]["bot"]))
        dispatcher = Dispatcher(db, {"bot": bot}, settings)
        for count in (6, 3, 2):
            now = utcnow()
            with db.engine.begin() as conn:
                repo.insert_notifications(conn, [repo.notification_row(None, None, "bot", Alert(
                    kind=AlertKind.OPENED, rule="r", severity="high", audience="compliance",
                    title={"en": "x"}, store=f"s{n}", at=now), now) for n in range(count)])
            dispatcher.run_once()
        db.dispose()
        assert [a.digest.total for a in bot.sent if a.digest] == [6]
        code, out = watcher("channels", "status", "--format", "json")
        [status] = json.loads(out)
        assert code == 0
        assert {k: status[k] for k in ("channel", "sent", "pending", "folded", "digests",
                                       "rate", "in_window", "rate_limited")} == {
            "channel": "bot", "sent": 1, "pending": 5, "folded": 6, "digests": 1,
            "rate": "2/min", "in_window": 1, "rate_limited": 5}
        code, out = watcher("channels", "status")
        assert "2/min" in out and "FOLDED" in out
