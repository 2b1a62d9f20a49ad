"""The ingestion pipeline: records -> validation -> store -> rules -> incidents -> outbox.

Work is done in batches, one transaction each: a snapshot is accepted only
once it is committed together with the incidents, timeline events and
notifications it caused, so a crash loses nothing that was acknowledged.
An identical restatement (same key, same content) is stored once and not
re-evaluated; a changed one replaces the values and is evaluated again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, select

from watcher import incidents as inc
from watcher.alerts import Alert, AlertKind, Evidence
from watcher.config import Settings, route
from watcher.evaluation import Assessment, Outcome, outcome, render_title
from watcher.period import Period
from watcher.rules.engine import RuleEngine
from watcher.rules.model import Rule
from watcher.snapshot import Snapshot
from watcher.store import repository as repo
from watcher.store.database import Database, utcnow
from watcher.store.schema import notifications
from watcher.streaks import Streak, longest_within, run_containing
from watcher.validation import RawRecord, Rejection, validate

log = structlog.get_logger(__name__)


@dataclass
class IngestReport:
    accepted: int = 0
    unchanged: int = 0
    restated: int = 0
    opened: int = 0
    resolved: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        self.accepted += other.accepted
        self.unchanged += other.unchanged
        self.restated += other.restated
        self.opened += other.opened
        self.resolved += other.resolved
        self.rejected.extend(other.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": len(self.rejected),
                "unchanged": self.unchanged, "restated": self.restated,
                "incidents_opened": self.opened, "incidents_resolved": self.resolved,
                "errors": [r.as_dict() for r in self.rejected]}


Listener = Callable[[IngestReport], None]


class Pipeline:
    def __init__(self, db: Database, engine: RuleEngine, settings: Settings, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.listeners: list[Listener] = []

    def use_engine(self, engine: RuleEngine) -> None:
        """Swap in a reloaded rule pack; the next batch is evaluated with it."""
        self.engine = engine

    def ingest(self, records: Iterable[RawRecord | Rejection], source: str) -> IngestReport:
        report = IngestReport()
        batch: list[tuple[Snapshot, str]] = []
        rejected: list[Rejection] = []
        for record in records:
            verdict = record if isinstance(record, Rejection) else validate(record, source)
            if isinstance(verdict, Rejection):
                rejected.append(Rejection(source, verdict.location, verdict.field,
                                          verdict.error, verdict.raw))
            else:
                assert isinstance(record, RawRecord)
                batch.append((verdict, record.text))
            if len(batch) >= self.settings.batch_size:
                report.merge(self._commit(batch, rejected, source))
                batch, rejected = [], []
        if batch or rejected:
            report.merge(self._commit(batch, rejected, source))
        for listener in self.listeners:
            listener(report)
        return report

    def ingest_snapshots(self, snapshots: Iterable[Snapshot], source: str) -> IngestReport:
        """For callers that already hold validated snapshots (sources, tests, backfills)."""
        batch = [(s, "") for s in snapshots]
        report = IngestReport()
        for start in range(0, len(batch), self.settings.batch_size):
            report.merge(self._commit(batch[start:start + self.settings.batch_size], [], source))
        return report

    # -- one transaction ------------------------------------------------------------------

    def _commit(self, batch: list[tuple[Snapshot, str]], rejected: list[Rejection],
                source: str) -> IngestReport:
        now = self.clock()
        report = IngestReport(rejected=list(rejected))
        latest: dict[str, tuple[Snapshot, str]] = {}
        for snapshot, raw in batch:
            latest[snapshot.key] = (snapshot, raw)  # the last statement in a batch wins
        with self.db.engine.begin() as conn:
            repo.insert_rejections(conn, rejected, now)
            known = repo.snapshot_state(conn, list(latest))
            fresh, restated, evaluate = [], [], []
            for key, (snapshot, raw) in latest.items():
                row = repo.snapshot_row(snapshot, raw, source, now)
                if key not in known:
                    fresh.append(row)
                elif known[key][1] == row["content_hash"]:
                    report.unchanged += 1
                    continue
                else:
                    restated.append(row)
                evaluate.append(snapshot)
            repo.insert_snapshots(conn, fresh)
            repo.restate_snapshots(conn, restated)
            report.accepted = len(batch)
            report.restated = len(restated)
            evaluate.sort(key=lambda s: (s.period.end, s.period.start))
            outcomes = [outcome(self.engine.pack, self.engine.version, self.engine.evaluate(s))
                        for s in evaluate]
            _Applier(conn, self, now, report).apply(outcomes)
        log.info("ingested", source=source, **{k: v for k, v in report.as_dict().items()
                                               if k != "errors"})
        return report


class _Applier:
    """Applies the outcomes of one batch inside its transaction."""

    def __init__(self, conn: Connection, pipeline: Pipeline, now: datetime,
                 report: IngestReport) -> None:
        self.conn = conn
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.now = now
        self.report = report
        self.live: dict[str, inc.Incident] = {}

    def apply(self, outcomes: list[Outcome]) -> None:
        fingerprints = {f.fingerprint for o in outcomes for f in o.firings}
        fingerprints |= {r.fingerprint for o in outcomes for r in o.recoveries}
        self.live = repo.live_incidents(self.conn, fingerprints)
        months: dict[tuple[str, str], Assessment] = {}
        for result in outcomes:
            for firing in result.firings:
                self._decide(firing.fingerprint, inc.on_firing(
                    self.live.get(firing.fingerprint), firing, self.now))
            for recovery in result.recoveries:
                self._decide(recovery.fingerprint, inc.on_recovery(
                    self.live.get(recovery.fingerprint), recovery, self.now))
            if result.assessment is not None:
                a = result.assessment
                repo.upsert_assessment(
                    self.conn, operator=a.operator, store=a.store, platform=a.platform,
                    period=a.period, period_start=Period.parse(a.period).start, missed=a.missed,
                    evidence=a.evidence, now=self.now)
                months[(a.operator, a.period)] = a
        streak_rules = [r for r in self.pipeline.engine.pack.rules
                        if r.enabled and r.kind == "streak"]
        for rule in streak_rules:
            for operator, month in sorted(months, key=lambda k: (k[0], Period.parse(k[1]))):
                self._streak(rule, operator, Period.parse(month), months[(operator, month)])

    # -- PIP -----------------------------------------------------------------------------

    def _streak(self, rule: Rule, operator: str, month: Period, assessment: Assessment) -> None:
        span = rule.months * 2
        stored = repo.operator_months(self.conn, operator, month.shift_months(-span).start,
                                      month.shift_months(span).start)
        missed = {m: v[0] for m, v in stored.items()}
        fp = inc.fingerprint(rule.id, "operator", operator)
        live = self.live.get(fp) or repo.live_incidents(self.conn, [fp]).get(fp)
        if live is not None:
            self.live[fp] = live
        streak = run_containing(missed, month)
        if streak is not None and len(streak.months) >= rule.months:
            self._decide(fp, inc.on_firing(live, self._pip_firing(
                rule, operator, streak, stored, assessment), self.now))
            return
        if live is None or missed.get(month.text):
            return
        previous = tuple(str(e["period"]) for e in live.evidence if "period" in e)
        months_of_live = tuple(dict.fromkeys(sorted(previous, key=Period.parse)))
        if month.text in months_of_live:
            remaining = longest_within(missed, months_of_live)
            if remaining is not None and len(remaining.months) >= rule.months:
                self._decide(fp, inc.on_firing(live, self._pip_firing(
                    rule, operator, remaining, stored, assessment), self.now))
                return
            note = (f"withdrawn: {month.text} was restated and no longer misses its targets; "
                    f"the streak {months_of_live[0]}..{months_of_live[-1]} is broken")
            self._decide(fp, inc.on_recovery(live, inc.Recovery(
                fingerprint=fp, period=month.text, period_end=month.end, note=note,
                withdraw=True), self.now))
        elif months_of_live and month.start > Period.parse(months_of_live[-1]).start:
            self._decide(fp, inc.on_recovery(live, inc.Recovery(
                fingerprint=fp, period=month.text, period_end=month.end,
                note=f"recovered: {operator} met every target in {month.text}"), self.now))

    def _pip_firing(self, rule: Rule, operator: str, streak: Streak,
                    stored: dict[str, tuple[bool, list[dict[str, Any]]]],
                    assessment: Assessment) -> inc.Firing:
        evidence = [e for m in streak.months for e in stored.get(m, (False, []))[1]]
        metrics = sorted({str(e["metric"]) for e in evidence})
        values = {"operator": operator, "months": ", ".join(streak.months),
                  "count": len(streak.months), "indicators": ", ".join(metrics),
                  "first": streak.first, "last": streak.last, "store": assessment.store,
                  "platform": assessment.platform, "period": streak.last}
        return inc.Firing(
            rule=rule.id, rule_version=self.pipeline.engine.version, subject_kind="operator",
            subject=operator, store=None, platform=None, operator=operator,
            severity=rule.severity.value, audience=rule.audience, metric=None, value=None,
            threshold=None, period=streak.last, period_end=Period.parse(streak.last).end,
            title=render_title(rule, values), labels={**rule.labels, "operator": operator},
            evidence=evidence)

    # -- applying a decision ---------------------------------------------------------------

    def _decide(self, fp: str, decision: inc.Decision | None) -> None:
        if decision is None:
            return
        if isinstance(decision, inc.Open):
            firing = decision.firing
            incident_id = repo.open_incident(self.conn, firing, self.now)
            event_id = repo.add_event(self.conn, incident_id, decision.event)
            incident = repo.get_incident(self.conn, incident_id)
            assert incident is not None
            self.live[fp] = incident
            self.report.opened += 1
            self._notify(incident, AlertKind.OPENED, event_id, None)
            return
        repo.update_incident(self.conn, decision.incident.id, decision.changes)
        event_id = repo.add_event(self.conn, decision.incident.id, decision.event)
        updated = decision.incident.model_copy(update=decision.changes)
        if updated.live:
            self.live[fp] = updated
        else:
            self.live.pop(fp, None)
            self.report.resolved += 1
            self._notify(updated, AlertKind.RESOLVED, event_id, decision.event.note)

    def _notify(self, incident: inc.Incident, kind: AlertKind, event_id: int,
                note: str | None) -> None:
        alert = alert_for(incident, kind, self.now, self.settings.public_url, note)
        if kind is AlertKind.RESOLVED:
            told = self.conn.execute(select(notifications.c.channel).distinct().where(
                notifications.c.incident_id == incident.id)).scalars().all()
            channels = list(told)
        else:
            channels = route(self.settings, labels_of(incident))
        for channel in channels:
            repo.enqueue(self.conn, incident.id, event_id, channel, alert, self.now)


def labels_of(incident: inc.Incident) -> dict[str, str | None]:
    return {**{f"label.{k}": v for k, v in incident.labels.items()},
            "team": incident.labels.get("team"), "audience": incident.audience,
            "severity": incident.severity, "rule": incident.rule, "platform": incident.platform,
            "store": incident.store, "operator": incident.operator}


def alert_for(incident: inc.Incident, kind: AlertKind, now: datetime,
              public_url: str | None, note: str | None = None) -> Alert:
    evidence = [Evidence(period=str(e["period"]), metric=str(e["metric"]),
                         value=float(e["value"]), threshold=float(e["target"]),
                         comparison=str(e.get("comparator") or ""), store=e.get("store"))
                for e in incident.evidence]
    link = f"{public_url.rstrip('/')}/incidents/{incident.id}" if public_url else None
    return Alert(kind=kind, incident_id=incident.id, rule=incident.rule,
                 severity=incident.severity, audience=incident.audience, title=incident.title,
                 store=incident.store, platform=incident.platform, operator=incident.operator,
                 metric=incident.metric, value=incident.value, threshold=incident.threshold,
                 period=incident.period, labels=incident.labels, evidence=evidence, link=link,
                 at=now, note=note)
