"""From bytes to snapshots: JSON, JSON Lines and CSV, one verdict per record.

A bad record never stops the good ones beside it: every record becomes either
a ``Snapshot`` or a ``Rejection`` naming its place (``line N``) and field, and
the rejection keeps the raw text so nothing sent to us is lost.
"""

from __future__ import annotations

import codecs
import difflib
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from watcher import indicators
from watcher.csvrows import csv_rows
from watcher.echo import shown
from watcher.errors import InputError, InputTooLarge
from watcher.feeds import CANONICAL
from watcher.indicators import DeclaredMetric
from watcher.limits import (
    MAX_KEY_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_RECORDS_PER_BODY,
    MAX_STRING_LENGTH,
)
from watcher.snapshot import FieldRangeError, Snapshot


class Format(StrEnum):
    AUTO = "auto"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


@dataclass(frozen=True, slots=True)
class RawRecord:
    location: str
    text: str
    data: Any
    feed: str = CANONICAL  # who states it: a source adapter or mapping by name (feeds.py)


@dataclass(frozen=True, slots=True)
class Rejection:
    source: str
    location: str
    field: str | None
    error: str
    raw: str

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "location": self.location, "field": self.field,
                "error": self.error}


def format_for_name(name: str) -> Format:
    lower = name.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return Format.JSONL
    if lower.endswith(".csv"):
        return Format.CSV
    if lower.endswith(".json"):
        return Format.JSON
    return Format.AUTO


def read_records(content: bytes | str, fmt: Format = Format.AUTO, *,
                 max_bytes: int | None = None,
                 max_records: int | None = MAX_RECORDS_PER_BODY
                 ) -> Iterator[RawRecord | Rejection]:
    """Split a body into raw records; a broken line becomes a rejection, not an abort.

    A body that holds no record at all is one rejection saying so (a client must
    hear why nothing was taken). ``max_records`` bounds a body that is held whole
    (an HTTP post, a NATS message); files pass None and stream.
    """
    if max_bytes is not None and len(content) > max_bytes:
        raise InputTooLarge(f"body is {len(content)} bytes; the limit is {max_bytes}")
    count = 0
    for record in _records(content, fmt, max_records):
        count += 1
        if max_records is not None and count > max_records:
            raise InputTooLarge(f"body holds more than {max_records} records "
                                "(MAX_RECORDS_PER_BODY); send it in parts", location="body")
        yield record
    if not count:
        text = content if isinstance(content, str) else content.decode("utf-8", "replace")
        yield Rejection("", "body", None, "holds no snapshot (an empty body, an empty "
                        "array, or a CSV header alone)", text)


def _records(content: bytes | str, fmt: Format,
             max_records: int | None) -> Iterator[RawRecord | Rejection]:
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            rough = content.decode("utf-8-sig", "replace")
            if fmt is Format.JSONL or (fmt is Format.AUTO and _sniff(rough) is Format.JSONL):
                yield from _jsonl_byte_lines(content.removeprefix(codecs.BOM_UTF8))
                return
            raise InputError(f"not UTF-8 text (byte {exc.start})", location="body") from None
    else:
        text = content
    if fmt is Format.AUTO:
        fmt = _sniff(text)
    if fmt is Format.CSV:
        yield from _csv_records(text)
    elif fmt is Format.JSONL:
        yield from _jsonl_records(text)
    else:
        yield from _json_records(text, max_records)


def _sniff(text: str) -> Format:
    stripped = text.lstrip()
    if stripped.startswith("["):
        return Format.JSON
    if stripped.startswith("{"):
        first_line = _LINE_BREAK.split(stripped, maxsplit=1)[0].strip()
        try:
            orjson.loads(first_line)  # bounded depth, unlike json.loads
            return Format.JSONL
        except orjson.JSONDecodeError:
            return Format.JSON
    try:  # a bare JSON value (42, "x", true) is JSON that is not a snapshot, not a CSV
        orjson.loads(stripped)
        return Format.JSON
    except orjson.JSONDecodeError:
        return Format.CSV


_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\n|\r")
# orjson parses iteratively and stops at 1,024 levels with this message: a body nested
# 10,000 deep costs one short parse, never a recursion (json.loads raised RecursionError).
_ORJSON_DEPTH = "depth limit exceeded"


def deeper_than(value: Any, limit: int = MAX_NESTING_DEPTH) -> bool:
    """True when ``value`` nests more than ``limit`` levels (an object of plain values is
    one level); a walk without recursion."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _may_be_deep(text: str) -> bool:
    """Cheap (in C): fewer brackets than the limit cannot nest deeper than it."""
    return text.count("{") + text.count("[") > MAX_NESTING_DEPTH


def _too_deep(location: str, text: str) -> Rejection:
    return Rejection("", location, None, f"is nested more than {MAX_NESTING_DEPTH} levels "
                     "deep (MAX_NESTING_DEPTH; a snapshot needs 3)", text)


def _record(location: str, text: str, data: Any) -> RawRecord | Rejection:
    if _may_be_deep(text) and deeper_than(data):
        return _too_deep(location, text)
    return RawRecord(location, text, data)


def _jsonl_records(text: str) -> Iterator[RawRecord | Rejection]:
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        record = _jsonl_line(number, line)
        if record is not None:
            yield record


def _jsonl_byte_lines(content: bytes) -> Iterator[RawRecord | Rejection]:
    """JSON Lines holding bytes that are not UTF-8: only those lines are rejected."""
    for number, raw in enumerate(_LINE_BREAK_BYTES.split(content), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Rejection("", f"line {number}", None,
                            f"not UTF-8 text (byte {exc.start + 1} of the line)",
                            raw.decode("utf-8", "backslashreplace"))
            continue
        record = _jsonl_line(number, line)
        if record is not None:
            yield record


def _jsonl_line(number: int, line: str) -> RawRecord | Rejection | None:
    if not line.strip():
        return None
    location = f"line {number}"
    try:
        return _record(location, line, orjson.loads(line))
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith(_ORJSON_DEPTH):
            return _too_deep(location, line)
        return Rejection("", location, None, f"not valid JSON: {exc}", line)


def _json_records(text: str, max_records: int | None = None
                  ) -> Iterator[RawRecord | Rejection]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "\n" in text.strip():
            # Possibly JSON Lines with a pretty first record; judge line by line.
            yield from _jsonl_records(text)
            return
        if str(exc).startswith(_ORJSON_DEPTH):
            yield _too_deep("record 1", text)
            return
        yield Rejection("", f"line {exc.lineno}", None, f"not valid JSON: {exc}", text)
        return
    if isinstance(data, list):
        if max_records is not None and len(data) > max_records:  # before any other work
            raise InputTooLarge(f"body holds {len(data)} records; the limit is {max_records} "
                                "(MAX_RECORDS_PER_BODY); send it in parts", location="body")
        for index, item in enumerate(data, start=1):
            location = f"record {index}"
            try:
                raw = json.dumps(item, ensure_ascii=False)
            except RecursionError:  # deeper than json's C encoder goes (orjson took it)
                yield _too_deep(location, "")
                continue
            yield _record(location, raw, item)
    else:
        yield _record("record 1", text.strip(), data)


def _csv_records(text: str) -> Iterator[RawRecord | Rejection]:
    """Rows of a canonical CSV; a row the reader cannot read as written (an oversized
    cell, an unterminated quote: watcher/sources/sheets.py) is one rejection, by line."""
    header: list[str] | None = None
    for row in csv_rows(text, header_row=1, by_line=True):
        cells = [str(cell) for cell in row.cells]
        location = f"line {row.line}"
        if header is None:
            if row.problem is not None:
                raise InputError(f"the header {row.problem}", location=location)
            header = [h.strip() for h in cells]
            _check_header(header, location)
            continue
        raw = ",".join(cells)
        if row.problem is not None:
            column = (header[row.column] if row.column is not None and row.column < len(header)
                      else None)
            yield Rejection("", location, column, row.problem, raw)
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield Rejection("", location, None,
                            f"has {len(cells)} cells; the header has {len(header)}", raw)
            continue
        yield RawRecord(location, raw, _csv_row_to_dict(header, cells))


def _check_header(header: list[str], location: str) -> None:
    """A column named twice, or both ``metrics`` and ``metrics.<id>``, has no one meaning;
    a NUL in a name would reach the store as a key (rows are checked in ``validate``)."""
    for index, name in enumerate(header, start=1):
        if "\x00" in name:
            raise InputError(f"the header's column {index} contains a NUL character "
                             "(\\u0000)", location=location)
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InputError(f"the header names column '{repeated[0]}' more than once",
                         location=location)
    grouped = sorted({h.split(".")[0] for h in header if "." in h} & set(header)
                     & {"metrics", "segment", "targets"})
    if grouped:
        raise InputError(f"the header has both '{grouped[0]}' and '{grouped[0]}.<id>' "
                         "columns; use only the second", location=location)


def _csv_row_to_dict(header: list[str], row: list[str]) -> dict[str, Any]:
    """``metrics.<id>``, ``targets.<id>``, ``targets.<id>.comparator``, ``segment.<key>``."""
    record: dict[str, Any] = {}
    for column, cell in zip(header, row, strict=True):
        cell = cell.strip()
        if cell == "":
            continue
        parts = column.split(".")
        if parts[0] in ("metrics", "segment") and len(parts) == 2:
            record.setdefault(parts[0], {})[parts[1]] = cell
        elif parts[0] == "targets" and len(parts) == 2:
            entry = record.setdefault("targets", {}).setdefault(parts[1], {})
            entry["value"] = cell
        elif parts[0] == "targets" and len(parts) == 3 and parts[2] == "comparator":
            record.setdefault("targets", {}).setdefault(parts[1], {})["comparator"] = cell
        else:
            record[column] = cell
    segment = record.get("segment")
    if isinstance(segment, dict):
        for key, cell in segment.items():
            if cell.lower() in ("true", "false"):
                segment[key] = cell.lower() == "true"
    return record


NUL_ERROR = "contains a NUL character (\\u0000), which cannot be stored"


def validate(raw: RawRecord, source: str = "",
             declared: Mapping[str, DeclaredMetric] | None = None) -> Snapshot | Rejection:
    """One raw record to a snapshot, or a rejection naming the first bad field.

    ``declared``: metrics the rule pack in force declares (``metrics:``), validated
    like the registry's."""
    if not isinstance(raw.data, dict):
        return Rejection(source, raw.location, None,
                         f"a snapshot is a JSON object, got {type(raw.data).__name__}", raw.text)
    oversize = oversize_field(raw.data)
    if oversize is not None:
        where, problem = oversize
        return Rejection(source, raw.location, where, f"{where}: {problem}", raw.text)
    if "\x00" in raw.text or "\\u0000" in raw.text:  # cheap test first: this is rare
        field = nul_field(raw.data)
        if field is not None:  # PostgreSQL text cannot hold it
            return Rejection(source, raw.location, field, f"{field}: {NUL_ERROR}", raw.text)
    try:
        return Snapshot.model_validate(raw.data,
                                       context={"metrics": declared} if declared else None)
    except ValidationError as exc:
        field, message = _describe(exc)
        return Rejection(source, raw.location, field, message, raw.text)


def oversize_field(record: dict[str, Any]) -> tuple[str, str] | None:
    """The first top-level field whose name or text is longer than the limits allow, and
    why (the names and texts inside ``metrics``, ``targets`` and ``segment`` are checked
    by the snapshot model, which reads them anyway: this is the hottest path)."""
    for key, value in record.items():
        if len(key) > MAX_KEY_LENGTH:
            return f"{key[:40]}...", (f"a field name of {len(key)} characters; the limit "
                                      f"is {MAX_KEY_LENGTH} (MAX_KEY_LENGTH)")
        if type(value) is str and len(value) > MAX_STRING_LENGTH:
            return key, (f"a text of {len(value)} characters; the limit is "
                         f"{MAX_STRING_LENGTH} (MAX_STRING_LENGTH)")
    return None


@dataclass(frozen=True, slots=True)
class RecordWarning:
    """Something an accepted record should know: it is stored, but may not do what
    its sender meant (a metric no rule can know, likely a misspelling)."""

    location: str
    field: str
    warning: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "field": self.field, "warning": self.warning}


def warnings_of(snapshot: Snapshot, location: str,
                known_metrics: Collection[str] = ()) -> list[RecordWarning]:
    """Metrics and targets the indicator registry does not know (nor ``known_metrics``,
    the ones a rule pack declares): accepted and stored, but said so."""
    found: list[RecordWarning] = []
    for group, ids in (("metrics", snapshot.metrics), ("targets", snapshot.targets)):
        for metric in ids:
            if indicators.get(metric) is None and metric not in known_metrics:
                found.append(RecordWarning(location, f"{group}.{metric}", _unknown(metric)))
    return found


_KNOWN_IDS = (*indicators.INDICATORS, *indicators.RAW_FIELDS)


def _unknown(metric: str) -> str:
    close = difflib.get_close_matches(metric, _KNOWN_IDS, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (f"'{shown(metric, 80)}' is not in the indicator registry: stored, but no rule knows it"
            f"{hint}")


def nul_field(value: Any, path: str = "") -> str | None:
    """The dotted field of the first key or string holding a NUL character, if any."""
    if isinstance(value, str):
        return (path or "record") if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if "\x00" in here:
            return here.replace("\x00", "\\u0000")
        found = nul_field(item, here)
        if found:
            return found
    return None


def _describe(exc: ValidationError) -> tuple[str | None, str]:
    messages: list[str] = []
    seen: set[str | None] = set()
    first_field: str | None = None
    for error in exc.errors(include_url=False):
        cause = (error.get("ctx") or {}).get("error")
        field: str | None
        if isinstance(cause, FieldRangeError):
            field = cause.field
            text = str(cause)
        else:
            field = ".".join(str(p) for p in error["loc"] if not _is_variant_marker(p)) or None
            text = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                text = "is required"
        if field in seen:
            continue
        seen.add(field)
        first_field = first_field or field
        messages.append(f"{field}: {text}" if field else text)
    return first_field, "; ".join(messages)


def _is_variant_marker(part: object) -> bool:
    # pydantic names union branches in ``loc`` ("str", "float", "function-before[...]").
    return isinstance(part, str) and (part in {"str", "bool", "float"} or "[" in part)
