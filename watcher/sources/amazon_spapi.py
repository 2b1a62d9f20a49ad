"""Amazon SP-API ``GET_V2_SELLER_PERFORMANCE_REPORT`` (account health report, JSON).

Shape: ``schemas/reports/accountHealthReport-2020-11-18.json`` in
amzn/selling-partner-api-models. The schema and Amazon's own example disagree
(``preFulfillmentCancellationRate`` vs ``prefulfillmentCancelRate``,
``warningStates`` vs ``warningState``, ``documentRequests`` vs
``documentRequest``, account status ``SUSPENDED`` outside the enum) and required
keys are often absent, so every block is optional and both spellings are read.

One snapshot per marketplace, because account health is judged (and accounts
are deactivated) per marketplace. The report has no numeric health score:
nothing is mapped to ``account_health_score``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, Final

from watcher.snapshot import Comparator
from watcher.sources.base import (
    Context,
    Draft,
    PayloadError,
    Source,
    array,
    comparator,
    count,
    day,
    is_missing,
    join,
    mapping,
    number,
    optional_mapping,
)

# marketplaceId -> country code (Amazon "Marketplace IDs" reference). An id not
# listed is kept as it is: a new marketplace must not stop the report.
MARKETPLACES: Final[dict[str, str]] = {
    "ATVPDKIKX0DER": "US", "A2EUQ1WTGCTBG2": "CA", "A1AM78C64UM0Y8": "MX",
    "A2Q3Y263D00KWC": "BR", "A1F83G8C2ARO7P": "UK", "A1PA6795UKMFR9": "DE",
    "A13V1IB3VIYZZH": "FR", "APJ6JRA9NG5V4": "IT", "A1RKKUPIHCS9HS": "ES",
    "A1805IZSGTT6HS": "NL", "A2NODRKZP88ZB9": "SE", "A1C3SOZRARQ6R3": "PL",
    "AMEN7PMS3EDWL": "BE", "A28R8C7NBKEWEA": "IE", "A33AVAJ2PDY3EV": "TR",
    "A2VIGQ35RCS4UG": "AE", "A17E79C6D8DWNP": "SA", "ARBP9OOSHTCHU": "EG",
    "A21TJRUUN4KGV": "IN", "AE08WJ6YKNBMC": "ZA", "A1VC38T7YXB528": "JP",
    "A39IBJ37TRP1C6": "AU", "A19VAU5U5O7RUS": "SG",
}

TARGET_CONDITIONS: Final[dict[str, Comparator]] = {
    "LESS_THAN": Comparator.LT, "GREATER_THAN": Comparator.GT, "EQUALS": Comparator.EQ,
}

# (spellings, canonical id): blocks carrying ``rate`` + ``targetValue``/``targetCondition``.
RATE_BLOCKS: Final = (
    (("lateShipmentRate",), "late_shipment_rate"),
    (("preFulfillmentCancellationRate", "prefulfillmentCancelRate"),
     "pre_fulfillment_cancellation_rate"),
    (("validTrackingRate",), "valid_tracking_rate"),
    (("onTimeDeliveryRate",), "on_time_delivery_rate"),
    (("unitOnTimeDeliveryRate",), "unit_on_time_delivery_rate"),
    (("invoiceDefectRate",), "invoice_defect_rate"),
)

# Listing-level violation blocks carrying ``defectsCount``; they add up to
# ``policy_violation_count``. Document requests are counted apart: they are a
# request for paperwork, not a violation.
VIOLATION_BLOCKS: Final = (
    (("listingPolicyViolations",), "listing_policy_violation_count"),
    (("receivedIntellectualPropertyComplaints",), "ip_complaint_count"),
    (("suspectedIntellectualPropertyViolations",), "suspected_ip_violation_count"),
    (("productAuthenticityCustomerComplaints",), "authenticity_complaint_count"),
    (("productConditionCustomerComplaints",), "condition_complaint_count"),
    (("productSafetyCustomerComplaints",), "safety_complaint_count"),
    (("foodAndProductSafetyIssues",), "food_product_safety_issue_count"),
    (("restrictedProductPolicyViolations",), "restricted_product_violation_count"),
    (("otherPolicyViolations",), "other_policy_violation_count"),
)
DOCUMENT_REQUESTS: Final = (("documentRequests", "documentRequest"), "document_request_count")
WARNING_KEYS: Final = ("warningStates", "warningState")

# Account status -> 0/1 flag. NORMAL sets none; a status outside this table sets
# ``account_status_unknown`` so a rule can still see that something changed.
STATUS_FLAGS: Final[dict[str, str]] = {
    "AT_RISK": "account_at_risk", "DEACTIVATED": "account_deactivated",
    "SUSPENDED": "account_suspended",
}
UNKNOWN_STATUS: Final = "account_status_unknown"
# The statuses that are major penalties (selling stopped, funds held): a suspension or a
# deactivation. Both flags are set together, so either one is present when a status is.
MAJOR: Final = ("account_deactivated", "account_suspended")


class AmazonSpApiSource(Source):
    """Seller performance report; the period is the day of the latest ``reportingDateTo``.

    Amazon reports rolling windows (7, 30, 60, 180 days) that all end on the
    report day, so the report is a daily reading of account health, not a month.
    """

    name = "amazon-spapi"
    platform = "amazon"

    def convert(self, payload: Any, context: Context) -> list[Draft]:
        report = mapping(payload, "")
        if "accountStatuses" not in report and "performanceMetrics" not in report:
            raise PayloadError(None, "not a seller performance report: it has neither "
                               "accountStatuses nor performanceMetrics")
        statuses = _statuses(report)
        entries = _entries(report)
        marketplaces = list(dict.fromkeys([*entries, *statuses]))
        fallback = max((d for _, (entry, path) in entries.items()
                        for d in _report_days(entry, path)), default=None)
        drafts: list[Draft] = []
        for marketplace in marketplaces:
            country = MARKETPLACES.get(marketplace, marketplace).lower()
            entry, path = entries.get(marketplace, ({}, ""))
            days = list(_report_days(entry, path)) if entry else []
            as_of = max(days, default=fallback)
            draft = context.draft(
                period=as_of.isoformat() if as_of else context.today,
                store=f"{context.store}-{country}" if len(marketplaces) > 1 else None)
            draft.segment["marketplace"] = country
            if marketplace in statuses:
                _status_flags(draft, *statuses[marketplace])
            if entry:
                _performance(draft, entry, path)
            _penalties(draft)
            if draft.metrics:
                drafts.append(draft)
        return drafts


def _statuses(report: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    raw = report.get("accountStatuses")
    for index, item in enumerate(array(raw, "accountStatuses") if raw is not None else []):
        path = join("accountStatuses", index)
        entry = mapping(item, path)
        marketplace = _marketplace(entry, path)
        status = entry.get("status")
        if not is_missing(status):
            found[marketplace] = (str(status).strip().upper(), join(path, "status"))
    return found


def _entries(report: Mapping[str, Any]) -> dict[str, tuple[Mapping[str, Any], str]]:
    found: dict[str, tuple[Mapping[str, Any], str]] = {}
    raw = report.get("performanceMetrics")
    for index, item in enumerate(array(raw, "performanceMetrics") if raw is not None else []):
        path = join("performanceMetrics", index)
        entry = mapping(item, path)
        marketplace = _marketplace(entry, path)
        if marketplace in found:
            raise PayloadError(join(path, "marketplaceId"),
                               f"marketplace {marketplace} appears twice in performanceMetrics")
        found[marketplace] = (entry, path)
    return found


def _marketplace(entry: Mapping[str, Any], path: str) -> str:
    value = entry.get("marketplaceId")
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(join(path, "marketplaceId"), "is required (a marketplace id)")
    return value.strip()


def _report_days(node: Any, path: str) -> Iterator[date]:
    """Every ``reportingDateTo`` under ``node``, wherever Amazon nested it."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            where = join(path, str(key))
            if key == "reportingDateTo" and not is_missing(value):
                yield day(value, where)
            else:
                yield from _report_days(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _report_days(value, join(path, index))


def _status_flags(draft: Draft, status: str, path: str) -> None:
    unknown = status != "NORMAL" and status not in STATUS_FLAGS
    draft.metric(UNKNOWN_STATUS, 1 if unknown else 0, path)
    for known, metric_id in STATUS_FLAGS.items():
        draft.metric(metric_id, 1 if status == known else 0, path)


def _penalties(draft: Draft) -> None:
    """``penalty_count`` and ``major_penalty_count``: the sanctions Amazon imposed.

    A deactivation or suspension (selling stopped, disbursements held: the
    reference's "frozen funds") counts one, and is major; each warning state in
    BAD status (a policy warning Amazon issued) counts one, and is minor.
    AT_RISK is a health rating, not a sanction, and policy-violation
    ``defectsCount`` are complaints over a 180-day window with a platform target
    of their own; neither is counted. Present only when the report states a
    status or warnings: missing is not zero. The major count needs a status
    the table knows: an unrecognised one may be a sanction under a new name, so
    no major count is stated rather than a guessed zero.
    """
    parts = [metric for metric in ("account_deactivated", "account_suspended",
                                   "account_warning_count") if metric in draft.metrics]
    if parts:
        origin = " + ".join(draft.origins[f"metrics.{metric}"] for metric in parts)
        draft.metric("penalty_count", sum(draft.metrics[metric] for metric in parts), origin)
    if "account_suspended" in draft.metrics and not draft.metrics.get(UNKNOWN_STATUS):
        draft.metric("major_penalty_count", sum(draft.metrics[metric] for metric in MAJOR),
                     draft.origins["metrics.account_suspended"])


def _performance(draft: Draft, entry: Mapping[str, Any], path: str) -> None:
    _order_defects(draft, entry, path)
    for keys, metric_id in RATE_BLOCKS:
        found = optional_mapping(entry, keys, path)
        if found is not None:
            _measure(draft, metric_id, found[0], found[1], "rate", count_value=False)
    violations: list[int] = []
    for keys, metric_id in VIOLATION_BLOCKS:
        found = optional_mapping(entry, keys, path)
        if found is not None:
            value = _measure(draft, metric_id, found[0], found[1], "defectsCount",
                             count_value=True)
            if value is not None:
                violations.append(int(value))
    if violations:
        draft.metric("policy_violation_count", sum(violations), f"{path} (sum of violations)")
    keys, metric_id = DOCUMENT_REQUESTS
    found = optional_mapping(entry, keys, path)
    if found is not None:
        _measure(draft, metric_id, found[0], found[1], "defectsCount", count_value=True)
    _warnings(draft, entry, path)


def _order_defects(draft: Draft, entry: Mapping[str, Any], path: str) -> None:
    """Per channel (afn = FBA, mfn = seller-fulfilled), then the worse of the two."""
    found = optional_mapping(entry, ("orderDefectRate",), path)
    if found is None:
        return
    block, where = found
    channels = []
    for channel in ("afn", "mfn"):
        sub = optional_mapping(block, (channel,), where)
        if sub is not None:
            metric_id = f"order_defect_rate_{channel}"
            if _measure(draft, metric_id, sub[0], sub[1], "rate", count_value=False) is not None:
                channels.append(metric_id)
    combine_order_defects(draft, channels)


def combine_order_defects(draft: Draft, channels: list[str]) -> None:
    """``order_defect_rate`` is the worse channel's rate, with that channel's target."""
    if not channels:
        return
    worst = max(channels, key=lambda metric_id: draft.metrics[metric_id])
    draft.metric("order_defect_rate", draft.metrics[worst], draft.origins[f"metrics.{worst}"])
    if worst in draft.targets:
        target = draft.targets[worst]
        draft.targets["order_defect_rate"] = dict(target) if isinstance(target, dict) else target
        draft.origins["targets.order_defect_rate"] = draft.origins[f"targets.{worst}"]


def _measure(draft: Draft, metric_id: str, block: Mapping[str, Any], path: str,
             value_key: str, *, count_value: bool) -> float | None:
    """Read one metric block: its value and, when stated, the platform's target."""
    raw = block.get(value_key)
    if is_missing(raw):
        return None
    where = join(path, value_key)
    value: float = count(raw, where) if count_value else number(raw, where)
    draft.metric(metric_id, value, where)
    target, condition = block.get("targetValue"), block.get("targetCondition")
    if not is_missing(target):
        target_at = join(path, "targetValue")
        stated = (comparator(condition, join(path, "targetCondition"), TARGET_CONDITIONS)
                  if not is_missing(condition) else None)
        draft.target(metric_id, number(target, target_at), stated, target_at)
    return value


def _warnings(draft: Draft, entry: Mapping[str, Any], path: str) -> None:
    """Warning states count when their status is BAD; NONE and GOOD are not warnings."""
    for key in WARNING_KEYS:
        raw = entry.get(key)
        if raw is None:
            continue
        where = join(path, key)
        bad = 0
        for index, item in enumerate(array(raw, where)):
            state = mapping(item, join(where, index))
            if str(state.get("status", "")).strip().upper() == "BAD":
                bad += 1
        draft.metric("account_warning_count", bad, where)
        return
