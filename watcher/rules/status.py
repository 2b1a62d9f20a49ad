"""What became of the last rule reload, for those who watch the API and metrics, not the log.

The reloader is the one writer; ``GET /v1/rules`` and ``/metrics`` read it. A refused
reload keeps the pack in force, and this is where an operator sees why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    at: datetime
    accepted: bool
    version: str  # the pack version in force after this attempt
    error: str | None = None
    file: str | None = None
    line: int | None = None


class RulesStatus:
    """Holds the last outcome; replacing a reference is atomic, so no lock is needed."""

    def __init__(self) -> None:
        self.last_reload: ReloadOutcome | None = None
