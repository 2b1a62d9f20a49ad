"""Send rates: written as people write them, refused when ambiguous, defaulted per service."""

from __future__ import annotations

import pytest

from watcher.channels import build_channel
from watcher.channels.base import ChannelDef
from watcher.channels.rate import Rate, default_rate, parse_rate
from watcher.errors import ConfigError

WECOM_KEY = "a1b2c3d4-0000-4444-8888-e5f6a7b8c9d0"


class TestParse:
    @pytest.mark.parametrize(("text", "rate"), [
        ("20/min", Rate(20, 60)), ("1/s", Rate(1, 1)), ("500/h", Rate(500, 3600)),
        (" 100 / minute ", Rate(100, 60)), ("none", None), (None, None)])
    def test_reads_counts_per_window(self, text, rate):
        assert parse_rate(text) == rate

    @pytest.mark.parametrize("text", ["20", "20/fortnight", "0/min", "-1/s", "1.5/s",
                                      "20 per min", ""])
    def test_refuses_what_it_would_have_to_guess(self, text):
        with pytest.raises(ValueError, match="is not a rate like 20/min"):
            parse_rate(text)

    def test_a_bad_rate_in_the_config_names_the_key(self):
        with pytest.raises(ConfigError, match=r"channels\.bot\.rate"):
            ChannelDef.from_config("bot", {"urls": [f"wecombot://{WECOM_KEY}"],
                                           "rate": "20 a minute"}, env={})


class TestDefaults:
    @pytest.mark.parametrize(("url", "rate"), [
        (f"wecombot://{WECOM_KEY}", "20/min"),
        (f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}", "20/min"),
        ("dingtalk://abcdefghijklmnop/", "20/min"),
        ("https://hooks.slack.com/services/T1ABCDEF/B1ABCDEF/abcdefghijklmnopqrstuvwx",
         "60/min"),
        ("json://127.0.0.1:9/x", None)])
    def test_each_service_has_its_own(self, url, rate):
        channel = build_channel(ChannelDef.from_config("bot", {"urls": [url]}, env={}))
        assert (str(channel.rate) if channel.rate else None) == rate

    def test_the_channels_rate_overrides_and_none_lifts_it(self):
        def rate(value: str) -> Rate | None:
            return build_channel(ChannelDef.from_config("bot", {
                "urls": [f"wecombot://{WECOM_KEY}"], "rate": value}, env={})).rate
        assert rate("10/min") == Rate(10, 60)
        assert rate("none") is None

    def test_a_channel_of_several_services_takes_the_strictest(self):
        assert default_rate(["slack", "wecombot", "json"]) == Rate(20, 60)
        assert default_rate(["json", "mailto"]) is None
