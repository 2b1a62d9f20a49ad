"""Feeds: one snapshot stated in parts by different senders, and the merge the rules see.

A snapshot's identity is its platform, store and period, and the same identity again is
a restatement that replaces the earlier values (docs/snapshot-format.md). But a store's
day is often told by more than one sender: the platform (visitors, orders, GMV) and a
help desk export (tickets, first response). Were the help desk's snapshot to replace the
platform's, a day would lose one or the other. So a restatement replaces only what the
same **feed** stated before (its *part*); the stored snapshot is the merge of every
feed's latest part.

* A feed is the source adapter or column mapping that produced the record, by name
  (``zohodesk``, ``saihu``, ``amazon-spapi``, a poller being the feed of its adapter);
  canonical JSON snapshots are one feed, ``canonical``, whatever the transport (HTTP, CLI,
  drop folder, NATS), so canonical restatement behaves as it always did.
* Per metric, per target and per segment key, the newest part that states it wins; the
  operator is the newest part's that names one. Newest: the part's ``stated_at`` (its
  ``observed_at``, else when it was received), then the order parts were received.
* An identical re-send confirms its part without making it newer (nothing to evaluate).
* Derived rates (``watcher/derive.py``) are computed again on the merged counts, so a rate
  never mixes one feed's numerator with a stale quotient of another's.

Pure: the pipeline decides; the repository keeps a snapshot one feed states as its row
(``snapshots.feed`` names the feed, the columns are its part: no JSON on the common path)
and, once a second feed joins, every part as JSON (``snapshots.parts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from watcher.derive import RATIOS, derived_metrics
from watcher.errors import InputError
from watcher.period import PeriodKind
from watcher.snapshot import Snapshot

CANONICAL: Final = "canonical"
"""The feed of canonical JSON snapshots (``POST /v1/snapshots``, ``watcher ingest FILE``,
the drop folder's top level, NATS messages without ``Watcher-Source``)."""


@dataclass(frozen=True, slots=True)
class Part:
    """What one feed stated of a snapshot, as it stated it (derived rates left out)."""

    metrics: dict[str, float]
    targets: dict[str, Any]
    segment: dict[str, Any]
    operator: str | None
    observed_at: datetime | None  # the latest observation of this content (lateness)
    stated_at: datetime  # when this content was stated: precedence among parts
    seq: int  # the order parts were received in, for equal stated_at
    content_hash: str  # of the part as a snapshot: an identical re-send is unchanged
    source: str
    received_at: datetime
    revision: int = 1  # 1, plus one each time this feed changed its part (charts ring it)

    def as_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "targets": self.targets, "segment": self.segment,
                "operator": self.operator, "observed_at": _iso(self.observed_at),
                "stated_at": _iso(self.stated_at), "seq": self.seq,
                "content_hash": self.content_hash, "source": self.source,
                "received_at": _iso(self.received_at), "revision": self.revision}

    @classmethod
    def of_json(cls, data: Mapping[str, Any]) -> Part:
        return cls(dict(data["metrics"]), dict(data["targets"]), dict(data["segment"]),
                   data.get("operator"), _time(data.get("observed_at")),
                   _time(data["stated_at"]) or datetime.min, int(data["seq"]),
                   str(data["content_hash"]), str(data.get("source") or ""),
                   _time(data["received_at"]) or datetime.min, int(data.get("revision", 1)))

    def confirmed(self, observed_at: datetime | None) -> Part:
        """The same content stated again, observed later: newer for lateness only."""
        return replace(self, observed_at=observed_at)


Parts = dict[str, Part]


def part_of(snapshot: Snapshot, *, source: str, now: datetime, seq: int,
            content_hash: str | None = None, revision: int = 1) -> Part:
    """``snapshot`` as its feed's part (``revision``: 1, plus one per restatement)."""
    canonical = snapshot.to_canonical()
    return Part(stated_metrics(snapshot.metrics, snapshot.period.kind), canonical["targets"],
                canonical["segment"], snapshot.operator, snapshot.observed_at,
                snapshot.observed_at or now, seq, content_hash or snapshot.content_hash(),
                source[:300], now, revision)


def supplier(parts: Mapping[str, Part], metric: str) -> Part | None:
    """The part whose statement the merged ``metric`` shows: the newest stating it, or,
    for a derived rate, the newest stating one of its counts."""
    inputs = {metric} | {name for r in RATIOS if r.metric == metric
                         for name in (r.numerator, r.denominator)}
    oldest_first = [part for _feed, part in ordered(parts)]
    stating = [part for part in oldest_first if metric in part.metrics]
    counting = [part for part in oldest_first if inputs & part.metrics.keys()]
    chosen = stating or counting
    return chosen[-1] if chosen else None


def next_seq(parts: Mapping[str, Part]) -> int:
    return max((p.seq for p in parts.values()), default=0) + 1


def stated_metrics(metrics: Mapping[str, float], kind: PeriodKind) -> dict[str, float]:
    """``metrics`` without the rates derivation added (a rate equal to what its own counts
    derive is taken as derived: merged with another feed's counts, it is derived again)."""
    out = dict(metrics)
    for ratio in RATIOS:
        value = out.get(ratio.metric)
        top, bottom = out.get(ratio.numerator), out.get(ratio.denominator)
        if value is None or top is None or bottom is None:
            continue
        try:
            again = derived_metrics({ratio.numerator: top, ratio.denominator: bottom}, kind)
        except InputError:
            continue  # a sent rate its counts could not make: it was sent
        if again.get(ratio.metric) == value:
            del out[ratio.metric]
    return out


def ordered(parts: Mapping[str, Part]) -> list[tuple[str, Part]]:
    """Oldest first: the newest part's statements are applied last, and win."""
    return sorted(parts.items(), key=lambda item: (_naive(item[1].stated_at), item[1].seq))


def merged_data(store: str, platform: str, period: str, parts: Mapping[str, Part]
                ) -> dict[str, Any]:
    """The merged snapshot as canonical JSON, to validate like any sent snapshot."""
    metrics: dict[str, float] = {}
    targets: dict[str, Any] = {}
    segment: dict[str, Any] = {}
    operator: str | None = None
    observed: list[datetime] = []
    for _feed, part in ordered(parts):
        metrics.update(part.metrics)
        targets.update(part.targets)
        segment.update(part.segment)
        operator = part.operator or operator
        if part.observed_at is not None:
            observed.append(part.observed_at)
    return {"store": store, "platform": platform, "period": period, "operator": operator,
            "observed_at": max(observed, key=_naive).isoformat() if observed else None,
            "segment": segment, "metrics": metrics, "targets": targets}


def legacy_feed(source: str | None) -> str:
    """The feed of a row stored before parts existed, from what it recorded as its source:
    ``source:NAME`` (HTTP) and ``drop:NAME/...`` (the drop folder's source folders) name it;
    anything else (``http``, ``file:...``, ``nats:...``) is taken as canonical."""
    text = source or ""
    if text.startswith("source:"):
        return text[len("source:"):] or CANONICAL
    if text.startswith("drop:") and "/" in text:
        return text[len("drop:"):].split("/", 1)[0] or CANONICAL
    return CANONICAL


def column_part(row: Mapping[str, Any], kind: PeriodKind) -> tuple[str, Part]:
    """A row one feed states (``feed``, or before feeds the one its ``source`` names) as
    that feed's part: the row's columns are it."""
    stated = row["observed_at"] or row["updated_at"]
    return row["feed"] or legacy_feed(row["source"]), Part(
        stated_metrics(row["metrics"], kind), dict(row["targets"]), dict(row["segment"]),
        row["operator"], row["observed_at"], stated, 0, row["content_hash"],
        row["source"] or "", row["updated_at"], int(row["revision"]))


def parts_json(parts: Mapping[str, Part]) -> dict[str, Any]:
    return {feed: part.as_json() for feed, part in sorted(parts.items())}


def parts_of_json(data: Mapping[str, Any]) -> Parts:
    return {feed: Part.of_json(part) for feed, part in data.items()}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _naive(value: datetime) -> datetime:
    """Comparable whether or not a time carries its zone (SQLite drops it): UTC wall time."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
