"""No token from a channel URL appears in a report, a repr, or a log line."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses
import structlog

from tests.channels.conftest import Webhook, health_alert
from watcher import logs
from watcher.alerts import Alert
from watcher.channels import build_channels
from watcher.channels.base import Channel, ChannelDef, DeliveryReport
from watcher.config import Settings
from watcher.redact import redact_text

ENV = {"WECOM_KEY": "0a1b2c3d-wecom-env-key", "HOOK_PASSWORD": "hook-Pa55-env",
       "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/TENV0000/BENV0000/envSlackTok3n"}
LITERAL = ("literalDingTok123", "literalSecretPw9")
SECRETS = (*ENV.values(), "envSlackTok3n", *LITERAL)


@pytest.fixture
def json_logs() -> Iterator[None]:
    logs.configure("debug", json=True)
    yield
    structlog.reset_defaults()


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


class Crashing(Channel):
    def deliver(self, alert: Alert) -> DeliveryReport:
        raise RuntimeError(f"cannot reach {ENV['SLACK_WEBHOOK_URL']}")


class TestRedaction:
    @responses.activate
    def test_failures_of_every_kind_leak_no_token(self, capsys, json_logs):
        hook = Webhook()
        hook.fail = 1
        responses.post(f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={ENV['WECOM_KEY']}",
                       json={"errcode": 93000, "errmsg": "invalid webhook url"})
        responses.post(ENV["SLACK_WEBHOOK_URL"], status=403, body="invalid_token")
        responses.post("https://oapi.dingtalk.com/robot/send", status=500)
        responses.add_passthru("http://127.0.0.1")
        try:
            settings = Settings(channels={"everything": {"urls": [
                "wecombot://${WECOM_KEY}",
                "${SLACK_WEBHOOK_URL}",
                f"dingtalk://{LITERAL[0]}",
                f"json://kpi:{LITERAL[1]}@127.0.0.1:{hook.port}/in?token=${{HOOK_PASSWORD}}",
            ]}})
            channel = build_channels(settings, env=ENV)["everything"]
            report = channel.send(health_alert())
            crash = Crashing(ChannelDef(name="crash", kind="memory")).send(health_alert())
        finally:
            hook.stop()
        assert not report.ok and [o.ok for o in report.outcomes] == [False] * 4
        assert_clean(repr(report))
        assert_clean(report.summary() + crash.summary())
        assert_clean(json.dumps([o.as_dict() for o in report.outcomes]))
        assert_clean(repr(channel) + repr(channel.defn) + str(channel.defn.model_dump()))
        captured = capsys.readouterr()
        log_lines = [json.loads(line) for line in captured.err.splitlines() if line]
        events = {line["event"] for line in log_lines}
        assert {"url_failed", "channel_crashed"} <= events
        assert_clean(captured.err + captured.out)
        assert "wecombot://****" in captured.err


class TestDatabaseUrls:
    """A database URL says which database is in use; only its credentials are secret."""

    def test_an_sqlite_path_is_shown_whole(self):
        assert redact_text("database sqlite:////var/lib/kpi-watch/watcher.db") == \
            "database sqlite:////var/lib/kpi-watch/watcher.db"

    def test_a_postgresql_url_keeps_host_and_database_but_not_credentials(self):
        shown = redact_text("postgresql+psycopg://kpi:s3cret@db:5432/kpiwatch?password=x")
        assert shown == "postgresql+psycopg://****@db:5432/kpiwatch"
