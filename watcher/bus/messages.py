"""A bus message to pipeline records: the payload contract of the NATS source.

Pure: the transport (``watcher.bus.nats``) hands in what it received, this
decides what the pipeline sees. A message published on
``<prefix>.<platform>.<store>`` carries canonical snapshots (a JSON object, a
JSON array or JSON Lines, as ``POST /v1/snapshots`` takes), or, when its
``Watcher-Source`` header names a platform source, that platform's payload for
the store named by the subject (``Watcher-Operator`` and ``Watcher-Period`` as
the HTTP query parameters). The subject is the partition key, so a canonical
record for another store or platform than its subject says is refused rather
than quietly processed out of its partition.

A record without ``observed_at`` takes the time the stream stored its message:
a redelivered old message then stays older than a restatement published after
it (see docs/scale.md, "Ordering").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from watcher.errors import InputError, WatcherError
from watcher.sources import records as source_records
from watcher.validation import Format, RawRecord, Rejection, read_records

SOURCE_HEADER = "Watcher-Source"
OPERATOR_HEADER = "Watcher-Operator"
PERIOD_HEADER = "Watcher-Period"


@dataclass(frozen=True, slots=True)
class Message:
    """What the transport received, without its ack handle."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    sequence: int  # in the stream: names the message in the rejected log
    published_at: datetime
    deliveries: int = 1

    @property
    def place(self) -> str:
        return f"message {self.sequence}"

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def address(subject: str, prefix: str) -> tuple[str, str] | None:
    """``(platform, store)`` of ``<prefix>.<platform>.<store>``; None for other subjects."""
    if not subject.startswith(prefix + "."):
        return None
    tokens = subject[len(prefix) + 1:].split(".")
    return (tokens[0], tokens[1]) if len(tokens) == 2 and all(tokens) else None


def records_of(message: Message, prefix: str, *, max_bytes: int) -> list[RawRecord | Rejection]:
    """Every record of the message, each a ``RawRecord`` or a ``Rejection`` naming the
    message (its stream sequence) and, inside it, the line or record."""
    where = address(message.subject, prefix)
    try:
        if len(message.data) > max_bytes:
            raise InputError(f"message is {len(message.data)} bytes; the limit is {max_bytes}",
                             location=message.place)
        source = message.headers.get(SOURCE_HEADER)
        if source:
            if where is None:
                raise InputError(f"a {source} payload must be published on "
                                 f"{prefix}.<platform>.<store>, not {message.subject}",
                                 location=message.place)
            found = source_records(source, message.data, store=where[1],
                                   operator=message.headers.get(OPERATOR_HEADER),
                                   period=message.headers.get(PERIOD_HEADER))
        else:
            found = list(read_records(message.data, Format.AUTO))
        if not found:
            raise InputError("holds no snapshot (an empty body, or a CSV header alone)",
                             location=message.place)
    except WatcherError as exc:
        return [Rejection("", message.place, getattr(exc, "field", None),
                          getattr(exc, "reason", str(exc)), message.text())]
    return [_placed(record, message, None if source else where) for record in found]


def _placed(record: RawRecord | Rejection, message: Message,
            where: tuple[str, str] | None) -> RawRecord | Rejection:
    # "body": the whole message (read_records' "holds no snapshot")
    location = message.place if record.location == "body" else \
        f"{message.place} {record.location}"
    if isinstance(record, Rejection):
        return Rejection(record.source, location, record.field, record.error, record.raw)
    data = record.data
    if not isinstance(data, dict):
        return RawRecord(location, record.text, data, record.feed)
    if where is not None:
        for name, expected in zip(("platform", "store"), where, strict=True):
            stated = data.get(name)
            if isinstance(stated, str) and stated.strip() != expected:
                return Rejection("", location, name,
                                 f"is '{stated.strip()}' but the message was published on "
                                 f"{message.subject}, for {name} '{expected}'", record.text)
    if data.get("observed_at") is None:
        data = {**data, "observed_at": message.published_at.isoformat()}
    return RawRecord(location, record.text, data, record.feed)
