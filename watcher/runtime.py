"""Assembling the parts from settings: database, rule pack, engine, pipeline.

Shared by the CLI and the daemon so both build the same thing the same way.
"""

from __future__ import annotations

import functools
import gc
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from watcher.assessment.kept import Kept
from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.platforms import Platforms
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.rules.status import RulesStatus
from watcher.sources import platforms_for
from watcher.store import Database, open_database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    pipeline: Pipeline
    rules_status: RulesStatus = field(default_factory=RulesStatus)
    kept: Kept = field(default_factory=Kept)  # the board and team cards between changes

    def refresh_kept(self) -> None:
        """Bring the kept board and team cards up to the store (after a batch)."""
        pipeline = self.pipeline
        with self.db.engine.connect() as conn:
            self.kept.refresh(conn, pipeline.engine.pack, pipeline.targets,
                              self.settings.scorecard, pipeline.roster,
                              pipeline.clock().astimezone(UTC).date())

    @functools.cached_property
    def platforms(self) -> Platforms:
        """The platform names rules and filters may use (watcher/platforms.py)."""
        return platforms_for(self.settings)

    @classmethod
    def open(cls, settings: Settings, *, with_rules: bool = True,
             db: Database | None = None) -> Runtime:
        db = db if db is not None else open_database(settings.database_url)
        platforms = platforms_for(settings)
        pack = load_pack(Path(settings.rules), platforms) if with_rules else None
        engine = RuleEngine(pack) if pack is not None else RuleEngine.empty()
        runtime = cls(settings, db, Pipeline(db, engine, settings))
        runtime.platforms = platforms
        return runtime

    def close(self) -> None:
        self.db.dispose()


def freeze_heap() -> None:
    """Keep what the process has built so far out of the cyclic collector's full passes.

    Modules, schemas and the compiled pack live as long as the process, yet a
    long batch allocates enough to trigger full collections that rescan all of
    them: freezing them makes a batch 5-10 % faster (bench/README.md). For the
    process's own entry points only: a test process opens many runtimes, and a
    frozen object that later becomes cyclic garbage is never collected.
    """
    gc.collect()
    gc.freeze()
