"""Platform-stated targets are rules too: each fixture's breaches become incidents."""

from __future__ import annotations

from tests.conftest import jsonl, snapshot
from tests.test_dropfolder import FIXTURES
from tests.test_pipeline import incidents
from watcher.pipeline import Pipeline
from watcher.sources import records
from watcher.validation import read_records


def ingest_fixture(pipeline: Pipeline, source: str, name: str, store: str) -> None:
    report = pipeline.ingest(records(source, (FIXTURES / name).read_bytes(), store=store,
                                     period="2026-10-28"), f"source:{source}")
    assert report.accepted >= 1 and not report.rejected


def live_rules(pipeline: Pipeline) -> dict[str, str]:
    return {f"{i.rule}@{i.store}": i.severity for i in incidents(pipeline, status="open")}


class TestPlatformTargets:
    def test_amazon_report_breaches(self, pipeline: Pipeline):
        ingest_fixture(pipeline, "amazon-spapi", "amazon-spapi-seller-performance.json", "amz")
        found = live_rules(pipeline)
        assert found["platform-target/order_defect_rate_mfn@amz-us"] == "critical"
        assert found["platform-target/order_defect_rate@amz-us"] == "critical"
        assert "platform-target/order_defect_rate_afn@amz-us" not in found  # 0.37 % < 1 %
        assert "platform-target/late_shipment_rate@amz-ca" not in found  # 1.25 % < 4 %

    def test_shopee_performance_breaches_with_percent_units(self, pipeline: Pipeline):
        ingest_fixture(pipeline, "shopee", "shopee-get-shop-performance.json", "sho")
        found = live_rules(pipeline)
        assert found["platform-target/late_shipment_rate@sho"] == "high"  # 6.1 % vs < 5 %
        assert found["platform-target/chat_response_rate@sho"] == "medium"  # 62 % vs >= 70 %
        assert not any("non_fulfillment" in key for key in found)  # 1.2 % < 5 %
        assert not any("response_hours" in key for key in found)  # null: no data

    def test_meeting_the_platform_target_later_resolves(self, pipeline: Pipeline):
        target = {"order_defect_rate": {"value": 0.01, "comparator": "<"}}
        for period, rate in (("2026-10-01", 0.02), ("2026-10-02", 0.005)):
            pipeline.ingest(read_records(jsonl(snapshot(
                period=period, order_defect_rate=rate, targets=target))), "t")
        [incident] = incidents(pipeline)
        assert incident.rule == "platform-target/order_defect_rate"
        assert incident.status.value == "resolved"

    def test_exactly_at_a_strict_target_is_a_breach(self, pipeline: Pipeline):
        target = {"order_defect_rate": {"value": 0.01, "comparator": "<"}}
        pipeline.ingest(read_records(jsonl(snapshot(order_defect_rate=0.01,
                                                    targets=target))), "t")
        assert [i.rule for i in incidents(pipeline)] == ["platform-target/order_defect_rate"]
