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
import io
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from typing import Final

from watcher.csvrows import Cell as Cell
from watcher.csvrows import Row as Row
from watcher.csvrows import csv_rows, sized
from watcher.errors import InputError

XLSX_MAGIC: Final = b"PK\x03\x04"
OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0"
# Tried in this order by ``encoding: auto`` (after a UTF-16 byte-order mark). UTF-8
# first: GB18030 would decode UTF-8 bytes into nonsense without complaint, while
# Chinese GB18030 text is practically never valid UTF-8.
AUTO_ENCODINGS: Final = ("utf-8-sig", "gb18030")


class RowError(ValueError):
    """A bad cell; ``column`` is the header the operator sees in the file."""

    def __init__(self, column: str | None, message: str) -> None:
        self.column = column
        super().__init__(message)


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
            yield sized(number, values)
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
