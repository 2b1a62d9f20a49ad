"""Shopee Open Platform v2 account health: ``get_shop_performance`` and ``shop_penalty``.

Both answers come in the same envelope ``{request_id, error, message, response}``
and neither says which endpoint produced it, so the response is recognised by
its shape: ``metric_list`` means shop performance, ``penalty_points`` or
``ongoing_punishment`` means shop penalty.

The two answers describe the same shop on the same day. Sent as two separate
snapshots they would share an identity (platform, store, period) and the second
would *restate* (replace) the first, so the adapter also accepts a JSON array
of envelopes and merges them into one snapshot: send both together.

Neither answer carries a date: the period is the current UTC day unless the
caller passes ``period``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

from watcher.sources.base import (
    Context,
    Draft,
    PayloadError,
    Source,
    array,
    comparator,
    count,
    is_missing,
    join,
    mapping,
    number,
    tidy,
)


class Kind(Enum):
    """What a canonical metric is measured in; decides which Shopee units convert to it."""

    NUMBER = "number"
    FRACTION = "fraction"
    HOURS = "hours"
    DAYS = "days"


# Shopee metric unit codes.
NUMBER, PERCENT, SECONDS, DAYS, HOURS = 1, 2, 3, 4, 5
_CONVERSIONS: Final[dict[tuple[int, Kind], float]] = {
    (NUMBER, Kind.NUMBER): 1.0, (PERCENT, Kind.FRACTION): 0.01,
    (SECONDS, Kind.HOURS): 1 / 3600, (DAYS, Kind.HOURS): 24.0, (HOURS, Kind.HOURS): 1.0,
    (SECONDS, Kind.DAYS): 1 / 86400, (DAYS, Kind.DAYS): 1.0, (HOURS, Kind.DAYS): 1 / 24,
}

# metric_name -> (canonical id, kind). Names not listed are ignored: Shopee adds
# metrics per market and a new one must not reject the shop's data.
METRICS: Final[dict[str, tuple[str, Kind]]] = {
    "late_shipment_rate": ("late_shipment_rate", Kind.FRACTION),
    "non_fulfillment_rate": ("non_fulfillment_rate", Kind.FRACTION),
    "cancellation_rate": ("cancellation_rate", Kind.FRACTION),
    "return_refund_rate": ("return_refund_rate", Kind.FRACTION),
    "preparation_time": ("preparation_days", Kind.DAYS),
    "response_rate": ("chat_response_rate", Kind.FRACTION),
    "response_time": ("chat_response_hours", Kind.HOURS),
    "shop_rating": ("shop_rating", Kind.NUMBER),
}

# Ongoing punishments from this tier up are major penalties (major_penalty_count).
MAJOR_TIER: Final = 2

# metric_type 2 is "Listing Violations"; its top-level counts add up to one metric.
LISTING_VIOLATIONS = 2


class ShopeeSource(Source):
    """Shop performance and penalty, one snapshot per payload (one shop, one day)."""

    name = "shopee"
    platform = "shopee"

    def convert(self, payload: Any, context: Context) -> list[Draft]:
        envelopes = ([(item, join("", index)) for index, item in enumerate(payload)]
                     if isinstance(payload, list) else [(payload, "")])
        if not envelopes:
            raise PayloadError(None, "an empty list: expected one or more Shopee responses")
        draft = context.draft(period=context.today)
        seen: dict[str, str] = {}
        for envelope, path in envelopes:
            response, where = _unwrap(envelope, path)
            kind = _recognise(response, where)
            if kind in seen:
                raise PayloadError(where or None,
                                   f"a second {kind} response (the first is at "
                                   f"{seen[kind] or 'the top'}); send one per shop and day")
            seen[kind] = where
            if kind == "get_shop_performance":
                _performance(draft, response, where)
            else:
                _penalty(draft, response, where)
        return [draft] if draft.metrics else []


def _unwrap(envelope: Any, path: str) -> tuple[Mapping[str, Any], str]:
    """The ``response`` object, after refusing an error envelope with Shopee's message."""
    body = mapping(envelope, path)
    error = body.get("error")
    if not is_missing(error):
        message = body.get("message") or "no message"
        request = body.get("request_id")
        suffix = f" (request_id {request})" if request else ""
        raise PayloadError(join(path, "error"),
                           f"Shopee refused the request: {error}: {message}{suffix}")
    where = join(path, "response")
    return mapping(body.get("response"), where), where


def _recognise(response: Mapping[str, Any], path: str) -> str:
    if "metric_list" in response:
        return "get_shop_performance"
    if "penalty_points" in response or "ongoing_punishment" in response:
        return "shop_penalty"
    raise PayloadError(path or None, "not a get_shop_performance response (no metric_list) "
                       "nor a shop_penalty response (no penalty_points)")


def _performance(draft: Draft, response: Mapping[str, Any], path: str) -> None:
    where = join(path, "metric_list")
    violations: list[float] = []
    for index, item in enumerate(array(response.get("metric_list"), where)):
        entry_path = join(where, index)
        entry = mapping(item, entry_path)
        name = str(entry.get("metric_name", "")).strip()
        if name in METRICS and METRICS[name][0] not in draft.metrics:
            _metric(draft, entry, entry_path, *METRICS[name])
        elif _is_listing_violation(entry):
            value = entry.get("current_period")
            if not is_missing(value):
                violations.append(count(value, join(entry_path, "current_period")))
    if violations:
        draft.metric("listing_violation_count", sum(violations),
                     f"{where} (metric_type {LISTING_VIOLATIONS}, summed)")


def _is_listing_violation(entry: Mapping[str, Any]) -> bool:
    """Top-level counts only: children break their parent down and would count twice."""
    return (entry.get("metric_type") == LISTING_VIOLATIONS
            and entry.get("unit") == NUMBER
            and entry.get("parent_metric_id") in (0, None))


def _metric(draft: Draft, entry: Mapping[str, Any], path: str, metric_id: str,
            kind: Kind) -> None:
    """``current_period`` null means no data this period: omitted, not zero, not an error."""
    current = entry.get("current_period")
    if is_missing(current):
        return
    unit_path = join(path, "unit")
    factor = _factor(entry.get("unit"), kind, unit_path, metric_id)
    value_path = join(path, "current_period")
    draft.metric(metric_id, tidy(number(current, value_path) * factor), value_path)
    target = entry.get("target")
    if isinstance(target, Mapping) and not is_missing(target.get("value")):
        target_path = join(path, "target")
        value = tidy(number(target["value"], join(target_path, "value")) * factor)
        stated = (comparator(target["comparator"], join(target_path, "comparator"))
                  if not is_missing(target.get("comparator")) else None)
        draft.target(metric_id, value, stated, join(target_path, "value"))


def _factor(unit: Any, kind: Kind, path: str, metric_id: str) -> float:
    code = int(number(unit, path)) if not is_missing(unit) else None
    factor = _CONVERSIONS.get((code, kind)) if code is not None else None
    if factor is None:
        raise PayloadError(path, f"unit {unit!r} cannot be read as {kind.value} "
                           f"for {metric_id} (units: 1 number, 2 percent, 3 seconds, "
                           "4 days, 5 hours)")
    return factor


def _penalty(draft: Draft, response: Mapping[str, Any], path: str) -> None:
    """Overall points (they reset each quarter) and the punishments in force today.

    Each ongoing punishment (deboost, listing limits, no campaigns, ...) is a
    penalty in force, so their number is also ``penalty_count``, and the "any
    penalty" rule fires from a Shopee payload. Tier 2 and above (listings hidden,
    no listing edits, frozen account at tier 5) take selling privileges away:
    those are ``major_penalty_count``. Points are not penalties: they are what
    leads to one; the ``shopee-penalty-points`` rule watches them.
    """
    points = response.get("penalty_points")
    if points is not None:
        where = join(path, "penalty_points")
        overall = mapping(points, where).get("overall_penalty_points")
        if not is_missing(overall):
            at = join(where, "overall_penalty_points")
            draft.metric("penalty_points", count(overall, at), at)
    punishments = response.get("ongoing_punishment")
    if punishments is None:
        return
    where = join(path, "ongoing_punishment")
    entries = array(punishments, where)
    tiers: list[int] = []
    for index, item in enumerate(entries):
        entry_path = join(where, index)
        tier = mapping(item, entry_path).get("punishment_tier")
        if not is_missing(tier):
            tiers.append(count(tier, join(entry_path, "punishment_tier")))
    draft.metric("ongoing_punishment_count", len(entries), where)
    draft.metric("penalty_count", len(entries), where)
    draft.metric("punishment_tier_max", max(tiers, default=0), where)
    if len(tiers) == len(entries):
        # A punishment without a tier may or may not be major: no count rather than a guess.
        draft.metric("major_penalty_count", sum(1 for t in tiers if t >= MAJOR_TIER),
                     f"{where} (punishment_tier >= {MAJOR_TIER})")
