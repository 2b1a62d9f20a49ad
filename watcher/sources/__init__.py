"""Platform source adapters: platform payload bytes in, canonical snapshot dicts out.

Adding a source is one new module with a ``Source`` subclass and one line in
``_ALL`` below; nothing else needs to know about it.
"""

from __future__ import annotations

from typing import Final

from watcher.errors import ConfigError, InputError
from watcher.sources.amazon_spapi import AmazonSpApiSource
from watcher.sources.base import Source
from watcher.sources.lingxing import LingxingSource
from watcher.sources.shopee import ShopeeSource
from watcher.sources.tiktokshop import TikTokShopSource
from watcher.validation import RawRecord, Rejection

_ALL: Final[tuple[Source, ...]] = (
    AmazonSpApiSource(),
    ShopeeSource(),
    TikTokShopSource(),
    LingxingSource(),
)

SOURCES: Final[dict[str, Source]] = {source.name: source for source in _ALL}


def get_source(name: str) -> Source:
    """The adapter called ``name``; an unknown name lists the known ones."""
    source = SOURCES.get(name.strip().lower())
    if source is None:
        known = ", ".join(sorted(SOURCES))
        raise ConfigError(f"unknown source '{name}'; known sources: {known}", key="source")
    return source


def records(name: str, content: bytes, *, store: str, operator: str | None = None,
            period: str | None = None) -> list[RawRecord | Rejection]:
    """A platform payload as pipeline records.

    Each record keeps the platform's own payload as its raw text, so fields we do
    not map are stored, not dropped; a payload the adapter refuses becomes one
    rejection naming the platform field.
    """
    source = get_source(name)
    text = content.decode("utf-8", errors="replace")
    try:
        converted = source.parse(content, store=store, operator=operator, period=period)
    except InputError as exc:
        return [Rejection(f"source:{name}", exc.location or name, exc.field, exc.reason, text)]
    return [RawRecord(f"{name} snapshot {index}", text, data)
            for index, data in enumerate(converted, start=1)]


__all__ = [
    "SOURCES",
    "AmazonSpApiSource",
    "LingxingSource",
    "ShopeeSource",
    "Source",
    "TikTokShopSource",
    "get_source",
    "records",
]
