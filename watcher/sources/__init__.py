"""Source adapters: platform payloads and ERP spreadsheets in, canonical snapshot dicts out.

Adding a platform is one new module with a ``Source`` subclass and one line in
``_ALL`` below; nothing else needs to know about it. Column mappings (ERP
exports, ``watcher/sources/tabular.py``) are data in the ``mappings`` folder;
a ``Catalog`` holds both kinds under one namespace of source names, which is
what every edge (``watcher ingest --source``, ``POST /v1/sources/{name}``, the
drop folder's ``<source>/`` folders) looks names up in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from watcher import defaults
from watcher.config import Settings
from watcher.errors import ConfigError, InputError
from watcher.feeds import CANONICAL
from watcher.platforms import Platforms
from watcher.sources.amazon_spapi import AmazonSpApiSource
from watcher.sources.base import Source
from watcher.sources.lingxing import LingxingSource
from watcher.sources.shopee import ShopeeSource
from watcher.sources.tabular import TabularSource, load_mappings
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
    return [RawRecord(f"{name} snapshot {index}", text, data, source.name)
            for index, data in enumerate(converted, start=1)]


@dataclass(frozen=True)
class Catalog:
    """Every source by name: the built-in platform adapters and the user's column mappings."""

    mappings: Mapping[str, TabularSource] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [*SOURCES, *sorted(self.mappings)]

    def __contains__(self, name: object) -> bool:
        return name in SOURCES or name in self.mappings

    def platforms(self) -> Platforms:
        """The platforms these sources produce: each adapter's, and each mapping's constant
        or translated (``values:``) platform; a mapping that copies a column as is adds
        none (its names are the user's, declared under ``platforms:``)."""
        names = {source.platform for source in _ALL}
        aliases = {source.name: source.platform for source in _ALL}
        for mapping in self.mappings.values():
            spec = mapping.mapping.platform
            produced = ({spec.value} if spec.value is not None else set(spec.values.values()))
            names.update(name.strip().lower() for name in produced)
            if len(produced) == 1:
                aliases[mapping.name] = next(iter(produced)).strip().lower()
        return Platforms(frozenset(names), aliases)

    def check(self, name: str) -> None:
        """An unknown name is a ConfigError listing the known ones."""
        if name not in self:
            raise ConfigError(f"unknown source '{name}'; known sources: "
                              f"{', '.join(self.names())}", key="source")

    def needs_store(self, name: str) -> bool:
        """Platform payloads never name our store ids; a mapping with a store column does."""
        mapping = self.mappings.get(name)
        return mapping is None or mapping.needs_store

    def records(self, name: str, content: bytes, *, store: str | None = None,
                operator: str | None = None, period: str | None = None
                ) -> list[RawRecord | Rejection]:
        """Pipeline records from ``content``; a refused file is one rejection, never a raise."""
        self.check(name)
        mapping = self.mappings.get(name)
        if mapping is None:
            if not store:
                return [Rejection(f"source:{name}", name, "store",
                                  f"source '{name}' needs the store id", "")]
            return records(name, content, store=store, operator=operator, period=period)
        try:
            return mapping.records(content, store=store, operator=operator, period=period)
        except InputError as exc:
            return [Rejection(f"source:{name}", exc.location or name, exc.field, exc.reason,
                              mapping.describe(content))]


BUILTIN: Final = Catalog()


def load_catalog(folder: Path | None, *, required: bool = False) -> Catalog:
    """The built-in adapters plus the mapping files in ``folder``, validated once.

    A folder that does not exist is no mappings unless ``required`` (the config
    named it explicitly): then it is an error, not a silent empty catalog.
    """
    if folder is None or (not folder.is_dir() and not required):
        return BUILTIN
    if not folder.is_dir():
        raise ConfigError("the mappings folder does not exist", file=str(folder),
                          key="mappings")
    found = load_mappings(folder, reserved=(*SOURCES, CANONICAL))
    return Catalog({name: TabularSource(mapping) for name, mapping in found.items()})


def catalog_for(settings: Settings) -> Catalog:
    """The sources a config asks for: ``mappings`` (default: the built-in ones)."""
    return load_catalog(settings.mappings, required="mappings" in settings.model_fields_set)


@functools.cache
def builtin_platforms() -> Platforms:
    """The names the built-in adapters and mappings produce: what a pack loaded without a
    config (``watcher rules test`` on a folder) may name."""
    return load_catalog(defaults.mappings()).platforms()


def platforms_for(settings: Settings, catalog: Catalog | None = None) -> Platforms:
    """The platform names a config knows: its sources' and its own ``platforms:``."""
    found = (catalog if catalog is not None else catalog_for(settings)).platforms()
    return found.with_names(settings.platforms)


__all__ = [
    "BUILTIN",
    "SOURCES",
    "AmazonSpApiSource",
    "Catalog",
    "LingxingSource",
    "ShopeeSource",
    "Source",
    "TabularSource",
    "TikTokShopSource",
    "builtin_platforms",
    "catalog_for",
    "get_source",
    "load_catalog",
    "platforms_for",
    "records",
]
