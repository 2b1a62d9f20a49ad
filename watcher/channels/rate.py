"""Send rates: how many messages a channel may send per window (``rate: 20/min``).

Chat bots refuse what goes beyond their rate (WeCom and DingTalk group bots: 20 a
minute), and a refused message is a message late. The rate is a property of the
service behind the URL, so each apprise scheme has a default (watcher/limits.py,
``DEFAULT_RATES``); a channel's ``rate:`` overrides it, ``rate: none`` lifts it.
The dispatcher counts a channel's sends in the store, so every replica spends one
budget.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from watcher.limits import DEFAULT_RATES

_WINDOWS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` messages in any ``window_seconds``."""

    count: int
    window_seconds: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.window_seconds)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.window_seconds:g}s"


def parse_rate(value: Any) -> Rate | None:
    """``"20/min"``, ``"1/s"``, ``"500/h"``; ``None``/``"none"`` for no limit.

    Anything else is refused: a rate read wrongly either floods a bot or holds
    alerts back, so nothing is guessed.
    """
    if value is None or isinstance(value, Rate):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("none", "off", "unlimited"):
            return None
        match = _RATE.match(text)
        if match and match.group(2) in _WINDOWS and int(match.group(1)) > 0:
            return Rate(int(match.group(1)), _WINDOWS[match.group(2)])
    raise ValueError(f"is not a rate like 20/min, 1/s or 500/h (or none): {value!r}")


def default_rate(schemes: Iterable[str]) -> Rate | None:
    """The strictest default of the services a channel sends to (none: no limit)."""
    rates = [parse_rate(DEFAULT_RATES[s]) for s in schemes if s in DEFAULT_RATES]
    known = [r for r in rates if r is not None]
    return min(known, key=lambda r: r.count / r.window_seconds) if known else None
