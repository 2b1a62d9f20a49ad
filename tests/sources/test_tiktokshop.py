"""TikTok Shop analytics shop performance -> one canonical snapshot per interval."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.errors import InputError
from watcher.sources.tiktokshop import TikTokShopSource

from . import OBSERVED, as_bytes, assert_canonical, clock, fixture


def parse(content: bytes, **kwargs: Any) -> list[dict[str, Any]]:
    records = TikTokShopSource(clock=clock).parse(content, store="tts-uk-03", **kwargs)
    assert_canonical(records)
    return records


def refused(content: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        TikTokShopSource(clock=clock).parse(content, store="tts-uk-03")
    assert caught.value.location == "tiktokshop"
    return caught.value


def intervals(*items: dict[str, Any]) -> bytes:
    return as_bytes({"code": 0, "message": "Success", "request_id": "r",
                     "data": {"performance": {"intervals": list(items)}}})


def interval(start: str = "2026-10-01", end: str = "2026-10-28", **values: Any) -> dict[str, Any]:
    return {"start_date": start, "end_date": end, **values}


class TestTikTokShopSource:
    def test_published_fixture(self):
        assert parse(fixture("tiktokshop-analytics-shop-performance.json"),
                     operator="chen.jing") == [{
            "store": "tts-uk-03", "platform": "tiktok", "period": "2026-10-28",
            "operator": "chen.jing", "observed_at": OBSERVED, "segment": {"currency": "usd"},
            "metrics": {
                "gmv": 48210.40, "refunds": 1988.00, "orders": 1903, "buyers": 1711,
                "cancellation_return_rate": round(61 / 1903, 12),
                "refund_rate": round(1988.00 / 48210.40, 12),
                "conversion_rate": round(1903 / 61544, 12),
                "average_order_value": round(48210.40 / 1903, 12),
            },
            "targets": {},
        }]

    def test_comparison_intervals_are_not_turned_into_snapshots(self):
        assert len(parse(fixture("tiktokshop-analytics-shop-performance.json"))) == 1

    def test_whole_months_are_monthly_and_zero_denominators_give_no_rate(self):
        september, october = parse(fixture("tiktokshop-analytics-full-month.json"))
        assert september["period"] == "2026-09"
        assert september["metrics"] == {"gmv": 1250.0, "refunds": 0.0, "orders": 40,
                                        "buyers": 38, "cancellation_return_rate": 0.05,
                                        "refund_rate": 0.0, "average_order_value": 31.25,
                                        }  # no page views: no conversion
        assert october["period"] == "2026-10"
        assert october["metrics"] == {"gmv": 0.0, "refunds": 35.5, "orders": 0, "buyers": 0,
                                      "conversion_rate": 0.0}

    @pytest.mark.parametrize(("start", "end", "period"), [
        ("2026-10-01", "2026-10-31", "2026-10"), ("2026-02-01", "2026-02-28", "2026-02"),
        ("2026-10-02", "2026-10-31", "2026-10-31"), ("2026-10-01", "2026-10-30", "2026-10-30"),
        ("2026-10-28", "2026-10-28", "2026-10-28"), ("2026-09-01", "2026-10-31", "2026-10-31"),
    ])
    def test_period_rule(self, start: str, end: str, period: str):
        [snap] = parse(intervals(interval(start, end, orders=1)))
        assert snap["period"] == period

    def test_a_quotient_above_one_is_not_a_rate_and_is_left_out(self):
        [snap] = parse(intervals(interval(orders=30, product_page_views=12,
                                          cancellations_and_returns=45)))
        assert snap["metrics"] == {"orders": 30}

    def test_missing_and_null_blocks_are_omitted(self):
        [snap] = parse(intervals(interval(gmv=None, refunds={"amount": None, "currency": "USD"},
                                          orders="12", buyers="")))
        assert snap["metrics"] == {"orders": 12}
        assert snap["segment"] == {}

    def test_an_interval_without_any_value_gives_no_snapshot(self):
        assert parse(intervals(interval())) == []

    def test_the_caller_can_override_the_period(self):
        [snap] = parse(fixture("tiktokshop-analytics-shop-performance.json"), period="2026-10")
        assert snap["period"] == "2026-10"

    # errors: InputError, location "tiktokshop", field = the path in the payload

    def test_a_non_zero_code_is_refused_with_tiktoks_message(self):
        error = refused(fixture("tiktokshop-error.json"))
        assert error.field == "code"
        assert "36009004" in str(error) and "Invalid shop_cipher" in str(error)

    def test_a_missing_performance_block_names_it(self):
        error = refused(b'{"code": 0, "message": "Success", "data": {}}')
        assert error.field == "data.performance"

    def test_an_interval_ending_before_it_starts_is_refused(self):
        error = refused(intervals(interval("2026-10-28", "2026-10-01", orders=1)))
        assert error.field == "data.performance.intervals[0].start_date"

    def test_a_bad_amount_names_the_field(self):
        error = refused(intervals(interval(gmv={"amount": "12O.00", "currency": "USD"})))
        assert error.field == "data.performance.intervals[0].gmv.amount"

    def test_a_negative_count_names_the_field(self):
        error = refused(intervals(interval(orders=-3)))
        assert error.field == "data.performance.intervals[0].orders"

    def test_two_intervals_for_the_same_period_are_refused(self):
        error = refused(intervals(interval(orders=1), interval("2026-10-02", orders=2)))
        assert error.field == "data.performance.intervals[1]"
