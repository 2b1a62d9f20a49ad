"""Message size limits of chat services, and truncation that never splits a character.

The services count in different units: WeCom and DingTalk count UTF-8 BYTES
(a Chinese character is 3 of them), Slack counts characters. apprise's own
``body_maxlen`` counts characters everywhere, so 2048 Chinese characters pass
apprise and are refused by WeCom; hence our limits are in the service's unit.
A cut message keeps its beginning (title, store, values) and ends with a
marker, so the reader knows there was more (the incident page has all of it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``max_bytes`` UTF-8 bytes and/or ``max_chars`` characters."""

    max_bytes: int | None = None
    max_chars: int | None = None


NONE = Limit()

# Per apprise service (secure_protocol) and rendered format. Sources: WeCom group
# bot API (text.content <= 2048 bytes, markdown.content <= 4096 bytes), DingTalk
# and Feishu/Lark custom bots (request body <= 20000 bytes: leave room for the
# JSON around the text), Slack (a section block holds 3000 characters; legacy
# attachment text is cut at 8000 by Slack itself).
_LIMITS: dict[tuple[str, str], Limit] = {
    ("wecombot", "text"): Limit(max_bytes=2048),
    ("wecombot", "markdown"): Limit(max_bytes=4096),
    ("dingtalk", "*"): Limit(max_bytes=18000),
    ("feishu", "*"): Limit(max_bytes=18000),
    ("lark", "*"): Limit(max_bytes=18000),
    ("slack", "blocks"): Limit(max_chars=3000),
    ("slack", "*"): Limit(max_chars=8000),
}


def limit_for(service: str, variant: str) -> Limit:
    return _LIMITS.get((service, variant)) or _LIMITS.get((service, "*")) or NONE


def fits(text: str, limit: Limit) -> bool:
    return ((limit.max_chars is None or len(text) <= limit.max_chars)
            and (limit.max_bytes is None or len(text.encode("utf-8")) <= limit.max_bytes))


def truncate(text: str, limit: Limit, marker: str = "…") -> str:
    """``text`` cut to ``limit`` with ``marker`` appended; unchanged when it fits."""
    if limit.max_chars is not None and len(text) > limit.max_chars:
        keep = max(limit.max_chars - len(marker), 0)
        text = text[:keep].rstrip() + marker
    if limit.max_bytes is not None:
        text = truncate_utf8(text, limit.max_bytes, marker)
    return text


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """At most ``max_bytes`` of UTF-8, cut on a character boundary, ending in ``marker``.

    Decoding the cut bytes with ``errors="ignore"`` drops only an incomplete
    trailing sequence: UTF-8 is self-synchronising, so every complete character
    before the cut decodes unchanged.
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    tail = marker.encode("utf-8")
    if len(tail) > max_bytes:
        tail = b""
    kept = encoded[: max_bytes - len(tail)].decode("utf-8", errors="ignore").rstrip()
    return kept + tail.decode("utf-8")
