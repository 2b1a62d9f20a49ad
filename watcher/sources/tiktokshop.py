"""TikTok Shop ``GET /analytics/202405/shop/performance``.

TikTok publishes no shop-health API, so this source gives sales, not
compliance: GMV, orders, buyers, refunds and the rates derived from them.
Only ``performance.intervals`` is read; ``comparison_intervals`` is the
preceding period as TikTok recomputed it for comparison, and turning it into
snapshots would silently restate periods that were ingested when they were
current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watcher.sources.base import (
    Context,
    Draft,
    PayloadError,
    Source,
    array,
    count,
    day,
    is_missing,
    join,
    mapping,
    number,
    period_for_range,
    ratio,
    tidy,
)


class TikTokShopSource(Source):
    """One snapshot per interval; a whole calendar month is ``YYYY-MM``, else the end day.

    Derived rates are emitted only when they are shares in [0, 1]: LIVE and video
    orders need no product-page view and returns can belong to earlier orders,
    so a quotient above 1 is not a rate and would reject the whole interval.
    """

    name = "tiktokshop"
    platform = "tiktok"

    def convert(self, payload: Any, context: Context) -> list[Draft]:
        body = mapping(payload, "")
        code = body.get("code")
        if is_missing(code) or number(code, "code") != 0:
            message = body.get("message") or "no message"
            request = body.get("request_id")
            suffix = f" (request_id {request})" if request else ""
            raise PayloadError("code", f"TikTok Shop refused the request: code {code}: "
                               f"{message}{suffix}")
        performance = mapping(mapping(body.get("data"), "data").get("performance"),
                              "data.performance")
        where = "data.performance.intervals"
        drafts: list[Draft] = []
        periods: dict[str, str] = {}
        for index, item in enumerate(array(performance.get("intervals"), where)):
            path = join(where, index)
            draft = _interval(mapping(item, path), path, context)
            if draft.period in periods:
                raise PayloadError(path, f"interval maps to period {draft.period} like "
                                   f"{periods[draft.period]}; one snapshot per period")
            periods[draft.period] = path
            if draft.metrics:
                drafts.append(draft)
        return drafts


def _interval(interval: Mapping[str, Any], path: str, context: Context) -> Draft:
    start = day(interval.get("start_date"), join(path, "start_date"))
    end = day(interval.get("end_date"), join(path, "end_date"))
    if start > end:
        raise PayloadError(join(path, "start_date"),
                           f"starts {start.isoformat()}, after its end {end.isoformat()}")
    draft = context.draft(period=period_for_range(start, end))
    gmv = _money(draft, interval, path, "gmv", "gmv")
    refunds = _money(draft, interval, path, "refunds", "refunds")
    orders = _count(draft, interval, path, "orders", "orders")
    _count(draft, interval, path, "buyers", "buyers")
    troubles = _raw_count(interval, path, "cancellations_and_returns")
    views = _raw_count(interval, path, "product_page_views")
    derived = (
        ("cancellation_return_rate", troubles, orders, "cancellations_and_returns / orders"),
        ("refund_rate", refunds, gmv, "refunds.amount / gmv.amount"),
        ("conversion_rate", orders, views, "orders / product_page_views"),
    )
    for metric_id, numerator, denominator, formula in derived:
        if numerator is not None and denominator is not None:
            share = ratio(numerator, denominator)
            if share is not None:
                draft.metric(metric_id, share, f"{path} ({formula})")
    if gmv is not None and orders:  # an amount per order, not a share: no ratio()
        draft.metric("average_order_value", tidy(gmv / orders), f"{path} (gmv.amount / orders)")
    return draft


def _money(draft: Draft, interval: Mapping[str, Any], path: str, key: str,
           metric_id: str) -> float | None:
    """``{amount: "48210.40", currency: "USD"}``; the currency goes to the segment."""
    block = interval.get(key)
    if block is None:
        return None
    where = join(path, key)
    money = mapping(block, where)
    amount = money.get("amount")
    if is_missing(amount):
        return None
    value = number(amount, join(where, "amount"))
    draft.metric(metric_id, value, join(where, "amount"))
    currency = money.get("currency")
    if isinstance(currency, str) and currency.strip():
        draft.segment["currency"] = currency.strip().lower()
    return value


def _count(draft: Draft, interval: Mapping[str, Any], path: str, key: str,
           metric_id: str) -> int | None:
    value = _raw_count(interval, path, key)
    if value is not None:
        draft.metric(metric_id, value, join(path, key))
    return value


def _raw_count(interval: Mapping[str, Any], path: str, key: str) -> int | None:
    raw = interval.get(key)
    return None if is_missing(raw) else count(raw, join(path, key))
