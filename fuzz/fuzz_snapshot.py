"""Coverage-guided fuzzing (atheris) of the snapshot parser: bytes in, verdicts out.

The contract, checked on every input: ``read_records`` either raises an
``InputError`` that names where, or yields records; each record is a
``Snapshot`` or a ``Rejection`` naming its place and what is wrong; a snapshot
written back as canonical JSON reads back as the same snapshot; the NATS
message reader gives one verdict per record too. Anything else (another
exception, a hang) is a finding.

A first byte of 0xF0 or more picks the *shapes* mode instead (issue 14): the
bytes choose a record's shape (hundreds of metric keys, targets and segment
keys, nesting thousands deep, long strings, an ambiguous number, a line of
bad UTF-8 in JSON Lines), and the contract grows: an ambiguous number is never
accepted, a bad line rejects only itself, and every accepted snapshot fits the
rule engine and is evaluated by the default rule pack without an error.

    python fuzz/fuzz_snapshot.py -max_total_time=600 -timeout=10 fuzz/corpus/snapshot

New inputs that reach new code are written to the first corpus folder; a crash
is saved as ``crash-<hash>`` in the working directory (``-artifact_prefix=``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["watcher"]):
    from watcher.bus.messages import Message, records_of
    from watcher.errors import InputError
    from watcher.limits import ENGINE_MAX_FACT_ATTRIBUTES
    from watcher.rules.engine import RuleEngine
    from watcher.rules.facts import to_fact
    from watcher.rules.loader import load_pack
    from watcher.snapshot import Snapshot
    from watcher.validation import Format, RawRecord, Rejection, read_records, validate

FORMATS = list(Format)
PUBLISHED = datetime(2026, 11, 1, tzinfo=UTC)
SHAPES = 0xF0
ENGINE = RuleEngine(load_pack(Path(__file__).resolve().parent.parent / "rules"))
AMBIGUOUS = ["3,5%", "3_5%", "1.234,5", "0,035", "12,50", "1_200", "١٢٠٠", "1,2345", "3,5"]
CLEAR = ["1,200", "3.5%", "１２００", "0.035", "1e3", "-1,234,567.5", "7"]


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


def shaped(fdp: atheris.FuzzedDataProvider) -> tuple[bytes, Format, str | None, bool]:
    """A body of one record of a chosen shape (and maybe a bad UTF-8 line after it);
    the number sent as ``gmv``; whether the body is JSON Lines with the bad line."""
    number = fdp.PickValueInList(AMBIGUOUS + CLEAR) if fdp.ConsumeBool() else None
    metrics: dict[str, Any] = {f"k{n}": n for n in range(fdp.ConsumeIntInRange(0, 300))}
    if number is not None:
        metrics["gmv"] = number
    record: dict[str, Any] = {
        "store": "s" * fdp.ConsumeIntInRange(1, 300), "platform": "amazon",
        "period": fdp.PickValueInList(["2026-10", "２０２６-10", "٢٠٢٦-10", "2026-Q4"]),
        "metrics": metrics or {"gmv": 1},
        "targets": {f"k{n}": {"value": n, "comparator": "=="}
                    for n in range(fdp.ConsumeIntInRange(0, 40))},
        "segment": {f"s{n}": "x" for n in range(fdp.ConsumeIntInRange(0, 30))},
        "note": "n" * fdp.ConsumeIntInRange(0, 6000),
    }
    nested: Any = 1
    for _ in range(fdp.ConsumeIntInRange(0, 3000)):
        nested = [nested] if fdp.ConsumeBool() else {"a": nested}
    record["extra"] = nested
    try:
        text = json.dumps(record, ensure_ascii=False)
    except RecursionError:  # deeper than json writes: sent as orjson would not either
        text = json.dumps({**record, "extra": 1}, ensure_ascii=False)
    jsonl = fdp.ConsumeBool()
    body = text.encode()
    if jsonl:
        body = body.replace(b"\n", b" ") + b"\n" + b'{"store": "\xff\xfe"}' + b"\n"
    return body, Format.JSONL if jsonl else Format.JSON, number, jsonl


def test_shapes(data: bytes) -> None:
    body, fmt, number, bad_line = shaped(atheris.FuzzedDataProvider(data))
    try:
        records = list(read_records(body, fmt, max_bytes=10_000_000))
    except InputError as exc:
        assert exc.location, exc
        return
    if bad_line:
        assert isinstance(records[-1], Rejection) and "UTF-8" in records[-1].error, records
        assert records[-1].location == "line 2", records[-1]
    for record in records:
        check(record)
        verdict = record if isinstance(record, Rejection) else validate(record)
        if isinstance(verdict, Snapshot):
            assert number not in AMBIGUOUS, (number, verdict)
            assert verdict.period.text.isascii(), verdict.period
            fact = to_fact(verdict, "x", ENGINE._ruleset.segment_keys)
            assert len(fact) <= ENGINE_MAX_FACT_ATTRIBUTES, len(fact)
            ENGINE.evaluate(verdict)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] >= SHAPES:
        test_shapes(data[1:])
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
