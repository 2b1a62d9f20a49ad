"""Spreadsheet bytes to numbered rows: CSV in the encodings Chinese Excel writes, and XLSX.

ERP exports arrive as whatever the operator's Excel saved: UTF-8 with or
without a byte-order mark, GB18030 (what "CSV" means in a Chinese-locale
Excel), or an XLSX workbook. The format is told by the content, not the file
name, because an HTTP upload has no name. Rows are numbered as a spreadsheet
shows them (the header is usually row 1), so a rejection says ``row 7`` and the
operator finds it by scrolling, whether the file was a CSV or a workbook.

XLSX cells keep their types: a date cell is a ``datetime``, and a number shown
with a percent format (Excel stores 3.5 % as 0.035) becomes the text ``"3.5%"``
so that a percent column reads it right whichever way the author typed it.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from watcher.errors import InputError
from watcher.limits import SHEET_CELL_MAX_BYTES

Cell = str | int | float | bool | datetime | date | None

XLSX_MAGIC: Final = b"PK\x03\x04"
OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0"
# Tried in this order by ``encoding: auto`` (after a UTF-16 byte-order mark). UTF-8
# first: GB18030 would decode UTF-8 bytes into nonsense without complaint, while
# Chinese GB18030 text is practically never valid UTF-8.
AUTO_ENCODINGS: Final = ("utf-8-sig", "gb18030")
# The csv module's own field limit (131,072 characters by default) raises for the whole
# file; it is lifted so that an oversized cell is refused with its row alone
# (SHEET_CELL_MAX_BYTES, checked below). A field's size is bounded anyway by the body
# or file it came in.
csv.field_size_limit(2**31 - 1)
_CUT: Final = 200  # characters of an oversized cell kept in the rejected log


class RowError(ValueError):
    """A bad cell; ``column`` is the header the operator sees in the file."""

    def __init__(self, column: str | None, message: str) -> None:
        self.column = column
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Row:
    """``problem`` is set when the row could not be read as the file's author meant it
    (an oversized cell, an unterminated quote, a NUL byte); ``column`` is then the index
    of the cell at fault, if one is."""

    number: int
    cells: tuple[Cell, ...]
    problem: str | None = None
    column: int | None = None

    def is_blank(self) -> bool:
        return all(cell is None or (isinstance(cell, str) and not cell.strip())
                   for cell in self.cells)


def read_rows(content: bytes, *, source: str, encoding: str = "auto", delimiter: str = ",",
              sheet: str | None = None, header_row: int | None = None) -> Iterator[Row]:
    """Every row of the first (or the named) sheet, blank ones included, numbered from 1."""
    if content.startswith(XLSX_MAGIC):
        yield from _xlsx_rows(content, source=source, sheet=sheet)
    elif content.startswith(OLE2_MAGIC):
        raise InputError("a legacy .xls workbook: save it as .xlsx or CSV", location=source)
    else:
        yield from csv_rows(decode(content, encoding, source=source), delimiter, header_row)


def is_workbook(content: bytes) -> bool:
    return content.startswith((XLSX_MAGIC, OLE2_MAGIC))


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


def csv_rows(text: str, delimiter: str = ",", header_row: int | None = None) -> Iterator[Row]:
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
                yield Row(number, (), f"is not readable as CSV ({exc})")
                continue
            number += 1
            if number == header_row:
                width = len(cells)
            spans = feed.position - feed.record_start > 1
            if feed.ran_out or (spans and width is not None and number > (header_row or 0)
                                and len(cells) != width):
                first = lines[feed.record_start].rstrip("\r\n")[:_CUT]
                yield Row(number, (first,), f"unterminated quote starting at row {number}: "
                                            "the quoted cell never closes")
                resume = feed.record_start + 1
                break
            yield _sized(number, tuple(cells))
        if resume is None or resume >= len(lines):
            return
        start = resume


def _sized(number: int, cells: tuple[Cell, ...]) -> Row:
    """A cell over SHEET_CELL_MAX_BYTES rejects its row; it is kept cut in the raw text."""
    for index, cell in enumerate(cells):
        if isinstance(cell, str) and len(cell) * 4 > SHEET_CELL_MAX_BYTES and (
                size := len(cell.encode("utf-8", "surrogatepass"))) > SHEET_CELL_MAX_BYTES:
            kept = list(cells)
            kept[index] = f"{cell[:_CUT]}... ({size} bytes)"
            return Row(number, tuple(kept), f"cell over {SHEET_CELL_MAX_BYTES} bytes "
                                            f"(SHEET_CELL_MAX_BYTES): {size} bytes", index)
    return Row(number, cells)


def decode(content: bytes, encoding: str, *, source: str) -> str:
    """``auto`` tries UTF-8 (with or without BOM), then GB18030."""
    tried = AUTO_ENCODINGS if encoding == "auto" else (encoding,)
    if encoding == "auto" and content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        tried = ("utf-16",)  # Excel's "Unicode text" export
    failure: UnicodeDecodeError | None = None
    for name in tried:
        try:
            return content.decode(name).removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            failure = exc
    assert failure is not None
    raise InputError(f"not {' or '.join(tried)} text (byte {failure.start}); set 'encoding' "
                     "in the mapping file", location=source) from None


def sheet_text(content: bytes, encoding: str) -> str:
    """Best-effort text of a whole file, for the rejected log; never raises."""
    if content.startswith((XLSX_MAGIC, OLE2_MAGIC)):
        return f"(a workbook of {len(content)} bytes)"
    try:
        return decode(content, encoding, source="")
    except InputError:
        return content.decode("utf-8", errors="replace")


def _xlsx_rows(content: bytes, *, source: str, sheet: str | None) -> Iterator[Row]:
    # Imported here: only workbook uploads pay for openpyxl's import time.
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"not a readable XLSX workbook: {exc}", location=source) from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise InputError(f"the workbook has no sheet '{sheet}' (sheets: "
                             f"{', '.join(book.sheetnames)})", location=source)
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        # Exporters often write a wrong <dimension>; without a reset rows would be cut off.
        worksheet.reset_dimensions()
        for number, cells in enumerate(worksheet.iter_rows(), start=1):
            values = tuple(_xlsx_value(cell.value, getattr(cell, "number_format", ""))
                           for cell in cells)
            yield _sized(number, values)
    finally:
        book.close()


def _xlsx_value(value: object, number_format: str | None) -> Cell:
    if isinstance(value, bool | str | datetime | date) or value is None:
        return value
    if isinstance(value, int | float):
        if number_format and "%" in number_format:
            return f"{round(value * 100, 10)!r}%"
        return value
    return str(value)  # a time or timedelta: kept as text, read like any string
