"""The platform names the product knows: one registry for rules, filters and the API.

A snapshot may carry any platform string (docs/snapshot-format.md), but a name in a
rule's ``platforms:`` or a ``platform=`` filter is compared with the stored ones as is:
a misspelling (``tiktokshop``, the source's name, for the platform ``tiktok``) would
match nothing, silently. So the names are the ones a source adapter or a column mapping
produces, plus the user's own (``platforms:`` in the config, for snapshots posted as
JSON by a tool of theirs); any other name is refused with the nearest known one.
``watcher.sources.platforms_for`` builds the registry a config asks for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

# how a page writes a platform: its brand, never translated; a user's own name as it is
BRANDS = {"amazon": "Amazon", "shopee": "Shopee", "tiktok": "TikTok Shop", "lazada": "Lazada"}


def brand(name: str) -> str:
    return BRANDS.get(name, name)


@dataclass(frozen=True)
class Unknown:
    """A name that is no platform: the one probably meant, and the known ones."""

    name: str
    hint: str | None
    known: tuple[str, ...]

    def text(self) -> str:
        guess = f": did you mean '{self.hint}'?" if self.hint else ""
        return (f"'{self.name}' is not a platform{guess} (known: {', '.join(self.known)}; "
                "declare one of your own under 'platforms:' in the config)")


@dataclass(frozen=True)
class Platforms:
    """Known platform names; ``aliases`` maps a source's name to the platform its
    snapshots carry (``tiktokshop`` -> ``tiktok``), for the hint only: never accepted."""

    names: frozenset[str]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def unknown(self, name: str, *, seen: Iterable[str] = ()) -> Unknown | None:
        """Why ``name`` is no platform (None when it is one); ``seen``: names present in
        the stored data, which a filter may name even when no source produces them."""
        present = set(seen)
        if name in self.names or name in present:
            return None
        candidates = tuple(sorted(self.names | present))
        lowered = name.strip().lower()
        hint: str | None
        if lowered in self.aliases:
            hint = self.aliases[lowered]
        elif lowered in candidates:
            hint = lowered
        else:
            close = difflib.get_close_matches(lowered, candidates, n=1, cutoff=0.7)
            hint = close[0] if close else None
        return Unknown(name, hint, candidates)

    def problem(self, name: str, *, seen: Iterable[str] = ()) -> str | None:
        """``unknown`` in English words, for rule errors and the API."""
        found = self.unknown(name, seen=seen)
        return found.text() if found is not None else None

    def with_names(self, extra: Iterable[str]) -> Platforms:
        return Platforms(self.names | frozenset(extra), self.aliases)
