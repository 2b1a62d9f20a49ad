"""Derived metrics: a rate that is not sent is computed from its raw counts."""

from __future__ import annotations

import pytest

from watcher import indicators
from watcher.derive import RATIOS, Ratio, completed, derived_metrics
from watcher.errors import InputError
from watcher.period import PeriodKind
from watcher.snapshot import Snapshot
from watcher.validation import RawRecord, Rejection, read_records, validate

MONTH = PeriodKind.MONTH


def snap(period: str = "2026-10", **metrics: float) -> Snapshot:
    return Snapshot.model_validate({"store": "s1", "platform": "amazon", "period": period,
                                    "metrics": metrics})


class TestRatio:
    def test_reads_as_its_formula(self):
        assert str(Ratio("dispute_rate", "disputes", "orders")) == \
            "dispute_rate = disputes / orders"
        assert str(Ratio("inventory_turnover", "cogs", "average_inventory", True)) == \
            "inventory_turnover = cogs / average_inventory (annualised)"

    def test_every_ratio_derives_a_registered_indicator_from_registered_fields(self):
        for ratio in RATIOS:
            assert ratio.metric in indicators.INDICATORS
            for part in (ratio.numerator, ratio.denominator):
                field = indicators.get(part)
                assert field is not None and field.name_en and field.name_zh, part

    def test_raw_fields_are_not_assessed_indicators(self):
        # so that no PIP or platform-target form is compiled for a count
        assert not set(indicators.RAW_FIELDS) & set(indicators.INDICATORS)
        assert frozenset(indicators.RAW_FIELDS) == indicators.COUNT_FIELDS


class TestDerivedMetrics:
    @pytest.mark.parametrize("ratio", [r for r in RATIOS if not r.annualised], ids=str)
    def test_each_rate_is_its_numerator_over_its_denominator(self, ratio: Ratio):
        # (acos and ad_roi are the two quotients of the same pair)
        assert derived_metrics({ratio.numerator: 1, ratio.denominator: 4}, MONTH)[
            ratio.metric] == 0.25

    def test_all_parts_present_derive_all_rates(self):
        parts = {p: 10.0 for r in RATIOS for p in (r.numerator, r.denominator)}
        assert set(derived_metrics(parts, MONTH)) == {r.metric for r in RATIOS}

    def test_a_sent_rate_wins_over_its_counts(self):
        assert derived_metrics({"dispute_rate": 0.01, "disputes": 10, "orders": 100}, MONTH) \
            == {}

    def test_a_zero_denominator_derives_nothing(self):
        assert derived_metrics({"disputes": 0, "orders": 0}, MONTH) == {}

    def test_one_part_alone_derives_nothing(self):
        assert derived_metrics({"disputes": 3}, MONTH) == {}
        assert derived_metrics({"visitors": 0, "orders": 0}, MONTH) == {}

    def test_a_part_of_a_whole_of_zero_is_refused_naming_the_part(self):
        for part, whole in (("orders", "visitors"), ("tickets_resolved", "tickets"),
                            ("disputes", "orders")):
            with pytest.raises(InputError, match=rf"more than {whole} \(0\)") as caught:
                derived_metrics({part: 2, whole: 0}, MONTH)
            assert caught.value.field == f"metrics.{part}"

    def test_a_quotient_with_no_upper_bound_over_zero_derives_nothing(self):
        # ad spend with no ad sales: no ACOS (of no number), not a contradiction; ROI 0
        assert derived_metrics({"ad_spend": 50, "gmv_ads": 0}, MONTH) == {"ad_roi": 0.0}

    def test_a_quotient_on_a_threshold_is_exactly_the_threshold(self):
        derived = derived_metrics({"disputes": 3, "orders": 100, "positive_reviews": 90,
                                   "reviews": 100}, MONTH)
        assert derived == {"dispute_rate": 0.03, "positive_review_rate": 0.90}

    def test_a_numerator_equal_to_its_denominator_is_a_rate_of_one(self):
        assert derived_metrics({"delivered": 50, "shipped": 50}, MONTH) == \
            {"delivery_success_rate": 1.0}

    def test_a_numerator_above_its_denominator_is_refused_naming_the_numerator(self):
        with pytest.raises(InputError) as caught:
            derived_metrics({"disputes": 12, "orders": 10}, MONTH)
        assert caught.value.field == "metrics.disputes"
        assert "more than orders (10)" in caught.value.reason
        assert "send dispute_rate itself" in caught.value.reason

    @pytest.mark.parametrize(("kind", "cogs", "expected"), [
        (PeriodKind.MONTH, 1000, 4.0), (PeriodKind.QUARTER, 3000, 4.0),
        (PeriodKind.YEAR, 12000, 4.0), (PeriodKind.DAY, 30, 3.65),
    ])
    def test_inventory_turnover_is_annualised_by_periods_per_year(
            self, kind: PeriodKind, cogs: float, expected: float):
        derived = derived_metrics({"cogs": cogs, "average_inventory": 3000}, kind)
        assert derived["inventory_turnover"] == pytest.approx(expected)

    def test_an_annualised_monthly_turnover_lands_exactly_on_its_bar(self):
        # 12 * 1000 / 3000 is 4.0; 1000 / 3000 * 12 would be 3.9999999999999996
        assert derived_metrics({"cogs": 1000, "average_inventory": 3000}, MONTH) == \
            {"inventory_turnover": 4.0}

    def test_turnover_is_not_a_rate_and_may_exceed_one(self):
        assert derived_metrics({"cogs": 5000, "average_inventory": 1000}, PeriodKind.YEAR) == \
            {"inventory_turnover": 5.0}


class TestCompleted:
    def test_metrics_without_counts_come_back_unchanged(self):
        metrics = {"gmv": 1000.0, "dispute_rate": 0.01}
        assert completed(metrics, MONTH) is metrics

    def test_counts_that_derive_nothing_leave_the_metrics_unchanged(self):
        metrics = {"disputes": 0.0, "orders": 0.0}
        assert completed(metrics, MONTH) is metrics

    def test_a_snapshot_carries_its_derived_rates_beside_the_metrics_sent(self):
        result = snap(disputes=3, orders=100, gmv=5000, gmv_ads=1000)
        assert result.metrics == {"disputes": 3, "orders": 100, "gmv": 5000, "gmv_ads": 1000,
                                  "dispute_rate": 0.03, "ad_share_of_gmv": 0.2,
                                  "average_order_value": 50.0}

    def test_the_period_decides_the_annualisation(self):
        assert snap("2026-Q3", cogs=3000, average_inventory=3000).metrics[
            "inventory_turnover"] == 4.0


class TestValidationDerives:
    """The ingestion path (``validation.validate``) completes every snapshot it accepts."""

    def test_a_record_of_counts_is_accepted_with_its_rate(self):
        verdict = validate(RawRecord("line 1", "", {
            "store": "s1", "platform": "shopee", "period": "2026-10",
            "metrics": {"disputes": "4", "orders": "100"}}))
        assert isinstance(verdict, Snapshot)
        assert verdict.metrics["dispute_rate"] == 0.04

    def test_csv_columns_of_counts_derive_too(self):
        body = ("store,platform,period,metrics.delivered,metrics.shipped\n"
                "s1,amazon,2026-10,94,100\n")
        [record] = read_records(body)
        assert isinstance(record, RawRecord)
        verdict = validate(record)
        assert isinstance(verdict, Snapshot)
        assert verdict.metrics["delivery_success_rate"] == 0.94

    def test_contradictory_counts_reject_the_record_naming_place_and_field(self):
        raw = ('{"store": "s1", "platform": "amazon", "period": "2026-10", '
               '"metrics": {"positive_reviews": 120, "reviews": 100}}')
        [record] = read_records(raw)
        assert isinstance(record, RawRecord)
        verdict = validate(record, "http")
        assert isinstance(verdict, Rejection)
        assert (verdict.source, verdict.location, verdict.field) == \
            ("http", "line 1", "metrics.positive_reviews")
        assert verdict.error.startswith("metrics.positive_reviews: 120 is more than reviews")
        assert verdict.raw == raw

    def test_a_negative_count_is_rejected_naming_its_field(self):
        verdict = validate(RawRecord("line 3", "", {
            "store": "s1", "platform": "amazon", "period": "2026-10",
            "metrics": {"orders": -1, "disputes": 0}}))
        assert isinstance(verdict, Rejection)
        assert (verdict.location, verdict.field) == ("line 3", "metrics.orders")
