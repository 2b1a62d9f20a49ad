"""Coverage-guided fuzzing (atheris) of the snapshot parser: bytes in, verdicts out.

The contract, checked on every input: ``read_records`` either raises an
``InputError`` that names where, or yields records; each record is a
``Snapshot`` or a ``Rejection`` naming its place and what is wrong; a snapshot
written back as canonical JSON reads back as the same snapshot; the NATS
message reader gives one verdict per record too. Anything else (another
exception, a hang) is a finding.

    python fuzz/fuzz_snapshot.py -max_total_time=600 -timeout=10 fuzz/corpus/snapshot

New inputs that reach new code are written to the first corpus folder; a crash
is saved as ``crash-<hash>`` in the working directory (``-artifact_prefix=``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import atheris

with atheris.instrument_imports(include=["watcher"]):
    from watcher.bus.messages import Message, records_of
    from watcher.errors import InputError
    from watcher.snapshot import Snapshot
    from watcher.validation import Format, RawRecord, Rejection, read_records, validate

FORMATS = list(Format)
PUBLISHED = datetime(2026, 11, 1, tzinfo=UTC)


def check(record: RawRecord | Rejection) -> None:
    verdict = record if isinstance(record, Rejection) else validate(record)
    if isinstance(verdict, Rejection):
        assert verdict.location and verdict.error, verdict
        return
    assert isinstance(verdict, Snapshot)
    canonical = verdict.to_canonical()
    again = validate(RawRecord("again", json.dumps(canonical), canonical))
    assert isinstance(again, Snapshot), (canonical, again)
    assert again.content_hash() == verdict.content_hash(), (canonical, again)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fmt, body = FORMATS[data[0] % len(FORMATS)], data[1:]
    try:
        records = list(read_records(body, fmt, max_bytes=100_000))
    except InputError as exc:
        assert exc.location, exc
    else:
        for record in records:
            check(record)
    message = Message("kpi.snapshots.amazon.amz-us-01", body, {}, 1, PUBLISHED)
    for record in records_of(message, "kpi.snapshots", max_bytes=100_000):
        assert record.location.startswith("message 1"), record
        check(record)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
