"""The ingestion pipeline: records -> validation -> store -> rules -> incidents -> outbox.

Work is done in batches, one transaction each: a snapshot is accepted only
once it is committed together with the incidents, timeline events and
notifications it caused, so a crash loses nothing that was acknowledged.
An identical restatement (same key, same content) is stored once and not
re-evaluated; a changed one replaces the values and is evaluated again.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from watcher import feeds
from watcher.apply import Plan, Planner, write
from watcher.assessment import roster as people
from watcher.assessment.scorecard import Scorecard, build_card
from watcher.assessment.targets import TargetBook, load_optional
from watcher.assessment.verdict import card_row, months_of
from watcher.config import Settings
from watcher.errors import RecordRefused
from watcher.evaluation import Outcome, outcome
from watcher.observability import (
    EVALUATION_SECONDS,
    RULE_EVALUATIONS,
    SNAPSHOTS_INGESTED,
    SNAPSHOTS_REJECTED,
    source_kind,
)
from watcher.observability import count as count_noise
from watcher.period import Period
from watcher.rules import history
from watcher.rules.engine import RuleEngine
from watcher.snapshot import Snapshot
from watcher.store import noise
from watcher.store import plans as stored_plans
from watcher.store import repository as repo
from watcher.store.database import Database, utcnow
from watcher.validation import RawRecord, RecordWarning, Rejection, validate, warnings_of

log = structlog.get_logger(__name__)
RACE_RETRIES = 5
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for a deadlock it broke


@dataclass
class IngestReport:
    accepted: int = 0
    unchanged: int = 0
    restated: int = 0
    opened: int = 0
    resolved: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[RecordWarning] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        self.accepted += other.accepted
        self.unchanged += other.unchanged
        self.restated += other.restated
        self.opened += other.opened
        self.resolved += other.resolved
        self.rejected.extend(other.rejected)
        self.warnings.extend(other.warnings)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": len(self.rejected),
                "unchanged": self.unchanged, "restated": self.restated,
                "incidents_opened": self.opened, "incidents_resolved": self.resolved,
                "errors": [r.as_dict() for r in self.rejected],
                "warnings": [w.as_dict() for w in self.warnings]}


class Pipeline:
    def __init__(self, db: Database, engine: RuleEngine, settings: Settings, *,
                 clock: Callable[[], datetime] = utcnow,
                 targets: TargetBook | None = None,
                 roster: people.Roster | None = None) -> None:
        self.db = db
        self.engine = engine
        self.known_metrics = frozenset(engine.pack.metrics)  # declared beside the registry
        self.settings = settings
        self.clock = clock
        # the targets file fills targets a snapshot does not send, for evaluation only:
        # the store keeps the snapshot as sent
        self.targets = load_optional(settings.targets) if targets is None else targets
        # the roster labels incidents with the operator's team and manager (routes)
        self.roster = people.load_optional(settings.roster) if roster is None else roster
        # told after each committed batch (the daemon refreshes its kept views)
        self.on_commit: list[Callable[[], None]] = []

    def use_engine(self, engine: RuleEngine) -> None:
        """Swap in a reloaded rule pack; the next batch is evaluated with it."""
        self.engine = engine
        self.known_metrics = frozenset(engine.pack.metrics)  # declared beside the registry

    def use_targets(self, targets: TargetBook) -> None:
        """Swap in a reloaded targets file; the next batch is evaluated with it."""
        self.targets = targets

    def use_roster(self, roster: people.Roster) -> None:
        """Swap in a reloaded roster; the next batch is labelled with it."""
        self.roster = roster

    def ingest(self, records: Iterable[RawRecord | Rejection], source: str) -> IngestReport:
        return self.ingest_many([(records, source)])[0]

    def ingest_many(self, requests: Sequence[tuple[Iterable[RawRecord | Rejection], str]]
                    ) -> list[IngestReport]:
        """Several requests (HTTP posts, files, messages) in shared transactions, each
        with its own report: what the daemon's engine thread does with requests that
        queued while it was busy (one commit for many small posts)."""
        reports = [IngestReport() for _ in requests]
        sources = [source for _, source in requests]
        batch: list[Statement] = []
        rejected: list[tuple[int, Rejection]] = []
        for origin, (records, source) in enumerate(requests):
            for record in records:
                verdict = record if isinstance(record, Rejection) else validate(
                    record, source, self.engine.pack.metrics)
                if isinstance(verdict, Rejection):
                    rejected.append((origin, Rejection(source, verdict.location, verdict.field,
                                                       verdict.error, verdict.raw)))
                else:
                    assert isinstance(record, RawRecord)
                    batch.append(Statement(verdict, record.text, origin, record.location,
                                           warnings_of(verdict, record.location,
                                                       self.known_metrics), record.feed))
                if len(batch) >= self.settings.batch_size:
                    self._commit(batch, rejected, sources, reports)
                    batch, rejected = [], []
        if batch or rejected:
            self._commit(batch, rejected, sources, reports)
        return reports

    def ingest_snapshots(self, snapshots: Iterable[Snapshot], source: str, *,
                         feed: str = feeds.CANONICAL) -> IngestReport:
        """For callers that already hold validated snapshots (sources, tests, backfills)."""
        batch = [Statement(s, "", 0, s.key, warnings_of(s, s.key, self.known_metrics), feed)
                 for s in snapshots]
        report = IngestReport()
        for start in range(0, len(batch), self.settings.batch_size):
            self._commit(batch[start:start + self.settings.batch_size], [], [source], [report])
        return report

    # -- one transaction ------------------------------------------------------------------

    def _commit(self, batch: list[Statement], rejected: list[tuple[int, Rejection]],
                sources: list[str], reports: list[IngestReport]) -> None:
        """Commit a batch; a race with another replica on the same snapshot key or
        incident fingerprint (a unique constraint) is retried, and the retry sees
        the winner's rows: a restatement, an incident already live. So is a deadlock
        between two replicas' batches (PostgreSQL aborts one of them)."""
        for attempt in range(1, RACE_RETRIES + 1):
            try:
                parts = self._commit_once(batch, rejected, sources)
                break
            except (IntegrityError, OperationalError) as exc:
                deadlock = getattr(exc.orig, "sqlstate", None) == DEADLOCK
                if attempt == RACE_RETRIES or not (isinstance(exc, IntegrityError) or deadlock):
                    raise
                log.info("batch_race_retry", attempt=attempt, sources=sorted(set(sources)))
        for listener in self.on_commit:
            listener()
        for origin, part in parts.items():
            reports[origin].merge(part)
            kind = source_kind(sources[origin])
            SNAPSHOTS_INGESTED.labels(kind).inc(part.accepted)
            SNAPSHOTS_REJECTED.labels(kind).inc(len(part.rejected))
            log.debug("ingested", source=sources[origin],
                      **{k: v for k, v in part.as_dict().items()
                         if k not in ("errors", "warnings")})

    def _commit_once(self, batch: list[Statement], rejected: list[tuple[int, Rejection]],
                     sources: list[str]) -> dict[int, IngestReport]:
        """One transaction; the report of each request (origin) that had a part in it."""
        now = self.clock()
        targets = self.targets
        parts: dict[int, IngestReport] = defaultdict(IngestReport)
        for origin, rejection in rejected:
            parts[origin].rejected.append(rejection)
        latest: dict[tuple[str, str], Statement] = {}  # per snapshot and feed (feeds.py)
        for statement in batch:
            parts[statement.origin].accepted += 1
            place = (statement.snapshot.key, statement.feed)
            held = latest.get(place)
            if held is None or not observed_before(statement.snapshot, held.snapshot.observed_at):
                latest.pop(place, None)  # the last statement wins, in its place in the batch
                latest[place] = statement
        by_key: dict[str, list[Statement]] = defaultdict(list)
        for (key, _feed), statement in latest.items():
            by_key[key].append(statement)
        with self.db.engine.begin() as conn:
            known = repo.snapshot_state(conn, list(by_key), lock=True)
            joined = repo.single_parts(conn, [  # one-feed rows another feed now joins
                key for key, current in known.items() if current.parts is None
                and any(s.feed != current.feed for s in by_key[key])])
            fresh, restated, evaluate = {}, {}, []
            stored: dict[str, Snapshot] = {}  # written by this batch: the merged snapshots
            quiet: dict[str, tuple[datetime | None, dict[str, Any] | None]] = {}
            owner: dict[str, Statement] = {}  # the statement answering for a key's change
            changed_by: dict[str, list[Statement]] = {}
            for key, statements in by_key.items():
                current = known.get(key)
                if current is None:
                    state: feeds.Parts = {}
                elif current.parts is not None:
                    state = dict(current.parts)
                else:  # one feed's row: its columns are the part, read only if another joins
                    state = joined.get(key) or {current.feed: current.only()}
                touched: list[Statement] = []
                confirmed = False
                for statement in statements:
                    snapshot, prior = statement.snapshot, state.get(statement.feed)
                    if prior is not None and observed_before(snapshot, prior.observed_at):
                        parts[statement.origin].unchanged += 1  # late: its feed said more since
                        continue
                    digest = snapshot.content_hash()
                    if prior is not None and prior.content_hash == digest:
                        # the same again (an export re-sent every hour): it confirms its part
                        parts[statement.origin].unchanged += 1
                        if snapshot.observed_at is not None \
                                and snapshot.observed_at != prior.observed_at:
                            state[statement.feed] = prior.confirmed(snapshot.observed_at)
                            confirmed = True
                        continue
                    # what deciding needs of the new part; its values only if another
                    # feed's part is there to merge with (below)
                    state[statement.feed] = feeds.Part(
                        {}, {}, {}, None, snapshot.observed_at, snapshot.observed_at or now,
                        feeds.next_seq(state), digest, "", now,
                        prior.revision + 1 if prior is not None else 1)
                    touched.append(statement)
                if not touched:
                    if confirmed and current is not None:
                        quiet[key] = (self._observed(state), self._parts(state))
                    continue
                last = touched[-1]
                if len(state) == 1:
                    merged = last.snapshot
                    digest = state[last.feed].content_hash
                else:
                    for statement in touched:
                        new = state[statement.feed]
                        state[statement.feed] = feeds.part_of(
                            statement.snapshot, source=sources[statement.origin], now=now,
                            seq=new.seq, content_hash=new.content_hash, revision=new.revision)
                    result = self._merge(last, state, parts, sources, touched)
                    if result is None:
                        continue  # refused: the stored snapshot stays as it was
                    merged, digest = result, result.content_hash()
                row = repo.snapshot_row(merged, last.raw, sources[last.origin], now, digest,
                                        last.feed, self._parts(state))
                if current is None:
                    fresh[key] = row
                elif current.content_hash == digest:  # new parts, the same merge: nothing to judge
                    for statement in touched:
                        parts[statement.origin].unchanged += 1
                    quiet[key] = (merged.observed_at, row["parts"])
                    continue
                else:
                    restated[key] = row
                    for statement in touched:
                        parts[statement.origin].restated += 1
                owner[key], changed_by[key] = last, touched
                stored[key] = merged
                evaluate.append(targets.fill(merged))
            evaluate.sort(key=lambda s: (s.period.end, s.period.start))
            engine = self.engine
            days = history.needed_days(engine.pack.rules)
            past = history.by_store(history.load_history(
                conn, evaluate, days, history.needed_metrics(engine.pack.rules))) if days else None
            outcomes = self._evaluate(engine, evaluate, owner, parts, sources, past)
            refused = {s.key for s in evaluate} - {o.snapshot.key for o in outcomes}
            for key in refused:
                fresh.pop(key, None)  # not stored: kept in the rejected log instead
                stored.pop(key, None)
                if restated.pop(key, None) is not None:
                    for statement in changed_by[key]:
                        parts[statement.origin].restated -= 1
            for statement in batch:
                if owner.get(statement.snapshot.key) is not statement or \
                        statement.snapshot.key not in refused:
                    parts[statement.origin].warnings.extend(statement.warnings)
            repo.insert_rejections(conn, [r for part in parts.values() for r in part.rejected],
                                   now)
            repo.update_parts(conn, quiet)
            repo.insert_snapshots(conn, list(fresh.values()))
            repo.restate_snapshots(conn, list(restated.values()))
            plan = self._apply(conn, outcomes, now, stored)
        count_noise(plan.counts)  # committed: held back, withdrawn
        for key, count in plan.opened_by.items():
            parts[owner[key].origin if key in owner else 0].opened += count
        for key, count in plan.resolved_by.items():
            parts[owner[key].origin if key in owner else 0].resolved += count
        return parts

    def _merge(self, last: Statement, state: feeds.Parts, parts: dict[int, IngestReport],
               sources: list[str], touched: list[Statement]) -> Snapshot | None:
        """The merge of a snapshot's parts, validated as a sent snapshot is (limits, derived
        rates on the merged counts); a merge that cannot be a snapshot refuses the
        statements that made it, naming the feeds they were merged with."""
        snapshot = last.snapshot
        data = feeds.merged_data(snapshot.store, snapshot.platform, snapshot.period.text, state)
        verdict = validate(RawRecord("", "", data), "", self.engine.pack.metrics)
        if isinstance(verdict, Snapshot):
            return verdict
        mine = {s.feed for s in touched}
        others = ", ".join(sorted(set(state) - mine)) or "-"
        for statement in touched:
            part = parts[statement.origin]
            part.accepted -= 1
            part.rejected.append(Rejection(
                sources[statement.origin], statement.location, verdict.field,
                f"{verdict.error} (merged with what feed(s) {others} stated for "
                f"{snapshot.key})", statement.raw
                or orjson.dumps(statement.snapshot.to_canonical()).decode()))
        log.warning("merge_refused", key=snapshot.key, feeds=sorted(state),
                    reason=verdict.error)
        return None

    @staticmethod
    def _parts(state: feeds.Parts) -> dict[str, Any] | None:
        """What ``snapshots.parts`` keeps: nothing while one feed states the snapshot (its
        columns are the part: the common case writes and reads no JSON)."""
        return feeds.parts_json(state) if len(state) > 1 else None

    @staticmethod
    def _observed(state: feeds.Parts) -> datetime | None:
        times = [p.observed_at for p in state.values() if p.observed_at is not None]
        return max(times) if times else None

    def _evaluate(self, engine: RuleEngine, snapshots: list[Snapshot],
                  owner: dict[str, Statement], parts: dict[int, IngestReport],
                  sources: list[str], past: dict[str, list[history.Dated]] | None = None,
                  ) -> list[Outcome]:
        """Each snapshot's outcome; one the engine cannot take is rejected alone, and
        the rest of the batch (other records, other requests) goes on."""
        outcomes = []
        started = time.perf_counter()
        for snapshot in snapshots:
            try:
                result = outcome(engine.pack, engine.version, engine.evaluate(snapshot))
                if past is not None:  # rules on history (change, trend)
                    result = history.judge(result, engine.version, past.get(snapshot.store, ()))
                outcomes.append(result)
                continue
            except RecordRefused as exc:
                field, reason = exc.field, exc.reason
            except Exception as exc:  # a fault of ours: this record only, kept to send again
                log.exception("evaluation_failed", key=snapshot.key)
                field, reason = None, f"could not be evaluated ({type(exc).__name__}: {exc})"
            statement = owner[snapshot.key]
            part = parts[statement.origin]
            part.accepted -= 1
            part.rejected.append(Rejection(
                sources[statement.origin], statement.location, field,
                f"{field}: {reason}" if field else reason,
                statement.raw or orjson.dumps(snapshot.to_canonical()).decode()))
            log.warning("record_refused_by_engine", key=snapshot.key, reason=reason)
        if outcomes:
            per_snapshot = (time.perf_counter() - started) / len(outcomes)
            for _ in outcomes:
                EVALUATION_SECONDS.observe(per_snapshot)
            RULE_EVALUATIONS.inc(len(outcomes))
        return outcomes

    def _apply(self, conn: Connection, outcomes: list[Outcome], now: datetime,
               stored: dict[str, Snapshot]) -> Plan:
        pack = self.engine.pack
        streak_rules = [r for r in pack.rules if r.enabled and r.kind == "streak"]
        changed = months_of(o.snapshot for o in outcomes) if streak_rules else {}
        if changed:  # before reading what is live: see lock_operators
            repo.lock_operators(conn, [operator for operator, _month in changed])
        subjects = {o.snapshot.store for o in outcomes}
        subjects |= {o.snapshot.operator for o in outcomes if o.snapshot.operator}
        recent = {}
        if self.settings.reopen_hold:
            fingerprints = {f.fingerprint for o in outcomes for f in o.firings}
            recent = repo.recently_resolved(
                conn, fingerprints, now - timedelta(seconds=self.settings.reopen_hold))
        live = repo.live_incidents_of(conn, subjects)
        planned = stored_plans.planned_incidents(conn, [i.id for i in live.values()
                                                if i.subject_kind == "operator"])
        waiting = noise.of_subjects(conn, subjects) if any(
            r.for_ is not None for r in pack.rules) else {}
        planner = Planner(pack, self.engine.version, self.settings, now, live,
                          lambda operator, months: repo.month_evidence(conn, operator, months),
                          recent, roster=self.roster, planned=planned, pending=waiting)
        planner.outcomes(outcomes)
        if changed:
            cards = self._monthly_cards(conn, changed, stored)
            repo.upsert_monthly_cards(conn, [card_row(card, now) for card in cards])
            span = max(r.months for r in streak_rules) * 2
            starts = [Period.parse(month) for _operator, month in changed]
            results = repo.operators_months(
                conn, [operator for operator, _month in changed],
                min(starts).shift_months(-span).start, max(starts).shift_months(span).start)
            planner.streaks(changed, results)
        write(conn, planner.plan, self.settings, now)
        return planner.plan

    def _monthly_cards(self, conn: Connection, changed: dict[tuple[str, str], Snapshot],
                       batch: dict[str, Snapshot]) -> list[Scorecard]:
        """The card of each operator's month the batch changed, from the store (which
        holds the batch's snapshots by now): the keys of the month's snapshots in one
        query per month, and only those the batch did not write itself loaded."""
        by_month: dict[str, list[str]] = defaultdict(list)
        for operator, text in changed:
            by_month[text].append(operator)
        pack, book, settings = self.engine.pack, self.targets, self.settings.scorecard
        cards = []
        for text, operators in by_month.items():
            month = Period.parse(text)
            keys = repo.operators_snapshot_keys(conn, operators, month.start, month.end)
            loaded = repo.snapshots_by_key(
                conn, [k for found in keys.values() for k in found if k not in batch])
            cards += [build_card(operator, month, [batch.get(k) or loaded[k] for k in found],
                                 pack, book, settings, self.roster)
                      for operator, found in keys.items()]
        return cards


class Statement(NamedTuple):
    """A validated snapshot as stated by one request (``origin``) of a batch."""

    snapshot: Snapshot
    raw: str
    origin: int
    location: str = ""
    warnings: Sequence[RecordWarning] = ()
    feed: str = feeds.CANONICAL  # who states it: its part of the snapshot (feeds.py)


def observed_before(snapshot: Snapshot, other: datetime | None) -> bool:
    """A statement observed before ``other``: it arrived late (a redelivery, a slow
    replica) and must not replace what was observed after it. Without both
    times, arrival order decides."""
    return snapshot.observed_at is not None and other is not None \
        and snapshot.observed_at < other
