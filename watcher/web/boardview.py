"""What the health board page shows, as plain data: a row per store, a cell per indicator.

The verdicts are ``watcher.assessment.board``'s; this module words them in the visitor's
language and links each cell to the store's incidents, so the page can be checked without
a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from watcher.assessment.board import Board, BoardRow, Cell
from watcher.errors import InputError
from watcher.evaluation import format_value
from watcher.indicators import Dimension
from watcher.web.i18n import translator
from watcher.web.views import ListQuery

NAME_MAX = 200
PER_PAGE = 100  # stores a page: the worst come first, so the first page is the news


@dataclass(frozen=True, slots=True)
class BoardFilter:
    platform: str | None = None
    operator: str | None = None
    dimension: Dimension | None = None
    team: str | None = None
    page: int = 1

    @property
    def offset(self) -> int:
        return (self.page - 1) * PER_PAGE

    def url(self, page: int) -> str:
        """This board's URL on ``page``, with its filters."""
        values = {"platform": self.platform, "operator": self.operator, "team": self.team,
                  "dimension": self.dimension.value if self.dimension else None,
                  "page": page if page > 1 else None}
        kept = {k: v for k, v in values.items() if v}
        return "/board" + (f"?{urlencode(kept)}" if kept else "")

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> BoardFilter:
        """The filter form's fields; a bad one names itself."""
        found: dict[str, str | None] = {}
        for name in ("platform", "operator", "team"):
            value = (params.get(name) or "").strip()
            if len(value) > NAME_MAX or "\x00" in value:
                raise InputError(f"is longer than {NAME_MAX} characters or holds a NUL",
                                 field=name)
            found[name] = value or None
        text = (params.get("dimension") or "").strip()
        try:
            dimension = Dimension(text) if text else None
        except ValueError:
            raise InputError(f"must be one of {', '.join(d.value for d in Dimension)}",
                             field="dimension") from None
        text = (params.get("page") or "1").strip()
        if not text.isdigit() or not 1 <= int(text) <= 100_000:
            raise InputError("must be a whole number from 1 to 100000", field="page")
        return cls(found["platform"], found["operator"], dimension, found["team"], int(text))


@dataclass(frozen=True, slots=True)
class CellLine:
    indicator: str
    status: str
    status_label: str
    value: str
    detail: str  # what the cell is judged by, for its tooltip and a screen reader
    url: str


@dataclass(frozen=True, slots=True)
class RowLine:
    platform: str
    store: str
    operator: str
    team: str
    url: str
    cells: tuple[CellLine | None, ...]  # in column order; None: nothing to show


def board_rows(board: Board, lang: str) -> list[RowLine]:
    return [_row(row, board, lang) for row in board.rows]


def _row(row: BoardRow, board: Board, lang: str) -> RowLine:
    url = ListQuery(store=row.store).url()
    cells = tuple(_cell(row.cells[c.indicator], url, lang) if c.indicator in row.cells else None
                  for c in board.columns)
    return RowLine(row.platform, row.store, row.operator or "", row.team or "", url, cells)


def _cell(cell: Cell, url: str, lang: str) -> CellLine:
    t = translator(lang)
    metric = cell.indicator
    needs = (f"{cell.comparator.value} {format_value(metric, cell.threshold)}"
             if cell.comparator is not None else "-")
    source = (t("card.from.rule", rule=cell.rule) if cell.basis == "rule"
              else t("card.from.target") if cell.basis == "target" else "-")
    detail = t("board.detail", needs=needs, source=source, period=cell.period or "-")
    return CellLine(metric, cell.status.value, t(f"board.{cell.status.value}"),
                    format_value(metric, cell.value), detail, url)
