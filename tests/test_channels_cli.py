"""watcher channels test / status, against a real loopback webhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon_harness import Webhook
from tests.test_cli import watcher


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
