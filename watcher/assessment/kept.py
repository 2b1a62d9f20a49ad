"""Kept views: the health board and the team cards, kept between changes of the store.

At fleet size (5,000 stores, years of history) judging every store's latest values
takes seconds, and so does building every operator's card of a period, while their
input changes only when snapshots arrive or are restated. So both are kept, and brought
up to the store by the snapshots changed since they were built: a board row depends on
its store's snapshots alone, a card on its operator's in the period, so a batch
rebuilds only the rows and cards it touched.

Each reader asks the store where it stands first (``repository.snapshots_mark``, read
from index ends), so a replica that did not ingest a batch still shows it; the daemon
also refreshes them after each batch, off the request path (``Kept.refresh``), so
nobody waits for a build. A new rule pack, targets file or roster (each replaced whole
on reload) rebuilds them.

The verdicts are those of ``watcher.assessment.board`` and ``scorecard.build_card``,
unchanged: a kept card is the card the API, the CLI and the monthly verdict build.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection

from watcher.assessment.board import (
    BoardColumn,
    CellStatus,
    CompactRow,
    KeptStore,
    Layout,
    assemble,
    facet_values,
    kept_store,
    only,
    shows,
    store_entries,
    store_row,
    wanted_indicators,
    worst_of,
)
from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import Scorecard, build_team
from watcher.assessment.targets import TargetBook
from watcher.assessment.weights import ScorecardSettings
from watcher.indicators import Dimension
from watcher.limits import KEPT_TEAM_PERIODS
from watcher.period import Period
from watcher.rules.model import RulePack
from watcher.store import repository as repo
from watcher.store.repository import Changed, SnapshotsMark


class ChangeFeed:
    """The snapshots changed since the last ``poll``, for one kept view.

    It keeps the snapshots within the mark's window (see ``SnapshotsMark``) with their
    revisions. The snapshots stamped after the last mark's ``newest`` are new; if the
    window's count and revisions, less those restated since, still match the mark, no batch
    committed late into it. Else the whole window is compared with the kept one, and a
    snapshot there with another revision, or not there before, is taken as changed."""

    def __init__(self) -> None:
        self.mark: SnapshotsMark | None = None
        self._window: dict[int, repo.Seen] = {}  # id -> (revision, change time)

    def poll(self, conn: Connection) -> list[Changed] | None:
        """What changed since the last poll ([]: nothing); None on the first poll (or
        when the store was empty): build from everything."""
        mark = repo.snapshots_mark(conn)
        old, self.mark = self.mark, mark
        if old is None or old.newest is None or old.since is None:
            self._window = repo.snapshots_window(conn, mark.since)
            return None
        if mark == old:
            return []
        newer = repo.snapshots_window(conn, old.newest, after=True)
        moved = [self._window[i][0] for i in newer if i in self._window]  # restated since
        if repo.snapshots_counted(conn, old.since, old.newest) == (
                old.recent - len(moved), old.revisions - sum(moved)):
            seen = {**self._window, **newer}
            changed = list(newer)
        else:  # a batch committed late into the window: compare it whole
            since = old.since if mark.since is None else min(old.since, mark.since)
            seen = repo.snapshots_window(conn, since)
            changed = [i for i, (revision, _at) in seen.items()
                       if self._window.get(i, (None,))[0] != revision]
        if mark.since is not None:
            start = repo.driver_time(conn, mark.since)
            self._window = {i: s for i, s in seen.items() if s[1] >= start}
        return repo.snapshots_of(conn, changed)

    def reset(self) -> None:
        self.mark, self._window = None, {}


class _Whole:
    """The unfiltered board's order and totals, kept as rows are replaced: a batch of 100
    stores re-places 100 rows instead of sorting 5,000 and counting 85,000 cells."""

    def __init__(self) -> None:
        self.order: list[tuple[int, str, str]] = []  # (-worst, store, platform), sorted
        self.statuses: Counter[str] = Counter()  # cells by status
        self.cells: Counter[str] = Counter()     # cells by indicator
        self.valued: Counter[str] = Counter()    # cells with a value, by indicator
        self.sent: Counter[str] = Counter()      # stores that sent each indicator

    def replace(self, old: tuple[KeptStore, CompactRow] | None,
                new: tuple[KeptStore, CompactRow]) -> None:
        for kept, sign in ((old, -1), (new, 1)):
            if kept is None:
                continue
            store, row = kept
            place = (-worst_of(row), row[1], row[0])
            if sign > 0:
                insort(self.order, place)
            else:
                del self.order[bisect_left(self.order, place)]
            for cell in row[4]:
                self.statuses[cell[1]] += sign
                self.cells[cell[0]] += sign
                if cell[2] is not None:
                    self.valued[cell[0]] += sign
            for metric in store[4]:
                self.sent[metric] += sign

    def layout(self, stores: dict[tuple[str, str], tuple[KeptStore, CompactRow]]
               ) -> Layout | None:
        """The whole board as ``assemble`` lays it out; None when some rows would lose a
        cell (an indicator nobody sends a value of any more): then ``assemble`` it."""
        wanted = wanted_indicators(None, {m for m, n in self.sent.items() if n > 0})
        used = {m for m, n in self.valued.items() if n > 0}
        if any(n > 0 and m not in used for m, n in self.cells.items()):
            return None
        columns = tuple(BoardColumn(indicator=i.id, name_en=i.name_en, name_zh=i.name_zh,
                                    dimension=i.dimension.value) for i in wanted if i.id in used)
        rows = tuple(stores[(platform, store)][1] for _w, store, platform in self.order)
        counts = {status: self.statuses.get(status.value, 0) for status in CellStatus}
        return Layout(columns, rows, counts)


def _same(kept: tuple[Any, ...] | None, now: tuple[Any, ...]) -> bool:
    return kept is not None and all(a is b for a, b in zip(kept, now, strict=True))


class BoardCache:
    """Each store's board row (every indicator the fleet sends), kept until its
    snapshots change; a filtered board is assembled from the rows and kept until
    anything changes."""

    def __init__(self, size: int = 32) -> None:
        self._lock = threading.Lock()
        self._feed = ChangeFeed()
        self._context: tuple[Any, ...] | None = None
        self._stores: dict[tuple[str, str], tuple[KeptStore, CompactRow]] = {}
        self._sent: set[str] = set()
        self._boards: OrderedDict[tuple[Any, ...], Layout] = OrderedDict()
        self._facets: dict[str, list[str]] | None = None
        self._whole = _Whole()
        self._size = size

    @property
    def mark(self) -> SnapshotsMark | None:
        """Where the store stood when the rows were last brought up to it."""
        return self._feed.mark

    def refresh(self, conn: Connection, pack: RulePack, book: TargetBook,
                roster: Roster) -> None:
        """Bring the rows up to the store and these rules, targets and roster, and
        assemble the board everyone opens first (no filter)."""
        with self._lock:
            self._refresh(conn, pack, book, roster)
            self._assembled((None, None, None, None))

    def _refresh(self, conn: Connection, pack: RulePack, book: TargetBook,
                 roster: Roster) -> None:
        try:
            self._catch_up(conn, pack, book, roster)
        except BaseException:  # half caught up (the database went away): start afresh
            self._feed.reset()
            self._context = None
            raise

    def _catch_up(self, conn: Connection, pack: RulePack, book: TargetBook,
                  roster: Roster) -> None:
        context = (pack, book, roster)
        if not _same(self._context, context):
            self._feed.reset()
        changes = self._feed.poll(conn)
        if changes == [] and self._context is not None:
            return
        if changes is None:
            entries = store_entries(repo.latest_snapshots(conn), roster)
        else:
            touched = {(c.platform, c.store) for c in changes}
            entries = store_entries(repo.latest_snapshots(conn, touched), roster)
        sent = self._sent | {m for e in entries for m in e.sent}
        if changes is not None and sent != self._sent:  # a new column on every row
            entries = store_entries(repo.latest_snapshots(conn), roster)
            changes = None
        if changes is None:
            self._stores = {}
            self._sent = {m for e in entries for m in e.sent}
            self._whole = _Whole()
        wanted = wanted_indicators(None, self._sent)
        for entry in entries:
            key = (entry.platform, entry.store)
            old = self._stores.get(key)
            kept = self._stores[key] = (kept_store(entry), store_row(entry, wanted, pack, book))
            self._whole.replace(old, kept)
        self._context = context
        self._boards.clear()
        self._facets = None

    def board(self, conn: Connection, pack: RulePack, book: TargetBook, roster: Roster, *,
              platform: str | None = None, operator: str | None = None,
              dimension: Dimension | None = None, team: str | None = None) -> Layout:
        """The board for these filters, as ``board.build_board`` builds it (``page`` it)."""
        with self._lock:
            self._refresh(conn, pack, book, roster)
            return self._assembled((platform, operator, dimension, team))

    def _assembled(self, key: tuple[str | None, str | None, Dimension | None, str | None]
                   ) -> Layout:
        found = self._boards.get(key)
        if found is not None:
            self._boards.move_to_end(key)
            return found
        platform, operator, dimension, team = key
        if not any(key):  # the whole board, kept in order as rows change
            whole = self._whole.layout(self._stores)
            if whole is not None:
                self._boards[key] = whole
                return whole
        shown = [(e, row) for e, row in self._stores.values()
                 if shows((e[0], e[2], e[3]), platform, operator, team)]
        wanted = wanted_indicators(dimension, {m for e, _row in shown for m in e[4]})
        ids = {i.id for i in wanted}
        board = assemble([only(row, ids) for _e, row in shown], wanted)
        self._boards[key] = board
        while len(self._boards) > self._size:
            self._boards.popitem(last=False)
        return board

    def facets(self) -> dict[str, list[str]]:
        """The platforms, operators and teams the kept board can be filtered by."""
        with self._lock:
            if self._facets is None:
                kept = self._stores.values()
                self._facets = facet_values((e[0] for e, _row in kept),
                                            (o for e, _row in kept for o in e[5]),
                                            self._context[2] if self._context else Roster())
            return self._facets


@dataclass
class _Period:
    cards: dict[str, Scorecard]  # by operator
    keys: dict[str, str] = field(default_factory=dict)  # snapshot key -> its operator


class TeamCache:
    """Every operator's card of the periods asked for lately (and those ``refresh`` is
    told to prepare), each card kept until a snapshot of its operator's period changes."""

    def __init__(self, size: int = KEPT_TEAM_PERIODS) -> None:
        self._lock = threading.Lock()
        self._feed = ChangeFeed()
        self._context: tuple[Any, ...] | None = None
        self._periods: OrderedDict[str, _Period] = OrderedDict()
        self._size = size

    @property
    def mark(self) -> SnapshotsMark | None:
        """Where the store stood when the cards were last brought up to it."""
        return self._feed.mark

    def refresh(self, conn: Connection, pack: RulePack, book: TargetBook,
                settings: ScorecardSettings, roster: Roster,
                prepare: Iterable[Period] = ()) -> None:
        """Bring the kept cards up to the store, and build those of ``prepare``."""
        with self._lock:
            context = (pack, book, settings, roster)
            self._update(conn, context)
            for period in prepare:
                self._period(conn, period, context)

    def cards(self, conn: Connection, period: Period, pack: RulePack, book: TargetBook,
              settings: ScorecardSettings, roster: Roster, team: str | None = None
              ) -> list[Scorecard]:
        """``scorecard.team_cards``: a card for every operator with snapshots in the
        period, by operator name; with ``team``, that team's only (by the roster)."""
        with self._lock:
            context = (pack, book, settings, roster)
            self._update(conn, context)
            kept = self._period(conn, period, context)
            return [card for operator, card in sorted(kept.cards.items())
                    if team is None or roster.team_of(operator) == team]

    def _update(self, conn: Connection, context: tuple[Any, ...]) -> None:
        try:
            self._catch_up(conn, context)
        except BaseException:  # half caught up (the database went away): start afresh
            self._feed.reset()
            self._periods.clear()
            raise

    def _catch_up(self, conn: Connection, context: tuple[Any, ...]) -> None:
        if not _same(self._context, context):
            self._periods.clear()
            self._feed.reset()
            self._context = context
        changes = self._feed.poll(conn)
        if changes is None:  # the first look: nothing is kept yet
            self._periods.clear()
            return
        for text, kept in list(self._periods.items()):
            period = Period.parse(text)
            operators = {c.operator for c in changes if c.operator
                         and period.start <= c.period_start and c.period_end <= period.end}
            operators |= {kept.keys[c.key] for c in changes if c.key in kept.keys}
            if not operators:
                continue
            for operator in operators:
                kept.cards.pop(operator, None)
            kept.keys = {k: o for k, o in kept.keys.items() if o not in operators}
            snaps = repo.snapshots_within(conn, period.start, period.end,
                                          operators=sorted(operators))
            for card in build_team(period, snaps, *context):
                kept.cards[card.operator] = card
            kept.keys.update((s.key, s.operator) for s in snaps if s.operator)

    def _period(self, conn: Connection, period: Period, context: tuple[Any, ...]) -> _Period:
        kept = self._periods.get(period.text)
        if kept is not None:
            self._periods.move_to_end(period.text)
            return kept
        snaps = repo.snapshots_within(conn, period.start, period.end)
        kept = _Period({c.operator: c for c in build_team(period, snaps, *context)},
                       {s.key: s.operator for s in snaps if s.operator})
        self._periods[period.text] = kept
        while len(self._periods) > self._size:
            self._periods.popitem(last=False)
        return kept


@dataclass
class Kept:
    """The kept views of one database, shared by the API and the page."""

    board: BoardCache = field(default_factory=BoardCache)
    teams: TeamCache = field(default_factory=TeamCache)

    def refresh(self, conn: Connection, pack: RulePack, book: TargetBook,
                settings: ScorecardSettings, roster: Roster, today: date) -> None:
        """Bring both up to the store (after a batch, off the request path), and prepare
        the team cards a manager opens first: the last full month (the page's default)
        and the latest month reported."""
        self.board.refresh(conn, pack, book, roster)
        prepare = [Period.month(today.year, today.month).shift_months(-1)]
        latest = repo.latest_month(conn)
        if latest is not None and latest != prepare[0].start:
            prepare.append(Period.month(latest.year, latest.month))
        self.teams.refresh(conn, pack, book, settings, roster, prepare)
