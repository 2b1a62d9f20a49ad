"""Backtest: replay stored history through the current rules, notifying nobody.

The replay runs the real pipeline against a scratch in-memory store, so what
it reports is exactly what these rules would have done with this history, in
period order; it is then compared with the incidents on record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from watcher.apply import promote
from watcher.config import Settings
from watcher.incidents import Incident
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.snapshot import Snapshot
from watcher.store import Database, open_database
from watcher.store import repository as repo
from watcher.store.database import as_utc, utcnow
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


class ReplayClock:
    """Time as the history tells it: each snapshot is taken at its ``observed_at`` (or
    when it was received), never earlier than the one before, so ``for: 10m`` and
    ``reopen_hold`` judge the replay as they judged the data when it arrived."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def at(self, when: datetime | None) -> None:
        if when is not None and (self.now is None or when > self.now):
            self.now = when
        elif self.now is None:
            self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now or utcnow()


def replay(engine: RuleEngine, history: Iterable[Snapshot], settings: Settings, *,
           one_by_one: bool = False,
           at: Callable[[Snapshot], datetime | None] = lambda s: s.observed_at,
           ) -> list[Incident]:
    """The incidents ``history`` opens through ``engine``, in the order opened, on a
    scratch in-memory store with nobody to notify. ``one_by_one``: each snapshot is
    its own batch, as snapshots arriving one at a time are; so is every snapshot
    when time matters (a rule with a ``for`` duration, or ``reopen_hold``), each at
    its time (``at``; snapshots of the same time together), with the timer loop's
    ``for`` runs judged in between."""
    scratch = open_database("sqlite://", auto_upgrade=True)
    quiet = settings.model_copy(update={"routes": (), "default_channels": ()})
    clock = ReplayClock()
    pipeline = Pipeline(scratch, engine, quiet, clock=clock)
    timed = bool(settings.reopen_hold) or any(
        r.for_ is not None and r.for_.seconds is not None for r in engine.pack.rules)
    try:
        if one_by_one or timed:
            for when, batch in _batches(history, at, one_by_one):
                clock.at(when)
                with scratch.engine.begin() as conn:
                    promote(conn, quiet, clock())
                pipeline.ingest_snapshots(batch, "replay")
        else:
            pipeline.ingest_snapshots(history, "replay")
        with scratch.engine.connect() as conn:
            return sorted(repo.list_incidents(conn, limit=1_000_000), key=lambda i: i.id)
    finally:
        scratch.dispose()


def _batches(history: Iterable[Snapshot], at: Callable[[Snapshot], datetime | None],
             one_by_one: bool) -> Iterable[tuple[datetime | None, list[Snapshot]]]:
    """Snapshots in the order given, in batches of those taken at the same time (a file
    ingested at once shares its time), or one by one."""
    batch: list[Snapshot] = []
    when: datetime | None = None
    for snapshot in history:
        taken = at(snapshot)
        if batch and (one_by_one or taken != when):
            yield when, batch
            batch = []
        batch.append(snapshot)
        when = taken
    if batch:
        yield when, batch


def backtest(db: Database, engine: RuleEngine, settings: Settings, first: Period,
             last: Period) -> BacktestReport:
    report = BacktestReport()
    with db.engine.connect() as conn:
        rows = conn.execute(select(snapshots).where(
            snapshots.c.period_start >= first.start, snapshots.c.period_end <= last.end)
            .order_by(snapshots.c.period_end, snapshots.c.id)).mappings().all()
        recorded_incidents = repo.list_incidents(conn, since=None, limit=1_000_000)
    history = [Snapshot.model_validate({**dict(r), "period": r["period"]}) for r in rows]
    received = {r["key"]: as_utc(r["observed_at"] or r["received_at"]) for r in rows}
    report.snapshots = len(history)
    replayed = replay(engine, history, settings, at=lambda s: received.get(s.key))
    in_range = [i for i in recorded_incidents
                if i.period and first.start <= Period.parse(i.period).start <= last.end]
    report.would_fire.update(i.rule for i in replayed)
    report.recorded.update(i.rule for i in in_range)
    now_keys = {(i.rule, i.subject) for i in replayed}
    then_keys = {(i.rule, i.subject) for i in in_range}
    report.new = sorted(now_keys - then_keys)
    report.gone = sorted(then_keys - now_keys)
    return report
