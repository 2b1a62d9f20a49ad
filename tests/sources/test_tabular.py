"""Column mappings: ERP exports (CSV, XLSX) with Chinese headers to one snapshot per row."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import JSON, LOCAL, ROOT
from tests.test_pipeline import incidents
from watcher.cli import app as cli_app
from watcher.config import Settings
from watcher.daemon.coalesce import Coalescer
from watcher.daemon.dropfolder import DropFolder
from watcher.daemon.http import create_app
from watcher.errors import ConfigError, InputError
from watcher.limits import SHEET_CELL_MAX_BYTES
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.sources import BUILTIN, Catalog, TabularSource, load_catalog
from watcher.sources.sheets import read_rows
from watcher.sources.tabular import (
    ColumnMapping,
    PeriodSpec,
    Unit,
    load_mapping,
    load_mappings,
    to_number,
    to_period,
)
from watcher.store import repository as repo
from watcher.validation import RawRecord, Rejection

from . import OBSERVED, clock

MAPPING = """\
name: erp
description: 店铺月报
platform: {column: 平台, values: {亚马逊: amazon, 虾皮: shopee}}
store: {column: 店铺}
operator: {column: 负责人}
period: {column: 月份, formats: ["%Y年%m月", "%Y/%m"], as: month}
segment:
  region: {column: 站点}
metrics:
  销售额: {metric: gmv, unit: currency, target: {column: 销售目标}}
  纠纷率: {metric: dispute_rate, unit: percent}
  订单数: {metric: orders, unit: count}
  违规处罚次数: {metric: penalty_count, unit: count}
skip_rows: {店铺: [合计]}
"""
HEADER = "店铺,平台,负责人,月份,站点,销售额,销售目标,纠纷率,订单数,违规处罚次数,备注"
GOOD = [
    'amz-us-01,亚马逊,li.wei,2026年10月,US,"¥118,000.50","150,000",3.5%,1200,0,旺季',
    'shopee-my-02,虾皮,chen.jing,2026/10,MY,"RM 12,000",,1.2,300,1,',
]
TOTALS = '合计,,,,,"130,000.50",,,,,'
AMZ = {"store": "amz-us-01", "platform": "amazon", "period": "2026-10", "operator": "li.wei",
       "observed_at": OBSERVED, "segment": {"region": "US"},
       "metrics": {"gmv": 118000.5, "dispute_rate": 0.035, "orders": 1200, "penalty_count": 0},
       "targets": {"gmv": 150000}}
SHOPEE = {"store": "shopee-my-02", "platform": "shopee", "period": "2026-10",
          "operator": "chen.jing", "observed_at": OBSERVED, "segment": {"region": "MY"},
          "metrics": {"gmv": 12000, "dispute_rate": 0.012, "orders": 300, "penalty_count": 1},
          "targets": {}}


def csv_bytes(*rows: str, encoding: str = "utf-8") -> bytes:
    return "\n".join([HEADER, *rows, ""]).encode(encoding)


def mapping_file(folder: Path, text: str = MAPPING, name: str = "erp.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def source(tmp_path: Path, text: str = MAPPING) -> TabularSource:
    return TabularSource(load_mapping(mapping_file(tmp_path / "mappings", text)), clock=clock)


def accepted(records: list[RawRecord | Rejection]) -> list[dict[str, Any]]:
    return [r.data for r in records if isinstance(r, RawRecord)]


def rejected(records: list[RawRecord | Rejection]) -> list[Rejection]:
    return [r for r in records if isinstance(r, Rejection)]


def config_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_mapping(mapping_file(tmp_path, text))
    return caught.value


def workbook(rows: list[list[Any]], *, percent: tuple[str, ...] = (),
             sheet: str = "店铺业绩") -> bytes:
    book = openpyxl.Workbook()
    worksheet = book.active
    assert worksheet is not None
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    for cell in percent:
        worksheet[cell].number_format = "0.00%"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


class TestColumnMapping:
    def test_the_shipped_examples_load(self):
        found = load_mappings(ROOT / "mappings")
        assert set(found) == {"saihu", "dianxiaomi", "zohodesk"}
        assert found["saihu"].platform.value == "amazon"
        assert found["dianxiaomi"].platform.column == "平台"

    def test_a_loaded_mapping_is_frozen(self, tmp_path: Path):
        mapping = load_mapping(mapping_file(tmp_path))
        assert isinstance(mapping, ColumnMapping)
        with pytest.raises(ValueError, match="frozen"):
            mapping.name = "other"  # type: ignore[misc]

    def test_the_name_defaults_to_the_file_stem_and_a_string_is_a_constant(self, tmp_path: Path):
        text = "platform: amazon\nmetrics: {销售额: {metric: gmv, unit: currency}}\n"
        mapping = load_mapping(mapping_file(tmp_path, text, "My-ERP.yaml"))
        assert mapping.name == "my-erp"
        assert (mapping.platform.value, mapping.platform.column) == ("amazon", None)

    def test_an_unknown_metric_id_names_file_line_and_the_likely_one(self, tmp_path: Path):
        error = config_error(tmp_path, MAPPING.replace("metric: gmv", "metric: gvm"))
        assert (error.file, error.line, error.key) == (str(tmp_path / "erp.yaml"), 10,
                                                       "metrics.销售额.metric")
        assert "'gvm' is not a known metric id; did you mean 'gmv'?" in str(error)

    def test_an_unknown_unit_names_its_line(self, tmp_path: Path):
        text = MAPPING.replace("unit: count}\n  违规", "unit: pcs}\n  违规")
        error = config_error(tmp_path, text)
        assert (error.line, error.key) == (12, "metrics.订单数.unit")
        assert "percent" in str(error) and "currency" in str(error)

    def test_a_misspelt_key_is_refused_with_its_line(self, tmp_path: Path):
        error = config_error(tmp_path, MAPPING.replace("skip_rows:", "skip_row:"))
        assert (error.line, error.key) == (14, "skip_row")
        assert "is not a known key" in str(error)

    def test_a_field_needs_exactly_one_of_column_and_value(self, tmp_path: Path):
        error = config_error(tmp_path, MAPPING.replace("store: {column: 店铺}",
                                                       "store: {column: 店铺, value: s1}"))
        assert (error.line, error.key) == (4, "store")
        assert "either 'column'" in str(error)

    def test_one_metric_from_two_columns_is_refused(self, tmp_path: Path):
        error = config_error(tmp_path, MAPPING.replace("metric: orders", "metric: gmv"))
        assert "'gmv' is mapped from two columns: '销售额' and '订单数'" in str(error)

    def test_a_constant_target_must_read_in_the_metric_unit(self, tmp_path: Path):
        text = MAPPING.replace("unit: percent}", "unit: percent, target: {value: lots}}")
        error = config_error(tmp_path, text)
        assert error.line == 11 and "target value" in str(error)

    def test_a_period_format_without_directive_is_refused(self, tmp_path: Path):
        error = config_error(tmp_path, MAPPING.replace('"%Y/%m"', '"YYYY/MM"'))
        assert error.line == 6 and "no %-directive" in str(error)

    def test_a_file_that_is_not_a_mapping_is_refused_at_line_one(self, tmp_path: Path):
        error = config_error(tmp_path, "- just\n- a list\n")
        assert error.line == 1

    def test_two_files_with_one_name_are_refused_naming_both(self, tmp_path: Path):
        mapping_file(tmp_path, MAPPING, "a.yaml")
        mapping_file(tmp_path, MAPPING, "b.yaml")
        with pytest.raises(ConfigError) as caught:
            load_mappings(tmp_path)
        assert caught.value.file == str(tmp_path / "b.yaml")
        assert str(tmp_path / "a.yaml") in str(caught.value)

    def test_a_built_in_source_name_is_reserved(self, tmp_path: Path):
        mapping_file(tmp_path, MAPPING.replace("name: erp", "name: shopee"))
        with pytest.raises(ConfigError, match="built-in source"):
            load_catalog(tmp_path)


class TestTabularSource:
    def test_each_row_of_a_utf8_csv_with_chinese_headers_becomes_a_record(self, tmp_path: Path):
        records = source(tmp_path).records(csv_bytes(*GOOD, TOTALS))
        assert [r.location for r in records] == ["row 2", "row 3"]  # totals row skipped
        assert accepted(records) == [AMZ, SHOPEE]

    @pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030", "utf-16"])
    def test_bom_gb18030_and_utf16_exports_are_detected(self, tmp_path: Path, encoding: str):
        records = source(tmp_path).records(csv_bytes(*GOOD, encoding=encoding))
        assert accepted(records) == [AMZ, SHOPEE]

    def test_a_configured_encoding_is_used_and_a_wrong_one_names_the_byte(self, tmp_path: Path):
        mapping = source(tmp_path, MAPPING + "encoding: utf-8\n")
        with pytest.raises(InputError) as caught:
            mapping.records(csv_bytes(*GOOD, encoding="gb18030"))
        assert caught.value.location == "erp" and "not utf-8 text (byte 0)" in str(caught.value)

    def test_an_xlsx_workbook_with_a_title_row_percent_cells_and_dates(self, tmp_path: Path):
        content = workbook([
            ["2026年10月 店铺月报"],
            HEADER.split(","),
            ["amz-us-01", "亚马逊", "li.wei", datetime(2026, 10, 1), "US", 118000.5, 150000,
             0.035, 1200, 0, "旺季"],
            ["shopee-my-02", "虾皮", "chen.jing", "2026/10", "MY", "RM 12,000", None, 1.2, 300.0,
             1, None],
        ], percent=("H3",))
        records = source(tmp_path, MAPPING + "header_row: 2\n").records(content)
        assert [r.location for r in records] == ["row 3", "row 4"]
        assert accepted(records) == [AMZ, SHOPEE]

    def test_a_named_sheet_is_read_and_a_missing_one_lists_the_sheets(self, tmp_path: Path):
        content = workbook([HEADER.split(","), GOOD[0].split(",")], sheet="明细")
        with pytest.raises(InputError, match=r"no sheet '汇总' \(sheets: 明细\)"):
            source(tmp_path, MAPPING + "sheet: 汇总\n").records(content)
        assert len(source(tmp_path, MAPPING + "sheet: 明细\n").records(content)) == 1

    def test_a_legacy_xls_file_is_refused_with_what_to_do(self, tmp_path: Path):
        with pytest.raises(InputError, match=r"save it as \.xlsx or CSV"):
            source(tmp_path).records(b"\xd0\xcf\x11\xe0" + b"\0" * 100)

    def test_a_bad_cell_rejects_its_row_by_row_and_column_and_the_others_go_on(
            self, tmp_path: Path):
        bad = 'amz-us-02,亚马逊,li.wei,2026年10月,US,"¥1,2x0",,1%,5,0,'
        records = source(tmp_path).records(csv_bytes(GOOD[0], bad, GOOD[1]))
        assert accepted(records) == [AMZ, SHOPEE]
        [rejection] = rejected(records)
        assert (rejection.location, rejection.field) == ("row 3", "销售额")
        assert "'¥1,2x0'" in rejection.error and "currency column" in rejection.error
        assert json.loads(rejection.raw)["店铺"] == "amz-us-02"

    def test_a_value_out_of_range_names_the_column_it_came_from(self, tmp_path: Path):
        bad = "amz-us-02,亚马逊,li.wei,2026年10月,US,1,,150%,5,0,"
        [rejection] = rejected(source(tmp_path).records(csv_bytes(bad)))
        assert (rejection.location, rejection.field) == ("row 2", "纠纷率")
        assert "a rate is a fraction" in rejection.error

    @pytest.mark.parametrize(("cells", "column"), [
        ("amz-us-02,亚马逊,li.wei,2026-13,US,1,,1%,5,0,", "月份"),
        ("amz-us-02,易贝,li.wei,2026-10,US,1,,1%,5,0,", "平台"),
        ("amz-us-02,亚马逊,li.wei,2026-10,US,1,,1%,2.5,0,", "订单数"),
        (",亚马逊,li.wei,2026-10,US,1,,1%,5,0,", "店铺"),
    ])
    def test_bad_period_platform_count_and_store_cells_name_their_column(
            self, tmp_path: Path, cells: str, column: str):
        [rejection] = rejected(source(tmp_path).records(csv_bytes(cells)))
        assert (rejection.location, rejection.field) == ("row 2", column)

    def test_an_unknown_value_of_a_translated_column_lists_the_known_ones(self, tmp_path: Path):
        bad = "amz-us-02,易贝,li.wei,2026-10,US,1,,1%,5,0,"
        [rejection] = rejected(source(tmp_path).records(csv_bytes(bad)))
        assert rejection.error == ("'易贝' is not in the mapping's values for platform "
                                   "(亚马逊, 虾皮)")

    def test_empty_and_dash_cells_are_no_data_not_zero(self, tmp_path: Path):
        row = "amz-us-01,亚马逊,li.wei,2026-10,US,1000,--,-,,N/A,"
        [record] = accepted(source(tmp_path).records(csv_bytes(row)))
        assert record["metrics"] == {"gmv": 1000}
        assert record["targets"] == {}

    def test_a_row_without_any_metric_value_is_rejected_not_skipped(self, tmp_path: Path):
        [rejection] = rejected(source(tmp_path).records(csv_bytes(
            "amz-us-01,亚马逊,li.wei,2026-10,US,,,,,,")))
        assert rejection.location == "row 2" and "at least one metric" in rejection.error

    def test_unknown_columns_are_ignored_and_kept_in_the_raw_text(self, tmp_path: Path):
        [record] = source(tmp_path).records(csv_bytes(GOOD[0]))
        assert isinstance(record, RawRecord)
        assert "备注" not in json.dumps(record.data, ensure_ascii=False)
        assert json.loads(record.text)["备注"] == "旺季"

    def test_the_same_store_platform_and_period_twice_rejects_the_second(self, tmp_path: Path):
        again = GOOD[0].replace("2026年10月", "2026/10")
        records = source(tmp_path).records(csv_bytes(GOOD[0], again))
        [rejection] = rejected(records)
        assert rejection.location == "row 3"
        assert "same store, platform and period as row 2" in rejection.error

    def test_a_missing_mapped_column_refuses_the_file_naming_it(self, tmp_path: Path):
        content = HEADER.replace("负责人", "运营").encode() + b"\n" + GOOD[0].encode()
        with pytest.raises(InputError) as caught:
            source(tmp_path).records(content)
        assert caught.value.field == "负责人" and "for operator" in str(caught.value)

    def test_a_missing_metric_column_is_fine_but_no_metric_column_at_all_is_not(
            self, tmp_path: Path):
        header = "店铺,平台,负责人,月份,站点,销售额,销售目标"
        [record] = accepted(source(tmp_path).records(
            f"{header}\namz-us-01,亚马逊,li.wei,2026-10,US,5,6\n".encode()))
        assert record["metrics"] == {"gmv": 5}
        with pytest.raises(InputError, match="none of the mapping's metric columns"):
            source(tmp_path).records("店铺,平台,负责人,月份,站点\n".encode())

    def test_without_a_store_column_the_caller_names_the_store(self, tmp_path: Path):
        text = MAPPING.replace("store: {column: 店铺}\n", "")
        mapping = source(tmp_path, text)
        assert mapping.needs_store
        [record] = accepted(mapping.records(csv_bytes(GOOD[0]), store="amz-9"))
        assert record["store"] == "amz-9"
        with pytest.raises(InputError) as caught:
            mapping.records(csv_bytes(GOOD[0]))
        assert caught.value.field == "store"

    def test_the_store_column_wins_and_the_caller_fills_empty_cells(self, tmp_path: Path):
        blank_store = GOOD[1].replace("shopee-my-02,", ",", 1)
        records = source(tmp_path).records(csv_bytes(GOOD[0], blank_store), store="fallback")
        assert [r["store"] for r in accepted(records)] == ["amz-us-01", "fallback"]

    def test_the_caller_period_overrides_every_row(self, tmp_path: Path):
        records = source(tmp_path).records(csv_bytes(*GOOD), period="2026-Q4")
        assert [r["period"] for r in accepted(records)] == ["2026-Q4", "2026-Q4"]
        with pytest.raises(InputError) as caught:
            source(tmp_path).records(csv_bytes(*GOOD), period="Oct")
        assert caught.value.field == "period"

    def test_a_constant_target_with_a_comparator(self, tmp_path: Path):
        text = MAPPING.replace("unit: percent}", 'unit: percent, target: {value: 3, '
                                                 'comparator: "<="}}')
        [record, _] = accepted(source(tmp_path, text).records(csv_bytes(*GOOD)))
        assert record["targets"]["dispute_rate"] == {"value": 0.03, "comparator": "<="}

    def test_the_shipped_saihu_example_reads_a_gb18030_export(self):
        export = ("店铺,负责人,统计月份,销售额,销售目标,转化率,利润率,订单缺陷率,店铺备注\n"
                  'amz-us-01,li.wei,2026年10月,"¥118,000.50","150,000",12.5%,21,0.8,\n'
                  '合计,,,"118,000.50",,,,,\n').encode("gb18030")
        sources = load_catalog(ROOT / "mappings")
        [record] = sources.records("saihu", export)
        assert isinstance(record, RawRecord)
        assert record.data["metrics"] == {"gmv": 118000.5, "conversion_rate": 0.125,
                                          "net_margin": 0.21, "order_defect_rate": 0.008}
        assert record.data["targets"] == {"gmv": 150000, "order_defect_rate": {
            "value": 0.01, "comparator": "<"}}

    def test_the_shipped_dianxiaomi_example_reads_a_daily_multi_platform_export(self):
        export = ("日期,平台,店铺名称,站点,销售额,订单数,纠纷率,店铺评分,罚分,违规处罚次数\n"
                  "2026/10/01,虾皮,shopee-my-02,MY,\"RM 1,200\",40,0.5,4.8,2,1\n"
                  "2026/10/01,Lazada,lzd-my-01,MY,900,30,0,4.9,0,0\n").encode("gb18030")
        records = load_catalog(ROOT / "mappings").records("dianxiaomi", export,
                                                           operator="chen.jing")
        assert [(r.data["platform"], r.data["period"], r.data["operator"])
                for r in records if isinstance(r, RawRecord)] == [
            ("shopee", "2026-10-01", "chen.jing"), ("lazada", "2026-10-01", "chen.jing")]


class TestUnits:
    @pytest.mark.parametrize(("cell", "unit", "value"), [
        ("3.5%", Unit.PERCENT, 0.035), (3.5, Unit.PERCENT, 0.035), ("3.5", Unit.PERCENT, 0.035),
        ("3.5%", Unit.FRACTION, 0.035), (0.035, Unit.FRACTION, 0.035),
        ("1,234,567.8", Unit.NUMBER, 1234567.8), ("1，234", Unit.NUMBER, 1234),
        ("¥1,200.50", Unit.CURRENCY, 1200.5), ("US$ 1,200", Unit.CURRENCY, 1200),
        ("RM 12,000", Unit.CURRENCY, 12000), ("1,200 USD", Unit.CURRENCY, 1200),
        ("1200元", Unit.CURRENCY, 1200), ("(1,200)", Unit.CURRENCY, -1200),
        ("-¥5", Unit.CURRENCY, -5), ("3", Unit.COUNT, 3), (3.0, Unit.COUNT, 3),
    ])
    def test_cells_become_canonical_numbers(self, cell: Any, unit: Unit, value: float):
        assert to_number(cell, unit) == pytest.approx(value)

    @pytest.mark.parametrize(("cell", "unit"), [
        ("abc", Unit.NUMBER), ("12abc", Unit.CURRENCY), ("-1", Unit.COUNT), ("2.5", Unit.COUNT),
        (True, Unit.NUMBER), (datetime(2026, 1, 1), Unit.NUMBER),
    ])
    def test_what_is_not_a_number_in_that_unit_is_refused(self, cell: Any, unit: Unit):
        with pytest.raises(ValueError, match="got"):
            to_number(cell, unit)


class TestPeriods:
    @pytest.mark.parametrize(("cell", "expected"), [
        ("2026-10", "2026-10"), ("2026-10-01", "2026-10-01"), ("2026-Q4", "2026-Q4"),
        ("2026年10月", "2026-10"), ("2026年10月1日", "2026-10-01"), ("2026/10/01", "2026-10-01"),
        ("2026/10", "2026-10"), ("202610", "2026-10"), (202610, "2026-10"),
        ("2026-10-01 00:00:00", "2026-10-01"), (datetime(2026, 10, 5), "2026-10-05"),
        ("2026-10-01 ~ 2026-10-31", "2026-10"), ("2026/10/01至2026/10/28", "2026-10-28"),
    ])
    def test_the_shapes_erp_exports_write(self, cell: Any, expected: str):
        assert to_period(cell, PeriodSpec(column="月份")) == expected

    def test_as_month_coarsens_a_day_but_never_refines(self):
        spec = PeriodSpec(column="月份", **{"as": "month"})
        assert to_period(datetime(2026, 10, 15), spec) == "2026-10"
        with pytest.raises(ValueError, match="is a year"):
            to_period("2026", spec)

    def test_formats_replace_the_defaults(self):
        with pytest.raises(ValueError, match="not a period"):
            to_period("2026/10/01", PeriodSpec(column="月份", formats=("%Y年%m月",)))


class TestCatalog:
    def test_mapping_names_come_after_the_built_in_sources(self, tmp_path: Path):
        mapping_file(tmp_path)
        sources = load_catalog(tmp_path)
        assert sources.names() == ["amazon-spapi", "shopee", "tiktokshop", "lingxing", "erp"]
        assert "erp" in sources and "erp" not in BUILTIN

    def test_only_a_mapping_with_a_store_column_does_without_a_store(self, tmp_path: Path):
        mapping_file(tmp_path)
        sources = load_catalog(tmp_path)
        assert not sources.needs_store("erp") and sources.needs_store("shopee")

    def test_an_unknown_name_lists_every_known_one(self, tmp_path: Path):
        mapping_file(tmp_path)
        with pytest.raises(ConfigError, match=r"known sources: amazon-spapi, .*, erp$"):
            load_catalog(tmp_path).check("ebay")

    def test_a_refused_file_is_one_rejection_naming_the_mapping(self, tmp_path: Path):
        mapping_file(tmp_path)
        [rejection] = load_catalog(tmp_path).records("erp", b"\xd0\xcf\x11\xe0junk")
        assert rejection == Rejection("source:erp", "erp", None, rejection.error,
                                      "(a workbook of 8 bytes)")

    def test_a_platform_payload_without_store_is_a_rejection(self):
        [rejection] = BUILTIN.records("shopee", b"{}")
        assert isinstance(rejection, Rejection) and rejection.field == "store"

    def test_a_missing_folder_is_no_mappings_unless_the_config_named_it(self, tmp_path: Path):
        assert load_catalog(tmp_path / "nope") is BUILTIN
        with pytest.raises(ConfigError, match="does not exist"):
            load_catalog(tmp_path / "nope", required=True)

    def test_it_reads_an_in_memory_catalog_too(self, tmp_path: Path):
        mapping = TabularSource(load_mapping(mapping_file(tmp_path)))
        assert Catalog({"erp": mapping}).records("erp", csv_bytes(GOOD[0]))[0].location == "row 2"


class TestReadRows:
    def test_rows_are_numbered_as_a_spreadsheet_shows_them_blank_ones_included(self):
        content = workbook([["a"], [], ["b", 2]])
        rows = list(read_rows(content, source="t"))
        assert [(r.number, r.is_blank()) for r in rows] == [(1, False), (2, True), (3, False)]
        assert rows[2].cells == ("b", 2)

    def test_a_quoted_csv_cell_may_span_lines_and_stays_one_row(self):
        rows = list(read_rows(b'a,b\n"x\ny",1\nz,2\n', source="t"))
        assert [(r.number, r.cells[0]) for r in rows] == [(1, "a"), (2, "x\ny"), (3, "z")]


# -- the edges: watcher ingest, POST /v1/sources/{name}, the drop folder ---------------------

class TestEdges:
    @pytest.fixture
    def sources(self, tmp_path: Path) -> Catalog:
        mapping_file(tmp_path / "mappings")
        return load_catalog(tmp_path / "mappings")

    @pytest.fixture
    def client(self, pipeline: Pipeline, settings: Settings, sources: Catalog
               ) -> Iterator[TestClient]:
        engine_thread = ThreadPoolExecutor(max_workers=1)

        submit = Coalescer(pipeline.ingest_many, engine_thread).ingest_async

        with TestClient(create_app(Runtime(settings, pipeline.db, pipeline), submit,
                                   sources=sources), base_url=LOCAL) as test_client:
            yield test_client
        engine_thread.shutdown()

    def test_http_takes_an_export_without_store_and_answers_per_row(self, client: TestClient,
                                                                   pipeline: Pipeline):
        bad = "amz-us-02,亚马逊,li.wei,2026-10,US,x,,1%,5,0,"
        response = client.post("/v1/sources/erp", headers={"content-type": "text/csv"},
                               content=csv_bytes(*GOOD, bad))
        assert response.status_code == 200
        body = response.json()
        assert (body["accepted"], body["rejected"]) == (2, 1)
        assert body["errors"][0] | {"error": ""} == {
            "source": "source:erp", "location": "row 4", "field": "销售额", "error": ""}
        opened = {(i.rule, i.store) for i in incidents(pipeline, status="open")}
        assert {("dispute-rate-high", "amz-us-01"), ("penalty-received", "shopee-my-02")} <= opened

    def test_http_refuses_an_unknown_mapping_and_a_platform_payload_without_store(
            self, client: TestClient):
        assert client.post("/v1/sources/nope", headers=JSON, content=b"x").status_code == 404
        missing = client.post("/v1/sources/shopee", headers=JSON, content=b"{}")
        assert missing.status_code == 400 and "store" in missing.text

    def test_the_drop_folder_takes_an_export_directly_in_the_mapping_folder(
            self, pipeline: Pipeline, sources: Catalog, tmp_path: Path):
        drop = DropFolder(tmp_path / "inbox", pipeline.ingest, max_bytes=100_000,
                          sources=sources)
        assert (drop.folder / "erp").is_dir()
        (drop.folder / "erp" / "october.csv").write_bytes(csv_bytes(*GOOD, encoding="gb18030"))
        assert drop.scan(settle=False) == 1
        [moved] = (drop.folder / "processed" / "erp").iterdir()
        assert moved.name.endswith("-october.csv")
        assert {i.store for i in incidents(pipeline)} == {"amz-us-01", "shopee-my-02"}

    def test_the_drop_folder_keeps_the_good_rows_of_a_file_with_an_oversized_cell(
            self, pipeline: Pipeline, sources: Catalog, tmp_path: Path):
        drop = DropFolder(tmp_path / "inbox", pipeline.ingest, max_bytes=10_000_000,
                          sources=sources)
        huge = GOOD[0].replace("旺季", "x" * 5_000_000)
        (drop.folder / "erp" / "huge.csv").write_bytes(csv_bytes(huge, GOOD[1]))
        assert drop.scan(settle=False) == 1
        assert {i.store for i in incidents(pipeline)} == {"shopee-my-02"}
        with pipeline.db.engine.connect() as conn:
            [refused] = repo.list_rejections(conn)
        assert (refused["location"], refused["field"]) == ("row 2", "备注")
        assert "Traceback" not in refused["error"]

    def test_the_drop_folder_store_names_the_store_of_a_mapping_without_store_column(
            self, pipeline: Pipeline, tmp_path: Path):
        mapping_file(tmp_path / "m", MAPPING.replace("store: {column: 店铺}\n", ""))
        drop = DropFolder(tmp_path / "inbox", pipeline.ingest, max_bytes=100_000,
                          sources=load_catalog(tmp_path / "m"))
        (drop.folder / "erp" / "my-store").mkdir()
        (drop.folder / "erp" / "my-store" / "x.csv").write_bytes(csv_bytes(GOOD[0]))
        (drop.folder / "erp" / "loose.csv").write_bytes(csv_bytes(GOOD[0]))
        assert drop.scan(settle=False) == 1  # a loose file would have no store: left alone
        assert {i.store for i in incidents(pipeline)} == {"my-store"}

    def test_watcher_ingest_source_mapping_reports_row_and_column(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        mapping_file(tmp_path / "maps")
        config = tmp_path / "watcher.yaml"
        config.write_text(f"rules: {ROOT / 'rules'}\nmappings: maps\n", encoding="utf-8")
        monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
        monkeypatch.setenv("WATCHER_CONFIG", str(config))
        export = tmp_path / "export.csv"
        export.write_bytes(csv_bytes(GOOD[0], "amz-us-02,亚马逊,li.wei,2026-10,US,1,,9,x,0,"))
        result = CliRunner().invoke(cli_app, ["--log-json", "ingest", "--source", "erp",
                                              str(export)])
        assert result.exit_code == 1
        assert "1 accepted" in result.output and "1 rejected" in result.output
        assert "rejected row 3, field '订单数'" in result.output

    def test_watcher_ingest_refuses_a_configured_mappings_folder_that_is_missing(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        config = tmp_path / "watcher.yaml"
        config.write_text(f"rules: {ROOT / 'rules'}\nmappings: nowhere\n", encoding="utf-8")
        monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
        monkeypatch.setenv("WATCHER_CONFIG", str(config))
        result = CliRunner().invoke(cli_app, ["--log-json", "ingest", "--source", "erp", "x"])
        assert result.exit_code == 2 and "mappings folder does not exist" in result.output


class TestMalformedRows:
    """A row the CSV reader cannot read as written is rejected alone, saying what is wrong
    with it; every other row of the file is read as usual."""

    def test_a_row_with_too_few_or_too_many_cells_is_refused_by_its_count(self, tmp_path: Path):
        short = "amz-us-02,亚马逊,li.wei"
        extra = GOOD[1] + ",surplus"
        records = source(tmp_path).records(csv_bytes(GOOD[0], short, extra))
        assert accepted(records) == [AMZ]
        assert [(r.location, r.error) for r in rejected(records)] == [
            ("row 3", "row 3 has 3 cells, the header 11"),
            ("row 4", "row 4 has 12 cells, the header 11")]

    def test_an_unterminated_quote_is_named_and_does_not_swallow_the_next_row(
            self, tmp_path: Path):
        broken = 'amz-us-02,亚马逊,li.wei,2026年10月,US,"¥1,000,,1%,5,0,'
        records = source(tmp_path).records(csv_bytes(broken, *GOOD))
        assert accepted(records) == [AMZ, SHOPEE]
        [refused] = rejected(records)
        assert refused.location == "row 2"
        assert refused.error.startswith("unterminated quote starting at row 2")
        assert "amz-us-02" in refused.raw  # kept for the rejected log

    def test_an_oversized_cell_rejects_its_row_only(self, tmp_path: Path):
        huge = GOOD[0].replace("旺季", "x" * (SHEET_CELL_MAX_BYTES + 1))
        records = source(tmp_path).records(csv_bytes(huge, GOOD[1]))
        assert accepted(records) == [SHOPEE]
        [refused] = rejected(records)
        assert (refused.location, refused.field) == ("row 2", "备注")
        assert refused.error.startswith(f"cell over {SHEET_CELL_MAX_BYTES} bytes")
        assert len(refused.raw) < 1000  # the cell is cut in the rejected log

    def test_cells_within_the_limit_are_read_whatever_the_csv_module_default(
            self, tmp_path: Path):
        # the csv module refuses fields over 131,072 characters by default, for the whole file
        long_note = GOOD[0].replace("旺季", "注" * 40_000)  # 120,000 bytes
        assert len(accepted(source(tmp_path).records(csv_bytes(long_note)))) == 1

    def test_nan_in_a_metric_cell_is_refused_not_read_as_empty(self, tmp_path: Path):
        row = GOOD[1].replace(",1.2,", ",nan,")
        [refused] = rejected(source(tmp_path).records(csv_bytes(row)))
        assert (refused.field, refused.error) == ("纠纷率", "is not a number (percent column): "
                                                           "'nan'")

    def test_http_answers_an_oversized_cell_per_row_not_500(self, tmp_path: Path,
                                                           pipeline: Pipeline,
                                                           settings: Settings):
        mapping_file(tmp_path / "mappings")
        engine_thread = ThreadPoolExecutor(max_workers=1)
        submit = Coalescer(pipeline.ingest_many, engine_thread).ingest_async
        huge = GOOD[0].replace("旺季", "x" * 5_000_000)
        with TestClient(create_app(Runtime(settings, pipeline.db, pipeline), submit,
                                   sources=load_catalog(tmp_path / "mappings")),
                        base_url=LOCAL) as client:
            response = client.post("/v1/sources/erp", headers={"content-type": "text/csv"},
                                   content=csv_bytes(huge, GOOD[1]))
        engine_thread.shutdown()
        assert response.status_code == 200
        body = response.json()
        assert (body["accepted"], body["rejected"]) == (1, 1)
        assert (body["errors"][0]["location"], body["errors"][0]["field"]) == ("row 2", "备注")

