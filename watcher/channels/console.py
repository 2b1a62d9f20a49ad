"""The console channel: alerts as readable blocks on stdout, the quick start's default.

stdout, not the log: logs go to stderr (``watcher.logs``), so a terminal shows
alerts without log noise and ``watcher run > alerts.txt`` keeps them. Colour
only on a terminal, and never when ``NO_COLOR`` is set (no-color.org).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO

from watcher.alerts import Alert
from watcher.channels.base import Channel, ChannelDef, DeliveryReport, UrlOutcome
from watcher.channels.render import Renderer

# One lock for every console channel: they share the one stdout, and two
# blocks interleaved line by line are unreadable.
_STDOUT = threading.Lock()

ANSI = {"critical": "1;31", "high": "31", "medium": "33", "low": "36", "resolved": "32",
        "bold": "1", "dim": "2"}


def _ansi(text: str, name: str) -> str:
    code = ANSI.get(name)
    return f"\x1b[{code}m{text}\x1b[0m" if code and text else text


def _plain(text: str, _name: str) -> str:
    return text


class ConsoleChannel(Channel):
    """Prints each alert as a block; ``stream`` defaults to the current ``sys.stdout``."""

    def __init__(self, defn: ChannelDef, *, renderer: Renderer | None = None,
                 stream: TextIO | None = None, color: bool | None = None) -> None:
        super().__init__(defn)
        self.renderer = renderer or Renderer()
        self._stream = stream
        self._color = color

    @property
    def stream(self) -> TextIO:
        # Resolved at each send: tests and embedders swap sys.stdout.
        return self._stream if self._stream is not None else sys.stdout

    def use_color(self) -> bool:
        if self._color is not None:
            return self._color
        if os.environ.get("NO_COLOR"):
            return False
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def deliver(self, alert: Alert) -> DeliveryReport:
        style = _ansi if self.use_color() else _plain
        block = self.renderer.render(alert, "console", self.defn.language, style=style).body
        try:
            with _STDOUT:
                self.stream.write(block + "\n\n")
                self.stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken stdout
            return DeliveryReport.of([UrlOutcome("console://stdout", False,
                                                 f"{type(exc).__name__}: {exc}")])
        return DeliveryReport.of([UrlOutcome("console://stdout", True)])
