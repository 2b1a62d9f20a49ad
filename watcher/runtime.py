"""Assembling the parts from settings: database, rule pack, engine, pipeline.

Shared by the CLI and the daemon so both build the same thing the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.store import Database, open_database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    pipeline: Pipeline

    @classmethod
    def open(cls, settings: Settings, *, with_rules: bool = True) -> Runtime:
        db = open_database(settings.database_url)
        pack = load_pack(Path(settings.rules)) if with_rules else None
        engine = RuleEngine(pack) if pack is not None else RuleEngine.empty()
        return cls(settings, db, Pipeline(db, engine, settings))

    def close(self) -> None:
        self.db.dispose()
