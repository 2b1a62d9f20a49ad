"""Platform source adapters: platform payload bytes in, canonical snapshot dicts out.

Adding a source is one new module with a ``Source`` subclass and one line in
``_ALL`` below; nothing else needs to know about it.
"""

from __future__ import annotations

from typing import Final

from watcher.errors import ConfigError
from watcher.sources.amazon_spapi import AmazonSpApiSource
from watcher.sources.base import Source
from watcher.sources.lingxing import LingxingSource
from watcher.sources.shopee import ShopeeSource
from watcher.sources.tiktokshop import TikTokShopSource

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


__all__ = ["SOURCES", "AmazonSpApiSource", "LingxingSource", "ShopeeSource", "Source",
           "TikTokShopSource", "get_source"]
