"""The daily watch's periods and metrics (issue #17): ISO weeks, and the job's daily
indicators with their derivations and roll-ups."""

from __future__ import annotations

from datetime import date

import pytest

from watcher import indicators
from watcher.assessment.rollup import Combine, combine, combine_kind
from watcher.assessment.scorecard import _FINER, CYCLES, card_period
from watcher.derive import derived_metrics
from watcher.errors import InputError
from watcher.indicators import Cycle, Unit
from watcher.period import Period, PeriodKind

DAY = PeriodKind.DAY


class TestWeeks:
    def test_an_iso_week_runs_monday_to_sunday(self):
        week = Period.parse("2026-W45")
        assert (week.kind, week.start, week.end) == (PeriodKind.WEEK, date(2026, 11, 2),
                                                     date(2026, 11, 8))

    def test_week_one_may_start_in_the_year_before(self):
        assert Period.parse("2026-W01").start == date(2025, 12, 29)

    def test_a_53rd_week_exists_only_in_long_years(self):
        assert Period.parse("2026-W53").end == date(2027, 1, 3)
        with pytest.raises(ValueError, match="not a real date"):
            Period.parse("2027-W53")
        with pytest.raises(ValueError, match="not a real date"):
            Period.parse("2026-W00")

    def test_the_week_of_a_day(self):
        assert Period.week_of(date(2027, 1, 1)).text == "2026-W53"
        assert Period.week_of(date(2026, 11, 5)) == Period.parse("2026-W45")

    def test_full_width_digits_read_as_the_same_week(self):
        assert Period.parse("２０２６-W４５").text == "2026-W45"

    def test_a_week_is_carded_from_its_days_on_the_monthly_indicators(self):
        assert card_period("2026-W45").kind is PeriodKind.WEEK
        assert CYCLES[PeriodKind.WEEK] is Cycle.MONTHLY
        assert _FINER[PeriodKind.WEEK] == (DAY,)

    def test_a_day_is_still_no_card(self):
        with pytest.raises(InputError, match="a week"):
            card_period("2026-11-05")


class TestDailyMetrics:
    @pytest.mark.parametrize("metric", ["visitors", "conversion_rate", "average_order_value",
                                        "acos", "ad_roi", "return_rate",
                                        "cs_first_response_hours", "cs_resolution_rate",
                                        "chat_response_rate", "ad_spend"])
    def test_each_is_registered_with_names_in_both_languages(self, metric: str):
        indicator = indicators.get(metric)
        assert indicator is not None and indicator.name_en and indicator.name_zh

    def test_the_new_daily_indicators_stay_off_the_scorecards(self):
        for metric in ("average_order_value", "acos", "ad_roi", "return_rate",
                       "cs_first_response_hours", "cs_resolution_rate"):
            assert indicators.INDICATORS[metric].cycle is Cycle.DAILY

    def test_average_order_value_is_gmv_over_orders(self):
        assert derived_metrics({"gmv": 5000.0, "orders": 40.0}, DAY)[
            "average_order_value"] == 125.0

    def test_acos_and_ad_roi_come_from_ad_spend_and_ad_sales(self):
        derived = derived_metrics({"ad_spend": 300.0, "gmv_ads": 1200.0}, DAY)
        assert derived == {"acos": 0.25, "ad_roi": 4.0}

    def test_ads_costing_more_than_they_sell_are_an_acos_above_100_percent(self):
        assert derived_metrics({"ad_spend": 150.0, "gmv_ads": 100.0}, DAY)["acos"] == 1.5

    def test_an_acos_beyond_its_range_is_refused_naming_the_spend(self):
        with pytest.raises(InputError) as caught:
            derived_metrics({"ad_spend": 11_000.0, "gmv_ads": 1000.0}, DAY)
        assert caught.value.field == "metrics.ad_spend"
        assert "more than 10 times gmv_ads" in str(caught.value)

    def test_more_returns_than_orders_is_still_refused(self):
        with pytest.raises(InputError, match="not a value in \\[0, 1\\]"):
            derived_metrics({"returns": 5.0, "orders": 4.0}, DAY)

    def test_resolution_rate_from_ticket_counts(self):
        assert derived_metrics({"tickets": 40.0, "tickets_resolved": 30.0}, DAY) == \
            {"cs_resolution_rate": 0.75}

    def test_a_week_of_order_values_is_their_mean_weighted_by_orders(self):
        assert indicators.INDICATORS["average_order_value"].unit is Unit.CURRENCY
        assert combine_kind("average_order_value") is Combine.MEAN
        assert combine("average_order_value", [100.0, 200.0], [3.0, 1.0]) == 125.0
        assert combine_kind("gmv") is Combine.SUM  # amounts still add up
