"""From the config's ``channels:`` to named channels: kinds, defaults, errors at start."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT
from watcher.channels import KINDS, build_channel, build_channels, load_channel_defs
from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import ChannelDef
from watcher.channels.console import ConsoleChannel
from watcher.channels.memory import MemoryChannel
from watcher.config import Settings
from watcher.errors import ConfigError


class TestBuildChannels:
    def test_console_is_always_there(self):
        channels = build_channels(Settings())
        assert list(channels) == ["console"]
        assert isinstance(channels["console"], ConsoleChannel)

    def test_configured_channels_by_name_with_secrets_from_the_environment(self):
        settings = Settings(channels={
            "team-lead": {"urls": ["wecombot://${WECOM_KEY}"], "language": "zh-CN"},
            "compliance-hook": {"urls": ["json://127.0.0.1:8099/compliance"]},
            "stub": {"kind": "memory"}})
        channels = build_channels(settings, env={"WECOM_KEY": "abcdef0123456789"})
        assert set(channels) == {"console", "team-lead", "compliance-hook", "stub"}
        assert isinstance(channels["team-lead"], AppriseChannel)
        assert isinstance(channels["stub"], MemoryChannel)
        assert channels["team-lead"].defn.language == "zh-CN"

    def test_the_console_can_be_redefined(self):
        channels = build_channels(Settings(channels={"console": {"language": "zh-CN"}}))
        assert channels["console"].defn.language == "zh-CN"

    def test_a_missing_secret_stops_the_start_naming_file_and_key(self, tmp_path):
        settings = Settings(channels={"team-lead": {"urls": ["wecombot://${WECOM_KEY}"]}},
                            config_file=tmp_path / "config.yaml")
        with pytest.raises(ConfigError) as caught:
            build_channels(settings, env={})
        assert caught.value.key == "channels.team-lead.urls.0"
        assert caught.value.file == str(tmp_path / "config.yaml")

    def test_an_unknown_kind_lists_the_known_ones(self):
        with pytest.raises(ConfigError) as caught:
            build_channel(ChannelDef(name="p", kind="pager"))
        assert caught.value.key == "channels.p.kind"
        assert "unknown channel kind 'pager' (known: apprise, console, memory)" in str(
            caught.value)

    def test_kinds_are_a_registry(self):
        assert set(KINDS) == {"apprise", "console", "memory"}

    def test_definitions_load_without_building(self):
        [defn] = load_channel_defs({"hook": {"urls": "json://h/x"}}, env={})
        assert defn.name == "hook" and defn.model_dump()["urls"] == ["json://h/****"]


class TestExampleChannels:
    def test_the_example_file_builds_with_its_secrets_set(self):
        text = (ROOT / "channels" / "channels.example.yaml").read_text(encoding="utf-8")
        env = {name: "Abc123def456" for name in re.findall(r"\$\{(\w+)\}", text)}
        env["SLACK_WEBHOOK_URL"] = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/ccc"
        channels = build_channels(Settings(channels=yaml.safe_load(text)["channels"]), env=env)
        assert {"compliance-slack", "managers-mail", "team-lead", "ops-dingtalk", "ops-feishu",
                "compliance-hook", "escalation", "console"} == set(channels)
