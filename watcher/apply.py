"""Applying one batch's outcomes: plan in memory, then write in bulk.

Planning walks the outcomes in period order against the live incidents held in
memory, so several snapshots of one store in a batch (a backfill) behave as if
they had arrived one by one. Writing then costs one statement per table (with
``executemany``) instead of a few per snapshot: this is what lets a batch
keep pace with the rule engine (see bench/README.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from watcher import incidents as inc
from watcher.alerts import Alert, AlertKind, Evidence
from watcher.assessment.roster import Roster
from watcher.assessment.streaks import Streak, longest_within, run_containing
from watcher.assessment.verdict import INCOMPLETE, failed
from watcher.config import Settings, group_for, route
from watcher.evaluation import Outcome, PerLanguage, metric_names, render_title
from watcher.holding import Pending, extend, ready
from watcher.period import Period
from watcher.rules.model import Rule, RulePack
from watcher.silences import Silence, silenced_by
from watcher.snapshot import Snapshot
from watcher.store import noise
from watcher.store import repository as repo

EvidenceOf = Callable[[str, list[str]], list[dict[str, Any]]]


@dataclass
class _Notice:
    ref: int
    event_index: int
    kind: AlertKind
    note: str | None
    channels: list[str] | None  # None: the channels already told of the incident
    delay: float | None = None  # seconds to hold it back (a resolution within reopen_hold)
    reopen: bool = False  # a re-open: only channels told it resolved hear of it
    note_key: str | None = None  # the note in the channel's language (strings.yaml notes)
    note_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """Writes decided for one batch; negative ids stand for incidents opened in it."""

    opens: dict[int, inc.Incident] = field(default_factory=dict)
    changes: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, inc.Event]] = field(default_factory=list)
    notices: list[_Notice] = field(default_factory=list)
    state: dict[int, inc.Incident] = field(default_factory=dict)
    # incidents opened and resolved, by the snapshot (key) whose evaluation decided them:
    # each request's own report
    opened_by: Counter[str] = field(default_factory=Counter)
    resolved_by: Counter[str] = field(default_factory=Counter)
    # ``for:`` runs (watcher/holding.py): started or extended, and ended or fired
    pending: dict[str, Pending] = field(default_factory=dict)
    pending_dropped: set[str] = field(default_factory=set)
    # what write() held back or withdrew, for /metrics once committed (observability.count)
    counts: Counter[str] = field(default_factory=Counter)
    pack: RulePack | None = None  # the rules decided by: their runbooks ride the alerts


class Planner:
    def __init__(self, pack: RulePack, version: str, settings: Settings, now: datetime,
                 live: dict[str, inc.Incident], evidence_of: EvidenceOf,
                 recent: dict[str, inc.Incident] | None = None, *,
                 roster: Roster | None = None, planned: frozenset[int] = frozenset(),
                 pending: dict[str, Pending] | None = None) -> None:
        self.evidence_of = evidence_of
        self.roster = roster or Roster()
        self.planned = planned  # PIP incidents whose plan a manager started
        self.pending = dict(pending or {})  # for: runs of the subjects in the batch
        self.recent = dict(recent or {})
        self.pack = pack
        self.version = version
        self.settings = settings
        self.now = now
        self.live: dict[str, inc.Incident] = {}
        self._live_of: dict[tuple[str, str], set[str]] = defaultdict(set)
        for fp, incident in live.items():
            self._keep_live(fp, incident)
        self.plan = Plan(pack=pack)
        self._next_temp = -1
        self._deciding = ""  # the snapshot key being evaluated

    # -- threshold rules ---------------------------------------------------------------------

    def outcomes(self, outcomes: list[Outcome]) -> None:
        for result in outcomes:
            self._deciding = result.snapshot.key
            for firing in result.firings:
                self.fire(firing)
            snap = result.snapshot
            subjects = {("store", snap.store)}
            if snap.operator:
                subjects.add(("operator", snap.operator))
            self._end_runs(result, subjects)
            # Only the store's and operator's live incidents can recover: asking each
            # of them is far cheaper than describing every rule that did not fire.
            live_fps = sorted(fp for key in subjects for fp in self._live_of.get(key, ()))
            for live in [self.live[fp] for fp in live_fps]:
                recovery = result.recovery(live.rule, live.subject_kind, live.subject)
                if recovery is not None:
                    self.decide(live.fingerprint, inc.on_recovery(live, recovery, self.now))

    # -- streak rules (PIP) --------------------------------------------------------------------

    def streaks(self, changed: dict[tuple[str, str], Snapshot],
                results: dict[str, dict[str, str]]) -> None:
        """Judge the streak of each operator's month whose card changed, on the stored
        card results (``operator -> month -> result``: watcher.assessment.verdict)."""
        rules = [r for r in self.pack.rules if r.enabled and r.kind == "streak"]
        keys = sorted(changed, key=lambda k: (k[0], Period.parse(k[1]).start))
        for rule in rules:
            for operator, month in keys:
                snap = changed[(operator, month)]
                self._deciding = snap.key
                self._streak(rule, operator, Period.parse(month), results.get(operator, {}),
                             snap)

    def _streak(self, rule: Rule, operator: str, month: Period, results: dict[str, str],
                snap: Snapshot) -> None:
        missed = failed(results)
        fp = inc.fingerprint(rule.id, "operator", operator)
        live = self.live.get(fp)
        streak = run_containing(missed, month)
        if streak is not None and len(streak.months) >= rule.months:
            self.fire(self._pip(rule, operator, streak, snap))
            return
        if live is None or missed.get(month.text):
            return
        # A recommendation waits for a manager (watcher pip start): a later good month
        # does not resolve it. Only a restatement that removes its grounds withdraws it,
        # and a plan once started is never withdrawn: the restatement goes on its timeline.
        result = results.get(month.text, "no data")
        months_of_live = tuple(sorted({str(e["period"]) for e in live.evidence},
                                      key=lambda m: Period.parse(m).start))
        if month.text in months_of_live:
            remaining = longest_within(missed, months_of_live)
            if remaining is not None and len(remaining.months) >= rule.months:
                self.fire(self._pip(rule, operator, remaining, snap))
                return
            broken = f"the streak {months_of_live[0]}..{months_of_live[-1]} is broken"
            if live.id in self.planned:
                self.decide(fp, inc.add_note(
                    live, inc.SYSTEM_ACTOR, f"{month.text} was restated and its monthly card "
                    f"is now {result}: {broken}; the plan goes on until a manager closes it",
                    self.now))
                return
            note = (f"withdrawn: {month.text} was restated and its monthly card is now "
                    f"{result}; {broken}")
            self.decide(fp, inc.on_recovery(live, inc.Recovery(
                fingerprint=fp, period=month.text, period_end=month.end, note=note,
                withdraw=True, key="streak_withdrawn", args={
                    "month": month.text, "first": months_of_live[0],
                    "last": months_of_live[-1]}), self.now))
        elif (result == INCOMPLETE and months_of_live
              and month.start > Period.parse(months_of_live[-1]).start):
            # not judged: neither a further failed month nor a passed one; the manager is told
            self.decide(fp, inc.add_note(live, inc.SYSTEM_ACTOR, (
                f"{operator}'s monthly card for {month.text} is incomplete (nothing on it "
                f"could be judged): it does not count towards the streak"), self.now))

    def _pip(self, rule: Rule, operator: str, streak: Streak, snap: Snapshot) -> inc.Firing:
        evidence = self.evidence_of(operator, list(streak.months))
        metrics = sorted({str(e["metric"]) for e in evidence})
        values = {"operator": operator, "months": ", ".join(streak.months),
                  "count": len(streak.months),
                  "indicators": PerLanguage({lang: metric_names(metrics, lang)
                                             for lang in {*rule.message, "en"}}),
                  "first": streak.first, "last": streak.last, "store": snap.store,
                  "platform": snap.platform, "period": streak.last}
        return inc.Firing(
            rule=rule.id, rule_version=self.version, subject_kind="operator", subject=operator,
            store=None, platform=None, operator=operator, severity=rule.severity.value,
            audience=rule.audience, metric=None, value=None, threshold=None,
            period=streak.last, period_end=Period.parse(streak.last).end,
            title=render_title(rule, values), labels={**rule.labels, "operator": operator},
            evidence=evidence)

    def _keep_live(self, fp: str, incident: inc.Incident) -> None:
        self.live[fp] = incident
        self._live_of[(incident.subject_kind, incident.subject)].add(fp)

    def _drop_live(self, fp: str) -> None:
        incident = self.live.pop(fp, None)
        if incident is not None:
            self._live_of[(incident.subject_kind, incident.subject)].discard(fp)

    # -- decisions -------------------------------------------------------------------------------

    def _held(self, rule: Rule | None, firing: inc.Firing) -> bool:
        """A rule with ``for:`` holds a firing back until the run is long enough."""
        fp = firing.fingerprint
        live = self.live.get(fp)
        if rule is None or rule.for_ is None or (live is not None and live.live):
            return False
        run = extend(self.pending.get(fp), firing, rule.for_, self.now)
        if ready(run, rule.for_, self.now):
            self.pending.pop(fp, None)
            self.plan.pending.pop(fp, None)
            self.plan.pending_dropped.add(fp)
            return False
        self.pending[fp] = self.plan.pending[fp] = run
        return True

    def _end_runs(self, result: Outcome, subjects: set[tuple[str, str]]) -> None:
        """A ``for:`` run ends on a snapshot where its condition was evaluable and
        did not hold (the resolve condition plays no part: the run needs the
        firing condition to hold without a break)."""
        for fp, run in list(self.pending.items()):
            firing = run.firing
            if (firing.subject_kind, firing.subject) not in subjects:
                continue
            if result.recovery(firing.rule, firing.subject_kind, firing.subject,
                               hysteresis=False) is not None:
                del self.pending[fp]
                self.plan.pending.pop(fp, None)
                self.plan.pending_dropped.add(fp)

    def fire(self, firing: inc.Firing) -> None:
        people = self.roster.labels_of(firing.operator)
        if people:  # routes match the operator's team and manager
            firing = firing.model_copy(update={"labels": {**firing.labels, **people}})
        fp = firing.fingerprint
        rule = self.pack.get(firing.rule.partition("/")[0])
        if self._held(rule, firing):
            return
        live = self.live.get(fp)
        recent = self.recent.pop(fp, None) if live is None or not live.live else None
        self.decide(fp, inc.on_firing(live, firing, self.now, recent, renotify_when_worse=bool(
            rule is not None and rule.renotify_when_worse)))

    def decide(self, fp: str, decision: inc.Decision | None) -> None:
        plan = self.plan
        if decision is None:
            return
        if isinstance(decision, inc.Open):
            ref = self._next_temp
            self._next_temp -= 1
            firing = decision.firing
            incident = inc.Incident(id=ref, fingerprint=fp, status=inc.Status.OPEN,
                                    opened_at=self.now, updated_at=self.now,
                                    **firing.model_dump())
            plan.opens[ref] = incident
            plan.state[ref] = incident
            self._keep_live(fp, incident)
            plan.events.append((ref, decision.event))
            plan.opened_by[self._deciding] += 1
            plan.notices.append(_Notice(ref, len(plan.events) - 1, AlertKind.OPENED, None,
                                        route(self.settings, labels_of(incident))))
            return
        ref = decision.incident.id
        updated = decision.incident.model_copy(update=decision.changes)
        plan.state[ref] = updated
        if ref < 0:
            plan.opens[ref] = updated
        else:
            plan.changes.setdefault(ref, {}).update(decision.changes)
        plan.events.append((ref, decision.event))
        if updated.live:
            self._keep_live(fp, updated)
            if decision.event.kind is inc.EventKind.REOPENED:
                self._reopened(ref)
            elif decision.event.data.get("worse"):
                # A rule with renotify_when_worse: a rise is news, routed like an opening.
                plan.notices.append(_Notice(ref, len(plan.events) - 1, AlertKind.WORSENED,
                                            decision.event.note,
                                            route(self.settings, labels_of(updated))))
            return
        self._drop_live(fp)
        if self.settings.reopen_hold and not decision.event.data.get("withdrawn"):
            # a breach later in this same batch (a backfill of months) re-opens it quietly,
            # as it would had the months arrived one by one
            self.recent[fp] = updated
        plan.resolved_by[self._deciding] += 1
        plan.notices.append(_Notice(ref, len(plan.events) - 1, AlertKind.RESOLVED,
                                    decision.event.note, None, delay=self._resolve_delay(
                                        decision.event), **_note_of(decision.event)))

    def _resolve_delay(self, event: inc.Event) -> float | None:
        """An automatic resolution is told only once the metric has stayed recovered
        for ``reopen_hold``: a re-fire meanwhile re-opens without a word."""
        if event.actor != inc.SYSTEM_ACTOR or event.data.get("withdrawn"):
            return None
        return self.settings.reopen_hold

    def _reopened(self, ref: int) -> None:
        """Re-opened within the hold: a "resolved" notice still held back is withdrawn
        and nobody hears anything (the timeline has the ``reopened`` event); only
        channels already told "resolved" must hear it is back (``write`` finds them)."""
        plan = self.plan
        held = [n for n in plan.notices if n.ref == ref and n.kind is AlertKind.RESOLVED]
        if held:
            plan.notices = [n for n in plan.notices if n not in held]
            return
        plan.notices.append(_Notice(ref, len(plan.events) - 1, AlertKind.OPENED,
                                    plan.events[-1][1].note, [], reopen=True,
                                    **_note_of(plan.events[-1][1])))


def write(conn: Connection, plan: Plan, settings: Settings, now: datetime) -> None:
    """One bulk statement per table, in dependency order."""
    # Updates first: an incident resolved in this batch must leave the live slot of its
    # fingerprint before a new one for the same fingerprint is inserted.
    repo.update_incidents(conn, plan.changes)
    refs = list(plan.opens)
    ids = repo.insert_incidents(conn, [plan.opens[r] for r in refs])
    real = dict(zip(refs, ids, strict=True))

    def resolve_ref(ref: int) -> int:
        return real[ref] if ref < 0 else ref

    event_ids = repo.add_events(conn, [(resolve_ref(r), e) for r, e in plan.events])
    told = repo.channels_told(conn, [r for r in {n.ref for n in plan.notices
                                                 if n.channels is None} if r > 0])
    planned: dict[int, list[str]] = defaultdict(list)
    rows: list[dict[str, Any]] = []
    held: list[tuple[int, inc.Event]] = []
    active = repo.list_silences(conn, active_at=now) if plan.notices else []
    sources = _inhibition_sources(conn, plan, settings)
    for notice in plan.notices:
        incident_id = resolve_ref(notice.ref)
        labels = labels_of(plan.state[notice.ref])
        if notice.reopen:
            notice.channels, withdrawn = noise.withdraw_resolved(conn, incident_id, now)
            plan.counts["withdrawn"] += withdrawn
            if not notice.channels:
                continue
        silence = silenced_by(active, labels, now)
        if silence is not None:
            held.append((incident_id, silenced_event(silence, notice.kind, now)))
            plan.counts["held.silenced"] += 1
            continue
        inhibitor = None if notice.kind is AlertKind.RESOLVED else inhibited_by(
            settings, labels, plan.state[notice.ref].fingerprint, sources)
        if inhibitor is not None:
            held.append((incident_id, inhibited_event(inhibitor, notice.kind, now)))
            plan.counts["held.inhibited"] += 1
            continue
        channels = notice.channels
        if channels is None:
            channels = sorted(set(told.get(incident_id, [])) | set(planned[notice.ref]))
        else:
            planned[notice.ref].extend(channels)
        incident = plan.state[notice.ref].model_copy(update={"id": incident_id})
        alert = alert_for(incident, notice.kind, now, settings.public_url, notice.note,
                          note_key=notice.note_key, note_args=notice.note_args,
                          pack=plan.pack)
        for channel in channels:
            group = (group_for(settings, labels, channel)
                     if notice.kind is AlertKind.OPENED else None)
            wait = group[1] if group else notice.delay
            if wait:
                plan.counts["held.grouped" if group else "held.reopen_hold"] += 1
            rows.append(repo.notification_row(
                incident_id, event_ids[notice.event_index], channel, alert, now,
                group_key=group[0] if group else None,
                send_at=now + timedelta(seconds=wait) if wait else None))
    _join_pending_groups(conn, rows)
    repo.insert_notifications(conn, rows)
    repo.add_events(conn, held)
    if plan.pending or plan.pending_dropped:
        noise.replace(conn, plan.pending, plan.pending_dropped)


def _note_of(event: inc.Event) -> dict[str, Any]:
    """The event's note for messages (strings.yaml ``notes.<key>``), when it has one."""
    key = event.data.get("note_key")
    return {"note_key": key, "note_args": dict(event.data.get("note_args") or {})} \
        if key else {}


def promote(conn: Connection, settings: Settings, now: datetime,
            counts: Counter[str] | None = None) -> int:
    """``for:`` runs whose duration passed with no data to end them open their incidents
    (the timer loop's part: data may stop arriving while a condition still holds).
    ``counts`` receives what was held back, for /metrics once committed."""
    runs = noise.due(conn, now)
    if not runs:
        return 0
    subjects = {run.subject for run in runs}
    recent = repo.recently_resolved(conn, {run.fingerprint for run in runs}, now - timedelta(
        seconds=settings.reopen_hold)) if settings.reopen_hold else {}
    planner = Planner(RulePack(rules=()), "", settings, now,
                      repo.live_incidents_of(conn, subjects), lambda _o, _m: [], recent)
    for run in runs:
        planner.plan.pending_dropped.add(run.fingerprint)
        planner.fire(run.firing)
    write(conn, planner.plan, settings, now)
    if counts is not None:
        counts.update(planner.plan.counts)
    return len(runs)


def _join_pending_groups(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """A notification whose group is already waiting goes out with it."""
    keys = {r["group_key"] for r in rows if r["group_key"]}
    if not keys:
        return
    times = repo.pending_group_times(conn, keys)
    for row in rows:
        key = row["group_key"]
        if key is None:
            continue
        if key in times:
            row["next_attempt_at"] = times[key]
        else:
            times[key] = row["next_attempt_at"]


def _inhibition_sources(conn: Connection, plan: Plan, settings: Settings) -> list[inc.Incident]:
    if not settings.inhibit or not plan.notices:
        return []
    stores = {i.store for i in plan.state.values() if i.store}
    operators = {i.operator for i in plan.state.values() if i.operator}
    known = {i.id: i for i in repo.live_for_subjects(conn, stores, operators)}
    known.update({ref: i for ref, i in plan.state.items()})
    return [i for i in known.values() if i.live]


def inhibited_by(settings: Settings, target: dict[str, str | None], fingerprint: str,
                 sources: list[inc.Incident]) -> inc.Incident | None:
    for rule in settings.inhibit:
        for source in sources:
            if source.fingerprint != fingerprint and rule.inhibits(labels_of(source), target):
                return source
    return None


def inhibited_event(inhibitor: inc.Incident, kind: AlertKind, now: datetime) -> inc.Event:
    return inc.Event(kind=inc.EventKind.INHIBITED, at=now,
                     note=f"{kind.value} notification held: incident {inhibitor.id} "
                          f"({inhibitor.rule}) is live for the same {inhibitor.store or ''}",
                     data={"inhibitor": inhibitor.id if inhibitor.id > 0 else None,
                           "rule": inhibitor.rule, "alert": kind.value})


def silenced_event(silence: Silence, kind: AlertKind, now: datetime) -> inc.Event:
    return inc.Event(kind=inc.EventKind.SILENCED, at=now,
                     note=f"{kind.value} notification held by silence {silence.id} "
                          f"({silence.created_by}: {silence.comment})",
                     data={"silence": silence.id, "alert": kind.value})


def labels_of(incident: inc.Incident | Alert) -> dict[str, str | None]:
    """The labels routes match on, of an incident or of the alert it caused."""
    return {**{f"label.{k}": v for k, v in incident.labels.items()},
            "team": incident.labels.get("team"), "manager": incident.labels.get("manager"),
            "audience": incident.audience,
            "severity": incident.severity, "rule": incident.rule, "platform": incident.platform,
            "store": incident.store, "operator": incident.operator}


def alert_for(incident: inc.Incident, kind: AlertKind, now: datetime,
              public_url: str | None, note: str | None = None, *,
              note_key: str | None = None, note_args: dict[str, Any] | None = None,
              pack: RulePack | None = None) -> Alert:
    """What a notification of ``incident`` says; ``pack``: the rules in force, whose
    runbook for the incident's rule rides along."""
    evidence = [Evidence(period=str(e["period"]), metric=str(e["metric"]),
                         value=float(e["value"]), threshold=float(e["target"]),
                         comparison=str(e.get("comparator") or ""), store=e.get("store"))
                for e in incident.evidence
                if e.get("value") is not None and e.get("target") is not None]
    link = f"{public_url.rstrip('/')}/incidents/{incident.id}" if public_url else None
    return Alert(kind=kind, incident_id=incident.id, rule=incident.rule,
                 severity=incident.severity, audience=incident.audience, title=incident.title,
                 store=incident.store, platform=incident.platform, operator=incident.operator,
                 metric=incident.metric, value=incident.value, threshold=incident.threshold,
                 period=incident.period, labels=incident.labels, evidence=evidence, link=link,
                 at=now, note=note, note_key=note_key, note_args=note_args or {},
                 **runbook_of(pack, incident.rule))


def runbook_of(pack: RulePack | None, rule_id: str) -> dict[str, Any]:
    """An alert's runbook fields for ``rule_id`` (``platform-target/gmv``: its rule's)."""
    rule = pack.get(rule_id.partition("/")[0]) if pack is not None else None
    if rule is None or rule.runbook is None:
        return {}
    return {"runbook": dict(rule.runbook.text), "runbook_link": rule.runbook.link}
