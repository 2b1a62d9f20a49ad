"""Lingxing ERP store performance detail -> one canonical Amazon snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.errors import InputError
from watcher.sources.lingxing import LingxingSource

from . import OBSERVED, as_bytes, assert_canonical, clock, fixture, fixture_json

LT, GT, EQ = "<", ">", "=="


def parse(content: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    records = LingxingSource(clock=clock).parse(content, store="amz-us-01", **kwargs)
    assert_canonical(records)
    return records


def refused(content: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        LingxingSource(clock=clock).parse(content, store="amz-us-01")
    assert caught.value.location == "lingxing"
    return caught.value


def detail(**data: Any) -> bytes:
    return as_bytes({"code": 0, "message": "Success", "error_details": [], "data": data})


class TestLingxingSource:
    def test_store_target_detail_fixture(self):
        assert parse(fixture("lingxing-store-target-detail.json"), operator="li.wei") == [{
            "store": "amz-us-01", "platform": "amazon", "period": "2026-10-28",
            "operator": "li.wei", "observed_at": OBSERVED, "segment": {},
            "metrics": {
                "order_defect_rate_afn": 0.0033, "order_defect_rate_mfn": 0.0117,
                "order_defect_rate": 0.0117, "late_shipment_rate": 0.0225,
                "pre_fulfillment_cancellation_rate": 0.0077, "valid_tracking_rate": 0.9769,
                "on_time_delivery_rate": 0.9239, "invoice_defect_rate": 0.0044,
                "policy_violation_count": 2, "listing_policy_violation_count": 1,
                "ip_complaint_count": 1, "suspected_ip_violation_count": 0,
                "authenticity_complaint_count": 0, "condition_complaint_count": 0,
                "safety_complaint_count": 0, "food_product_safety_issue_count": 0,
                "restricted_product_violation_count": 0, "other_policy_violation_count": 0,
                "review_policy_violation_count": 0, "policy_warning_count": 3,
                "penalty_count": 3, "ahr_score": 236,
            },
            "targets": {
                "order_defect_rate_afn": {"value": 0.01, "comparator": LT},
                "order_defect_rate_mfn": {"value": 0.01, "comparator": LT},
                "order_defect_rate": {"value": 0.01, "comparator": LT},
                "late_shipment_rate": {"value": 0.04, "comparator": LT},
                "pre_fulfillment_cancellation_rate": {"value": 0.025, "comparator": LT},
                "valid_tracking_rate": {"value": 0.95, "comparator": GT},
                "on_time_delivery_rate": {"value": 0.9, "comparator": GT},
                "invoice_defect_rate": {"value": 0.05, "comparator": LT},
                "policy_violation_count": {"value": 0, "comparator": EQ},
            },
        }]

    def test_rates_are_percent_strings_and_a_percent_sign_is_tolerated(self):
        [snap] = parse(detail(pullDate="2026-10-28", lateShipment={"rate": "0.8%"},
                              validTracking={"rate": 99}))
        assert snap["metrics"] == {"late_shipment_rate": 0.008, "valid_tracking_rate": 0.99}

    def test_empty_strings_are_no_data(self):
        [snap] = parse(fixture("lingxing-store-target-detail.json"))
        assert "unit_on_time_delivery_rate" not in snap["metrics"]
        assert "unit_on_time_delivery_rate" not in snap["targets"]

    def test_a_standard_without_its_metric_gives_no_target(self):
        [snap] = parse(detail(pullDate="2026-10-28", lateShipment={"rate": "1"},
                              standard={"lateShipment": "4", "returnDissatisfaction": "10"}))
        assert snap["targets"] == {"late_shipment_rate": {"value": 0.04, "comparator": LT}}

    def test_the_health_rating_keeps_its_own_scale(self):
        [snap] = parse(detail(pullDate="2026-10-28",
                              accountHealthRating={"ahrScore": "820", "ahrStatus": "Healthy"}))
        assert snap["metrics"] == {"ahr_score": 820}

    def test_without_pull_date_the_period_is_the_utc_day_unless_overridden(self):
        payload = detail(lateShipment={"rate": "1"})
        assert parse(payload)[0]["period"] == "2026-11-01"
        assert parse(payload, period="2026-10")[0]["period"] == "2026-10"

    def test_missing_blocks_are_fine(self):
        data = fixture_json("lingxing-store-target-detail.json")["data"]
        del data["orderWithDefect"], data["standard"], data["commodityPolicyCompliance"]
        [snap] = parse(detail(**data))
        assert snap["metrics"]["order_defect_rate"] == 0.0033
        assert snap["targets"] == {}

    # errors: InputError, location "lingxing", field = the path in the payload

    def test_a_non_zero_code_is_refused_with_lingxings_message_and_details(self):
        error = refused(fixture("lingxing-error.json"))
        assert error.field == "code"
        assert "Store not authorised" in str(error) and "sid 4795" in str(error)

    def test_a_rate_above_100_percent_names_the_platform_field(self):
        error = refused(detail(pullDate="2026-10-28", validTracking={"rate": "101.5"}))
        assert error.field == "data.validTracking.rate"

    def test_a_bad_pull_date_names_it(self):
        error = refused(detail(pullDate="28.10.2026", lateShipment={"rate": "1"}))
        assert error.field == "data.pullDate"

    def test_data_that_is_not_an_object_is_refused(self):
        error = refused(b'{"code": 0, "message": "Success", "data": []}')
        assert error.field == "data"
