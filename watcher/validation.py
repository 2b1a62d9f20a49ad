"""From bytes to snapshots: JSON, JSON Lines and CSV, one verdict per record.

A bad record never stops the good ones beside it: every record becomes either
a ``Snapshot`` or a ``Rejection`` naming its place (``line N``) and field, and
the rejection keeps the raw text so nothing sent to us is lost.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from watcher.errors import InputError, InputTooLarge
from watcher.indicators import DeclaredMetric
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
                 max_bytes: int | None = None) -> Iterator[RawRecord | Rejection]:
    """Split a body into raw records; a broken line becomes a rejection, not an abort."""
    if max_bytes is not None and len(content) > max_bytes:
        raise InputTooLarge(f"body is {len(content)} bytes; the limit is {max_bytes}")
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
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
        yield from _json_records(text)


def _sniff(text: str) -> Format:
    stripped = text.lstrip()
    if stripped.startswith("["):
        return Format.JSON
    if stripped.startswith("{"):
        first_line = stripped.split("\n", 1)[0].strip()
        try:
            json.loads(first_line)
            return Format.JSONL
        except ValueError:
            return Format.JSON
    return Format.CSV


def _jsonl_records(text: str) -> Iterator[RawRecord | Rejection]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        location = f"line {number}"
        try:
            yield RawRecord(location, line, orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            yield Rejection("", location, None, f"not valid JSON: {exc}", line)


def _json_records(text: str) -> Iterator[RawRecord | Rejection]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        if "\n" in text.strip():
            # Possibly JSON Lines with a pretty first record; judge line by line.
            yield from _jsonl_records(text)
            return
        yield Rejection("", f"line {getattr(exc, 'lineno', 1)}", None,
                        f"not valid JSON: {exc}", text)
        return
    if isinstance(data, list):
        for index, item in enumerate(data, start=1):
            yield RawRecord(f"record {index}", json.dumps(item, ensure_ascii=False), item)
    else:
        yield RawRecord("record 1", text.strip(), data)


def _csv_records(text: str) -> Iterator[RawRecord | Rejection]:
    # newline="": the csv module finds line ends itself (a bare CR is one too).
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    try:
        for row in reader:
            if header is None:
                header = [h.strip() for h in row]
                _check_header(header, f"line {reader.line_num}")
                continue
            location = f"line {reader.line_num}"
            raw = ",".join(row)
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield Rejection("", location, None,
                                f"has {len(row)} cells; the header has {len(header)}", raw)
                continue
            yield RawRecord(location, raw, _csv_row_to_dict(header, row))
    except csv.Error as exc:  # e.g. a cell longer than the csv module's field limit
        raise InputError(f"not valid CSV: {exc}", location=f"line {reader.line_num}") from None


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
