"""Channel kinds, and the channels of a config: ``build_channels(settings)``.

A new kind is a module with a ``Channel`` subclass (constructor:
``(defn, *, renderer=None)``) and one line in ``KINDS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import Channel, ChannelDef, DeliveryReport, UrlOutcome
from watcher.channels.console import ConsoleChannel
from watcher.channels.memory import MemoryChannel
from watcher.channels.render import Renderer
from watcher.config import Settings
from watcher.errors import ConfigError

__all__ = ["KINDS", "Channel", "ChannelDef", "DeliveryReport", "Renderer", "UrlOutcome",
           "build_channel", "build_channels", "load_channel_defs"]


class ChannelKind(Protocol):
    def __call__(self, defn: ChannelDef, *, renderer: Renderer | None = None) -> Channel: ...


KINDS: dict[str, ChannelKind] = {
    "apprise": AppriseChannel,
    "console": ConsoleChannel,
    "memory": MemoryChannel,
}


def build_channel(defn: ChannelDef, *, renderer: Renderer | None = None,
                  file: str | None = None) -> Channel:
    """The channel for ``defn``; a ConfigError names the key when it cannot be built."""
    kind = KINDS.get(defn.kind)
    if kind is None:
        raise ConfigError(f"unknown channel kind '{defn.kind}' (known: "
                          f"{', '.join(sorted(KINDS))})", file=file,
                          key=f"channels.{defn.name}.kind")
    if kind is AppriseChannel:  # the one kind whose URLs can be wrong: name the key
        return AppriseChannel(defn, renderer=renderer, file=file)
    return kind(defn, renderer=renderer)


def load_channel_defs(raw: Mapping[str, Any], *, env: Mapping[str, str] | None = None,
                      file: str | None = None) -> list[ChannelDef]:
    """``channels:`` of a config file, validated, ``${ENV}`` filled in."""
    env = os.environ if env is None else env
    return [ChannelDef.from_config(str(name), data, env=env, file=file)
            for name, data in raw.items()]


def build_channels(settings: Settings, *, env: Mapping[str, str] | None = None,
                   templates: Path | str | None = None) -> dict[str, Channel]:
    """Every configured channel by name, plus ``console`` unless the config redefines it.

    Called once at start: a missing secret or a broken URL or template stops
    the daemon here, with the file and key, instead of failing every alert.
    """
    file = str(settings.config_file) if settings.config_file else None
    renderer = Renderer(templates)
    channels: dict[str, Channel] = {
        "console": ConsoleChannel(ChannelDef(name="console", kind="console"), renderer=renderer)}
    for defn in load_channel_defs(settings.channels, env=env, file=file):
        channels[defn.name] = build_channel(defn, renderer=renderer, file=file)
    return channels
