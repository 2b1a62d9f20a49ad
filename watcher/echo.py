"""Input repeated back in a message, made safe to show.

A refusal names what was sent (``'2026-13' is not a period``), and what was sent may hold
characters that change how the message reads: a right-to-left override (U+202E) turns the
rest of a line around, a line separator or an escape sequence starts a line of its own,
zero-width characters hide text. Every message, page and API answer that echoes a value a
person or a client typed passes it through ``shown`` first.
"""

from __future__ import annotations

import unicodedata
from typing import Final

REPLACEMENT: Final = "\ufffd"


def shown(text: str, limit: int | None = None) -> str:
    """``text`` with every control, format (bidi, zero-width) and separator character as
    U+FFFD (a space stays a space), cut to ``limit`` characters with an ellipsis."""
    clean = "".join(
        c if c.isprintable() else (" " if unicodedata.category(c) == "Zs" else REPLACEMENT)
        for c in text)
    if limit is not None and len(clean) > limit:
        return clean[:limit - 1] + "…"
    return clean


def shown_value(value: object, limit: int | None = None) -> object:
    """``shown`` for a text, also inside the lists and mappings of a JSON answer."""
    if isinstance(value, str):
        return shown(value, limit)
    if isinstance(value, list | tuple):
        return [shown_value(item, limit) for item in value]
    if isinstance(value, dict):
        return {shown(str(k), limit): shown_value(v, limit) for k, v in value.items()}
    return value
