"""Nothing is guessed, for records (issue 14, item 5): a value that could be read two ways
is refused naming the field; what has one meaning is read as such, and said when odd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import JSON, LOCAL, http_app, jsonl, snapshot
from watcher.cli import app as cli_app
from watcher.config import Settings
from watcher.numbers import read_decimal
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.snapshot import Snapshot
from watcher.sources.tabular import RowError, Unit, to_number
from watcher.store.schema import snapshots
from watcher.validation import Format, RawRecord, Rejection, read_records, validate


def verdict(record: dict[str, Any]) -> Snapshot | Rejection:
    return validate(RawRecord("record 1", json.dumps(record), record))


@pytest.fixture
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with (http_app(Runtime(settings, pipeline.db, pipeline)) as app,
          TestClient(app, base_url=LOCAL) as test):
        yield test


class TestAmbiguousNumbers:
    @pytest.mark.parametrize(("metric", "value"), [
        ("dispute_rate", "3,5%"), ("dispute_rate", "3_5%"), ("gmv", "1.234,5"),
        ("gmv", "0,035"), ("gmv", "12,50"), ("gmv", "1_200"), ("gmv", "١٢٠٠"),
    ])
    def test_an_ambiguous_number_is_refused_naming_the_field(self, metric: str, value: str):
        rejection = verdict(snapshot(**{metric: value}))
        assert isinstance(rejection, Rejection), rejection
        assert rejection.field == f"metrics.{metric}"
        assert repr(value) in rejection.error

    @pytest.mark.parametrize(("value", "number"), [
        ("1,200", 1200.0), ("1,234,567.5", 1234567.5), ("3.5%", 0.035), ("１２００", 1200.0),
        ("-1,200", -1200.0), (" 7 ", 7.0), ("1e3", 1000.0),
    ])
    def test_what_has_one_meaning_is_read(self, value: str, number: float):
        assert read_decimal(value.removesuffix("%")) * (0.01 if "%" in value else 1) == \
            pytest.approx(number)

    def test_a_target_is_held_to_the_same_rule(self):
        rejection = verdict(snapshot(targets={"gmv": "150.000,50"}))
        assert isinstance(rejection, Rejection) and rejection.field == "targets.gmv.value"

    @pytest.mark.parametrize(("cell", "unit", "value"), [
        ("¥1,200", Unit.CURRENCY, 1200), ("1 200", Unit.NUMBER, 1200),
        ("1'234.5", Unit.NUMBER, 1234.5), ("１，２００", Unit.NUMBER, 1200),
        ("3.5%", Unit.PERCENT, 0.035),
    ])
    def test_a_column_mapping_keeps_unambiguous_digit_groups(self, cell: str, unit: Unit,
                                                             value: float):
        assert to_number(cell, unit) == pytest.approx(value)

    @pytest.mark.parametrize(("cell", "unit"), [
        ("¥1.234,5", Unit.CURRENCY), ("3,5%", Unit.PERCENT), ("1 234,5", Unit.NUMBER),
        ("12,50", Unit.NUMBER), ("3_5", Unit.PERCENT),
    ])
    def test_a_column_mapping_refuses_what_could_be_read_two_ways(self, cell: str, unit: Unit):
        with pytest.raises(RowError, match="ambiguous"):
            to_number(cell, unit)


class TestPeriods:
    def test_full_width_digits_are_the_same_month_not_one_of_their_own(
            self, pipeline: Pipeline):
        first = pipeline.ingest(read_records(jsonl(snapshot(period="2026-10"))), "http")
        again = pipeline.ingest(read_records(jsonl(snapshot(period="２０２６-10"))), "http")
        assert (first.accepted, again.unchanged) == (1, 1)
        with pipeline.db.engine.connect() as conn:
            assert [r.period for r in conn.execute(select(snapshots.c.period))] == ["2026-10"]

    @pytest.mark.parametrize("period", ["٢٠٢٦-10", "2026-1⁰", "२०२६-10"])
    def test_other_digits_are_refused(self, period: str):
        rejection = verdict(snapshot(period=period))
        assert isinstance(rejection, Rejection) and rejection.field == "period"


class TestUnknownMetrics:
    def test_a_snapshot_whose_only_metric_is_unknown_is_accepted_with_a_warning(
            self, client: TestClient):
        response = client.post("/v1/snapshots", json=snapshot(penalti_count=1))
        body = response.json()
        assert response.status_code == 200 and body["accepted"] == 1
        [warning] = body["warnings"]
        assert warning["location"] == "line 1" and warning["field"] == "metrics.penalti_count"
        assert "penalty_count" in warning["warning"]  # the likely meant metric

    def test_known_metrics_draw_no_warning(self, client: TestClient):
        assert client.post("/v1/snapshots", json=snapshot(gmv=1)).json()["warnings"] == []

    def test_a_metric_the_rule_pack_declares_draws_no_warning(self, pipeline: Pipeline):
        pipeline.known_metrics = frozenset({"custom_margin"})
        report = pipeline.ingest(read_records(jsonl(snapshot(custom_margin=1))), "http")
        assert report.accepted == 1 and report.warnings == []

    def test_the_cli_prints_the_warning(self, tmp_path: Path, settings: Settings,
                                        pipeline: Pipeline):  # the schema is made
        path = tmp_path / "in.jsonl"
        path.write_bytes(jsonl(snapshot(penalti_count=1)))
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps({"database_url": settings.database_url,
                                      "rules": str(settings.rules)}), encoding="utf-8")
        result = CliRunner().invoke(cli_app, ["ingest", str(path), "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert "warning line 1, field 'metrics.penalti_count'" in result.output


class TestWholeBodies:
    def test_invalid_utf8_on_one_json_lines_line_rejects_that_line_only(
            self, client: TestClient):
        body = jsonl(snapshot(store="a")) + b"\n" + b'{"store": "\xff\xfe"}' + b"\n" + jsonl(
            snapshot(store="b"))
        response = client.post("/v1/snapshots", content=body,
                               headers={"content-type": "application/x-ndjson"})
        report = response.json()
        assert report["accepted"] == 2
        [error] = report["errors"]
        assert error["location"] == "line 2" and "not UTF-8" in error["error"]

    def test_invalid_utf8_is_found_by_sniffing_json_lines_too(self):
        body = jsonl(snapshot(store="a")) + b"\n\xff\n" + jsonl(snapshot(store="b"))
        records = list(read_records(body))
        assert [type(r).__name__ for r in records] == ["RawRecord", "Rejection", "RawRecord"]

    @pytest.mark.parametrize(("body", "says"), [
        (b"42", "a snapshot is a JSON object, got int"),
        (b'"text"', "a snapshot is a JSON object, got str"),
        (b"[]", "holds no snapshot"), (b"", "holds no snapshot"),
    ])
    def test_a_body_with_no_snapshot_answers_422_naming_the_problem(
            self, client: TestClient, body: bytes, says: str):
        response = client.post("/v1/snapshots", content=body,
                               headers={"content-type": "application/json"})
        assert response.status_code == 422
        errors = response.json()["errors"]
        assert errors and says in errors[0]["error"]

    def test_a_10000_level_body_answers_422_naming_the_depth(self, client: TestClient):
        response = client.post("/v1/snapshots", content=b"[" * 10_000 + b"]" * 10_000,
                               headers=JSON)
        assert response.status_code == 422
        assert "MAX_NESTING_DEPTH" in response.json()["errors"][0]["error"]

    def test_a_245_key_snapshot_answers_422_naming_the_field(self, client: TestClient):
        response = client.post("/v1/snapshots",
                               json=snapshot(**{f"custom_{n}": 1 for n in range(245)}))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "metrics"

    def test_csv_keeps_its_format(self):
        records = list(read_records(b"store,platform,period,metrics.gmv\ns,amazon,2026-10,5\n",
                                    Format.AUTO))
        assert isinstance(records[0], RawRecord)
