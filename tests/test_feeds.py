"""Feeds: a snapshot stated in parts by different senders (docs/snapshot-format.md, "Feeds").

The tester's report: a Zoho Desk ticket export for a store's day replaced that day's
platform snapshot (visitors, orders, ODR lost), and the next platform statement wiped the
ticket metrics. A restatement replaces only what the same feed stated before; the stored
snapshot, which every reader and the rules see, is the merge of each feed's latest part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.conftest import JSON, JSONL, ROOT, Clock, jsonl, snapshot
from tests.test_api_endpoints import app_client
from tests.test_cli import watcher
from watcher import feeds
from watcher.bus.messages import Message, records_of
from watcher.config import Settings
from watcher.errors import ConfigError
from watcher.pipeline import IngestReport, Pipeline
from watcher.snapshot import Snapshot
from watcher.sources import load_catalog
from watcher.sources.tabular import TabularSource, load_mapping
from watcher.store import repository as repo
from watcher.store.schema import snapshots
from watcher.validation import RawRecord, Rejection, read_records

DAILY = (ROOT / "examples" / "daily.jsonl").read_text(encoding="utf-8").splitlines()
EXPORT = ROOT / "tests" / "fixtures" / "exports" / "zohodesk-tickets.csv"
HEADER = EXPORT.read_text(encoding="utf-8").splitlines()[0]
STATED = {"visitors", "orders", "order_defect_rate", "late_shipment_rate"}
PLATFORM_METRICS = STATED | {"conversion_rate"}  # derived from orders and visitors
TICKET_METRICS = {"tickets", "tickets_resolved", "cs_resolution_rate", "cs_first_response_hours"}


def tickets(*rows: str) -> bytes:
    """A Zoho Desk export: ``Department,Status,Created Time,First Response Time`` per row."""
    lines = [HEADER]
    for number, row in enumerate(rows, start=1):
        department, status, created, first = row.split(",")
        lines.append(f"{number},Subject,{department},Email,{status},Owner,{created},,{first},X")
    return ("\n".join(lines) + "\n").encode()


def zohodesk(content: bytes, at: datetime) -> list[RawRecord | Rejection]:
    """The shipped mapping as the edges read it, exporting at ``at`` (its observed_at)."""
    mapping = TabularSource(load_mapping(ROOT / "mappings" / "zohodesk.yaml"),
                            clock=lambda: at)
    return mapping.records(content)


SLOW_AMAZON_DAY = tickets("Amazon US,Closed,02 Nov 2026 09:00 AM,30:00 hrs",
                          "Amazon US,Open,02 Nov 2026 10:00 AM,26:00 hrs")
EXPORTED = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def canonical(pipeline: Pipeline, *lines: str | dict[str, Any],
              source: str = "file:daily.jsonl") -> IngestReport:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return pipeline.ingest(read_records(text.encode()), source)


def stored(pipeline: Pipeline, platform: str, store: str, period: str) -> dict[str, Any]:
    with pipeline.db.engine.connect() as conn:
        found = repo.get_snapshot(conn, platform, store, period)
    assert found is not None
    return found


def live(pipeline: Pipeline) -> set[tuple[str, str, str | None]]:
    with pipeline.db.engine.connect() as conn:
        return {(i.rule, i.subject, i.period) for i in repo.list_incidents(conn, limit=1000)
                if i.status.value != "resolved"}


def day(store: str, period: str) -> dict[str, Any]:
    [line] = [json.loads(line) for line in DAILY
              if f'"store": "{store}"' in line and f'"period": "{period}"' in line]
    return line  # type: ignore[no-any-return]


class TestTheTestersReport:
    def test_a_ticket_export_adds_its_metrics_to_the_days_platform_snapshot(
            self, pipeline: Pipeline):
        canonical(pipeline, *DAILY)
        before = live(pipeline)
        report = pipeline.ingest(zohodesk(SLOW_AMAZON_DAY, EXPORTED), "source:zohodesk")
        assert (report.accepted, report.restated, report.rejected) == (1, 1, [])
        merged = stored(pipeline, "amazon", "amz-us-01", "2026-11-02")
        assert set(merged["metrics"]) == PLATFORM_METRICS | TICKET_METRICS
        assert merged["metrics"]["visitors"] == 2080 and merged["metrics"]["orders"] == 160
        assert (merged["metrics"]["tickets"], merged["metrics"]["cs_first_response_hours"],
                merged["metrics"]["cs_resolution_rate"]) == (2, 28, 0.5)
        assert merged["revision"] == 2
        assert list(merged["parts"]) == ["canonical", "zohodesk"]  # oldest first
        assert set(merged["parts"]["canonical"]["metrics"]) == STATED  # as stated
        assert merged["parts"]["zohodesk"]["source"] == "source:zohodesk"
        # the merged day is judged: the cs rule fires, nothing live is closed for lack of data
        assert live(pipeline) == before | {("cs-first-response-slow", "amz-us-01",
                                            "2026-11-02")}

    def test_the_next_platform_statement_keeps_the_ticket_metrics(self, pipeline: Pipeline):
        canonical(pipeline, *DAILY)
        pipeline.ingest(zohodesk(SLOW_AMAZON_DAY, EXPORTED), "source:zohodesk")
        restated = {**day("amz-us-01", "2026-11-02"), "observed_at": "2026-11-29T10:00:00Z"}
        restated["metrics"] = {**restated["metrics"], "visitors": 2100}
        report = canonical(pipeline, restated, source="poll:amazon")
        assert report.restated == 1
        merged = stored(pipeline, "amazon", "amz-us-01", "2026-11-02")
        assert merged["metrics"]["visitors"] == 2100
        assert merged["metrics"]["tickets"] == 2 and merged["revision"] == 3
        assert ("cs-first-response-slow", "amz-us-01", "2026-11-02") in live(pipeline)

    @pytest.mark.parametrize("tickets_first", [True, False])
    def test_either_order_ends_with_both_parts_and_both_rules_judged(
            self, pipeline: Pipeline, tickets_first: bool):
        """The traffic drop of examples/daily.jsonl (shopee-my-02, 21 Nov, 420 visitors)
        and a slow help desk the same day: the change rule and the cs rule both fire."""
        drop = next(line for line in DAILY if '"visitors": 420' in line)
        slow = tickets("Shopee MY,Closed,21 Nov 2026 09:00 AM,30:00 hrs")
        canonical(pipeline, *[line for line in DAILY if line != drop])
        if tickets_first:
            pipeline.ingest(zohodesk(slow, EXPORTED), "source:zohodesk")
            assert ("visitors-drop", "shopee-my-02", "2026-11-21") not in live(pipeline)
            canonical(pipeline, drop)
        else:
            canonical(pipeline, drop)
            pipeline.ingest(zohodesk(slow, EXPORTED), "source:zohodesk")
        assert {("visitors-drop", "shopee-my-02", "2026-11-21"),
                ("cs-first-response-slow", "shopee-my-02", "2026-11-21")} <= live(pipeline)
        merged = stored(pipeline, "shopee", "shopee-my-02", "2026-11-21")
        assert merged["metrics"]["visitors"] == 420 and merged["metrics"]["tickets"] == 1
        # both feeds state cs_first_response_hours: the newer (the export) wins
        assert merged["metrics"]["cs_first_response_hours"] == 30
        assert set(merged["parts"]) == {"canonical", "zohodesk"}


class TestAFeedRestatesItsOwnPart:
    def test_a_metric_the_feed_no_longer_states_is_gone_and_the_others_kept(
            self, pipeline: Pipeline):
        canonical(pipeline, day("amz-us-01", "2026-11-02"))
        pipeline.ingest(zohodesk(SLOW_AMAZON_DAY, EXPORTED), "source:zohodesk")
        unanswered = tickets("Amazon US,Open,02 Nov 2026 09:00 AM,",
                             "Amazon US,Open,02 Nov 2026 10:00 AM,",
                             "Amazon US,Closed,02 Nov 2026 11:00 AM,")
        report = pipeline.ingest(zohodesk(unanswered, EXPORTED.replace(hour=10)),
                                 "source:zohodesk")
        assert report.restated == 1
        merged = stored(pipeline, "amazon", "amz-us-01", "2026-11-02")
        assert "cs_first_response_hours" not in merged["metrics"]
        assert merged["metrics"]["tickets"] == 3 and merged["metrics"]["visitors"] == 2080
        # no first response stated is no evidence of recovery: the incident stays
        assert ("cs-first-response-slow", "amz-us-01", "2026-11-02") in live(pipeline)

    def test_an_identical_re_send_is_unchanged_and_judged_once(self, pipeline: Pipeline):
        canonical(pipeline, day("amz-us-01", "2026-11-02"))
        first = pipeline.ingest(zohodesk(SLOW_AMAZON_DAY, EXPORTED), "source:zohodesk")
        again = pipeline.ingest(zohodesk(SLOW_AMAZON_DAY, EXPORTED.replace(hour=11)),
                                "source:zohodesk")
        assert (first.restated, first.opened) == (1, 1)
        assert (again.accepted, again.unchanged, again.restated, again.opened) == (1, 1, 0, 0)
        merged = stored(pipeline, "amazon", "amz-us-01", "2026-11-02")
        assert merged["revision"] == 2
        # the later observation is remembered (a late statement is judged against it)
        assert merged["parts"]["zohodesk"]["observed_at"] == "2026-11-29T11:00:00+00:00"
        late = pipeline.ingest(zohodesk(tickets("Amazon US,Closed,02 Nov 2026 09:00 AM,1"),
                                        EXPORTED.replace(hour=10)), "source:zohodesk")
        assert (late.unchanged, late.restated) == (1, 0)
        assert stored(pipeline, "amazon", "amz-us-01", "2026-11-02")["metrics"]["tickets"] == 2

    def test_canonical_snapshots_are_one_feed_whatever_the_transport(
            self, pipeline: Pipeline, settings: Settings, database_url: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch):
        """Posted over HTTP, then restated by ``watcher ingest``: replaced, as always."""
        with app_client(pipeline.db, settings, pipeline) as api:
            posted = api.post("/v1/snapshots", headers=JSON,
                              json=snapshot(store="a", gmv=1000, orders=40, visitors=900))
            assert posted.json()["accepted"] == 1
        again = tmp_path / "again.jsonl"
        again.write_bytes(jsonl(snapshot(store="a", gmv=1200, orders=40)))
        config = tmp_path / "watcher.yaml"
        config.write_text(f"rules: {ROOT / 'rules'}\n", encoding="utf-8")
        monkeypatch.setenv("WATCHER_DATABASE_URL", database_url)
        monkeypatch.setenv("WATCHER_CONFIG", str(config))
        code, out = watcher("ingest", str(again))
        assert code == 0 and "1 restated" in out, out
        merged = stored(pipeline, "amazon", "a", "2026-10")
        assert merged["metrics"] == {"gmv": 1200, "orders": 40, "average_order_value": 30}
        assert list(merged["parts"]) == ["canonical"] and merged["revision"] == 2
        assert merged["source"] == f"file:{again}"


class TestTwoFeedsStateTheSameMetric:
    def test_the_newest_statement_wins_by_observed_at(self, pipeline: Pipeline):
        erp = Snapshot.model_validate({
            "store": "a", "platform": "amazon", "period": "2026-10",
            "observed_at": "2026-11-02T00:00:00Z", "metrics": {"gmv": 1500, "net_margin": 0.3}})
        canonical(pipeline, {**snapshot(store="a", gmv=1000, orders=40),
                             "observed_at": "2026-11-01T00:00:00Z"})
        pipeline.ingest_snapshots([erp], "test", feed="saihu")
        merged = stored(pipeline, "amazon", "a", "2026-10")
        assert merged["metrics"]["gmv"] == 1500 and merged["metrics"]["orders"] == 40
        assert merged["metrics"]["average_order_value"] == 1500 / 40  # derived on the merge
        # the platform restates later: now it is the newest statement of gmv
        canonical(pipeline, {**snapshot(store="a", gmv=1100, orders=40),
                             "observed_at": "2026-11-03T00:00:00Z"})
        merged = stored(pipeline, "amazon", "a", "2026-10")
        assert merged["metrics"]["gmv"] == 1100 and merged["metrics"]["net_margin"] == 0.3
        assert merged["revision"] == 3

    def test_without_observed_at_the_later_received_wins(self, pipeline: Pipeline,
                                                         clock: Clock):
        canonical(pipeline, snapshot(store="a", gmv=1000))
        clock.advance(minutes=5)
        late = Snapshot.model_validate({"store": "a", "platform": "amazon",
                                        "period": "2026-10", "metrics": {"gmv": 900}})
        pipeline.ingest_snapshots([late], "test", feed="saihu")
        assert stored(pipeline, "amazon", "a", "2026-10")["metrics"]["gmv"] == 900

    def test_a_feed_stating_what_is_stored_adds_its_part_without_a_revision(
            self, pipeline: Pipeline):
        canonical(pipeline, snapshot(store="a", gmv=1000, orders=40))
        same = Snapshot.model_validate({"store": "a", "platform": "amazon",
                                        "period": "2026-10", "metrics": {"gmv": 1000}})
        report = pipeline.ingest_snapshots([same], "test", feed="saihu")
        assert (report.unchanged, report.restated) == (1, 0)
        merged = stored(pipeline, "amazon", "a", "2026-10")
        assert merged["revision"] == 1 and set(merged["parts"]) == {"canonical", "saihu"}
        # the platform stops stating gmv: the ERP's is still there
        canonical(pipeline, snapshot(store="a", orders=41))
        after = stored(pipeline, "amazon", "a", "2026-10")["metrics"]
        assert after == {"gmv": 1000, "orders": 41, "average_order_value": 1000 / 41}

    def test_a_merge_no_snapshot_could_be_is_refused_and_the_stored_one_kept(
            self, pipeline: Pipeline):
        canonical(pipeline, snapshot(store="a", orders=10))
        disputes = Snapshot.model_validate({"store": "a", "platform": "amazon",
                                            "period": "2026-10", "metrics": {"disputes": 20}})
        report = pipeline.ingest_snapshots([disputes], "test", feed="saihu")
        [refused] = report.rejected
        assert report.accepted == 0 and refused.field == "metrics.disputes"
        assert "merged with what feed(s) canonical stated" in refused.error
        merged = stored(pipeline, "amazon", "a", "2026-10")
        assert merged["metrics"] == {"orders": 10} and list(merged["parts"]) == ["canonical"]
        with pipeline.db.engine.connect() as conn:
            [kept] = repo.list_rejections(conn)
        assert kept["field"] == "metrics.disputes"


class TestTheApiShowsTheMergeAndItsParts:
    @pytest.fixture
    def api(self, pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
        with app_client(pipeline.db, settings, pipeline) as client:
            yield client

    def test_one_snapshot_with_each_feeds_part(self, api: TestClient):
        api.post("/v1/snapshots", headers=JSONL, content=json.dumps(
            day("amz-us-01", "2026-11-02")).encode())
        posted = api.post("/v1/sources/zohodesk", content=SLOW_AMAZON_DAY,
                          headers={"content-type": "text/csv"})
        assert (posted.json()["accepted"], posted.json()["restated"]) == (1, 1)
        found = api.get("/v1/snapshots/amazon/amz-us-01/2026-11-02").json()
        assert set(found["metrics"]) == PLATFORM_METRICS | TICKET_METRICS
        assert found["source"] == "source:zohodesk" and found["revision"] == 2
        parts = found["parts"]
        assert (parts["canonical"]["source"], parts["zohodesk"]["source"]) == (
            "http", "source:zohodesk")
        assert parts["zohodesk"]["metrics"] == {"tickets": 2, "tickets_resolved": 1,
                                                "cs_first_response_hours": 28}
        [listed] = api.get("/v1/snapshots", params={"store": "amz-us-01"}).json()
        assert listed["parts"] == parts


class TestRowsStoredBeforeFeeds:
    def test_a_row_without_parts_is_the_part_of_the_feed_its_source_names(
            self, pipeline: Pipeline):
        old = Snapshot.model_validate({"store": "a", "platform": "amazon", "period": "2026-10",
                                       "metrics": {"tickets": 4}})
        row = repo.snapshot_row(old, "", "source:zohodesk",
                                datetime(2026, 11, 1, tzinfo=UTC), feed=None)
        assert (row["feed"], row["parts"]) == (None, None)
        with pipeline.db.engine.begin() as conn:
            conn.execute(insert(snapshots), [row])
        canonical(pipeline, snapshot(store="a", gmv=1000))
        merged = stored(pipeline, "amazon", "a", "2026-10")
        assert merged["metrics"] == {"tickets": 4, "gmv": 1000}
        assert set(merged["parts"]) == {"zohodesk", "canonical"}


class TestStatedMetrics:
    def test_a_derived_rate_is_left_out_and_a_sent_one_kept(self):
        derived = Snapshot.model_validate({"store": "a", "platform": "amazon",
                                           "period": "2026-10",
                                           "metrics": {"orders": 10, "disputes": 1}})
        assert derived.metrics["dispute_rate"] == 0.1
        assert feeds.stated_metrics(derived.metrics, derived.period.kind) == {
            "orders": 10, "disputes": 1}
        sent = {"orders": 10, "disputes": 1, "dispute_rate": 0.05}  # the platform knows better
        assert feeds.stated_metrics(sent, derived.period.kind) == sent

    @pytest.mark.parametrize(("source", "feed"), [
        ("source:zohodesk", "zohodesk"), ("drop:saihu/store-1/x.csv", "saihu"),
        ("http", "canonical"), ("file:/tmp/x.jsonl", "canonical"), ("drop:x.jsonl", "canonical"),
        ("nats:KPI", "canonical"), (None, "canonical")])
    def test_the_feed_of_an_old_row_by_its_source(self, source: str | None, feed: str):
        assert feeds.legacy_feed(source) == feed


class TestEveryEdgeNamesTheFeed:
    """The feed is the adapter's or mapping's name whatever carries the payload."""

    def test_a_bus_message_is_canonical_or_the_feed_its_source_header_names(self):
        body = (ROOT / "tests" / "fixtures" / "platforms"
                / "shopee-get-shop-performance.json").read_bytes()
        sent = datetime(2026, 11, 2, tzinfo=UTC)
        [platform] = records_of(Message(
            "kpi.snapshots.shopee.shopee-my-02", body,
            {"Watcher-Source": "shopee", "Watcher-Period": "2026-10-28"}, 7, sent),
            "kpi.snapshots", max_bytes=len(body))
        plain = jsonl(snapshot(store="amz-us-01"))
        [snapshots_] = records_of(Message("kpi.snapshots.amazon.amz-us-01", plain, {}, 8, sent),
                                  "kpi.snapshots", max_bytes=len(plain))
        assert isinstance(platform, RawRecord) and isinstance(snapshots_, RawRecord)
        assert (platform.feed, snapshots_.feed) == ("shopee", "canonical")

    def test_a_mapping_in_any_edge_is_its_own_feed_and_canonical_is_reserved(
            self, tmp_path: Path):
        catalog = load_catalog(ROOT / "mappings")
        found = catalog.records("zohodesk", SLOW_AMAZON_DAY)
        assert [r.feed for r in found if isinstance(r, RawRecord)] == ["zohodesk"]
        [canonical_] = read_records(jsonl(snapshot()))
        assert canonical_.feed == feeds.CANONICAL
        (tmp_path / "canonical.yaml").write_text(
            (ROOT / "mappings" / "zohodesk.yaml").read_text(encoding="utf-8")
            .replace("name: zohodesk", "name: canonical"), encoding="utf-8")
        with pytest.raises(ConfigError, match="'canonical' is a built-in source"):
            load_catalog(tmp_path)


class TestTheChartRingsWhatWasRestated:
    def test_a_day_is_restated_for_a_metric_only_when_its_own_feed_restated_it(
            self, pipeline: Pipeline):
        canonical(pipeline, day("amz-us-01", "2026-11-02"), day("amz-us-01", "2026-11-03"))
        pipeline.ingest(zohodesk(SLOW_AMAZON_DAY, EXPORTED), "source:zohodesk")
        changed = {**day("amz-us-01", "2026-11-03"), "observed_at": "2026-11-29T10:00:00Z"}
        changed["metrics"] = {**changed["metrics"], "visitors": 2500}
        canonical(pipeline, changed)
        with pipeline.db.engine.connect() as conn:
            visitors = repo.store_history(conn, "amazon", "amz-us-01", "day", 10, "visitors")
            tickets_ = repo.store_history(conn, "amazon", "amz-us-01", "day", 10, "tickets")
            rates = repo.store_history(conn, "amazon", "amz-us-01", "day", 10,
                                       "cs_resolution_rate")
        assert [(s.period.text, r) for s, r in visitors] == [("2026-11-02", 1),
                                                              ("2026-11-03", 2)]
        # 2 Nov (revision 2): the help desk's first statement, and the rate derived from it
        assert (tickets_[0][1], rates[0][1]) == (1, 1)
        assert [s.metrics.get("tickets") for s, _ in visitors] == [2, None]
