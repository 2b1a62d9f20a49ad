"""Specifications of the platform source adapters, one module per source.

Helpers live here so every module reads fixtures and checks canonical output
the same way: the fixtures are copies under ``tests/fixtures/platforms`` so the
suite never depends on anything outside the repository.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.snapshot import Snapshot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "platforms"
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
OBSERVED = "2026-11-01T02:00:00Z"


def clock() -> datetime:
    return NOW


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture(name))


def as_bytes(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def assert_canonical(records: list[dict[str, Any]]) -> None:
    """Each record validates and is already in canonical form (the model changes nothing)."""
    for record in records:
        snapshot = Snapshot.model_validate(record)
        canonical = snapshot.to_canonical()
        assert datetime.fromisoformat(canonical.pop("observed_at")) == datetime.fromisoformat(
            record["observed_at"])
        assert canonical == {k: v for k, v in record.items() if k != "observed_at"}
