"""Property-based tests: whatever bytes arrive, parsers answer with a verdict or a clear
error, never a crash, a hang or a silent loss."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher import yamlfile
from watcher.config import Settings, load_settings
from watcher.errors import ConfigError, InputError
from watcher.rules.loader import load_pack
from watcher.snapshot import Snapshot
from watcher.validation import Format, RawRecord, Rejection, read_records, validate

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
snapshot_like = st.fixed_dictionaries({}, optional={
    "store": scalars, "platform": scalars, "period": st.one_of(scalars, st.sampled_from(
        ["2026-10", "2026-Q3", "2026", "2026-02-30", "2026-13"])),
    "operator": scalars, "segment": json_values,
    "metrics": st.dictionaries(st.sampled_from(["gmv", "dispute_rate", "penalty_count",
                                                "account_health_score", "x"]),
                               st.one_of(scalars, st.just("3.5%")), max_size=4),
    "targets": json_values})


class TestSnapshotParser:
    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=400), st.sampled_from(list(Format)))
    def test_any_bytes_give_verdicts_or_a_clear_input_error(self, body: bytes, fmt: Format):
        try:
            records = list(read_records(body, fmt))
        except InputError as exc:
            assert exc.location
            return
        for record in records:
            verdict = record if isinstance(record, Rejection) else validate(record)
            assert isinstance(verdict, Snapshot | Rejection)
            if isinstance(verdict, Rejection):
                assert verdict.location and verdict.error

    @settings(max_examples=300)
    @given(snapshot_like)
    def test_every_record_is_a_snapshot_or_a_rejection_naming_the_field(self, data: dict):
        verdict = validate(RawRecord("line 1", json.dumps(data, default=str), data))
        if isinstance(verdict, Rejection):
            assert verdict.location == "line 1" and verdict.error
        else:
            assert verdict.metrics and all(v == v for v in verdict.metrics.values())

    @settings(max_examples=100)
    @given(st.lists(snapshot_like, max_size=8))
    def test_no_record_is_lost(self, items: list[dict]):
        body = "\n".join(json.dumps(i, default=str) for i in items).encode()
        records = list(read_records(body, Format.JSONL))
        # an empty body is one rejection saying it holds nothing
        assert len(records) == (len(items) or 1)


class TestLoaders:
    @settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.text(max_size=300))
    def test_rule_files_load_or_fail_with_file_and_line(self, tmp_path: Path, text: str):
        path = tmp_path / "r.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_pack(path)
        except ConfigError as exc:
            assert exc.file == str(path)

    @settings(max_examples=150)
    @given(json_values)
    def test_configs_load_or_fail_with_a_config_error(self, data: object):
        try:
            result = load_settings(env={}, **(data if isinstance(data, dict) else {}))
        except ConfigError:
            return
        except TypeError:
            return  # not keyword arguments at all: not a config
        assert isinstance(result, Settings)

    @settings(max_examples=150)
    @given(st.text(max_size=200))
    def test_yaml_errors_name_the_file(self, text: str):
        try:
            yamlfile.loads(text, "x.yaml")
        except ConfigError as exc:
            assert exc.file == "x.yaml"
