"""CSV text to numbered rows, each read alone: a row the csv module cannot read as written
(an oversized cell, an unterminated quote, a NUL byte) is a row with a ``problem``, and
the rows after it are read as usual. Shared by the column mappings (watcher/sources/
sheets.py) and the canonical CSV of snapshots (watcher/validation.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from watcher.limits import SHEET_CELL_MAX_BYTES

Cell = str | int | float | bool | datetime | date | None

# The csv module's own field limit (131,072 characters by default) raises for the whole
# file; it is lifted so that an oversized cell is refused with its row alone
# (SHEET_CELL_MAX_BYTES, checked below). A field's size is bounded anyway by the body
# or file it came in.
csv.field_size_limit(2**31 - 1)
_CUT: Final = 200  # characters of an oversized cell kept in the rejected log


@dataclass(frozen=True, slots=True)
class Row:
    """``problem`` is set when the row could not be read as the file's author meant it
    (an oversized cell, an unterminated quote, a NUL byte); ``column`` is then the index
    of the cell at fault, if one is."""

    number: int
    cells: tuple[Cell, ...]
    problem: str | None = None
    column: int | None = None
    line: int = 0  # a CSV record's first physical line (a quoted cell may span lines)

    def is_blank(self) -> bool:
        return all(cell is None or (isinstance(cell, str) and not cell.strip())
                   for cell in self.cells)


class _Lines:
    """The physical lines fed to ``csv.reader``, counted: a record that runs into the end
    of the text began with a quote that never closed."""

    def __init__(self, lines: list[str], start: int) -> None:
        self.lines = lines
        self.position = start
        self.record_start = start
        self.ran_out = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            self.ran_out = self.position > self.record_start
            raise StopIteration
        line = self.lines[self.position]
        self.position += 1
        return line


def csv_rows(text: str, delimiter: str = ",", header_row: int | None = None, *,
             by_line: bool = False) -> Iterator[Row]:
    """Rows of CSV text, numbered by record (as a spreadsheet numbers them). A record the
    csv module cannot read is a row with a ``problem`` and reading goes on after it.

    A quote that never closes would swallow every row after it, and one that closes on a
    later line (at the next row's first quoted cell) swallows the rows between: a record
    that runs to the end of the text, or runs over several lines into other than the
    header's number of cells, is refused as an unterminated quote, and reading resumes at
    the line after the one the quote opened on, so that the rows it swallowed are read as
    rows of their own (each checked against the header like any other)."""
    lines = list(io.StringIO(text, newline=""))
    start, number = 0, 0
    width: int | None = None
    while True:
        feed = _Lines(lines, start)
        reader = csv.reader(feed, delimiter=delimiter)
        resume: int | None = None
        while True:
            feed.record_start = feed.position
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # a NUL byte, ...: the rest of its line is dropped
                number += 1
                yield Row(number, (), f"is not readable as CSV ({exc})",
                          line=feed.record_start + 1)
                continue
            number += 1
            if number == header_row:
                width = len(cells)
            spans = feed.position - feed.record_start > 1
            if feed.ran_out or (spans and width is not None and number > (header_row or 0)
                                and len(cells) != width):
                first = lines[feed.record_start].rstrip("\r\n")[:_CUT]
                where = (f"line {feed.record_start + 1}" if by_line else f"row {number}")
                yield Row(number, (first,), f"unterminated quote starting at {where}: the "
                                            "quoted cell never closes", line=feed.record_start + 1)
                resume = feed.record_start + 1
                break
            yield sized(number, tuple(cells), feed.record_start + 1)
        if resume is None or resume >= len(lines):
            return
        start = resume


def sized(number: int, cells: tuple[Cell, ...], line: int = 0) -> Row:
    """A cell over SHEET_CELL_MAX_BYTES rejects its row; it is kept cut in the raw text."""
    for index, cell in enumerate(cells):
        if isinstance(cell, str) and len(cell) * 4 > SHEET_CELL_MAX_BYTES and (
                size := len(cell.encode("utf-8", "surrogatepass"))) > SHEET_CELL_MAX_BYTES:
            kept = list(cells)
            kept[index] = f"{cell[:_CUT]}... ({size} bytes)"
            return Row(number, tuple(kept), f"cell over {SHEET_CELL_MAX_BYTES} bytes "
                                            f"(SHEET_CELL_MAX_BYTES): {size} bytes", index, line)
    return Row(number, cells, line=line)
