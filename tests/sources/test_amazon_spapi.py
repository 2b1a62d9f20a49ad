"""Amazon SP-API seller performance report -> one canonical snapshot per marketplace."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.errors import InputError
from watcher.sources.amazon_spapi import MARKETPLACES, AmazonSpApiSource

from . import OBSERVED, as_bytes, assert_canonical, clock, fixture, fixture_json

LT, GT, EQ = "<", ">", "=="
CLEAN = {"account_at_risk": 0, "account_deactivated": 0, "account_suspended": 0,
         "account_status_unknown": 0}


def parse(content: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    records = AmazonSpApiSource(clock=clock).parse(content, store="amz-01", **kwargs)
    assert_canonical(records)
    return records


def one_marketplace(entry: dict[str, Any], status: str | None = None) -> bytes:
    entry = {"marketplaceId": "ATVPDKIKX0DER", **entry}
    report: dict[str, Any] = {"performanceMetrics": [entry]}
    if status is not None:
        report["accountStatuses"] = [{"marketplaceId": "ATVPDKIKX0DER", "status": status}]
    return as_bytes(report)


def rate_block(rate: Any, target: Any = 0.04, condition: str = "LESS_THAN") -> dict[str, Any]:
    return {"reportingDateRange": {"reportingDateFrom": "2026-10-01T00:00Z",
                                   "reportingDateTo": "2026-10-30T23:59Z"},
            "rate": rate, "targetValue": target, "targetCondition": condition}


def refused(content: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        AmazonSpApiSource(clock=clock).parse(content, store="amz-01")
    assert caught.value.location == "amazon-spapi"
    return caught.value


class TestAmazonSpApiSource:
    def test_published_fixture_gives_one_snapshot_per_marketplace(self):
        us, ca = parse(fixture("amazon-spapi-seller-performance.json"), operator="li.wei")
        assert us == {
            "store": "amz-01-us", "platform": "amazon", "period": "2026-10-28",
            "operator": "li.wei", "observed_at": OBSERVED, "segment": {"marketplace": "us"},
            "metrics": {
                **CLEAN, "account_at_risk": 1,
                "order_defect_rate_afn": 0.0037, "order_defect_rate_mfn": 0.0117,
                "order_defect_rate": 0.0117, "late_shipment_rate": 0.0225,
                "pre_fulfillment_cancellation_rate": 0.0077, "valid_tracking_rate": 0.9769,
                "on_time_delivery_rate": 0.9239, "listing_policy_violation_count": 1,
                "ip_complaint_count": 0, "policy_violation_count": 1,
                "account_warning_count": 0, "penalty_count": 0, "major_penalty_count": 0,
            },
            "targets": {
                "order_defect_rate_afn": {"value": 0.01, "comparator": LT},
                "order_defect_rate_mfn": {"value": 0.01, "comparator": LT},
                "order_defect_rate": {"value": 0.01, "comparator": LT},
                "late_shipment_rate": {"value": 0.04, "comparator": LT},
                "pre_fulfillment_cancellation_rate": {"value": 0.025, "comparator": LT},
                "valid_tracking_rate": {"value": 0.95, "comparator": GT},
                "on_time_delivery_rate": {"value": 0.9, "comparator": GT},
                "listing_policy_violation_count": {"value": 0, "comparator": EQ},
                "ip_complaint_count": {"value": 0, "comparator": EQ},
            },
        }
        assert ca == {
            "store": "amz-01-ca", "platform": "amazon", "period": "2026-10-28",
            "operator": "li.wei", "observed_at": OBSERVED, "segment": {"marketplace": "ca"},
            "metrics": {**CLEAN, "late_shipment_rate": 0.0125, "penalty_count": 0,
                        "major_penalty_count": 0},
            "targets": {"late_shipment_rate": {"value": 0.04, "comparator": LT}},
        }

    def test_messy_variant_other_spellings_strings_and_suspended(self):
        [de] = parse(fixture("amazon-spapi-messy.json"))
        assert de == {
            "store": "amz-01", "platform": "amazon", "period": "2026-10-30",
            "operator": None, "observed_at": OBSERVED, "segment": {"marketplace": "de"},
            "metrics": {
                **CLEAN, "account_suspended": 1,
                "order_defect_rate_afn": 0.0052, "order_defect_rate": 0.0052,
                "pre_fulfillment_cancellation_rate": 0.0328,
                "unit_on_time_delivery_rate": 0.91, "invoice_defect_rate": 0.012,
                "safety_complaint_count": 2, "other_policy_violation_count": 1,
                "policy_violation_count": 3, "document_request_count": 3,
                "account_warning_count": 1, "penalty_count": 2, "major_penalty_count": 1,
            },
            "targets": {
                "order_defect_rate_afn": {"value": 0.01, "comparator": LT},
                "order_defect_rate": {"value": 0.01, "comparator": LT},
                "pre_fulfillment_cancellation_rate": {"value": 0.025, "comparator": LT},
                "unit_on_time_delivery_rate": {"value": 0.9, "comparator": GT},
                "invoice_defect_rate": {"value": 0.05, "comparator": LT},
                "safety_complaint_count": {"value": 0, "comparator": EQ},
                "document_request_count": {"value": 0, "comparator": EQ},
            },
        }

    def test_a_single_marketplace_keeps_the_store_id_and_still_names_the_marketplace(self):
        [snap] = parse(one_marketplace({"lateShipmentRate": rate_block(0.01)}))
        assert snap["store"] == "amz-01"
        assert snap["segment"] == {"marketplace": "us"}

    @pytest.mark.parametrize("spelling", ["preFulfillmentCancellationRate",
                                          "prefulfillmentCancelRate"])
    def test_both_cancellation_spellings_are_read(self, spelling: str):
        [snap] = parse(one_marketplace({spelling: rate_block(0.02, 0.025)}))
        assert snap["metrics"] == {"pre_fulfillment_cancellation_rate": 0.02}

    @pytest.mark.parametrize("spelling", ["warningStates", "warningState"])
    def test_warning_states_count_only_bad_ones(self, spelling: str):
        warnings = [{"warningType": "a", "status": "BAD"}, {"warningType": "b", "status": "NONE"},
                    {"warningType": "c", "status": "bad"}]
        [snap] = parse(one_marketplace({spelling: warnings}))
        assert snap["metrics"] == {"account_warning_count": 2, "penalty_count": 2}

    @pytest.mark.parametrize("spelling", ["documentRequests", "documentRequest"])
    def test_document_requests_are_counted_apart_from_violations(self, spelling: str):
        block = {"defectsCount": 4, "targetValue": 0, "targetCondition": "EQUALS"}
        [snap] = parse(one_marketplace({spelling: block}))
        assert snap["metrics"] == {"document_request_count": 4}
        assert snap["targets"] == {"document_request_count": {"value": 0, "comparator": EQ}}

    @pytest.mark.parametrize(("status", "flag"), [
        ("AT_RISK", "account_at_risk"), ("DEACTIVATED", "account_deactivated"),
        ("SUSPENDED", "account_suspended"), ("UNDER_REVIEW", "account_status_unknown"),
        ("at_risk", "account_at_risk"),
    ])
    def test_account_status_becomes_a_flag_and_unknown_values_are_accepted(
            self, status: str, flag: str):
        [snap] = parse(one_marketplace({"lateShipmentRate": rate_block(0.01)}, status))
        assert {k: v for k, v in snap["metrics"].items() if k in CLEAN} == {**CLEAN, flag: 1}

    def test_normal_status_sets_every_flag_to_zero(self):
        [snap] = parse(one_marketplace({}, "NORMAL"))
        assert snap["metrics"] == {**CLEAN, "penalty_count": 0, "major_penalty_count": 0}

    @pytest.mark.parametrize(("status", "warnings", "penalties"), [
        ("DEACTIVATED", [], 1), ("SUSPENDED", [{"warningType": "x", "status": "BAD"}], 2),
        ("AT_RISK", [], 0), ("NORMAL", [{"warningType": "x", "status": "NONE"}], 0),
    ])
    def test_penalty_count_is_a_deactivation_or_suspension_plus_bad_warnings(
            self, status: str, warnings: list[dict[str, str]], penalties: int):
        [snap] = parse(one_marketplace({"warningStates": warnings}, status))
        assert snap["metrics"]["penalty_count"] == penalties

    @pytest.mark.parametrize(("status", "warnings", "major"), [
        ("DEACTIVATED", [], 1), ("SUSPENDED", [{"warningType": "x", "status": "BAD"}], 1),
        ("AT_RISK", [{"warningType": "x", "status": "BAD"}], 0), ("NORMAL", [], 0),
    ])
    def test_a_suspension_or_deactivation_is_a_major_penalty_and_a_warning_is_not(
            self, status: str, warnings: list[dict[str, str]], major: int):
        [snap] = parse(one_marketplace({"warningStates": warnings}, status))
        assert snap["metrics"]["major_penalty_count"] == major

    def test_without_a_known_status_no_major_count_is_stated(self):
        warning = [{"warningType": "x", "status": "BAD"}]
        [no_status] = parse(one_marketplace({"warningStates": warning}))
        [unknown] = parse(one_marketplace({"warningStates": warning}, "UNDER_REVIEW"))
        assert no_status["metrics"]["penalty_count"] == 1
        assert "major_penalty_count" not in no_status["metrics"]  # not stated: not zero
        assert unknown["metrics"]["account_status_unknown"] == 1
        assert "major_penalty_count" not in unknown["metrics"]  # maybe a sanction: no guess

    def test_policy_violations_alone_are_not_penalties(self):
        block = {"defectsCount": 3, "targetValue": 0, "targetCondition": "EQUALS"}
        [snap] = parse(one_marketplace({"listingPolicyViolations": block}))
        assert snap["metrics"]["policy_violation_count"] == 3
        assert "penalty_count" not in snap["metrics"]  # no status, no warnings: not stated

    def test_a_marketplace_with_only_a_status_is_dated_by_the_rest_of_the_report(self):
        report = {"accountStatuses": [{"marketplaceId": "A1F83G8C2ARO7P", "status": "AT_RISK"}],
                  "performanceMetrics": [{"marketplaceId": "A1PA6795UKMFR9",
                                          "lateShipmentRate": rate_block(0.01)}]}
        de, uk = parse(as_bytes(report))
        assert (de["store"], de["period"]) == ("amz-01-de", "2026-10-30")
        assert (uk["store"], uk["period"]) == ("amz-01-uk", "2026-10-30")
        assert uk["metrics"] == {**CLEAN, "account_at_risk": 1, "penalty_count": 0,
                                "major_penalty_count": 0}

    def test_without_any_reporting_date_the_period_is_the_current_utc_day(self):
        [snap] = parse(one_marketplace({}, "NORMAL"))
        assert snap["period"] == "2026-11-01"

    def test_the_caller_can_override_the_period(self):
        records = parse(fixture("amazon-spapi-seller-performance.json"), period="2026-10")
        assert [r["period"] for r in records] == ["2026-10", "2026-10"]

    def test_an_unlisted_marketplace_id_is_kept_as_the_country(self):
        report = {"accountStatuses": [{"marketplaceId": "ATVPDKIKX0DER", "status": "NORMAL"},
                                      {"marketplaceId": "A2ZZNEWMKT", "status": "NORMAL"}]}
        _, new = parse(as_bytes(report))
        assert (new["store"], new["segment"]) == ("amz-01-a2zznewmkt",
                                                  {"marketplace": "a2zznewmkt"})

    def test_missing_blocks_and_null_values_are_omitted_not_zero(self):
        block = rate_block(None)
        [snap] = parse(one_marketplace({"lateShipmentRate": block,
                                        "validTrackingRate": rate_block("0.97", "0.95",
                                                                        "GREATER_THAN")}))
        assert snap["metrics"] == {"valid_tracking_rate": 0.97}
        assert snap["targets"] == {"valid_tracking_rate": {"value": 0.95, "comparator": GT}}

    def test_a_target_without_condition_is_kept_without_comparator(self):
        block = rate_block(0.01)
        del block["targetCondition"]
        [snap] = parse(one_marketplace({"lateShipmentRate": block}))
        assert snap["targets"] == {"late_shipment_rate": 0.04}

    def test_order_defect_rate_is_the_worse_channel_with_its_target(self):
        odr = {"afn": {"rate": 0.02, "targetValue": 0.015, "targetCondition": "LESS_THAN"},
               "mfn": {"rate": "0.004", "targetValue": 0.01, "targetCondition": "LESS_THAN"}}
        [snap] = parse(one_marketplace({"orderDefectRate": odr}))
        assert snap["metrics"]["order_defect_rate"] == 0.02
        assert snap["targets"]["order_defect_rate"] == {"value": 0.015, "comparator": LT}

    def test_an_empty_report_gives_no_snapshot(self):
        assert parse(b'{"accountStatuses": [], "performanceMetrics": []}') == []

    def test_the_marketplace_table_covers_the_documented_ids(self):
        assert {k: MARKETPLACES[k] for k in (
            "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2", "A1F83G8C2ARO7P", "A1PA6795UKMFR9",
            "A1VC38T7YXB528")} == {"ATVPDKIKX0DER": "US", "A2EUQ1WTGCTBG2": "CA",
                                   "A1F83G8C2ARO7P": "UK", "A1PA6795UKMFR9": "DE",
                                   "A1VC38T7YXB528": "JP"}


    # errors: InputError, location "amazon-spapi", field = the path in the report
    def test_a_payload_of_another_shape_is_refused(self):
        error = refused(fixture("shopee-get-shop-performance.json"))
        assert "neither accountStatuses nor performanceMetrics" in str(error)

    def test_an_unknown_target_condition_names_the_field(self):
        error = refused(one_marketplace(
            {"lateShipmentRate": rate_block(0.01, condition="AT_MOST")}))
        assert error.field == "performanceMetrics[0].lateShipmentRate.targetCondition"
        assert "AT_MOST" in str(error)

    def test_a_rate_out_of_range_names_the_platform_field(self):
        error = refused(one_marketplace({"lateShipmentRate": rate_block(2.5)}))
        assert error.field == "performanceMetrics[0].lateShipmentRate.rate"
        assert "metrics.late_shipment_rate" in str(error)

    def test_a_non_number_names_the_field(self):
        error = refused(one_marketplace({"lateShipmentRate": rate_block("lots")}))
        assert error.field == "performanceMetrics[0].lateShipmentRate.rate"

    def test_a_bad_reporting_date_names_the_field(self):
        block = rate_block(0.01)
        block["reportingDateRange"]["reportingDateTo"] = "28/10/2026"
        error = refused(one_marketplace({"lateShipmentRate": block}))
        assert error.field == ("performanceMetrics[0].lateShipmentRate."
                               "reportingDateRange.reportingDateTo")

    def test_a_negative_or_fractional_count_is_refused(self):
        error = refused(one_marketplace({"listingPolicyViolations": {"defectsCount": -1}}))
        assert error.field == "performanceMetrics[0].listingPolicyViolations.defectsCount"

    def test_a_marketplace_listed_twice_is_refused(self):
        report = fixture_json("amazon-spapi-seller-performance.json")
        report["performanceMetrics"].append({"marketplaceId": "ATVPDKIKX0DER"})
        error = refused(as_bytes(report))
        assert error.field == "performanceMetrics[2].marketplaceId"

    def test_an_entry_without_marketplace_id_is_refused(self):
        error = refused(b'{"performanceMetrics": [{"lateShipmentRate": {}}]}')
        assert error.field == "performanceMetrics[0].marketplaceId"
