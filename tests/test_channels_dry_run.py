"""`watcher channels test --dry-run`: the exact request apprise would send, secrets
masked, and nothing sent."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import responses

from tests.channels.conftest import health_alert
from tests.daemon_harness import Webhook
from tests.test_cli import watcher
from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import ChannelDef
from watcher.channels.dryrun import capture

DINGTALK_TOKEN = "d1n9t4lk0123456789abcdef"
WECOM_KEY = "a1b2c3d4-0000-4444-8888-e5f6a7b8c9d0"


def body_of(out: str) -> dict[str, object]:
    """The JSON body as sent: the line after the request line and headers."""
    lines = out.splitlines()
    return dict(json.loads(lines[lines.index("") + 1]))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.delenv("WATCHER_CONFIG", raising=False)
    return tmp_path


class TestDryRun:
    def test_a_dingtalk_url_without_network_shows_its_message(self, env: Path):
        code, out = watcher("channels", "test", "--url", f"dingtalk://{DINGTALK_TOKEN}",
                            "--dry-run")
        assert code == 0, out
        assert out.startswith("POST https://oapi.dingtalk.com/robot/send?access_token=****\n")
        assert DINGTALK_TOKEN not in out
        payload = body_of(out)
        assert payload["msgtype"] == "markdown"
        assert "kpi-watch test message" in json.dumps(payload["markdown"], ensure_ascii=False)
        assert out.rstrip().endswith("dry run: 1 request(s) shown, nothing sent")

    def test_a_signed_robot_shows_its_signature_masked(self, env: Path):
        secret = "SEC0123456789abcdef0123456789abcdef"
        code, out = watcher("channels", "test", "--url",
                            f"dingtalk://{secret}@{DINGTALK_TOKEN}", "--dry-run")
        assert code == 0, out
        assert secret not in out and DINGTALK_TOKEN not in out
        assert "&sign=****" in out.splitlines()[0] or "?sign=****" in out.splitlines()[0]

    def test_a_configured_channel_is_not_sent_and_its_env_secret_is_masked(
            self, env: Path, monkeypatch: pytest.MonkeyPatch):
        hook = Webhook()
        try:
            monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-t0ken")
            config = env / "watcher.yaml"
            config.write_text(json.dumps({"channels": {"hook": {
                "urls": [f"json://127.0.0.1:{hook.port}/${{HOOK_TOKEN}}"],
                "language": "zh-CN"}}}), encoding="utf-8")
            code, out = watcher("channels", "test", "hook", "--dry-run", "--config",
                                str(config))
            assert code == 0, out
            assert out.startswith(f"POST http://127.0.0.1:{hook.port}/****\n")
            assert "s3cr3t-t0ken" not in out
            assert "测试消息" in json.dumps(body_of(out), ensure_ascii=False)
            time.sleep(0.2)
            assert hook.received == []
        finally:
            hook.stop()

    def test_an_email_shows_the_message_handed_to_smtp(self, env: Path):
        code, out = watcher("channels", "test", "--url",
                            "mailtos://ana:pa55w0rd-x@smtp.example.com?to=ops@example.com",
                            "--dry-run")
        assert code == 0, out
        assert out.startswith("SMTP smtp://smtp.example.com:")
        assert "RCPT TO: ops@example.com" in out and "Subject: [INFO] Test: kpi-watch" in out
        assert "pa55w0rd-x" not in out


class TestCaptureIsWhatWouldBeSent:
    @responses.activate
    def test_the_captured_body_is_the_body_of_a_real_send(self):
        api = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
        responses.post(api, json={"errcode": 0, "errmsg": "ok"})
        alert = health_alert(at=datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
        channel = AppriseChannel(ChannelDef(name="bots", urls=(f"wecombot://{WECOM_KEY}",),
                                            language="zh-CN"), throttle_seconds=0)
        with capture() as captured:
            channel.send(alert)
        assert len(responses.calls) == 0  # nothing left the process
        fresh = AppriseChannel(ChannelDef(name="bots", urls=(f"wecombot://{WECOM_KEY}",),
                                          language="zh-CN"), throttle_seconds=0)
        assert fresh.send(alert).ok
        [request] = captured
        real = responses.calls[0].request
        assert (request.method, request.url) == (real.method, real.url)
        sent = real.body.decode() if isinstance(real.body, bytes) else str(real.body)
        assert request.body == sent  # byte for byte
