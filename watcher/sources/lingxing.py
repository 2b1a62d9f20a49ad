"""Lingxing (领星) ERP OpenAPI: store performance detail (查询店铺绩效详情).

``POST /basicOpen/customerService/storeTarget/detail`` with ``{pullDate, sid}``
returns Lingxing's copy of the Amazon account health report for one store and
day. Shape per apidoc.lingxing.com (docs/Service/PerformanceNoticeDetail):
``{code, message, error_details, request_id, response_time, data}``; in
``data`` every metric is a block ``{rate, count, orderCount, windowTimeStart,
windowTimeEnd, windowDayCount}`` with almost every value a string and every
rate in percent (``"0.8"`` is 0.8 %), plus a ``standard`` block of targets in
percent that states no comparator.

The store is an Amazon store, so ``platform`` is ``amazon`` and the metric ids
are the SP-API adapter's: the same store read either way is one series (the
same store, platform and day restate each other), and every rule or route on
``platform: amazon`` covers it. Which way a snapshot came in is kept apart, in
its ``source`` (``source:lingxing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from watcher.snapshot import Comparator
from watcher.sources.amazon_spapi import combine_order_defects
from watcher.sources.base import (
    Context,
    Draft,
    PayloadError,
    Source,
    count,
    day,
    is_missing,
    join,
    mapping,
    number,
    percent,
)

# data block -> (canonical id, comparator). Lingxing states target values but no
# comparator; these are the target conditions Amazon's own report states for the
# same metrics (LESS_THAN for defects, GREATER_THAN for tracking and delivery).
RATE_BLOCKS: Final[dict[str, tuple[str, Comparator]]] = {
    "fbaOrderWithDefect": ("order_defect_rate_afn", Comparator.LT),
    "orderWithDefect": ("order_defect_rate_mfn", Comparator.LT),
    "lateShipment": ("late_shipment_rate", Comparator.LT),
    "preFulfillmentCancellation": ("pre_fulfillment_cancellation_rate", Comparator.LT),
    "validTracking": ("valid_tracking_rate", Comparator.GT),
    "onTimeDelivery": ("on_time_delivery_rate", Comparator.GT),
    "unitOnTimeDelivery": ("unit_on_time_delivery_rate", Comparator.GT),
    "invoiceDefect": ("invoice_defect_rate", Comparator.LT),
}

ODR_CHANNELS: Final = ("order_defect_rate_afn", "order_defect_rate_mfn")

# commodityPolicyCompliance fields (counts) -> canonical id, as in the SP-API adapter.
POLICY_COUNTS: Final[dict[str, str]] = {
    "count": "policy_violation_count",
    "listingPolicyData": "listing_policy_violation_count",
    "intellectualPropertyData": "ip_complaint_count",
    "suspectedIntellectualPropertyViolations": "suspected_ip_violation_count",
    "productAuthenticityData": "authenticity_complaint_count",
    "productConditionCustomerComplaints": "condition_complaint_count",
    "productSafetyData": "safety_complaint_count",
    "foodAndProductSafetyIssues": "food_product_safety_issue_count",
    "restrictedProductPolicyViolations": "restricted_product_violation_count",
    "otherPolicyViolations": "other_policy_violation_count",
    "customerProductReviewsPolicyViolations": "review_policy_violation_count",
    "policyViolationWarnings": "policy_warning_count",
}


class LingxingSource(Source):
    """One snapshot per answer: the store on ``pullDate`` (the day the report was pulled)."""

    name = "lingxing"
    platform = "amazon"

    def convert(self, payload: Any, context: Context) -> list[Draft]:
        body = mapping(payload, "")
        code = body.get("code")
        if is_missing(code) or number(code, "code") != 0:
            raise PayloadError("code", f"Lingxing refused the request: code {code}: "
                               f"{_message(body)}")
        data = mapping(body.get("data"), "data")
        pulled = data.get("pullDate")
        period = (day(pulled, "data.pullDate").isoformat() if not is_missing(pulled)
                  else context.today)
        draft = context.draft(period=period)
        standard_raw = data.get("standard")
        standard = mapping(standard_raw, "data.standard") if standard_raw is not None else {}
        for key, (metric_id, stated) in RATE_BLOCKS.items():
            _rate(draft, data, standard, key, metric_id, stated)
        combine_order_defects(draft, [c for c in ODR_CHANNELS if c in draft.metrics])
        _policy(draft, data, standard)
        _health_rating(draft, data)
        return [draft] if draft.metrics else []


def _message(body: Mapping[str, Any]) -> str:
    text = str(body.get("message") or "no message")
    details = body.get("error_details")
    if isinstance(details, list) and details:
        text += " (" + "; ".join(str(d) for d in details) + ")"
    request = body.get("request_id")
    return f"{text} (request_id {request})" if request else text


def _rate(draft: Draft, data: Mapping[str, Any], standard: Mapping[str, Any], key: str,
          metric_id: str, stated: Comparator) -> None:
    block_raw = data.get(key)
    if block_raw is None:
        return
    path = join("data", key)
    rate = mapping(block_raw, path).get("rate")
    if is_missing(rate):
        return
    draft.metric(metric_id, percent(rate, join(path, "rate")), join(path, "rate"))
    target = standard.get(key)
    if not is_missing(target):
        where = join("data.standard", key)
        draft.target(metric_id, percent(target, where), stated, where)


def _policy(draft: Draft, data: Mapping[str, Any], standard: Mapping[str, Any]) -> None:
    """Counts, not rates: the ``standard`` value (0) is a count that must be equalled."""
    raw = data.get("commodityPolicyCompliance")
    if raw is None:
        return
    path = "data.commodityPolicyCompliance"
    block = mapping(raw, path)
    for key, metric_id in POLICY_COUNTS.items():
        value = block.get(key)
        if not is_missing(value):
            draft.metric(metric_id, count(value, join(path, key)), join(path, key))
    if "policy_warning_count" in draft.metrics:
        # Policy warnings are warnings Amazon issued: penalties in the reference's sense,
        # as the SP-API adapter counts BAD warning states (docs/platform-mapping.md).
        draft.metric("penalty_count", draft.metrics["policy_warning_count"],
                     draft.origins["metrics.policy_warning_count"])
    target = standard.get("commodityPolicyCompliance")
    if "policy_violation_count" in draft.metrics and not is_missing(target):
        where = "data.standard.commodityPolicyCompliance"
        draft.target("policy_violation_count", count(target, where), Comparator.EQ, where)


def _health_rating(draft: Draft, data: Mapping[str, Any]) -> None:
    """Amazon's AHR on its own 0-1000 scale: not ``account_health_score`` (0-100)."""
    raw = data.get("accountHealthRating")
    if raw is None:
        return
    path = "data.accountHealthRating"
    score = mapping(raw, path).get("ahrScore")
    if not is_missing(score):
        draft.metric("ahr_score", number(score, join(path, "ahrScore")), join(path, "ahrScore"))
