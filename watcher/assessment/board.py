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

from collections.abc import Iterable, Sequence
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
    operator: str | None  # the newest snapshot's
    team: str | None      # the operator's, by the roster
    snaps: list[Snapshot]
    sent: frozenset[str]  # the indicators its snapshots carry


def store_entries(latest: Iterable[Snapshot], roster: Roster) -> list[StoreEntry]:
    by_store: dict[tuple[str, str], list[Snapshot]] = {}
    for snap in latest:
        by_store.setdefault((snap.platform, snap.store), []).append(snap)
    entries = []
    for (store_platform, store), snaps in by_store.items():
        snaps.sort(key=lambda s: (s.period.end, s.period.start))
        operator = snaps[-1].operator
        entries.append(StoreEntry(store_platform, store, operator, roster.team_of(operator),
                                  snaps, frozenset(m for s in snaps for m in s.metrics)))
    return entries


def shows(entry: StoreEntry, platform: str | None, operator: str | None,
          team: str | None) -> bool:
    return not ((platform and entry.platform != platform)
                or (operator and entry.operator != operator) or (team and entry.team != team))


def wanted_indicators(dimension: Dimension | None, sent: set[str]) -> list[Indicator]:
    """A column for every indicator some shown store sent (a threshold nobody reports on
    is not news), so only those are judged: a store's other cells could only say "no
    data"."""
    return [i for i in indicators.INDICATORS.values()
            if (dimension is None or i.dimension == dimension) and i.id in sent]


def store_row(entry: StoreEntry, wanted: Sequence[Indicator], pack: RulePack,
              book: TargetBook) -> BoardRow:
    """The store's cells of the ``wanted`` indicators: each depends on this store alone."""
    newest = entry.snaps[-1]
    cells = {}
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
        # built from trusted parts: validating 100,000 cells would cost seconds
        cells[indicator.id] = Cell.model_construct(
            indicator=indicator.id, status=status, value=value,
            threshold=criterion.threshold if criterion else None,
            comparator=criterion.comparator if criterion else None,
            basis=criterion.basis if criterion else None,
            rule=criterion.rule if criterion else None,
            period=source.period.text if value is not None else None)
    return BoardRow.model_construct(platform=entry.platform, store=entry.store,
                                    operator=entry.operator, team=entry.team, cells=cells)


def only(row: BoardRow, indicator_ids: set[str]) -> BoardRow:
    """The row with the cells of these indicators only (itself when it has no other)."""
    if row.cells.keys() <= indicator_ids:
        return row
    return BoardRow.model_construct(
        platform=row.platform, store=row.store, operator=row.operator, team=row.team,
        cells={m: c for m, c in row.cells.items() if m in indicator_ids})


def assemble(rows: list[BoardRow], wanted: Sequence[Indicator]) -> Board:
    """The board of these rows: a column for each wanted indicator some row has a value of,
    the worst rows first, then by store; the counts over all of them."""
    used = {m for row in rows for m, cell in row.cells.items() if cell.value is not None}
    rows = [only(row, used) for row in rows]
    columns = tuple(BoardColumn(indicator=i.id, name_en=i.name_en, name_zh=i.name_zh,
                                dimension=i.dimension.value) for i in wanted if i.id in used)
    rows.sort(key=lambda r: (-r.worst, r.store, r.platform))
    counts = dict.fromkeys(CellStatus, 0)
    for row in rows:
        for cell in row.cells.values():
            counts[cell.status] += 1
    return Board(columns=columns, rows=tuple(rows), counts=counts, total=len(rows))


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
             if shows(e, platform, operator, team)]
    wanted = wanted_indicators(dimension, {m for e in shown for m in e.sent})
    return assemble([store_row(e, wanted, pack, book) for e in shown], wanted)


def board_facets(latest: Sequence[Snapshot], roster: Roster | None = None
                 ) -> dict[str, list[str]]:
    """The platforms, operators and teams a board can be filtered by."""
    operators = {s.operator for s in latest if s.operator}
    teams = {t for o in operators if (t := (roster or Roster()).team_of(o))}
    return {"platform": sorted({s.platform for s in latest}), "operator": sorted(operators),
            "team": sorted(teams)}


