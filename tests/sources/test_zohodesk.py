"""Zoho Desk ticket exports (issue #17): one row per ticket, one snapshot per store and day.

The shipped mapping (mappings/zohodesk.yaml) names the department as the store and its
platform, the creation time (read at +08:00) as the day, and counts tickets, closed
tickets and the mean first response in hours; cs_resolution_rate is derived from the two
counts like any other rate. The aggregation language itself (``aggregate:``) is specified
with small mappings of its own below.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.conftest import ROOT
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from watcher.errors import ConfigError
from watcher.snapshot import Snapshot
from watcher.sources import load_catalog
from watcher.sources.aggregate import parse_zone, read_hours
from watcher.sources.tabular import TabularSource, load_mapping
from watcher.validation import RawRecord, Rejection, validate

from . import FIXTURES, clock

EXPORT = FIXTURES.parent / "exports" / "zohodesk-tickets.csv"
HEADER = EXPORT.read_text(encoding="utf-8").splitlines()[0]


def zohodesk(content: bytes) -> list[RawRecord | Rejection]:
    return load_catalog(ROOT / "mappings").records("zohodesk", content)


def snapshots(records: list[RawRecord | Rejection]) -> dict[tuple[str, str], Snapshot]:
    """Accepted records as the pipeline validates them (derived rates included)."""
    found: dict[tuple[str, str], Snapshot] = {}
    for record in records:
        if isinstance(record, RawRecord):
            snap = validate(record)
            assert isinstance(snap, Snapshot), snap
            found[(snap.store, snap.period.text)] = snap
    return found


def rejections(records: list[RawRecord | Rejection]) -> list[tuple[str, str | None, str]]:
    return [(r.location, r.field, r.error) for r in records if isinstance(r, Rejection)]


# what the fixture's ten tickets make, per store and day (the Internal one is skipped)
EXPECTED = {
    # 2 + 30.5 + 1.5 hours over three tickets, two of them closed
    ("shopee-my-02", "2026-11-02"): {"tickets": 3, "tickets_resolved": 2,
                                     "cs_first_response_hours": 11.333333},
    # the escalated ticket has no first response yet: it counts as a ticket, not an hour
    ("amz-us-01", "2026-11-02"): {"tickets": 2, "tickets_resolved": 1,
                                  "cs_first_response_hours": 3.5},
    ("shopee-my-02", "2026-11-03"): {"tickets": 2, "tickets_resolved": 1,
                                     "cs_first_response_hours": 27.0},
    ("amz-us-01", "2026-11-03"): {"tickets": 1, "tickets_resolved": 1,
                                  "cs_first_response_hours": 20.0},
    ("tts-uk-03", "2026-11-04"): {"tickets": 1, "tickets_resolved": 1,
                                  "cs_first_response_hours": 0.333333},
}


class TestTheShippedMapping:
    def test_a_few_days_of_tickets_make_one_snapshot_per_store_and_day(self):
        records = zohodesk(EXPORT.read_bytes())
        assert rejections(records) == []
        found = snapshots(records)
        assert set(found) == set(EXPECTED)
        for key, counted in EXPECTED.items():
            snap = found[key]
            assert {m: snap.metrics[m] for m in counted} == counted, key
            assert snap.metrics["cs_resolution_rate"] == pytest.approx(
                counted["tickets_resolved"] / counted["tickets"]), key
        assert {s.platform for s in found.values()} == {"shopee", "amazon", "tiktok"}

    def test_each_snapshot_keeps_every_cell_of_its_tickets(self):
        [first, *_] = [r for r in zohodesk(EXPORT.read_bytes()) if isinstance(r, RawRecord)]
        assert first.location == "shopee-my-02 2026-11-02 (rows 2-4)"
        raw = json.loads(first.text)
        assert list(raw) == ["row 2", "row 3", "row 4"]
        assert raw["row 3"]["Subject"] == "Refund for cracked case"
        assert raw["row 3"]["Account Name"] == "Ben Tan"

    def test_bad_rows_are_rejected_alone_and_the_rest_counted_as_before(self):
        bad = [
            "40210011,Bad date,Shopee MY,Chat,Closed,Lim Wei,31 Nov 2026 10:00 AM,,1,X",
            "40210012,Custom status,Shopee MY,Chat,Resolved,Lim Wei,02 Nov 2026 10:00 AM,,1,X",
            "40210001,Exported twice,Shopee MY,Chat,Closed,Nur Aina,02 Nov 2026 09:12 AM,,2,X",
            "40210013,New department,Lazada MY,Chat,Closed,Lim Wei,02 Nov 2026 10:00 AM,,1,X",
            "40210014,Ambiguous,Amazon US,Email,Closed,Sam Lee,02 Nov 2026 10:00 AM,,5:30,X",
            ",No id,Amazon US,Email,Closed,Sam Lee,02 Nov 2026 10:00 AM,,1,X",
        ]
        content = EXPORT.read_bytes() + ("\n".join(bad) + "\n").encode()
        records = zohodesk(content)
        found = rejections(records)
        assert [(location, field) for location, field, _ in found] == [
            ("row 12", "Created Time"), ("row 13", "Status"), ("row 14", "Ticket Id"),
            ("row 15", "Department"), ("row 16", "First Response Time"),
            ("row 17", "Ticket Id")]
        errors = [error for _, _, error in found]
        assert "'31 Nov 2026 10:00 AM' is not a timestamp" in errors[0]
        assert "'Resolved' is in neither 'in' (Closed) nor 'not_in'" in errors[1]
        assert "'40210001' is also row 2" in errors[2]
        assert "'Lazada MY' is not in the mapping's values" in errors[3]
        assert "could be hours:minutes or minutes:seconds" in errors[4]
        assert "is empty" in errors[5]
        counted = snapshots(records)
        assert {k: {m: s.metrics[m] for m in EXPECTED[k]} for k, s in counted.items()} == (
            EXPECTED)
        rejected = next(r for r in records if isinstance(r, Rejection))
        assert json.loads(rejected.raw)["Subject"] == "Bad date"  # kept for the log

    @pytest.mark.parametrize(("cell", "error"), [
        ("1e308", "'1e308' is over 8760 hours, a year (METRIC_MAX_HOURS)"),
        ("99999", "'99999' is over 8760 hours, a year (METRIC_MAX_HOURS)"),
        ("nan", "is not a number of hours: 'nan'"),
        ("NaN hrs", "is not a number of hours: 'NaN hrs'"),
        ("inf", "is not a number of hours: 'inf'"),
        ("8760:59 hrs", "'8760:59 hrs' is over 8760 hours, a year (METRIC_MAX_HOURS)"),
        ("99999:00 hrs", "'99999:00 hrs' is over 8760 hours, a year (METRIC_MAX_HOURS)")])
    def test_an_absurd_or_non_numeric_duration_rejects_its_row_only(self, cell: str,
                                                                    error: str):
        bad = f"40210011,Absurd,Shopee MY,Chat,Closed,Lim Wei,02 Nov 2026 10:00 AM,,{cell},X"
        records = zohodesk(EXPORT.read_bytes() + (bad + "\n").encode())
        assert rejections(records) == [("row 12", "First Response Time", error)]
        counted = snapshots(records)
        assert {k: {m: s.metrics[m] for m in EXPECTED[k]} for k, s in counted.items()} == (
            EXPECTED)

    def test_an_xlsx_export_with_date_cells_counts_the_same(self):
        rows = list(csv.reader(io.StringIO(EXPORT.read_text(encoding="utf-8"))))
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(rows[0])
        created = rows[0].index("Created Time")
        for row in rows[1:]:
            cells: list[Any] = list(row)
            cells[created] = datetime.strptime(row[created], "%d %b %Y %I:%M %p")
            sheet.append(cells)
        buffer = io.BytesIO()
        book.save(buffer)
        found = snapshots(zohodesk(buffer.getvalue()))
        assert {k: {m: s.metrics[m] for m in EXPECTED[k]} for k, s in found.items()} == (
            EXPECTED)

    def test_a_creation_time_with_an_offset_counts_on_the_day_of_the_mappings_zone(self):
        # 23:30 UTC on 2 November is 07:30 on 3 November at +08:00
        late = "40210020,Late,Amazon US,Email,Closed,Sam Lee,2026-11-02T23:30:00Z,,1,X\n"
        found = snapshots(zohodesk((HEADER + "\n" + late).encode()))
        assert list(found) == [("amz-us-01", "2026-11-03")]


class TestTheDailyRule:
    def test_a_slow_day_fires_cs_first_response_slow_through_watcher_ingest(
            self, env: Path):  # noqa: F811
        code, out = watcher("ingest", "--source", "zohodesk", str(EXPORT))
        assert code == 0, out
        assert "5 accepted" in out
        code, out = watcher("incidents", "list", "--format", "json")
        opened = [(i["rule"], i["subject"], i["period"])
                  for i in json.loads(out)["incidents"]]
        assert opened == [("cs-first-response-slow", "shopee-my-02", "2026-11-03")]

    def test_rejected_rows_go_to_the_rejected_log(self, env: Path):  # noqa: F811
        export = env / "tickets.csv"
        export.write_text(HEADER + "\n"
                          "1,a,Shopee MY,Chat,Closed,x,02 Nov 2026 09:00 AM,,30:00 hrs,X\n"
                          "2,b,Shopee MY,Chat,Pending,x,02 Nov 2026 10:00 AM,,1,X\n",
                          encoding="utf-8")
        code, out = watcher("ingest", "--source", "zohodesk", str(export))
        assert code == 1
        assert "1 accepted" in out and "1 rejected" in out
        assert "rejected row 3, field 'Status'" in out
        code, out = watcher("rejected", "list", "--format", "json")
        [kept] = json.loads(out)["rejected"]
        assert (kept["location"], kept["field"]) == ("row 3", "Status")


AGGREGATE = """\
name: desk
platform: shopee
store: {column: Shop}
period: {column: Opened, timezone: UTC, as: day}
aggregate:
  metrics:
    tickets: {count: rows}
    cs_first_response_hours: {%s: hours, from: Opened, to: Answered}
"""


def desk(tmp_path: Path, text: str, csv_text: str) -> list[RawRecord | Rejection]:
    path = tmp_path / "desk.yaml"
    path.write_text(text, encoding="utf-8")
    return TabularSource(load_mapping(path), clock=clock).records(csv_text.encode())


class TestTheAggregateLanguage:
    ROWS = ("Shop,Opened,Answered\n"
            "s1,2026-11-02 08:00:00,2026-11-02 09:00:00\n"
            "s1,2026-11-02 10:00:00,2026-11-02 12:00:00\n"
            "s1,2026-11-02 11:00:00,2026-11-03 11:00:00\n"
            "s1,2026-11-02 12:00:00,\n")

    @pytest.mark.parametrize(("statistic", "hours"), [("mean", 9.0), ("median", 2.0)])
    def test_hours_between_two_timestamps_by_mean_or_median(self, tmp_path: Path,
                                                            statistic: str, hours: float):
        [record] = desk(tmp_path, AGGREGATE % statistic, self.ROWS)
        assert isinstance(record, RawRecord)
        assert record.data["metrics"] == {"tickets": 4, "cs_first_response_hours": hours}

    def test_a_day_nobody_answered_has_no_first_response_rather_than_zero(self,
                                                                        tmp_path: Path):
        [record] = desk(tmp_path, AGGREGATE % "mean",
                        "Shop,Opened,Answered\ns1,2026-11-02 08:00:00,\n")
        assert isinstance(record, RawRecord)
        assert record.data["metrics"] == {"tickets": 1}

    def test_an_answer_before_the_ticket_or_without_a_time_of_day_is_refused(
            self, tmp_path: Path):
        records = desk(tmp_path, AGGREGATE % "mean",
                       "Shop,Opened,Answered\n"
                       "s1,2026-11-02 08:00:00,2026-11-02 07:00:00\n"
                       "s1,2026-11-02 08:00:00,2026-11-03\n"
                       "s1,2026-11-02 08:00:00,2026-11-02 08:30:00\n")
        assert [(r.location, r.field) for r in records if isinstance(r, Rejection)] == [
            ("row 2", "Answered"), ("row 3", "Answered")]
        [record] = [r for r in records if isinstance(r, RawRecord)]
        assert record.data["metrics"] == {"tickets": 1, "cs_first_response_hours": 0.5}

    def test_a_month_is_no_timestamp(self, tmp_path: Path):
        records = desk(tmp_path, AGGREGATE % "mean", "Shop,Opened,Answered\ns1,2026/11,\n")
        [(location, field, error)] = [(r.location, r.field, r.error) for r in records
                                      if isinstance(r, Rejection)]
        assert (location, field) == ("row 2", "Opened")
        assert "'2026/11' is not a timestamp" in error

    def test_timestamps_need_a_stated_zone(self, tmp_path: Path):
        path = tmp_path / "desk.yaml"
        path.write_text(AGGREGATE.replace(", timezone: UTC", "") % "mean", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"state their zone, period\.timezone"):
            load_mapping(path)

    @pytest.mark.parametrize(("change", "error"), [
        ("    tickets: {count: rows}\n", "    tickets: {mean: hours, column: X}\n"),
        ("    tickets: {count: rows}\n", "    tickets: {count: rows, column: X}\n"),
        ("{%s: hours, from: Opened, to: Answered}", "{%s: hours, from: Opened}"),
        ("store: {column: Shop}\n", "store: {column: Shop}\noperator: {column: Agent}\n"),
    ])
    def test_a_malformed_aggregate_is_refused_at_load(self, tmp_path: Path, change: str,
                                                      error: str):
        path = tmp_path / "desk.yaml"
        path.write_text((AGGREGATE.replace(change, error)) % "mean", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_mapping(path)
        assert caught.value.file == str(path) and caught.value.line is not None

    def test_a_mapping_gives_per_row_metrics_or_an_aggregate_never_both(self,
                                                                        tmp_path: Path):
        path = tmp_path / "desk.yaml"
        path.write_text(AGGREGATE % "mean" + "metrics:\n  X: {metric: gmv, unit: currency}\n",
                        encoding="utf-8")
        with pytest.raises(ConfigError, match="either 'metrics'"):
            load_mapping(path)


class TestCells:
    @pytest.mark.parametrize(("cell", "hours"), [
        (5.5, 5.5), ("5.5", 5.5), ("5:30 hrs", 5.5), ("0:05 hrs", 5 / 60), ("26 hrs", 26.0),
        ("1,200", 1200.0)])
    def test_hours(self, cell: Any, hours: float):
        assert read_hours(cell) == pytest.approx(hours)

    @pytest.mark.parametrize("cell", ["5:30", "-1", "soon", "1,5", "8761", 1e308,
                                      float("nan"), "nan", "8761:00 hrs"])
    def test_what_is_not_plainly_hours_is_refused(self, cell: Any):
        with pytest.raises(ValueError):
            read_hours(cell)

    @pytest.mark.parametrize(("text", "offset"), [("UTC", 0), ("+08:00", 8), ("UTC+8", 8),
                                                  ("-05:30", -5.5)])
    def test_zones(self, text: str, offset: float):
        zone = parse_zone(text)
        assert zone.utcoffset(None) is not None
        assert zone.utcoffset(None).total_seconds() == offset * 3600  # type: ignore[union-attr]

    def test_an_unknown_zone_is_refused(self):
        with pytest.raises(ValueError, match="not a time zone"):
            parse_zone("Mars/Olympus")
