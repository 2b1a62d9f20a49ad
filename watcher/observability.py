"""Prometheus metrics: the one module holding the metric objects (global by nature).

Counters and the latency histogram are updated where the work happens;
incident and outbox gauges are read from the database at scrape time by a
collector, so every replica reports the same truth and nothing drifts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from watcher.store import Database
from watcher.store import repository as repo
from watcher.store.database import utcnow

REGISTRY = CollectorRegistry(auto_describe=True)

SNAPSHOTS_INGESTED = Counter("watcher_snapshots_ingested_total",
                             "Snapshots accepted (new, restated or unchanged)", ["source"],
                             registry=REGISTRY)
SNAPSHOTS_REJECTED = Counter("watcher_snapshots_rejected_total",
                             "Records rejected by validation", ["source"], registry=REGISTRY)
RULE_EVALUATIONS = Counter("watcher_rule_evaluations_total",
                           "Snapshots evaluated by the rule engine", registry=REGISTRY)
EVALUATION_SECONDS = Histogram(
    "watcher_rule_evaluation_seconds", "Time to evaluate one snapshot against the rule pack",
    buckets=(0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005, 0.02, 0.1),
    registry=REGISTRY)
NOTIFICATIONS_SENT = Counter("watcher_notifications_sent_total", "Notifications delivered",
                             ["channel"], registry=REGISTRY)
NOTIFICATIONS_FAILED = Counter("watcher_notifications_failed_total",
                               "Failed delivery attempts (retried)", ["channel"],
                               registry=REGISTRY)

# Storm control (watcher/digest.py): per channel, the alerts folded into digests, the
# digests made, and the messages waiting now because the channel's rate is spent.
FOLDED = Counter("watcher_notifications_folded_total",
                 "Notifications folded into a digest instead of sent one by one", ["channel"],
                 registry=REGISTRY)
DIGESTS = Counter("watcher_digests_total", "Digest messages made", ["channel"],
                  registry=REGISTRY)
RATE_LIMITED = Gauge("watcher_notifications_rate_limited",
                     "Messages due but held back by the channel's send rate (last look)",
                     ["channel"], registry=REGISTRY)

RULE_RELOADS = Counter("watcher_rule_reloads_total",
                       "Rule pack reloads, accepted or refused (the old pack stays in force)",
                       ["result"], registry=REGISTRY)
RULE_PACK = Info("watcher_rule_pack", "The rule pack version in force", registry=REGISTRY)


def record_rule_reload(accepted: bool, version: str) -> None:
    RULE_RELOADS.labels("accepted" if accepted else "refused").inc()
    show_rule_pack(version)


def show_rule_pack(version: str) -> None:
    RULE_PACK.info({"version": version})


# -- noise control: what is held back, escalated or reminded ---------------------------
HELD_REASONS = ("silenced", "inhibited", "grouped", "rate_limited", "reopen_hold")
NOTIFICATIONS_HELD = Counter(
    "watcher_notifications_held_total",
    "Notifications held back, by reason: silenced, inhibited, grouped (waiting for the "
    "route's group_wait), rate_limited (folded into a digest: more waited than the "
    "channel's rate allows), reopen_hold (a resolution "
    "waiting out the flap hold-down)", ["reason"], registry=REGISTRY)
for _reason in HELD_REASONS:
    NOTIFICATIONS_HELD.labels(_reason)
RESOLUTIONS_WITHDRAWN = Counter(
    "watcher_resolutions_withdrawn_total",
    "Held 'resolved' notifications withdrawn: the incident re-opened within reopen_hold",
    registry=REGISTRY)
HOLDS_RELEASED = Counter(
    "watcher_holds_released_total",
    "Silences (reason silence) or inhibitions (reason inhibition) that ended on a live "
    "incident they held: one 'released' message each", ["reason"], registry=REGISTRY)
for _reason in ("silence", "inhibition"):
    HOLDS_RELEASED.labels(_reason)
ESCALATIONS = Counter("watcher_escalations_total", "Escalation steps taken, by step (1 = first)",
                      ["step"], registry=REGISTRY)
REMINDERS = Counter(
    "watcher_reminders_total",
    "Reminders sent, by the escalation steps taken before them (0: none yet)", ["step"],
    registry=REGISTRY)


def count(counts: Mapping[str, int]) -> None:
    """Add one committed transaction's noise-control counts (``held.<reason>``,
    ``withdrawn``, ``released.<reason>``, ``escalated.<step>``, ``reminded.<step>``):
    only after the commit, so a retried transaction is not counted twice."""
    for key, amount in counts.items():
        if not amount:
            continue
        kind, _, label = key.partition(".")
        if kind == "held":
            NOTIFICATIONS_HELD.labels(label).inc(amount)
        elif kind == "withdrawn":
            RESOLUTIONS_WITHDRAWN.inc(amount)
        elif kind == "released":
            HOLDS_RELEASED.labels(label).inc(amount)
        elif kind == "escalated":
            ESCALATIONS.labels(label).inc(amount)
        elif kind == "reminded":
            REMINDERS.labels(label).inc(amount)


def source_kind(source: str) -> str:
    """Label values stay few: ``file:/a/b.jsonl`` -> ``file``."""
    return source.split(":", 1)[0] or "other"


class StoreCollector(Collector):
    """Incidents by state and the outbox backlog, read at scrape time."""

    def __init__(self) -> None:
        self.db: Database | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.db is None:
            return
        incidents = GaugeMetricFamily("watcher_incidents", "Incidents by status",
                                      labels=["status"])
        backlog = GaugeMetricFamily("watcher_outbox_backlog",
                                    "Notifications waiting to be delivered")
        oldest = GaugeMetricFamily("watcher_outbox_oldest_age_seconds",
                                   "Age of the oldest undelivered notification")
        try:
            with self.db.engine.connect() as conn:
                counts = repo.count_incidents_by_status(conn)
                waiting, since = repo.outbox_backlog(conn)
        except Exception:
            return
        for status in ("open", "acknowledged", "resolved"):
            incidents.add_metric([status], counts.get(status, 0))
        backlog.add_metric([], waiting)
        oldest.add_metric([], (utcnow() - since).total_seconds() if since else 0.0)
        yield incidents
        yield backlog
        yield oldest


_STORE = StoreCollector()
REGISTRY.register(_STORE)


def watch_store(db: Database) -> None:
    """Report this database's incidents and outbox (a process serves one database)."""
    _STORE.db = db
