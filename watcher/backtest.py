"""Backtest: replay stored history through the current rules, notifying nobody.

The replay runs the real pipeline against a scratch in-memory store, so what
it reports is exactly what these rules would have done with this history, in
period order; it is then compared with the incidents on record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from watcher.config import Settings
from watcher.incidents import Incident
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.snapshot import Snapshot
from watcher.store import Database, open_database
from watcher.store import repository as repo
from watcher.store.schema import snapshots

Key = tuple[str, str]  # (rule, subject)


@dataclass
class BacktestReport:
    snapshots: int = 0
    would_fire: Counter[str] = field(default_factory=Counter)
    recorded: Counter[str] = field(default_factory=Counter)
    new: list[Key] = field(default_factory=list)
    gone: list[Key] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        rules = sorted(set(self.would_fire) | set(self.recorded))
        return {"snapshots": self.snapshots,
                "rules": [{"rule": r, "would_fire": self.would_fire[r],
                           "recorded": self.recorded[r]} for r in rules],
                "would_open_not_recorded": [{"rule": r, "subject": s} for r, s in self.new],
                "recorded_not_reproduced": [{"rule": r, "subject": s} for r, s in self.gone]}


def replay(engine: RuleEngine, history: Iterable[Snapshot], settings: Settings, *,
           one_by_one: bool = False) -> list[Incident]:
    """The incidents ``history`` opens through ``engine``, in the order opened, on a
    scratch in-memory store with nobody to notify. ``one_by_one``: each snapshot is
    its own batch, as snapshots arriving one at a time are."""
    scratch = open_database("sqlite://", auto_upgrade=True)
    quiet = settings.model_copy(update={"routes": (), "default_channels": ()})
    pipeline = Pipeline(scratch, engine, quiet)
    try:
        if one_by_one:
            for snapshot in history:
                pipeline.ingest_snapshots([snapshot], "replay")
        else:
            pipeline.ingest_snapshots(history, "replay")
        with scratch.engine.connect() as conn:
            return sorted(repo.list_incidents(conn, limit=1_000_000), key=lambda i: i.id)
    finally:
        scratch.dispose()


def backtest(db: Database, engine: RuleEngine, settings: Settings, first: Period,
             last: Period) -> BacktestReport:
    report = BacktestReport()
    with db.engine.connect() as conn:
        rows = conn.execute(select(snapshots).where(
            snapshots.c.period_start >= first.start, snapshots.c.period_end <= last.end)
            .order_by(snapshots.c.period_end, snapshots.c.id)).mappings().all()
        recorded_incidents = repo.list_incidents(conn, since=None, limit=1_000_000)
    history = [Snapshot.model_validate({**dict(r), "period": r["period"]}) for r in rows]
    report.snapshots = len(history)
    replayed = replay(engine, history, settings)
    in_range = [i for i in recorded_incidents
                if i.period and first.start <= Period.parse(i.period).start <= last.end]
    report.would_fire.update(i.rule for i in replayed)
    report.recorded.update(i.rule for i in in_range)
    now_keys = {(i.rule, i.subject) for i in replayed}
    then_keys = {(i.rule, i.subject) for i in in_range}
    report.new = sorted(now_keys - then_keys)
    report.gone = sorted(then_keys - now_keys)
    return report
