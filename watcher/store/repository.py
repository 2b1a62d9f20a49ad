"""Reads and writes on one connection; the caller owns the transaction.

Every function takes a ``Connection`` so that an incident, its event and the
notifications it causes are committed together (the outbox guarantee).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Dialect,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert

from watcher import feeds
from watcher.alerts import SEVERITY_RANK, Alert
from watcher.incidents import Event, Incident, IncidentSort, Status
from watcher.limits import SNAPSHOTS_SETTLE_SECONDS
from watcher.period import PeriodKind
from watcher.silences import Silence
from watcher.snapshot import Snapshot
from watcher.store.database import as_utc
from watcher.store.schema import (
    incident_events,
    incidents,
    monthly_cards,
    notifications,
    rejected_inputs,
    silences,
    snapshots,
)
from watcher.validation import Rejection

T = TypeVar("T")

# -- snapshots -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored snapshot as the pipeline decides on it: its merged content's hash and
    revision, and either the one feed that states it (``feed``: its columns are that
    feed's part) or each feed's part (``parts``, watcher/feeds.py)."""

    id: int
    content_hash: str
    revision: int
    observed_at: datetime | None
    feed: str
    parts: feeds.Parts | None

    def only(self) -> feeds.Part:
        """The one part of a one-feed row, as far as deciding on a statement of that same
        feed needs it (its hash, observation and revision): its values stay in the row."""
        stated = self.observed_at or datetime.min
        return feeds.Part({}, {}, {}, None, self.observed_at, stated, 0, self.content_hash,
                          "", stated, self.revision)


def snapshot_state(conn: Connection, keys: Sequence[str], *, lock: bool = False
                   ) -> dict[str, Stored]:
    """The keys already stored, each with its feed or parts.

    ``lock`` holds those rows until the transaction ends (PostgreSQL; SQLite has one
    writer anyway), taken in key order so that two replicas stating the same
    snapshots take turns, each deciding on what the other committed.
    """
    found: dict[str, Stored] = {}
    for chunk in _chunks(sorted(set(keys)), 500):
        query = (select(snapshots.c.key, snapshots.c.id, snapshots.c.content_hash,
                        snapshots.c.revision, snapshots.c.observed_at, snapshots.c.feed,
                        snapshots.c.source, snapshots.c.parts)
                 .where(snapshots.c.key.in_(chunk)).order_by(snapshots.c.key))
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        for r in conn.execute(query):
            found[r.key] = Stored(
                r.id, r.content_hash, r.revision, as_utc(r.observed_at),
                r.feed or feeds.legacy_feed(r.source),
                None if r.parts is None else feeds.parts_of_json(r.parts))
    return found


def single_parts(conn: Connection, keys: Sequence[str]) -> dict[str, feeds.Parts]:
    """The part of each one-feed row, read from its columns (another feed is about to
    join it)."""
    found: dict[str, feeds.Parts] = {}
    for chunk in _chunks(sorted(set(keys)), 500):
        rows = conn.execute(select(
            snapshots.c.key, snapshots.c.period_kind, snapshots.c.metrics, snapshots.c.targets,
            snapshots.c.segment, snapshots.c.operator, snapshots.c.observed_at,
            snapshots.c.updated_at, snapshots.c.content_hash, snapshots.c.source,
            snapshots.c.feed, snapshots.c.revision,
        ).where(snapshots.c.key.in_(chunk)))
        for row in rows:
            feed, part = _column_part(dict(row._mapping))
            found[row.key] = {feed: part}
    return found


def _column_part(data: dict[str, Any]) -> tuple[str, feeds.Part]:
    for key in ("observed_at", "updated_at"):
        data[key] = as_utc(data[key])
    return feeds.column_part(data, PeriodKind(data["period_kind"]))


def update_parts(conn: Connection,
                 changes: dict[str, tuple[datetime | None, dict[str, Any] | None]]
                 ) -> None:
    """Parts that changed while what rules see did not (a re-send observed later, a feed
    stating what another already stated): no new revision, nothing to evaluate."""
    if changes:
        conn.execute(update(snapshots).where(snapshots.c.key == bindparam("b_key"))
                     .values(observed_at=bindparam("b_observed"), parts=bindparam("b_parts")),
                     [{"b_key": k, "b_observed": observed, "b_parts": parts}
                      for k, (observed, parts) in changes.items()])


def snapshot_row(snapshot: Snapshot, raw: str | None, source: str, now: datetime,
                 content_hash: str | None = None, feed: str | None = feeds.CANONICAL,
                 parts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The row of a snapshot: one ``feed``'s, or the merge of ``parts`` (JSON, feeds.py)."""
    canonical = snapshot.to_canonical()
    return {
        "key": snapshot.key, "store": snapshot.store, "platform": snapshot.platform,
        "period": snapshot.period.text, "period_kind": snapshot.period.kind.value,
        "period_start": snapshot.period.start, "period_end": snapshot.period.end,
        "operator": snapshot.operator, "observed_at": snapshot.observed_at,
        "segment": canonical["segment"], "metrics": canonical["metrics"],
        "targets": canonical["targets"], "feed": None if parts else feed, "parts": parts,
        "content_hash": content_hash or snapshot.content_hash(),
        "source": source[:300], "raw": raw, "received_at": now, "updated_at": now,
    }


def insert_snapshots(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        _sqlite_insert_many(conn, snapshots, _SNAPSHOT_COLUMNS, rows)
    else:
        conn.execute(insert(snapshots), rows)


_SNAPSHOT_COLUMNS = tuple(c.name for c in snapshots.columns if c.name not in ("id", "revision"))


def _sqlite_insert_many(conn: Connection, table: Table, columns: tuple[str, ...],
                        rows: list[dict[str, Any]], conflict: str = "") -> None:
    """The hottest writes of a batch (a row per snapshot) on SQLite.

    Core's executemany spends most of its time building a parameter dict per row;
    the same type processors (JSON, dates) applied to tuples handed to the driver
    cost a third as much (bench/README.md). A test holds the rows to a Core insert's.
    """
    processors = _bind_processors(conn.dialect, table, columns)
    quote = conn.dialect.identifier_preparer.quote
    # Column by column: one tight loop per processor instead of a generator per row.
    values = [[row[c] for row in rows] for c in columns]
    for i, (process, temporal) in enumerate(processors):
        if process is None:
            continue
        if temporal:  # a batch's dates and times repeat (its month, its clock): format each once
            done: dict[Any, Any] = {}
            values[i] = [None if v is None else done[v] if v in done
                         else done.setdefault(v, process(v)) for v in values[i]]
        else:
            values[i] = [None if v is None else process(v) for v in values[i]]
    conn.exec_driver_sql(
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join('?' * len(columns))}){conflict}",
        list(zip(*values, strict=True)))


@functools.lru_cache(maxsize=32)
def _bind_processors(dialect: Dialect, table: Table, columns: tuple[str, ...]
                     ) -> tuple[tuple[Any, bool], ...]:
    """Each column's bind processor, and whether it formats a date or a time."""
    return tuple((table.c[c].type.dialect_impl(dialect).bind_processor(dialect),
                  isinstance(table.c[c].type, Date | DateTime)) for c in columns)


_RESTATED = [c.name for c in snapshots.columns if c.name not in ("id", "key", "received_at",
                                                                   "revision")]
_RESTATE = (update(snapshots).where(snapshots.c.key == bindparam("b_key"))
            .values({**{name: bindparam("b_" + name) for name in _RESTATED},
                     "revision": snapshots.c.revision + 1}))


def restate_snapshots(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_RESTATE, [{"b_key": r["key"], **{"b_" + n: r[n] for n in _RESTATED}}
                                for r in rows])


def find_snapshots(conn: Connection, *, store: str | None = None, period: str | None = None,
                   platform: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(snapshots).order_by(snapshots.c.period_start, snapshots.c.store).limit(limit)
    if store:
        query = query.where(snapshots.c.store == store)
    if period:
        query = query.where(snapshots.c.period == period)
    if platform:
        query = query.where(snapshots.c.platform == platform)
    return [dict(r._mapping) for r in conn.execute(query)]


def _snapshot_out(row: Any) -> dict[str, Any]:
    """A stored snapshot for the API: the merge, and the part each feed stated."""
    data = dict(row._mapping)
    for key in ("observed_at", "received_at", "updated_at"):
        data[key] = as_utc(data[key])
    if data.get("parts") is None:
        feed, part = _column_part(dict(data))
        parts = {feed: part}
    else:
        parts = feeds.parts_of_json(data["parts"])
    data["parts"] = {feed: {k: v for k, v in part.as_json().items() if k != "content_hash"}
                     for feed, part in feeds.ordered(parts)}
    data.pop("feed", None)
    return data


def list_snapshots(conn: Connection, *, store: str | None = None, period: str | None = None,
                   platform: str | None = None, operator: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[dict[str, Any]]:
    """Stored snapshots, latest period first, for the API (a page at a time)."""
    query = select(snapshots).order_by(snapshots.c.period_start.desc(), snapshots.c.store,
                                       snapshots.c.platform, snapshots.c.id)
    for column, value in ((snapshots.c.store, store), (snapshots.c.period, period),
                          (snapshots.c.platform, platform), (snapshots.c.operator, operator)):
        if value:
            query = query.where(column == value)
    return [_snapshot_out(r) for r in conn.execute(query.limit(limit).offset(offset))]


def get_snapshot(conn: Connection, platform: str, store: str,
                 period: str) -> dict[str, Any] | None:
    """The one snapshot of a platform, store and period (its identity), if stored."""
    row = conn.execute(select(snapshots).where(
        snapshots.c.platform == platform, snapshots.c.store == store,
        snapshots.c.period == period)).first()
    return _snapshot_out(row) if row else None


def snapshots_within(conn: Connection, first: date, last: date,
                     operator: str | None = None, *,
                     operators: Sequence[str] | None = None) -> list[Snapshot]:
    """Snapshots with an operator whose period lies within [first, last] (the scorecards'
    input): one operator's, these ``operators``', or every operator's."""
    if operators is not None:
        return [snap for chunk in _chunks(sorted(set(operators)), 500)
                for snap in _within(conn, first, last, snapshots.c.operator.in_(chunk))]
    return _within(conn, first, last, snapshots.c.operator.is_not(None) if operator is None
                   else snapshots.c.operator == operator)


def _within(conn: Connection, first: date, last: date, whose: Any) -> list[Snapshot]:
    query = select(snapshots.c.store, snapshots.c.platform, snapshots.c.period,
                   snapshots.c.operator, snapshots.c.observed_at, snapshots.c.segment,
                   snapshots.c.metrics, snapshots.c.targets).where(
        # period_start <= last (implied) bounds the index range of the period
        snapshots.c.period_start >= first, snapshots.c.period_start <= last,
        snapshots.c.period_end <= last, whose,
    ).order_by(snapshots.c.operator, snapshots.c.period_end, snapshots.c.period_start,
               snapshots.c.platform, snapshots.c.store)
    return [Snapshot.model_validate(dict(row._mapping)) for row in conn.execute(query)]


# -- rejected inputs --------------------------------------------------------------------


def _storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a rejected record may, so it is kept escaped."""
    return text.replace("\x00", "\\u0000") if text is not None and "\x00" in text else text


def insert_rejections(conn: Connection, rejections: Iterable[Rejection], now: datetime) -> None:
    rows = [{"received_at": now, "source": _storable(r.source[:500] or "-"),
             "location": _storable(r.location[:100]), "field": _storable(r.field),
             "error": _storable(r.error), "raw": _storable(r.raw)} for r in rejections]
    if rows:
        conn.execute(insert(rejected_inputs), rows)


def list_rejections(conn: Connection, limit: int = 100, offset: int = 0
                    ) -> list[dict[str, Any]]:
    rows = conn.execute(select(rejected_inputs).order_by(rejected_inputs.c.id.desc())
                        .limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows]


def count_rejections(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(rejected_inputs)).scalar_one())


# -- incidents --------------------------------------------------------------------------


def _incident(row: Any) -> Incident:
    data = dict(row._mapping)
    for key in ("opened_at", "updated_at", "acknowledged_at", "resolved_at"):
        data[key] = as_utc(data[key])
    return Incident.model_validate(data)


def live_incidents_of(conn: Connection, subjects: Iterable[str]) -> dict[str, Incident]:
    """Live incidents of these subjects (stores, operators), by fingerprint.

    One row per live incident of a subject in the batch, however many rules were
    evaluated: far fewer than asking for every rule's fingerprint.
    """
    found: dict[str, Incident] = {}
    for chunk in _chunks(sorted(set(subjects)), 500):
        rows = conn.execute(select(incidents).where(
            incidents.c.subject.in_(chunk), incidents.c.status != Status.RESOLVED.value))
        found.update({inc.fingerprint: inc for inc in map(_incident, rows)})
    return found


def recently_resolved(conn: Connection, fingerprints: Iterable[str],
                      since: datetime) -> dict[str, Incident]:
    """The latest incident per fingerprint resolved at or after ``since``."""
    found: dict[str, Incident] = {}
    for chunk in _chunks(sorted(set(fingerprints)), 500):
        rows = conn.execute(select(incidents).where(
            incidents.c.fingerprint.in_(chunk), incidents.c.status == Status.RESOLVED.value,
            incidents.c.resolved_at >= since).order_by(incidents.c.resolved_at))
        found.update({i.fingerprint: i for i in map(_incident, rows)})
    return found


def live_for_subjects(conn: Connection, stores: Iterable[str],
                      operators: Iterable[str]) -> list[Incident]:
    """Live incidents of these stores or operators (inhibition sources)."""
    found: list[Incident] = []
    for column, values in ((incidents.c.store, stores), (incidents.c.operator, operators)):
        for chunk in _chunks(sorted(set(values)), 500):
            rows = conn.execute(select(incidents).where(
                column.in_(chunk), incidents.c.status != Status.RESOLVED.value))
            found.extend(map(_incident, rows))
    return found


_INSERT_INCIDENT = insert(incidents).returning(incidents.c.id, sort_by_parameter_order=True)
_INSERT_EVENT = insert(incident_events).returning(incident_events.c.id,
                                                  sort_by_parameter_order=True)


def insert_incidents(conn: Connection, new: list[Incident]) -> list[int]:
    """Insert incidents (their ``id`` is ignored); returns the new ids in order."""
    if not new:
        return []
    rows = [{k: (v.value if isinstance(v, Status) else v)
             for k, v in i.model_dump(exclude={"id"}).items()} for i in new]
    return [int(r[0]) for r in conn.execute(_INSERT_INCIDENT, rows)]


def update_incident(conn: Connection, incident_id: int, changes: dict[str, Any]) -> None:
    update_incidents(conn, {incident_id: changes})


def update_incidents(conn: Connection, changes: dict[int, dict[str, Any]]) -> None:
    """Apply per-incident changes, one ``executemany`` per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for incident_id, values in changes.items():
        keys = tuple(sorted(values))
        groups.setdefault(keys, []).append(
            {"b_id": incident_id, **{"b_" + k: (v.value if isinstance(v, Status) else v)
                                     for k, v in values.items()}})
    for keys, params in groups.items():
        statement = (update(incidents).where(incidents.c.id == bindparam("b_id"))
                     .values({k: bindparam("b_" + k) for k in keys}))
        conn.execute(statement, params)


def add_event(conn: Connection, incident_id: int, event: Event) -> int:
    return add_events(conn, [(incident_id, event)])[0]


def add_events(conn: Connection, events: list[tuple[int, Event]]) -> list[int]:
    if not events:
        return []
    rows = [{"incident_id": incident_id, "at": e.at, "kind": e.kind.value, "actor": e.actor,
             "note": e.note, "data": e.data} for incident_id, e in events]
    return [int(r[0]) for r in conn.execute(_INSERT_EVENT, rows)]


def channels_told(conn: Connection, incident_ids: list[int]) -> dict[int, list[str]]:
    told: dict[int, list[str]] = {}
    for chunk in _chunks(incident_ids, 500):
        rows = conn.execute(select(notifications.c.incident_id, notifications.c.channel)
                            .distinct().where(notifications.c.incident_id.in_(chunk)))
        for incident_id, channel in rows:
            told.setdefault(int(incident_id), []).append(channel)
    return told


def get_incident(conn: Connection, incident_id: int) -> Incident | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return _incident(row) if row else None


def incident_events_of(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(incident_events).where(incident_events.c.incident_id == incident_id)
                        .order_by(incident_events.c.at, incident_events.c.id))
    events = []
    for row in rows:
        data = dict(row._mapping)
        data["at"] = as_utc(data["at"])
        events.append(data)
    return events


def list_incidents(conn: Connection, *, status: str | None = None, severity: str | None = None,
                   store: str | None = None, operator: str | None = None,
                   rule: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, resolved_since: datetime | None = None,
                   resolved_until: datetime | None = None, limit: int = 100,
                   offset: int = 0, sort: IncidentSort = "newest") -> list[Incident]:
    """Newest first; ``sort="severity"``: the most severe first, newest first within each
    (the one order of the page, the API and the CLI). ``since``/``until`` bound when it
    opened, ``resolved_since``/``resolved_until`` when it was resolved (the weekly digest's
    lists are these filters: watcher/weekly.py)."""
    query = _filtered_incidents(
        select(incidents), status=status, severity=severity, store=store, operator=operator,
        rule=rule, since=since, until=until, resolved_since=resolved_since,
        resolved_until=resolved_until)
    if sort == "severity":
        query = query.order_by(case(_SEVERITY_RANK, value=incidents.c.severity, else_=9))
    query = query.order_by(incidents.c.opened_at.desc(), incidents.c.id.desc())
    return [_incident(r) for r in conn.execute(query.limit(limit).offset(offset))]


_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def count_incidents(conn: Connection, *, status: str | None = None,
                    severity: str | None = None, store: str | None = None,
                    operator: str | None = None, rule: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    resolved_since: datetime | None = None,
                    resolved_until: datetime | None = None) -> int:
    """How many incidents ``list_incidents`` with the same filters pages through."""
    query = _filtered_incidents(
        select(func.count()).select_from(incidents), status=status, severity=severity,
        store=store, operator=operator, rule=rule, since=since, until=until,
        resolved_since=resolved_since, resolved_until=resolved_until)
    return int(conn.execute(query).scalar_one())


def _filtered_incidents(query: Select[Any], *, status: str | None, severity: str | None,
                        store: str | None, operator: str | None, rule: str | None,
                        since: datetime | None, until: datetime | None,
                        resolved_since: datetime | None = None,
                        resolved_until: datetime | None = None) -> Select[Any]:
    for column, value in ((incidents.c.status, status), (incidents.c.severity, severity),
                          (incidents.c.store, store), (incidents.c.operator, operator),
                          (incidents.c.rule, rule)):
        if value:
            query = query.where(column == value)
    if since:
        query = query.where(incidents.c.opened_at >= since)
    if until:
        query = query.where(incidents.c.opened_at < until)
    if resolved_since:
        query = query.where(incidents.c.resolved_at >= resolved_since)
    if resolved_until:
        query = query.where(incidents.c.resolved_at < resolved_until)
    return query


def count_incidents_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(incidents.c.status, func.count()).group_by(incidents.c.status))
    return {r[0]: int(r[1]) for r in rows}


def incident_facets(conn: Connection, limit: int = 500) -> dict[str, list[str]]:
    """The stores, operators and rules incidents exist for: the page's filter choices."""
    facets: dict[str, list[str]] = {}
    for name, column in (("store", incidents.c.store), ("operator", incidents.c.operator),
                         ("rule", incidents.c.rule)):
        rows = conn.execute(select(column).where(column.is_not(None)).distinct()
                            .order_by(column).limit(limit))
        facets[name] = [str(r[0]) for r in rows]
    return facets


def recommendations(conn: Connection, rules: Sequence[str], resolved_since: datetime,
                    limit: int = 200) -> list[Incident]:
    """Incidents of ``rules`` that are live or were resolved since ``resolved_since``."""
    if not rules:
        return []
    query = (select(incidents).where(
        incidents.c.rule.in_(list(rules)),
        or_(incidents.c.status != Status.RESOLVED.value,
            incidents.c.resolved_at >= resolved_since))
        .order_by(incidents.c.opened_at.desc(), incidents.c.id.desc()).limit(limit))
    return [_incident(r) for r in conn.execute(query)]


# -- monthly cards (the operator's monthly verdict, as the PIP counts it) -----------------


OPERATORS_LOCK = 0x6B7077  # "kpw": the advisory lock namespace of operators' months
_LOCK_OPERATORS = text(
    "SELECT count(pg_advisory_xact_lock(:space, hashtext(name))) FROM "
    "(SELECT name FROM unnest(CAST(:names AS text[])) AS name ORDER BY name) AS sorted")


def lock_operators(conn: Connection, operators: Iterable[str]) -> None:
    """Until the transaction ends, hold each operator's months (PostgreSQL; SQLite has
    one writer anyway), in name order so that transactions never wait in a circle.

    A streak is judged on months stored by other transactions too: two replicas
    assessing September and October of one operator at once would each miss the
    other's month, and a three-month streak would open nowhere. Taking turns, the
    second sees the first's month.
    """
    names = sorted(set(operators))
    if names and conn.dialect.name == "postgresql":
        conn.execute(_LOCK_OPERATORS, {"space": OPERATORS_LOCK, "names": names})


_CARD_COLUMNS = ("operator", "period", "period_start", "result", "score", "grade", "evidence",
                 "updated_at")


def upsert_monthly_cards(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert or replace (operator, month) cards in one statement."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        _sqlite_insert_many(conn, monthly_cards, _CARD_COLUMNS, rows, conflict=(
            " ON CONFLICT (operator, period) DO UPDATE SET result = excluded.result, "
            "score = excluded.score, grade = excluded.grade, evidence = excluded.evidence, "
            "updated_at = excluded.updated_at"))
        return
    statement = postgresql_insert(monthly_cards)
    statement = statement.on_conflict_do_update(
        index_elements=["operator", "period"],
        set_={c: statement.excluded[c] for c in ("result", "score", "grade", "evidence",
                                                 "updated_at")})
    conn.execute(statement, rows)


def operators_months(conn: Connection, operators: list[str], first: date,
                     last: date) -> dict[str, dict[str, str]]:
    """``operator -> month -> card result`` (pass, fail, incomplete), in [first, last]."""
    result: dict[str, dict[str, str]] = {}
    for chunk in _chunks(sorted(set(operators)), 500):
        rows = conn.execute(
            select(monthly_cards.c.operator, monthly_cards.c.period, monthly_cards.c.result)
            .where(monthly_cards.c.operator.in_(chunk), monthly_cards.c.period_start >= first,
                   monthly_cards.c.period_start <= last))
        for operator, period, card_result in rows:
            result.setdefault(operator, {})[period] = card_result
    return result


def month_evidence(conn: Connection, operator: str, months: list[str]) -> list[dict[str, Any]]:
    """Why the operator's cards of ``months`` failed: loaded only when a streak needs telling."""
    rows = conn.execute(select(monthly_cards.c.evidence).where(
        monthly_cards.c.operator == operator, monthly_cards.c.period.in_(months))
        .order_by(monthly_cards.c.period_start))
    return [item for (evidence,) in rows for item in evidence]


def operators_snapshot_keys(conn: Connection, operators: Iterable[str], first: date,
                           last: date) -> dict[str, list[str]]:
    """``operator -> keys`` of the snapshots whose period lies within [first, last]."""
    found: dict[str, list[str]] = {}
    for chunk in _chunks(sorted(set(operators)), 500):
        rows = conn.execute(select(snapshots.c.operator, snapshots.c.key).where(
            snapshots.c.operator.in_(chunk), snapshots.c.period_start >= first,
            snapshots.c.period_end <= last))
        for operator, key in rows:
            found.setdefault(operator, []).append(key)
    return found


def snapshots_by_key(conn: Connection, keys: Sequence[str]) -> dict[str, Snapshot]:
    """Stored snapshots by key, as ``snapshots_within`` reads them."""
    found: dict[str, Snapshot] = {}
    for chunk in _chunks(sorted(set(keys)), 500):
        rows = conn.execute(select(
            snapshots.c.key, snapshots.c.store, snapshots.c.platform, snapshots.c.period,
            snapshots.c.operator, snapshots.c.observed_at, snapshots.c.segment,
            snapshots.c.metrics, snapshots.c.targets).where(snapshots.c.key.in_(chunk)))
        for row in rows:
            data = dict(row._mapping)
            found[data.pop("key")] = Snapshot.model_validate(data)
    return found


# -- outbox ------------------------------------------------------------------------------


def notification_row(incident_id: int | None, event_id: int | None, channel: str, alert: Alert,
                     now: datetime, *, group_key: str | None = None,
                     send_at: datetime | None = None) -> dict[str, Any]:
    return {"incident_id": incident_id, "event_id": event_id, "channel": channel,
            "alert": alert.as_json(), "status": "pending", "attempts": 0,
            "next_attempt_at": send_at or now, "created_at": now, "group_key": group_key,
            "priority": SEVERITY_RANK.get(alert.severity, 0)}


def pending_group_times(conn: Connection, keys: Iterable[str]) -> dict[str, datetime]:
    """When each still-pending, never-tried group goes out: newcomers join that time."""
    found: dict[str, datetime] = {}
    for chunk in _chunks(sorted(set(keys)), 500):
        rows = conn.execute(select(notifications.c.group_key,
                                   func.min(notifications.c.next_attempt_at)).where(
            notifications.c.group_key.in_(chunk), notifications.c.status == "pending",
            notifications.c.attempts == 0).group_by(notifications.c.group_key))
        for key, at in rows:
            if at is not None:
                found[str(key)] = as_utc(at) or at
    return found


def insert_notifications(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(notifications), rows)


def renew_claims(conn: Connection, ids: Sequence[int], worker: str,
                 lease_until: datetime) -> set[int]:
    """Extend ``worker``'s lease on these notifications; the ids that are still its own.

    A lease that ran out may have been taken over by another replica: that one
    sends it, so the first must not.
    """
    mine = and_(notifications.c.id.in_(list(ids)), notifications.c.claimed_by == worker,
                notifications.c.status == "pending")
    conn.execute(update(notifications).where(mine).values(claimed_until=lease_until))
    return {r.id for r in conn.execute(select(notifications.c.id).where(mine))}


def _due(now: datetime) -> Any:
    return and_(notifications.c.status == "pending", notifications.c.next_attempt_at <= now,
                or_(notifications.c.claimed_until.is_(None),
                    notifications.c.claimed_until < now))


def due_channels(conn: Connection, now: datetime) -> list[str]:
    """Channels with a notification due and unclaimed (a claim whose lease ran out,
    its holder dead, is due again)."""
    rows = conn.execute(select(notifications.c.channel).where(_due(now)).distinct()
                        .order_by(notifications.c.channel))
    return [str(r[0]) for r in rows]


CHANNELS_LOCK = 0x6B7063  # "kpc": the advisory lock namespace of channels' send budgets


def lock_channel(conn: Connection, channel: str) -> None:
    """Until the transaction ends, hold ``channel``'s send budget (PostgreSQL; SQLite has
    one writer anyway): two replicas counting its window at once would both spend it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:channel))"),
                     {"space": CHANNELS_LOCK, "channel": channel})


def _message() -> Any:
    """One message: grouped notifications go out as one, the others one each."""
    return func.count(func.distinct(func.coalesce(
        notifications.c.group_key, cast(notifications.c.id, String))))


@dataclass(frozen=True, slots=True)
class Window:
    """A channel's messages within its rate's window, as every replica sees them."""

    sent: int
    claimed: int  # about to be sent (a live claim)
    last_sent_at: datetime | None

    @property
    def used(self) -> int:
        return self.sent + self.claimed


def rate_window(conn: Connection, channel: str, since: datetime, now: datetime) -> Window:
    """Messages of ``channel`` sent since ``since``, those claimed now, the last send."""
    sent, last = conn.execute(select(_message(), func.max(notifications.c.sent_at)).where(
        notifications.c.channel == channel, notifications.c.status == "sent",
        notifications.c.sent_at >= since)).one()
    claimed = conn.execute(select(_message()).where(
        notifications.c.channel == channel, notifications.c.status == "pending",
        notifications.c.claimed_until >= now)).scalar_one()
    return Window(int(sent), int(claimed), as_utc(last))


def due_count(conn: Connection, channel: str, now: datetime) -> int:
    return int(conn.execute(select(func.count()).where(
        notifications.c.channel == channel, _due(now))).scalar_one())


def waiting(conn: Connection, channel: str, now: datetime, limit: int = 100_000,
            min_priority: int | None = None) -> list[dict[str, Any]]:
    """``channel``'s due, unclaimed notifications, most urgent first (then oldest)."""
    query = (select(notifications).where(notifications.c.channel == channel, _due(now))
             .order_by(notifications.c.priority.desc(), notifications.c.id).limit(limit))
    if min_priority is not None:
        query = query.where(notifications.c.priority >= min_priority)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(r._mapping) for r in conn.execute(query)]


def claim(conn: Connection, ids: Sequence[int], worker: str, lease_until: datetime,
          now: datetime) -> list[dict[str, Any]]:
    """Claim these notifications for ``worker`` until ``lease_until``; the rows it got."""
    found: list[dict[str, Any]] = []
    for chunk in _chunks(list(ids), 500):
        conn.execute(update(notifications).where(notifications.c.id.in_(chunk), _due(now))
                     .values(claimed_by=worker, claimed_until=lease_until))
        found.extend(dict(r._mapping) for r in conn.execute(select(notifications).where(
            notifications.c.id.in_(chunk), notifications.c.claimed_by == worker,
            notifications.c.claimed_until == lease_until)))
    return sorted(found, key=lambda r: (-int(r["priority"]), int(r["id"])))


def fold(conn: Connection, ids: Sequence[int], digest: dict[str, Any]) -> int:
    """Insert the ``digest`` notification and mark ``ids`` as carried by it; its id."""
    digest_id = int(conn.execute(insert(notifications).values(**digest)
                                 .returning(notifications.c.id)).scalar_one())
    for chunk in _chunks(list(ids), 500):
        conn.execute(update(notifications).where(notifications.c.id.in_(chunk)).values(
            status="folded", carried_by=digest_id, claimed_until=None))
    return digest_id


def carried_by(conn: Connection, digest_id: int) -> list[dict[str, Any]]:
    """The notifications a digest carries (incident and channel of each)."""
    rows = conn.execute(select(notifications.c.id, notifications.c.incident_id,
                               notifications.c.channel)
                        .where(notifications.c.carried_by == digest_id)
                        .order_by(notifications.c.id))
    return [dict(r._mapping) for r in rows]


def mark_sent(conn: Connection, notification_id: int, now: datetime) -> None:
    conn.execute(update(notifications).where(notifications.c.id == notification_id).values(
        status="sent", sent_at=now, attempts=notifications.c.attempts + 1, last_error=None,
        claimed_until=None))
    # What a digest carried went out with it (retention prunes it with the digest).
    conn.execute(update(notifications).where(notifications.c.carried_by == notification_id)
                 .values(sent_at=now))


def mark_failed(conn: Connection, notification_id: int, reason: str,
                next_attempt_at: datetime) -> None:
    conn.execute(update(notifications).where(notifications.c.id == notification_id).values(
        attempts=notifications.c.attempts + 1, last_error=reason,
        next_attempt_at=next_attempt_at, claimed_until=None))


def outbox_backlog(conn: Connection) -> tuple[int, datetime | None]:
    row = conn.execute(select(func.count(), func.min(notifications.c.created_at))
                       .where(notifications.c.status == "pending")).one()
    return int(row[0]), as_utc(row[1])


def channel_status(conn: Connection) -> list[dict[str, Any]]:
    """Per channel: delivered, waiting, failing, folded into digests (and how many
    digests), last success and last failure with reason."""
    summary: dict[str, dict[str, Any]] = {}
    rows = conn.execute(select(
        notifications.c.channel, notifications.c.status,
        (notifications.c.attempts > 0).label("tried"), func.count(),
        func.max(notifications.c.sent_at)).group_by(
        notifications.c.channel, notifications.c.status, "tried"))
    for channel, status, tried, count, last_sent in rows:
        entry = summary.setdefault(channel, {"channel": channel, "sent": 0, "pending": 0,
                                             "failing": 0, "folded": 0, "digests": 0,
                                             "last_sent_at": None, "last_failure_at": None,
                                             "last_error": None})
        if status == "folded":
            entry["folded"] += int(count)
        elif status == "sent":
            entry["sent"] += int(count)
            entry["last_sent_at"] = as_utc(last_sent)
        else:
            entry["pending"] += int(count)
            entry["failing"] += int(count) if tried else 0
    digests = conn.execute(select(notifications.c.channel,
                                  func.count(func.distinct(notifications.c.carried_by)))
                           .where(notifications.c.status == "folded")
                           .group_by(notifications.c.channel))
    for channel, count in digests:
        summary[channel]["digests"] = int(count)
    failures = conn.execute(select(incident_events.c.at, incident_events.c.note,
                                   incident_events.c.data)
                            .where(incident_events.c.kind == "delivery_failed")
                            .order_by(incident_events.c.id.desc()).limit(1000))
    for at, note, data in failures:
        failed = summary.get(str((data or {}).get("channel")))
        if failed is not None and failed["last_failure_at"] is None:
            failed["last_failure_at"], failed["last_error"] = as_utc(at), note
    return sorted(summary.values(), key=lambda e: str(e["channel"]))


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- silences ----------------------------------------------------------------------------


def _silence(row: Any) -> Silence:
    data = dict(row._mapping)
    for key in ("starts_at", "ends_at", "created_at"):
        data[key] = as_utc(data[key])
    return Silence.model_validate(data)


def add_silence(conn: Connection, silence: Silence) -> Silence:
    new_id = conn.execute(insert(silences).values(
        **silence.model_dump(exclude={"id"})).returning(silences.c.id)).scalar_one()
    return silence.model_copy(update={"id": int(new_id)})


def list_silences(conn: Connection, *, active_at: datetime | None = None,
                  limit: int = 200) -> list[Silence]:
    query = select(silences).order_by(silences.c.id.desc()).limit(limit)
    if active_at is not None:
        query = query.where(silences.c.starts_at <= active_at, silences.c.ends_at > active_at)
    return [_silence(r) for r in conn.execute(query)]


def expire_silence(conn: Connection, silence_id: int, now: datetime) -> Silence | None:
    conn.execute(update(silences).where(silences.c.id == silence_id, silences.c.ends_at > now)
                 .values(ends_at=now))
    row = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
    return _silence(row) if row else None


# -- charts ---------------------------------------------------------------------------------


def store_history(conn: Connection, platform: str, store: str, kind: str,
                  limit: int, metric: str | None = None) -> list[tuple[Snapshot, int]]:
    """A store's last ``limit`` stored snapshots of one period kind, oldest first, each with
    its revision (above 1: restated); with ``metric``, the revision of the part that
    states it (a help desk adding its tickets to a day did not restate its visitors)."""
    query = select(snapshots.c.store, snapshots.c.platform, snapshots.c.period,
                   snapshots.c.operator, snapshots.c.observed_at, snapshots.c.segment,
                   snapshots.c.metrics, snapshots.c.targets, snapshots.c.revision,
                   snapshots.c.parts).where(
        snapshots.c.store == store, snapshots.c.platform == platform,
        snapshots.c.period_kind == kind,
    ).order_by(snapshots.c.period_start.desc()).limit(limit)
    found = []
    for row in reversed([dict(row._mapping) for row in conn.execute(query)]):
        revision, parts = int(row.pop("revision")), row.pop("parts")
        if parts is not None and metric is not None:
            part = feeds.supplier(feeds.parts_of_json(parts), metric)
            revision = part.revision if part is not None else 1
        found.append((Snapshot.model_validate(row), revision))
    return found


def latest_snapshots(conn: Connection, stores: Iterable[tuple[str, str]] | None = None
                     ) -> list[Snapshot]:
    """Every store's latest snapshot of each period kind (the health board's input); with
    ``stores`` ((platform, store) pairs), those stores' only."""
    if stores is None:
        return _latest_of(conn, None)
    found: list[Snapshot] = []
    for chunk in _chunks(sorted(set(stores)), 500):
        found += _latest_of(conn, chunk)
    return found


def _latest_of(conn: Connection, stores: list[tuple[str, str]] | None) -> list[Snapshot]:
    keys = (snapshots.c.platform, snapshots.c.store, snapshots.c.period_kind)
    newest = select(*keys, func.max(snapshots.c.period_start).label("start"))
    if stores is not None:
        newest = newest.where(snapshots.c.store.in_({store for _p, store in stores}))
    newest_q = newest.group_by(*keys).subquery()
    query = select(snapshots.c.store, snapshots.c.platform, snapshots.c.period,
                   snapshots.c.operator, snapshots.c.observed_at, snapshots.c.segment,
                   snapshots.c.metrics, snapshots.c.targets).join(newest_q, and_(
                       snapshots.c.platform == newest_q.c.platform,
                       snapshots.c.store == newest_q.c.store,
                       snapshots.c.period_kind == newest_q.c.period_kind,
                       snapshots.c.period_start == newest_q.c.start))
    rows = conn.execute(query)
    if stores is not None:  # the store names matched; the platform must too
        wanted = set(stores)
        rows = (r for r in rows if (r.platform, r.store) in wanted)  # type: ignore[assignment]
    return [Snapshot.model_validate(dict(row._mapping)) for row in rows]


SETTLE = timedelta(seconds=SNAPSHOTS_SETTLE_SECONDS)


class SnapshotsMark(NamedTuple):
    """Where the snapshots stand, read from index ends and the recent index range only.

    ``newest`` (the last change) and ``last_id`` move with every insert and restatement
    that commits in time order. A transaction that commits after a later one (its clock
    was read first; another replica's clock runs behind) stamps a time before ``newest``:
    so the rows changed within ``SETTLE`` of ``newest`` are counted, with their
    revisions, and a late insert or restatement moves those. Snapshots are never deleted
    (retention clears only their raw payload)."""

    newest: datetime | None
    last_id: int
    recent: int
    revisions: int

    @property
    def since(self) -> datetime | None:
        """From when a reader that saw this mark must look for changes."""
        return None if self.newest is None else self.newest - SETTLE


def snapshots_mark(conn: Connection) -> SnapshotsMark:
    # one aggregate a statement: SQLite reads a lone max() from the index end
    newest = as_utc(conn.execute(select(func.max(snapshots.c.updated_at))).scalar_one())
    if newest is None:
        return SnapshotsMark(None, 0, 0, 0)
    last_id = conn.execute(select(func.max(snapshots.c.id))).scalar_one()
    return SnapshotsMark(newest, int(last_id), *snapshots_counted(conn, newest - SETTLE))


def snapshots_counted(conn: Connection, first: datetime, last: datetime | None = None
                      ) -> tuple[int, int]:
    """How many snapshots changed from ``first`` (to ``last``), and their revisions summed
    (from the index on ``updated_at, revision`` alone)."""
    query = select(func.count(), func.coalesce(func.sum(snapshots.c.revision), 0)).where(
        snapshots.c.updated_at >= first)
    if last is not None:
        query = query.where(snapshots.c.updated_at <= last)
    recent, revisions = conn.execute(query).one()
    return int(recent), int(revisions)


class Changed(NamedTuple):
    key: str
    platform: str
    store: str
    operator: str | None
    period_start: date
    period_end: date


# A snapshot's revision and its change time as the driver hands it back (SQLite: text):
# compared only with ``driver_time``, never read as a time.
Seen = tuple[int, Any]


def driver_time(conn: Connection, moment: datetime) -> Any:
    """``moment`` as the driver stores ``updated_at`` (what ``snapshots_window`` returns)."""
    column = snapshots.c.updated_at.type
    stamp = column.dialect_impl(conn.dialect).bind_processor(conn.dialect)  # SQLite: text
    return stamp(moment) if stamp is not None else moment


def snapshots_window(conn: Connection, since: datetime | None, *, after: bool = False
                     ) -> dict[int, Seen]:
    """``id -> (revision, change time)`` of the snapshots changed at or (``after``) after
    ``since`` (all without it), from the index on ``updated_at, revision, id`` alone."""
    query = select(snapshots.c.id, snapshots.c.revision, snapshots.c.updated_at)
    if since is not None:
        query = query.where(snapshots.c.updated_at > since if after
                            else snapshots.c.updated_at >= since)
    # Right after a backfill the window holds its every row: read through the driver's own
    # cursor (plain values), a fifth of the time SQLAlchemy's rows take.
    compiled = query.compile(dialect=conn.dialect)
    values = {k: driver_time(conn, v) if isinstance(v, datetime) else v
              for k, v in compiled.construct_params().items()}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if compiled.positiontup is not None:  # qmark (SQLite) or format (psycopg)
            cursor.execute(str(compiled), [values[k] for k in compiled.positiontup])
        else:
            cursor.execute(str(compiled), values)
        return {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    finally:
        cursor.close()


def snapshots_of(conn: Connection, ids: Iterable[int]) -> list[Changed]:
    """What kept views need to know of these snapshots: whose, and which period."""
    found: list[Changed] = []
    for chunk in _chunks(sorted(set(ids)), 500):
        found += [Changed(*row) for row in conn.execute(select(
            snapshots.c.key, snapshots.c.platform, snapshots.c.store, snapshots.c.operator,
            snapshots.c.period_start, snapshots.c.period_end).where(snapshots.c.id.in_(chunk)))]
    return found


def latest_month(conn: Connection) -> date | None:
    """The start of the latest month any snapshot reports."""
    return conn.execute(select(snapshots.c.period_start)
                        .where(snapshots.c.period_kind == "month")
                        .order_by(snapshots.c.period_start.desc()).limit(1)).scalar()
