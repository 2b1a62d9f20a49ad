"""The shared contract and parsers every source adapter relies on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from watcher.errors import ConfigError, InputError
from watcher.indicators import INDICATORS
from watcher.snapshot import Comparator
from watcher.sources import SOURCES, Source, get_source
from watcher.sources.base import (
    Context,
    Draft,
    PayloadError,
    count,
    percent,
    period_for_range,
    ratio,
    timestamp,
)

from . import OBSERVED, clock


class Echo(Source):
    """A minimal source: proves what ``Source.parse`` does around ``convert``."""

    name = "echo"
    platform = "test"

    def convert(self, payload: Any, context: Context) -> list[Draft]:
        draft = context.draft(period=payload.get("period", context.today))
        for key, value in payload.get("metrics", {}).items():
            draft.metric(key, value, f"metrics.{key}")
        return [draft]


class TestSource:
    def test_parse_fills_store_operator_observed_at_and_validates(self):
        [record] = Echo(clock=clock).parse(b'{"metrics": {"gmv": 10}}', store="s", operator="o")
        assert record == {"store": "s", "platform": "test", "period": "2026-11-01",
                          "operator": "o", "observed_at": OBSERVED, "segment": {},
                          "metrics": {"gmv": 10}, "targets": {}}

    def test_a_byte_order_mark_is_accepted(self):
        [record] = Echo(clock=clock).parse(b'\xef\xbb\xbf{"metrics": {"gmv": 1}}', store="s")
        assert record["metrics"] == {"gmv": 1}

    def test_an_invalid_period_override_is_refused_before_parsing(self):
        with pytest.raises(InputError) as caught:
            Echo(clock=clock).parse(b"not even json", store="s", period="2026/10")
        assert (caught.value.location, caught.value.field) == ("echo", "period")

    @pytest.mark.parametrize(("content", "message"), [
        (b"\xff\xfe", "not UTF-8"), (b"{", "not valid JSON")])
    def test_undecodable_content_is_refused(self, content: bytes, message: str):
        with pytest.raises(InputError, match=message):
            Echo(clock=clock).parse(content, store="s")

    def test_a_canonical_rejection_names_the_platform_field_it_came_from(self):
        with pytest.raises(InputError) as caught:
            Echo(clock=clock).parse(b'{"metrics": {"dispute_rate": 3.5}}', store="s")
        assert caught.value.field == "metrics.dispute_rate"
        assert "store s" in str(caught.value)

    def test_an_empty_store_is_refused(self):
        with pytest.raises(InputError) as caught:
            Echo(clock=clock).parse(b'{"metrics": {"gmv": 1}}', store=" ")
        assert caught.value.field == "store"

    def test_the_default_clock_is_utc_now(self):
        before = datetime.now(UTC).replace(microsecond=0)
        [record] = Echo().parse(b'{"metrics": {"gmv": 1}}', store="s")
        assert datetime.fromisoformat(record["observed_at"]) >= before


class TestDraft:
    def test_a_target_with_comparator_is_an_object_without_it_a_number(self):
        draft = Draft("s", "p", "2026-10", None, OBSERVED)
        draft.target("a", 0.01, Comparator.LT, "x")
        draft.target("b", 5, None, "y")
        assert draft.to_dict()["targets"] == {"a": {"value": 0.01, "comparator": "<"}, "b": 5}
        assert draft.origins == {"targets.a": "x", "targets.b": "y"}


class TestParsers:
    @pytest.mark.parametrize(("text", "expected"), [
        ("2026-10-28T23:59Z", datetime(2026, 10, 28, 23, 59, tzinfo=UTC)),
        ("2026-10-28T23:59:30Z", datetime(2026, 10, 28, 23, 59, 30, tzinfo=UTC)),
        ("2026-10-29T07:59+08:00", datetime(2026, 10, 28, 23, 59, tzinfo=UTC)),
        ("2026-10-28", datetime(2026, 10, 28, tzinfo=UTC)),
        ("2026-10-28 10:30:00", datetime(2026, 10, 28, 10, 30, tzinfo=UTC)),
    ])
    def test_timestamps_tolerate_missing_seconds_and_offsets(self, text: str,
                                                             expected: datetime):
        assert timestamp(text, "f") == expected

    @pytest.mark.parametrize("text", ["28/10/2026", "", None, 20261028])
    def test_a_bad_timestamp_names_its_field(self, text: Any):
        with pytest.raises(PayloadError) as caught:
            timestamp(text, "a.b")
        assert caught.value.field == "a.b"

    @pytest.mark.parametrize(("value", "fraction"), [
        (6.1, 0.061), ("0.8", 0.008), ("0.8%", 0.008), ("97.69", 0.9769), (0, 0.0)])
    def test_percent_numbers_become_fractions_without_float_noise(self, value: Any,
                                                                   fraction: float):
        assert percent(value, "f") == fraction

    @pytest.mark.parametrize(("value", "expected"), [(3, 3), (3.0, 3), ("1,200", 1200)])
    def test_counts_accept_strings_and_whole_floats(self, value: Any, expected: int):
        assert count(value, "f") == expected

    @pytest.mark.parametrize("value", [-1, 1.5, "x", True])
    def test_counts_refuse_negatives_fractions_and_non_numbers(self, value: Any):
        with pytest.raises(PayloadError):
            count(value, "f")

    @pytest.mark.parametrize(("numerator", "denominator", "share"), [
        (1, 4, 0.25), (0, 5, 0.0), (1, 0, None), (5, 4, None)])
    def test_ratio_is_a_share_or_nothing(self, numerator: float, denominator: float,
                                         share: float | None):
        assert ratio(numerator, denominator) == share

    def test_period_for_range(self):
        assert period_for_range(date(2026, 10, 1), date(2026, 10, 31)) == "2026-10"
        assert period_for_range(date(2026, 10, 1), date(2026, 10, 28)) == "2026-10-28"


class TestRegistry:
    def test_the_four_sources_are_registered_by_name(self):
        assert sorted(SOURCES) == ["amazon-spapi", "lingxing", "shopee", "tiktokshop"]
        assert all(source.name == name for name, source in SOURCES.items())

    def test_get_source_returns_the_registered_adapter(self):
        assert get_source("shopee") is SOURCES["shopee"]

    def test_an_unknown_name_is_a_config_error_listing_the_known_ones(self):
        with pytest.raises(ConfigError) as caught:
            get_source("lazada")
        assert "lazada" in str(caught.value)
        assert "amazon-spapi, lingxing, shopee, tiktokshop" in str(caught.value)

    def test_every_metric_an_adapter_can_emit_is_registered(self):
        from watcher.sources import amazon_spapi, lingxing, shopee

        emitted = {
            *(m for _, m in amazon_spapi.RATE_BLOCKS),
            *(m for _, m in amazon_spapi.VIOLATION_BLOCKS),
            amazon_spapi.DOCUMENT_REQUESTS[1], *amazon_spapi.STATUS_FLAGS.values(),
            amazon_spapi.UNKNOWN_STATUS, "order_defect_rate", "order_defect_rate_afn",
            "order_defect_rate_mfn", "policy_violation_count", "account_warning_count",
            *(m for m, _ in lingxing.RATE_BLOCKS.values()), *lingxing.POLICY_COUNTS.values(),
            "ahr_score", *(m for m, _ in shopee.METRICS.values()), "listing_violation_count",
            "penalty_points", "ongoing_punishment_count", "punishment_tier_max",
            "gmv", "refunds", "cancellation_return_rate", "refund_rate", "conversion_rate",
        }
        assert emitted - set(INDICATORS) == set()
