"""Poison records (issue 14, item 2): every bad record is a rejected record, alone.

A record too wide, too deep, too long or otherwise unfit is refused by validation with
an error naming the field and the limit (watcher/limits.py); one the rule engine still
cannot take is rejected alone, and the records beside it, in its request and in the
other requests coalesced into the same batch, are stored and evaluated.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import jsonl, snapshot
from tests.test_pipeline import incidents
from watcher import indicators, limits
from watcher.assessment.targets import TargetBook, TargetEntry
from watcher.daemon.coalesce import Coalescer
from watcher.derive import RATIOS
from watcher.pipeline import IngestReport, Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.facts import to_fact
from watcher.rules.loader import load_pack
from watcher.snapshot import Snapshot, Target
from watcher.store import repository as repo
from watcher.store.schema import snapshots
from watcher.validation import (
    Format,
    RawRecord,
    Rejection,
    deeper_than,
    read_records,
    validate,
)


def verdict(record: dict[str, Any]) -> Snapshot | Rejection:
    return validate(RawRecord("record 1", json.dumps(record), record))


def stored_keys(pipeline: Pipeline) -> set[str]:
    with pipeline.db.engine.connect() as conn:
        return {row.key for row in conn.execute(select(snapshots.c.key))}


def rejected_count(pipeline: Pipeline) -> int:
    with pipeline.db.engine.connect() as conn:
        return len(repo.list_rejections(conn, limit=10_000))


class TestSizeLimits:
    def test_a_snapshot_with_245_metric_keys_is_refused_naming_metrics_and_the_limit(self):
        rejection = verdict(snapshot(**{f"custom_{n}": 1 for n in range(245)}))
        assert isinstance(rejection, Rejection) and rejection.field == "metrics"
        assert "245 metrics" in rejection.error and "MAX_METRICS" in rejection.error

    def test_too_many_targets_or_segment_keys_are_refused_naming_the_field(self):
        targets = verdict(snapshot(targets={f"t{n}": 1 for n in range(limits.MAX_TARGETS + 1)}))
        segment = verdict(snapshot(segment={f"s{n}": "x"
                                            for n in range(limits.MAX_SEGMENT_KEYS + 1)}))
        assert isinstance(targets, Rejection) and targets.field == "targets"
        assert isinstance(segment, Rejection) and segment.field == "segment"

    def test_a_long_field_name_or_text_is_refused_naming_the_field(self):
        key = verdict(snapshot(**{"m" * (limits.MAX_KEY_LENGTH + 1): 1}))
        text = verdict({**snapshot(), "note": "x" * (limits.MAX_STRING_LENGTH + 1)})
        assert isinstance(key, Rejection) and key.field and key.field.startswith("metrics.mmm")
        assert "MAX_KEY_LENGTH" in key.error
        assert isinstance(text, Rejection) and text.field == "note"
        assert "MAX_STRING_LENGTH" in text.error

    def test_the_widest_snapshot_the_limits_allow_fits_the_rule_engine(self,
                                                                       default_pack_path):
        """The limits' sum: every metric sent (with each raw pair, so each derived rate
        joins too), every target with ``==`` (five attributes each), every segment key."""
        raw_pairs = {field for d in RATIOS for field in (d.numerator, d.denominator)}
        metrics: dict[str, Any] = {field: 2 for field in raw_pairs}
        metrics.update({f"custom_{n}": 1 for n in range(limits.MAX_METRICS - len(metrics))})
        rates = [i.id for i in indicators.INDICATORS.values()
                 if i.id not in {d.metric for d in RATIOS}][:limits.MAX_TARGETS]
        targets = {m: {"value": 1, "comparator": "=="} for m in rates}
        segment = {f"key_{n}": "x" for n in range(limits.MAX_SEGMENT_KEYS)}
        widest = verdict(snapshot(targets=targets, segment=segment, **metrics))
        assert isinstance(widest, Snapshot), widest
        engine = RuleEngine(load_pack(default_pack_path))
        fact = to_fact(widest, "x", engine._ruleset.segment_keys)
        assert len(fact) <= limits.ENGINE_MAX_FACT_ATTRIBUTES
        engine.evaluate(widest)  # no refusal

    def test_more_records_than_a_body_may_hold_is_too_large(self):
        body = jsonl(*[snapshot(store=f"s{n}") for n in range(4)])
        with pytest.raises(Exception, match="MAX_RECORDS_PER_BODY"):
            list(read_records(body, Format.JSONL, max_records=3))


class TestNesting:
    def test_a_10000_level_body_is_one_rejection_naming_the_depth_not_a_recursion_error(self):
        body = b"[" * 10_000 + b"]" * 10_000
        [rejection] = list(read_records(body))
        assert isinstance(rejection, Rejection)
        assert "MAX_NESTING_DEPTH" in rejection.error

    @pytest.mark.parametrize("body", [b"[" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000])
    def test_deep_or_unclosed_objects_are_refused_by_depth(self, body: bytes):
        [rejection] = list(read_records(body))
        assert isinstance(rejection, Rejection) and "MAX_NESTING_DEPTH" in rejection.error

    def test_a_deep_json_lines_line_rejects_that_line_only(self):
        deep = '{"a":' * 50 + "1" + "}" * 50
        body = jsonl(snapshot(store="a")) + b"\n" + deep.encode() + b"\n" + jsonl(
            snapshot(store="b"))
        records = list(read_records(body, Format.JSONL))
        assert [type(r).__name__ for r in records] == ["RawRecord", "Rejection", "RawRecord"]
        assert records[1].location == "line 2"

    @pytest.mark.parametrize(("text", "deep"), [
        ('{"a": {"b": {"c": 1}}}', False), ("[[[[[[[[[[[]]]]]]]]]]]", True),
        ('{"s": "[[[[[[[[[[[[[[[[[["}', False),  # brackets in a string do not nest
        ("[[[[[[[[[[]]]]]]]]]]", False), ("[[[[" + "[]," * 50 + "[]]]]]", False),
    ])
    def test_depth_is_counted_in_levels_not_brackets(self, text: str, deep: bool):
        assert deeper_than(json.loads(text), 10) is deep

    def test_a_deep_record_in_an_array_rejects_that_record_only(self):
        deep: Any = 1
        for _ in range(20):
            deep = {"a": deep}
        body = json.dumps([snapshot(store="a"), {**snapshot(store="b"), "x": deep}]).encode()
        first, second = read_records(body)
        assert isinstance(first, RawRecord)
        assert isinstance(second, Rejection) and second.location == "record 2"


class TestEngineRefusalIsolated:
    """A record valid to validation that the engine cannot take: a targets file that
    adds 60 targets to one store's snapshot makes its fact too wide."""

    @pytest.fixture
    def poisoned(self, pipeline: Pipeline) -> Pipeline:
        wide = {f"custom_{n}": Target(value=1, comparator="==") for n in range(60)}
        pipeline.use_targets(TargetBook(entries=(
            TargetEntry(subject_kind="store", subject="poison", period="*", targets=wide),)))
        return pipeline

    def test_a_coalesced_batch_mixing_good_and_poison_records_stores_every_good_one(
            self, poisoned: Pipeline):
        requests = []
        for n in range(8):  # every other request carries a poison record among good ones
            records = [snapshot(store=f"good-{n}-a", penalty_count=1),
                       snapshot(store=f"good-{n}-b")]
            if n % 2:
                records.insert(1, snapshot(store="poison", period=f"2026-{n:02d}"))
            requests.append((list(read_records(jsonl(*records))), f"http-{n}"))
        reports = poisoned.ingest_many(requests)
        for n, report in enumerate(reports):
            assert report.accepted == 2, report
            assert len(report.rejected) == (1 if n % 2 else 0)
        refusal = reports[1].rejected[0]
        assert refusal.location == "line 2" and "ENGINE_MAX_FACT_ATTRIBUTES" in refusal.error
        keys = stored_keys(poisoned)
        assert {f"amazon|good-{n}-{s}|2026-10" for n in range(8) for s in "ab"} <= keys
        assert not any("poison" in k for k in keys)
        assert len(incidents(poisoned)) == 8  # every good penalty was evaluated
        assert rejected_count(poisoned) == 4  # each refusal is in the rejected log

    def test_an_unexpected_fault_evaluating_one_record_rejects_that_record_only(
            self, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch):
        real = pipeline.engine.evaluate

        def evaluate(snap: Snapshot) -> Any:
            if snap.store == "bad":
                raise ArithmeticError("boom")
            return real(snap)

        monkeypatch.setattr(pipeline.engine, "evaluate", evaluate)
        report = pipeline.ingest(read_records(jsonl(snapshot(store="bad"),
                                                    snapshot(store="ok"))), "http")
        assert report.accepted == 1 and "ArithmeticError: boom" in report.rejected[0].error
        assert stored_keys(pipeline) == {"amazon|ok|2026-10"}


class TestEngineNumbers:
    @pytest.mark.parametrize("value", [1e16, 1e20, 1e300, 12345678901234567890])
    def test_values_past_the_metric_ceiling_are_refused_before_the_engine(self, value: float):
        """METRIC_MAX_VALUE (1e15): no count or amount is unbounded."""
        refused = verdict(snapshot(penalty_count=value))
        assert isinstance(refused, Rejection) and refused.field == "metrics.penalty_count"

    @pytest.mark.parametrize("value", [1e15, 999_999_999_999_999])
    def test_the_largest_values_reach_the_engine_as_sent(self, default_pack_path,
                                                         value: float):
        """durable-rules reads ``1e+16`` as an error (204): such numbers are rewritten."""
        engine = RuleEngine(load_pack(default_pack_path))
        snap = verdict(snapshot(penalty_count=value))
        assert isinstance(snap, Snapshot)
        fired = {form.rule.id for form in engine.evaluate(snap).fired}
        assert any("penalty" in rule for rule in fired)

    def test_a_tiny_rate_reaches_the_engine(self, default_pack_path):
        engine = RuleEngine(load_pack(default_pack_path))
        snap = verdict(snapshot(dispute_rate=1e-7))
        assert isinstance(snap, Snapshot)
        engine.evaluate(snap)


class TestCoalescedBatchFailure:
    def test_a_request_that_fails_its_batch_fails_alone_and_the_others_are_answered(self):
        engine_thread = ThreadPoolExecutor(max_workers=1)
        release = threading.Event()
        engine_thread.submit(release.wait)  # busy: the three requests share one turn
        turns: list[list[str]] = []

        def ingest_many(requests: Any) -> list[IngestReport]:
            turns.append([source for _, source in requests])
            if any(source == "poison" for _, source in requests):
                raise ValueError("a fault this request causes")
            return [IngestReport(accepted=1) for _ in requests]

        coalescer = Coalescer(ingest_many, engine_thread)
        futures = {source: coalescer.ingest([], source) for source in ("a", "poison", "b")}
        release.set()
        assert futures["a"].result(timeout=5).accepted == 1
        assert futures["b"].result(timeout=5).accepted == 1
        with pytest.raises(ValueError):
            futures["poison"].result(timeout=5)
        assert turns == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
