"""Channel definitions, reports and the send contract."""

from __future__ import annotations

import pytest

from tests.channels.conftest import health_alert
from watcher.alerts import Alert
from watcher.channels.base import Channel, ChannelDef, DeliveryReport, UrlOutcome
from watcher.errors import ConfigError
from watcher.redact import redact_text


class TestChannelDef:
    def test_env_references_are_filled_from_the_environment(self):
        defn = ChannelDef.from_config(
            "team", {"urls": ["wecombot://${WECOM_KEY}"], "language": "zh-CN"},
            env={"WECOM_KEY": "k3yFromEnv42"})
        assert defn.revealed_urls() == ["wecombot://k3yFromEnv42"]
        assert defn.kind == "apprise" and defn.format == "auto" and defn.language == "zh-CN"

    def test_a_substituted_value_is_masked_everywhere_from_then_on(self):
        ChannelDef.from_config("hook", {"urls": ["json://h/${HOOK_TOKEN}"]},
                               env={"HOOK_TOKEN": "tok-9f8e7d6c"})
        assert "tok-9f8e7d6c" not in redact_text("posting with tok-9f8e7d6c failed")

    def test_a_missing_variable_is_a_config_error_naming_the_channel_key(self):
        with pytest.raises(ConfigError) as caught:
            ChannelDef.from_config("managers-mail", {"urls": [
                "slack://T1/B1/C1", "mailtos://u:${SMTP_PASSWORD}@example.com"]},
                env={}, file="config.yaml")
        assert caught.value.key == "channels.managers-mail.urls.1"
        assert caught.value.file == "config.yaml"
        assert "SMTP_PASSWORD is not set" in str(caught.value)

    def test_an_empty_variable_is_refused_too(self):
        with pytest.raises(ConfigError, match="WECOM_KEY is empty"):
            ChannelDef.from_config("team", {"urls": ["wecombot://${WECOM_KEY}"]},
                                   env={"WECOM_KEY": ""})

    def test_double_dollar_is_a_literal_dollar(self):
        defn = ChannelDef.from_config("hook", {"urls": ["json://h/a$$b"]}, env={})
        assert defn.revealed_urls() == ["json://h/a$b"]

    def test_repr_str_and_dump_never_show_a_secret(self):
        defn = ChannelDef.from_config("team", {"urls": ["wecombot://${WECOM_KEY}",
                                                        "slack://T0AAA/B0BBB/literalSecret1"]},
                                      env={"WECOM_KEY": "k3yFromEnv42"})
        for shown in (repr(defn), str(defn), str(defn.model_dump()), defn.model_dump_json()):
            assert "k3yFromEnv42" not in shown and "literalSecret1" not in shown
        assert defn.model_dump()["urls"] == ["wecombot://****", "slack://****"]

    def test_an_apprise_channel_needs_urls(self):
        with pytest.raises(ConfigError) as caught:
            ChannelDef.from_config("empty", {}, env={})
        assert caught.value.key == "channels.empty"

    def test_a_wrong_field_names_its_key(self):
        with pytest.raises(ConfigError) as caught:
            ChannelDef.from_config("x", {"urls": ["json://h"], "format": "pdf"}, env={})
        assert caught.value.key == "channels.x.format"

    def test_a_channel_named_console_defaults_to_the_console_kind(self):
        assert ChannelDef.from_config("console", {"language": "zh"}, env={}).kind == "console"

    @pytest.mark.parametrize("typed", ["zh", "zh_CN", "ZH-cn", "zh-CN"])
    def test_chinese_is_accepted_as_people_write_it(self, typed: str):
        assert ChannelDef(name="c", kind="memory", language=typed).language == "zh-CN"


class TestUrlOutcome:
    def test_url_and_reason_are_redacted_when_built(self):
        outcome = UrlOutcome("wecombot://abcdef123456", False,
                             "POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc1 "
                             "failed")
        assert outcome.url == "wecombot://****"
        assert "abc1" not in outcome.reason
        assert outcome.as_dict() == {"url": "wecombot://****", "ok": False,
                                     "reason": outcome.reason, "retryable": True}


class TestDeliveryReport:
    def test_ok_only_when_every_url_accepted(self):
        good, bad = UrlOutcome("json://a/x", True), UrlOutcome("json://b/y", False, "HTTP 500")
        assert DeliveryReport.of([good, good]).ok
        partial = DeliveryReport.of([good, bad])
        assert not partial.ok and partial.retryable
        assert partial.summary() == "json://b/****: HTTP 500; 1 of 2 URL(s) delivered"

    def test_not_retryable_when_every_failure_is_permanent(self):
        refused = UrlOutcome("wecombot://k", False, "invalid webhook url", retryable=False)
        assert not DeliveryReport.of([refused]).retryable
        assert DeliveryReport.of([refused, UrlOutcome("json://b", False, "HTTP 500")]).retryable

    def test_no_url_is_no_delivery(self):
        assert not DeliveryReport.of([]).ok

    def test_a_channel_level_reason_is_redacted_and_summarised(self):
        report = DeliveryReport(ok=False, reason="channel error: slack://T1/B2/C3secret")
        assert report.summary() == "channel error: slack://****"


class Exploding(Channel):
    def deliver(self, alert: Alert) -> DeliveryReport:
        raise RuntimeError("boom at json://user:pw@host/path")


class TestChannel:
    def test_send_turns_a_crash_into_a_failed_retryable_report(self):
        report = Exploding(ChannelDef(name="x", kind="memory")).send(health_alert())
        assert not report.ok and report.retryable
        assert report.reason == "channel error: RuntimeError: boom at json://****@host/****"

    def test_repr_names_the_channel_without_secrets(self):
        defn = ChannelDef(name="hook", urls=("json://user:pw1234@host/p",))
        assert repr(Exploding(defn)).startswith("<Exploding 'hook'")
        assert "pw1234" not in repr(Exploding(defn))
