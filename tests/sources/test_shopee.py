"""Shopee v2 account health -> one canonical snapshot per shop and day."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.errors import InputError
from watcher.sources.shopee import ShopeeSource

from . import OBSERVED, as_bytes, assert_canonical, clock, fixture, fixture_json


def parse(content: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    records = ShopeeSource(clock=clock).parse(content, store="shopee-my-02", **kwargs)
    assert_canonical(records)
    return records


def refused(content: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        ShopeeSource(clock=clock).parse(content, store="shopee-my-02")
    assert caught.value.location == "shopee"
    return caught.value


def performance(*metrics: dict[str, Any]) -> bytes:
    return as_bytes({"request_id": "r", "error": "", "message": "",
                     "response": {"metric_list": list(metrics)}})


def metric(name: str, value: Any, unit: int, target: Any = None) -> dict[str, Any]:
    return {"metric_type": 1, "metric_id": 1, "parent_metric_id": 0, "metric_name": name,
            "current_period": value, "last_period": None, "unit": unit, "target": target}


PERFORMANCE = {
    "late_shipment_rate": 0.061, "non_fulfillment_rate": 0.012, "preparation_days": 1.4,
    "chat_response_rate": 0.62, "shop_rating": 4.7,
}
PERFORMANCE_TARGETS = {
    "late_shipment_rate": {"value": 0.05, "comparator": "<"},
    "non_fulfillment_rate": {"value": 0.05, "comparator": "<"},
    "preparation_days": {"value": 2, "comparator": "<="},
    "chat_response_rate": {"value": 0.7, "comparator": ">="},
    "shop_rating": {"value": 4.5, "comparator": ">="},
}
PENALTY = {"penalty_points": 3, "ongoing_punishment_count": 1, "punishment_tier_max": 1,
           "penalty_count": 1, "major_penalty_count": 0}


class TestShopeeSource:
    def test_shop_performance_fixture(self):
        assert parse(fixture("shopee-get-shop-performance.json"), operator="chen.jing") == [{
            "store": "shopee-my-02", "platform": "shopee", "period": "2026-11-01",
            "operator": "chen.jing", "observed_at": OBSERVED, "segment": {},
            "metrics": PERFORMANCE, "targets": PERFORMANCE_TARGETS,
        }]

    def test_null_current_period_is_no_data_not_zero(self):
        [snap] = parse(fixture("shopee-get-shop-performance.json"))
        assert "chat_response_hours" not in snap["metrics"]
        assert "chat_response_hours" not in snap["targets"]

    def test_shop_penalty_fixture(self):
        assert parse(fixture("shopee-shop-penalty.json")) == [{
            "store": "shopee-my-02", "platform": "shopee", "period": "2026-11-01",
            "operator": None, "observed_at": OBSERVED, "segment": {},
            "metrics": PENALTY, "targets": {},
        }]

    def test_no_punishment_is_zero_count_and_tier_zero(self):
        [snap] = parse(fixture("shopee-shop-penalty-none.json"))
        assert snap["metrics"] == {"penalty_points": 0, "ongoing_punishment_count": 0,
                                   "punishment_tier_max": 0, "penalty_count": 0,
                                   "major_penalty_count": 0}

    def test_each_ongoing_punishment_is_a_penalty_and_points_alone_are_not(self):
        penalty = {"request_id": "r", "error": "", "message": "", "response": {
            "penalty_points": {"overall_penalty_points": 5},
            "ongoing_punishment": [{"punishment_tier": 2}, {"punishment_tier": 3}]}}
        points_only = {**penalty, "response": {"penalty_points": {"overall_penalty_points": 5}}}
        [both] = parse(as_bytes(penalty))
        [points] = parse(as_bytes(points_only))
        assert both["metrics"]["penalty_count"] == 2
        assert "penalty_count" not in points["metrics"]  # no punishment list: not stated

    def test_punishments_of_tier_2_and_above_are_major_penalties(self):
        def shop(*tiers: Any) -> dict[str, Any]:
            [snap] = parse(as_bytes({"request_id": "r", "error": "", "message": "", "response": {
                "ongoing_punishment": [{"punishment_tier": t, "punishment_name": "x"}
                                       for t in tiers]}}))
            return dict(snap["metrics"])
        assert shop(1)["major_penalty_count"] == 0  # the fixture's deboost: minor
        assert shop(2)["major_penalty_count"] == 1
        assert shop(1, 2, 5) == {"ongoing_punishment_count": 3, "penalty_count": 3,
                                 "punishment_tier_max": 5, "major_penalty_count": 2}
        assert "major_penalty_count" not in shop(3, None)  # one tier unstated: no guess

    def test_both_answers_in_one_array_make_one_snapshot(self):
        both = [fixture_json("shopee-get-shop-performance.json"),
                fixture_json("shopee-shop-penalty.json")]
        [snap] = parse(as_bytes(both))
        assert snap["metrics"] == {**PERFORMANCE, **PENALTY}
        assert snap["targets"] == PERFORMANCE_TARGETS

    def test_messy_variant_units_strings_children_and_unknown_metrics(self):
        [snap] = parse(fixture("shopee-get-shop-performance-messy.json"))
        assert snap["metrics"] == {
            "cancellation_rate": 0.009,          # "0.9" percent
            "preparation_days": 1.5,             # 129600 seconds
            "chat_response_hours": 12,           # 0.5 days
            "chat_response_rate": 0.95,          # "95" percent, target null
            "listing_violation_count": 3,        # 2 + "1"; the child metric is not re-counted
        }
        assert snap["targets"] == {
            "cancellation_rate": {"value": 0.025, "comparator": "<"},
            "preparation_days": {"value": 2, "comparator": "<="},
            "chat_response_hours": {"value": 24, "comparator": "<="},
        }

    @pytest.mark.parametrize(("unit", "value", "hours"), [(3, 7200, 2), (4, 1, 24), (5, 3, 3)])
    def test_response_time_becomes_hours_from_any_time_unit(self, unit: int, value: float,
                                                             hours: float):
        [snap] = parse(performance(metric("response_time", value, unit,
                                          {"value": value, "comparator": "<="})))
        assert snap["metrics"] == {"chat_response_hours": hours}
        assert snap["targets"] == {"chat_response_hours": {"value": hours, "comparator": "<="}}

    def test_equals_sign_comparator_is_read_as_equality(self):
        [snap] = parse(performance(metric("shop_rating", 5, 1, {"value": 5, "comparator": "="})))
        assert snap["targets"] == {"shop_rating": {"value": 5, "comparator": "=="}}

    def test_a_target_without_comparator_is_a_plain_number(self):
        [snap] = parse(performance(metric("shop_rating", 4, 1, {"value": 4.5})))
        assert snap["targets"] == {"shop_rating": 4.5}

    def test_period_defaults_to_the_utc_day_and_can_be_overridden(self):
        [snap] = parse(fixture("shopee-shop-penalty.json"), period="2026-10-31")
        assert snap["period"] == "2026-10-31"

    def test_only_null_metrics_give_no_snapshot(self):
        assert parse(performance(metric("late_shipment_rate", None, 2))) == []

    # errors: InputError, location "shopee", field = the path in the payload

    def test_an_error_envelope_is_refused_with_shopees_message(self):
        error = refused(fixture("shopee-error.json"))
        assert error.field == "error"
        assert "error_auth" in str(error) and "Invalid access_token." in str(error)

    def test_an_error_inside_an_array_names_its_position(self):
        error = refused(as_bytes([fixture_json("shopee-shop-penalty.json"),
                                  fixture_json("shopee-error.json")]))
        assert error.field == "[1].error"

    def test_the_same_answer_twice_is_refused(self):
        penalty = fixture_json("shopee-shop-penalty.json")
        error = refused(as_bytes([penalty, penalty]))
        assert error.field == "[1].response" and "second shop_penalty" in str(error)

    def test_an_unrecognised_response_shape_is_refused(self):
        error = refused(b'{"error": "", "message": "", "response": {"shop_name": "x"}}')
        assert error.field == "response"

    def test_a_unit_that_cannot_express_the_metric_names_the_unit(self):
        error = refused(performance(metric("late_shipment_rate", 6.1, 3)))
        assert error.field == "response.metric_list[0].unit"

    def test_an_unknown_comparator_names_the_field(self):
        error = refused(performance(metric("shop_rating", 4, 1,
                                           {"value": 4.5, "comparator": "~"})))
        assert error.field == "response.metric_list[0].target.comparator"

    def test_a_percent_above_100_is_out_of_range_and_names_the_field(self):
        error = refused(performance(metric("late_shipment_rate", 140, 2)))
        assert error.field == "response.metric_list[0].current_period"
        assert "metrics.late_shipment_rate" in str(error)

    def test_not_json_is_refused(self):
        error = refused(b"<html>502 Bad Gateway</html>")
        assert error.field is None and "not valid JSON" in str(error)
