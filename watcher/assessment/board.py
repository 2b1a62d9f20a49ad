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
``BoardCache`` keeps boards until the data changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from watcher import indicators
from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import (
    Criterion,
    StoreView,
    snapshot_view,
    view_criterion,
)
from watcher.assessment.targets import TargetBook
from watcher.indicators import Dimension
from watcher.rules.model import RulePack
from watcher.snapshot import Comparator, Snapshot
from watcher.store import repository as repo

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


def build_board(latest: Iterable[Snapshot], pack: RulePack, book: TargetBook, *,
                platform: str | None = None, operator: str | None = None,
                dimension: Dimension | None = None, team: str | None = None,
                roster: Roster | None = None) -> Board:
    """The board of the stores whose latest snapshots are ``latest`` (one or more per store,
    a period kind each), filtered by platform, operator (the latest snapshot's), the
    operator's team (by ``roster``) and the indicators' dimension. Rows are ordered worst
    first, then by store."""
    roster = roster or Roster()
    by_store: dict[tuple[str, str], list[Snapshot]] = {}
    for snap in latest:
        by_store.setdefault((snap.platform, snap.store), []).append(snap)
    wanted = [i for i in indicators.INDICATORS.values()
              if dimension is None or i.dimension == dimension]
    shown = []
    for (store_platform, store), snaps in by_store.items():
        snaps.sort(key=lambda s: (s.period.end, s.period.start))
        newest = snaps[-1]
        store_team = roster.team_of(newest.operator)
        if not ((platform and store_platform != platform)
                or (operator and newest.operator != operator)
                or (team and store_team != team)):
            shown.append((store_platform, store, store_team, snaps))
    # A column for every indicator some shown store sent (a threshold nobody reports on is
    # not news), so only those are judged: a store's other cells could only say "no data".
    sent = {m for *_key, snaps in shown for s in snaps for m in s.metrics}
    wanted = [i for i in wanted if i.id in sent]
    rows = []
    views: dict[int, StoreView] = {}  # by id() of the snapshot: one targets lookup each
    for store_platform, store, store_team, snaps in shown:
        newest = snaps[-1]
        cells = {}
        for indicator in wanted:
            source = next((s for s in reversed(snaps) if indicator.id in s.metrics), newest)
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
        rows.append(BoardRow.model_construct(platform=store_platform, store=store,
                                             operator=newest.operator, team=store_team,
                                             cells=cells))
    used = {m for row in rows for m, cell in row.cells.items() if cell.value is not None}
    rows = [row if row.cells.keys() <= used else BoardRow.model_construct(
        platform=row.platform, store=row.store, operator=row.operator, team=row.team,
        cells={m: c for m, c in row.cells.items() if m in used}) for row in rows]
    columns = tuple(BoardColumn(indicator=i.id, name_en=i.name_en, name_zh=i.name_zh,
                                dimension=i.dimension.value) for i in wanted if i.id in used)
    rows.sort(key=lambda r: (-r.worst, r.store, r.platform))
    counts = dict.fromkeys(CellStatus, 0)
    for row in rows:
        for cell in row.cells.values():
            counts[cell.status] += 1
    return Board(columns=columns, rows=tuple(rows), counts=counts, total=len(rows))


def board_facets(latest: Sequence[Snapshot], roster: Roster | None = None
                 ) -> dict[str, list[str]]:
    """The platforms, operators and teams a board can be filtered by."""
    operators = {s.operator for s in latest if s.operator}
    teams = {t for o in operators if (t := (roster or Roster()).team_of(o))}
    return {"platform": sorted({s.platform for s in latest}), "operator": sorted(operators),
            "team": sorted(teams)}



class BoardCache:
    """The boards built since the data last changed, for a fleet too big to judge per request.

    Building a board judges every store's every indicator (seconds for thousands of
    stores), while its input changes only when a snapshot arrives, is restated or pruned.
    So boards are kept until the store's watermark (``repository.snapshots_watermark``:
    how many snapshots, the last change) moves, and per rule pack version, targets book,
    roster (both replaced whole on reload) and filters. One per router, so one per
    database.
    """

    def __init__(self, size: int = 32) -> None:
        self._lock = threading.Lock()
        self._mark: tuple[Any, ...] | None = None
        self._latest: list[Snapshot] = []
        self._boards: OrderedDict[tuple[Any, ...], tuple[TargetBook, Roster, Board]] = \
            OrderedDict()
        self._size = size

    def board(self, conn: Connection, pack: RulePack, book: TargetBook, roster: Roster, *,
              platform: str | None = None, operator: str | None = None,
              dimension: Dimension | None = None, team: str | None = None
              ) -> tuple[Board, list[Snapshot]]:
        """The board for these filters, and the latest snapshots it was built from."""
        mark = repo.snapshots_watermark(conn)
        key = (pack.version, id(book), id(roster), platform, operator, dimension, team)
        with self._lock:
            if mark != self._mark:
                self._latest, self._mark = repo.latest_snapshots(conn), mark
                self._boards.clear()
            found = self._boards.get(key)
            if found is not None and found[0] is book and found[1] is roster:
                self._boards.move_to_end(key)
                return found[2], self._latest
            board = build_board(self._latest, pack, book, platform=platform,
                                operator=operator, dimension=dimension, team=team,
                                roster=roster)
            self._boards[key] = (book, roster, board)
            while len(self._boards) > self._size:
                self._boards.popitem(last=False)
            return board, self._latest
