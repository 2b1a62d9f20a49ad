"""The store health board: every store against every indicator, by its latest value.

A compliance lead scanning a fleet wants one glance: which stores breach which threshold
now, which are close to it, which sent nothing. Each cell is one store's latest value of
one indicator (from the most recent snapshot that carries it, whatever its period kind)
judged by the threshold its scorecard would use (``scorecard.view_criterion``: the
target, else the rule's form for the store's segment), so the board, the cards and the
rules state one verdict.

A passing value is *near* when it is closer to its threshold than ``NEAR_SHARE`` of the
threshold; a threshold of 0 has no near side (no penalty is simply ok).

Pure functions over frozen models; the query is ``repository.latest_snapshots``, and
``watcher.assessment.kept.BoardCache`` keeps each store's row until its data changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from watcher import indicators
from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import (
    Criterion,
    StoreView,
    snapshot_view,
    view_criterion,
)
from watcher.assessment.targets import TargetBook
from watcher.indicators import Dimension, Indicator
from watcher.rules.model import RulePack
from watcher.snapshot import Comparator, Snapshot

NEAR_SHARE = 0.10


class CellStatus(StrEnum):
    OK = "ok"
    NEAR = "near"            # passes, within NEAR_SHARE of the threshold
    BREACHING = "breaching"
    NO_DATA = "no_data"      # a threshold applies, no value was sent


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Cell(_Frozen):
    indicator: str
    status: CellStatus
    value: float | None
    threshold: float | None
    comparator: Comparator | None  # passes when ``value <comparator> threshold``
    basis: str | None              # target or rule
    rule: str | None
    period: str | None             # the snapshot the value came from


class BoardRow(_Frozen):
    platform: str
    store: str
    operator: str | None
    team: str | None  # the operator's, by the roster
    cells: dict[str, Cell]  # by indicator id; an indicator with neither value nor threshold
    # has no cell

    @property
    def worst(self) -> int:
        return max((_RANK[c.status] for c in self.cells.values()), default=0)


class BoardColumn(_Frozen):
    indicator: str
    name_en: str
    name_zh: str
    dimension: str


class Board(_Frozen):
    columns: tuple[BoardColumn, ...]
    rows: tuple[BoardRow, ...]
    counts: dict[CellStatus, int]  # over every row, shown or not
    total: int  # rows before paging (``page``)

    def page(self, offset: int, limit: int) -> Board:
        """The rows from ``offset``, at most ``limit`` of them (worst first, as built)."""
        return self.model_copy(update={"rows": self.rows[offset:offset + limit]})


_RANK = {CellStatus.NO_DATA: 1, CellStatus.OK: 0, CellStatus.NEAR: 2, CellStatus.BREACHING: 3}


def cell_status(value: float | None, criterion: Criterion | None) -> CellStatus | None:
    """ok, near, breaching or no data; None when there is nothing to show."""
    if value is None:
        return CellStatus.NO_DATA if criterion is not None else None
    if criterion is None:
        return None
    if not criterion.passes(value):
        return CellStatus.BREACHING
    if abs(value - criterion.threshold) < NEAR_SHARE * abs(criterion.threshold):
        return CellStatus.NEAR
    return CellStatus.OK


class StoreEntry(NamedTuple):
    """One store's latest snapshots (oldest period first), as the board groups them."""

    platform: str
    store: str
    operator: str | None  # the newest snapshot's that names one
    team: str | None      # the operator's, by the roster
    snaps: list[Snapshot]
    sent: frozenset[str]  # the indicators its snapshots carry


# What a kept board holds of a store beside its row, what it is filtered and faceted by,
# as a plain tuple (see CompactCell): (platform, store, operator, team, the indicators it
# sent, the operators of all its latest snapshots)
KeptStore = tuple[str, str, str | None, str | None, tuple[str, ...], tuple[str, ...]]


def kept_store(entry: StoreEntry) -> KeptStore:
    return (entry.platform, entry.store, entry.operator, entry.team, tuple(sorted(entry.sent)),
            tuple(sorted({s.operator for s in entry.snaps if s.operator})))


def store_entries(latest: Iterable[Snapshot], roster: Roster) -> list[StoreEntry]:
    by_store: dict[tuple[str, str], list[Snapshot]] = {}
    for snap in latest:
        by_store.setdefault((snap.platform, snap.store), []).append(snap)
    entries = []
    for (store_platform, store), snaps in by_store.items():
        snaps.sort(key=lambda s: (s.period.end, s.period.start))
        # a daily feed often names no operator: the store is still the one whose newest
        # snapshot of any kind names one (the monthly export's), not nobody's
        operator = next((s.operator for s in reversed(snaps) if s.operator), None)
        entries.append(StoreEntry(store_platform, store, operator, roster.team_of(operator),
                                  snaps, frozenset(m for s in snaps for m in s.metrics)))
    return entries


def shows(store: tuple[str, str | None, str | None], platform: str | None,
          operator: str | None, team: str | None) -> bool:
    """Whether a store (its platform, operator and team) passes the filters."""
    return not ((platform and store[0] != platform) or (operator and store[1] != operator)
                or (team and store[2] != team))


def wanted_indicators(dimension: Dimension | None, sent: set[str]) -> list[Indicator]:
    """A column for every indicator some shown store sent (a threshold nobody reports on
    is not news), so only those are judged: a store's other cells could only say "no
    data"."""
    return [i for i in indicators.INDICATORS.values()
            if (dimension is None or i.dimension == dimension) and i.id in sent]


# A cell and a row as kept: plain tuples of plain values, which the cyclic garbage
# collector stops tracking (a tuple subclass it would walk on every full collection: a
# kept board of 100,000 cells cost 250 ms of every full collection).
# cell: (indicator, status, value, threshold, comparator, basis, rule, period)
CompactCell = tuple[str, str, float | None, float | None, str | None, str | None, str | None,
                    str | None]
# row: (platform, store, operator, team, cells in column order)
CompactRow = tuple[str, str, str | None, str | None, tuple[CompactCell, ...]]


def cell_of(kept: CompactCell) -> Cell:
    indicator, status, value, threshold, comparator, basis, rule, period = kept
    # built from trusted parts: validating 100,000 cells would cost seconds
    return Cell.model_construct(
        indicator=indicator, status=CellStatus(status), value=value, threshold=threshold,
        comparator=Comparator(comparator) if comparator else None, basis=basis, rule=rule,
        period=period)


def row_of(kept: CompactRow) -> BoardRow:
    platform, store, operator, team, cells = kept
    return BoardRow.model_construct(platform=platform, store=store, operator=operator,
                                    team=team, cells={c[0]: cell_of(c) for c in cells})


def worst_of(kept: CompactRow) -> int:
    return max((_STATUS_RANK[c[1]] for c in kept[4]), default=0)


_STATUS_RANK = {status.value: rank for status, rank in _RANK.items()}


def store_row(entry: StoreEntry, wanted: Sequence[Indicator], pack: RulePack,
              book: TargetBook) -> CompactRow:
    """The store's cells of the ``wanted`` indicators: each depends on this store alone."""
    newest = entry.snaps[-1]
    cells: list[CompactCell] = []
    views: dict[int, StoreView] = {}  # by id() of the snapshot: one targets lookup each
    for indicator in wanted:
        source = next((s for s in reversed(entry.snaps) if indicator.id in s.metrics), newest)
        view = views.get(id(source))
        if view is None:
            view = views[id(source)] = snapshot_view(source, book)
        # the card's own lookup, which judges each segment's rule criterion once
        criterion = view_criterion(indicator.id, view, pack, source.period.kind)
        value = source.metrics.get(indicator.id)
        status = cell_status(value, criterion)
        if status is None:
            continue
        cells.append((
            indicator.id, status.value, value,
            criterion.threshold if criterion else None,
            criterion.comparator.value if criterion else None,
            criterion.basis if criterion else None, criterion.rule if criterion else None,
            source.period.text if value is not None else None))
    return (entry.platform, entry.store, entry.operator, entry.team, tuple(cells))


def only(row: CompactRow, indicator_ids: set[str]) -> CompactRow:
    """The row with the cells of these indicators only (itself when it has no other)."""
    if all(c[0] in indicator_ids for c in row[4]):
        return row
    return (*row[:4], tuple(c for c in row[4] if c[0] in indicator_ids))


@dataclass(frozen=True, slots=True)
class Layout:
    """A board as kept: its rows compact, made into models a page at a time."""

    columns: tuple[BoardColumn, ...]
    rows: tuple[CompactRow, ...]
    counts: dict[CellStatus, int]
    _json: dict[tuple[int, int | None], bytes] = field(default_factory=dict, compare=False)

    def page(self, offset: int = 0, limit: int | None = None) -> Board:
        """The board with the rows from ``offset``, at most ``limit`` of them (worst first);
        ``total`` and ``counts`` are over all of them."""
        end = None if limit is None else offset + limit
        return Board(columns=self.columns, rows=tuple(row_of(r) for r in self.rows[offset:end]),
                     counts=self.counts, total=len(self.rows))

    def page_json(self, offset: int = 0, limit: int | None = None) -> bytes:
        """``page`` as JSON, kept with the layout: a page of 1,000 rows is 17,000 cells to
        build and serialise, the same for every request until the data changes."""
        found = self._json.get((offset, limit))
        if found is None:
            if len(self._json) >= 8:
                self._json.clear()
            found = self._json[(offset, limit)] = self.page(offset, limit).model_dump_json(
                ).encode()
        return found


def assemble(rows: list[CompactRow], wanted: Sequence[Indicator]) -> Layout:
    """The board of these rows: a column for each wanted indicator some row has a value of,
    the worst rows first, then by store; the counts over all of them."""
    used = {c[0] for row in rows for c in row[4] if c[2] is not None}
    rows = [only(row, used) for row in rows]
    columns = tuple(BoardColumn(indicator=i.id, name_en=i.name_en, name_zh=i.name_zh,
                                dimension=i.dimension.value) for i in wanted if i.id in used)
    rows.sort(key=lambda r: (-worst_of(r), r[1], r[0]))
    counted = Counter(c[1] for row in rows for c in row[4])
    counts = {status: counted.get(status.value, 0) for status in CellStatus}
    return Layout(columns, tuple(rows), counts)


def build_board(latest: Iterable[Snapshot], pack: RulePack, book: TargetBook, *,
                platform: str | None = None, operator: str | None = None,
                dimension: Dimension | None = None, team: str | None = None,
                roster: Roster | None = None) -> Board:
    """The board of the stores whose latest snapshots are ``latest`` (one or more per store,
    a period kind each), filtered by platform, operator (the latest snapshot's), the
    operator's team (by ``roster``) and the indicators' dimension. Rows are ordered worst
    first, then by store. (``watcher.assessment.kept.BoardCache`` builds the same board
    from rows it keeps per store.)"""
    shown = [e for e in store_entries(latest, roster or Roster())
             if shows((e.platform, e.operator, e.team), platform, operator, team)]
    wanted = wanted_indicators(dimension, {m for e in shown for m in e.sent})
    return assemble([store_row(e, wanted, pack, book) for e in shown], wanted).page()


def facet_values(platforms: Iterable[str], operators: Iterable[str], roster: Roster
           ) -> dict[str, list[str]]:
    """The platforms, operators and teams (by the roster) a board can be filtered by."""
    people = set(operators)
    return {"platform": sorted(set(platforms)), "operator": sorted(people),
            "team": sorted({t for o in people if (t := roster.team_of(o))})}


def board_facets(latest: Sequence[Snapshot], roster: Roster | None = None
                 ) -> dict[str, list[str]]:
    return facet_values((s.platform for s in latest), (s.operator for s in latest if s.operator),
                  roster or Roster())


