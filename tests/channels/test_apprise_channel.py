"""The apprise channel against real loopback servers: per-URL outcomes, retries, throttling."""

from __future__ import annotations

import time

import pytest
import responses

from tests.channels.conftest import Webhook, health_alert, pip_alert
from tests.channels.test_plugins import WECOM_API, WECOM_KEY
from watcher.alerts import AlertKind
from watcher.channels.apprise_channel import AppriseChannel, Target, dialect_for
from watcher.channels.base import ChannelDef
from watcher.errors import ConfigError


def channel(*urls: str, **fields: object) -> AppriseChannel:
    return AppriseChannel(ChannelDef(name="hooks", urls=urls, **fields),  # type: ignore[arg-type]
                          throttle_seconds=0)


class TestAppriseChannel:
    def test_a_json_webhook_receives_the_alert_as_fields(self, webhook: Webhook):
        report = channel(f"json://127.0.0.1:{webhook.port}/kpi").send(pip_alert())
        assert report.ok, report.summary()
        [received] = webhook.received
        assert received["path"] == "/kpi"
        body = received["json"]
        assert body["title"].startswith("[HIGH] li.wei missed targets 3 months in a row")
        assert "2026-08" in body["message"] and body["type"] == "failure"
        alert = body["alert"]
        assert alert["rule"] == "pip-recommended" and alert["incident_id"] == 13
        assert alert["operator"] == "li.wei" and alert["audience"] == "manager"
        assert alert["evidence"][0] == {"period": "2026-08", "metric": "gmv", "value": 120000.0,
                                        "threshold": 150000.0, "comparison": "<",
                                        "store": "amz-us-01"}
        assert alert["at"] == "2026-11-01T02:00:00Z"

    def test_a_resolution_is_a_success_type(self, webhook: Webhook):
        assert channel(f"json://127.0.0.1:{webhook.port}/").send(
            health_alert(kind=AlertKind.RESOLVED)).ok
        assert webhook.received[0]["json"]["type"] == "success"

    def test_url_payload_extras_still_apply(self, webhook: Webhook):
        assert channel(f"json://127.0.0.1:{webhook.port}/?:source=kpi-watch&:version=").send(
            health_alert()).ok
        body = webhook.received[0]["json"]
        assert body["source"] == "kpi-watch" and "version" not in body and "alert" in body

    def test_a_server_failing_twice_gives_two_failed_reports_then_success(self,
                                                                          webhook: Webhook):
        webhook.fail = 2
        hook = channel(f"json://127.0.0.1:{webhook.port}/kpi")
        first, second, third = (hook.send(health_alert()) for _ in range(3))
        for failed in (first, second):
            assert not failed.ok and failed.retryable
            assert failed.outcomes[0].reason.startswith("Failed to send JSON POST notification")
            assert "error=500" in failed.outcomes[0].reason
            assert failed.outcomes[0].url == f"json://127.0.0.1:{webhook.port}/****"
        assert third.ok and len(webhook.received) == 1

    def test_an_unreachable_server_is_a_retryable_failure_with_a_reason(self):
        port = Webhook()
        port.stop()  # nothing listens there any more
        report = channel(f"json://127.0.0.1:{port.port}/kpi").send(health_alert())
        assert not report.ok and report.retryable
        assert "Connection error" in report.outcomes[0].reason

    def test_one_failing_url_of_two_is_a_failure_and_the_retry_skips_the_delivered_one(
            self, webhook: Webhook):
        down = Webhook()
        down.fail = 1
        try:
            hooks = channel(f"json://127.0.0.1:{webhook.port}/a",
                            f"json://127.0.0.1:{down.port}/b")
            alert = health_alert()
            first = hooks.send(alert)
            assert not first.ok and [o.ok for o in first.outcomes] == [True, False]
            assert first.summary().endswith("1 of 2 URL(s) delivered")
            retry = hooks.send(alert)
            assert retry.ok
            assert retry.outcomes[0].reason == "delivered on an earlier attempt"
            assert len(webhook.received) == 1 and len(down.received) == 1
            assert hooks.send(health_alert(kind=AlertKind.REMINDER)).ok  # another alert
            assert len(webhook.received) == 2 and len(down.received) == 2
        finally:
            down.stop()

    @responses.activate
    def test_one_alert_to_several_throttled_urls_does_not_sleep(self):
        other_key = "ffffffff-0000-4444-8888-000000000000"
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        responses.post(WECOM_API.replace(WECOM_KEY, other_key), json={"errcode": 0})
        bots = AppriseChannel(ChannelDef(name="bots", urls=(
            f"wecombot://{WECOM_KEY}", f"wecombot://{other_key}")))  # apprise's 5.5 s throttle
        started = time.monotonic()
        assert bots.send(health_alert()).ok
        assert time.monotonic() - started < 2.0
        assert len(responses.calls) == 2

    @responses.activate
    def test_the_next_alert_to_the_same_url_waits_for_the_throttle(self):
        responses.post(WECOM_API, json={"errcode": 0, "errmsg": "ok"})
        bot = AppriseChannel(ChannelDef(name="bot", urls=(f"wecombot://{WECOM_KEY}",)),
                             throttle_seconds=0.3)
        bot.send(health_alert())
        started = time.monotonic()
        bot.send(health_alert(kind=AlertKind.REMINDER))
        assert time.monotonic() - started >= 0.25

    def test_an_invalid_url_is_a_config_error_naming_the_key(self):
        with pytest.raises(ConfigError) as caught:
            AppriseChannel(ChannelDef(name="team", urls=("json://ok.example",
                                                         "wecombot://bad key!")),
                           file="config.yaml")
        assert caught.value.key == "channels.team.urls.1"
        assert "bad key" not in str(caught.value)
        assert "Webhook Key (****)" in str(caught.value)

    def test_an_unknown_scheme_is_a_config_error(self):
        with pytest.raises(ConfigError, match="not an apprise URL"):
            AppriseChannel(ChannelDef(name="x", urls=("nosuchservice://abc",)))


class TestTarget:
    @pytest.mark.parametrize(("url", "template", "heading", "title"), [
        ("slack://T0AAAAAAA/B0BBBBBBB/cccccccccccccccccccccccc", "slack", False, True),
        (f"wecombot://{WECOM_KEY}", "markdown", True, False),
        ("dingtalk://abc123def456", "markdown", True, True),
        ("feishu://f31shu-0123", "markdown", False, True),
        ("mailtos://user:pw@example.com", "html", True, True),
        ("json://127.0.0.1:9/x", "text", False, True),
        ("discord://1234567/abcdefgh", "markdown", False, True),
    ])
    def test_auto_picks_each_services_richest_format(self, url, template, heading, title):
        target = Target(url, "auto", asset=_asset())
        assert (target.dialect.template, target.dialect.heading, target.dialect.title) == (
            template, heading, title)

    def test_an_explicit_format_wins(self):
        target = Target(f"wecombot://{WECOM_KEY}", "text", asset=_asset())
        assert target.dialect == dialect_for(target.plugin, "wecombot", "text")
        assert target.dialect.template == "text" and target.dialect.limit.max_bytes == 2048

    def test_shows_itself_redacted(self):
        assert Target(f"wecombot://{WECOM_KEY}", "auto", asset=_asset()).shown == (
            "wecombot://****")


def _asset():  # type: ignore[no-untyped-def]
    import apprise
    return apprise.AppriseAsset()
