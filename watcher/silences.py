"""Silences: matchers + a time window, with an author and a comment (as in Alertmanager).

A silenced notification is not queued; the incident's timeline says which
silence held it back, so nothing disappears without a trace. Silences end on
their own at ``ends_at``; expiring one early sets ``ends_at`` to now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watcher.config import MATCH_KEYS


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int = 0
    matchers: dict[str, str] = Field(min_length=1)
    starts_at: datetime
    ends_at: datetime
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000)
    created_at: datetime

    @field_validator("matchers")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in MATCH_KEYS and not key.startswith("label."):
                raise ValueError(f"cannot match on '{key}' (use {', '.join(MATCH_KEYS)} "
                                 "or label.<name>)")
        return value

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        return all(labels.get(key) == value for key, value in self.matchers.items())


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, str | None],
                now: datetime) -> Silence | None:
    return next((s for s in silences if s.active(now) and s.matches(labels)), None)


def parse_matchers(items: Iterable[str]) -> dict[str, str]:
    """``["audience=compliance", "store=amz-us-01"]`` -> a matcher dict."""
    matchers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"a matcher is key=value, got {item!r}")
        matchers[key.strip()] = value.strip()
    return matchers
