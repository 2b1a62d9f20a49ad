"""Realistic snapshot streams: many stores, every indicator, segments, targets, ~4 % breaches.

Deterministic for a seed. Each store belongs to an operator (7 stores each on
average). ``snapshots``: periods are months, so streaks (PIP) and restatement paths are
real. ``daily``: a day's batch after another, the daily watch's metrics (issue #17), with
traffic drops and rising defect rates for the history rules to catch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

STAGES, CATEGORIES = ("novice", "mature"), ("apparel", "electronics", "home", "beauty")
PLATFORMS = ("amazon", "shopee", "tiktok")
BREACH_SHARE = 0.04
# A breach sets one metric past its default threshold (kpi-reference §1).
BREACHES: dict[str, Any] = {
    "account_health_score": lambda rng: rng.randint(70, 89),
    "penalty_count": lambda rng: 1,
    "dispute_rate": lambda rng: round(rng.uniform(0.031, 0.08), 4),
    "gmv": lambda rng: rng.randint(50_000, 140_000),
    "stockout_rate": lambda rng: round(rng.uniform(0.09, 0.2), 4),
    "order_processing_hours": lambda rng: round(rng.uniform(49, 96), 1),
    "delivery_success_rate": lambda rng: round(rng.uniform(0.7, 0.89), 4),
    "positive_review_rate": lambda rng: round(rng.uniform(0.7, 0.89), 4),
}


def snapshots(count: int, *, stores: int = 5000, seed: int = 7, first_year: int = 2020,
              first_store: int = 0, first_month: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` snapshots, store after store (from ``first_store``), then month after month
    (from ``first_month`` of ``first_year``)."""
    rng = random.Random(seed)
    for index in range(count):
        store = (first_store + index) % stores
        month = first_month + index // stores
        breach = rng.random() < BREACH_SHARE
        metrics: dict[str, float] = {
            "gmv": rng.randint(150_000, 220_000), "gmv_ads": rng.randint(10_000, 40_000),
            "net_margin": round(rng.uniform(0.26, 0.35), 4),
            "conversion_rate": round(rng.uniform(0.05, 0.09), 4),
            "new_customer_share": round(rng.uniform(0.3, 0.5), 4),
            "inventory_turnover": round(rng.uniform(6, 9), 2),
            "stockout_rate": round(rng.uniform(0.0, 0.04), 4),
            "order_processing_hours": round(rng.uniform(6, 20), 1),
            "delivery_success_rate": round(rng.uniform(0.96, 0.99), 4),
            "positive_review_rate": round(rng.uniform(0.95, 0.99), 4),
            "dispute_rate": round(rng.uniform(0.0, 0.025), 4),
            "dispute_win_rate": round(rng.uniform(0.8, 0.95), 4),
            "repurchase_rate": round(rng.uniform(0.3, 0.5), 4),
            "account_health_score": rng.randint(92, 100), "penalty_count": 0,
            "risk_response_hours": round(rng.uniform(2, 40), 1),
        }
        if breach:
            which = rng.choice(sorted(BREACHES))
            metrics[which] = BREACHES[which](rng)
        yield {
            "store": f"st-{store:05d}", "platform": PLATFORMS[store % 3],
            "period": f"{first_year + month // 12:04d}-{month % 12 + 1:02d}",
            "operator": f"op-{store // 7:04d}",
            "segment": {"stage": STAGES[store % 2], "category": CATEGORIES[store % 4],
                        "special_category": store % 10 == 0, "level": "junior",
                        "fulfillment": "overseas_warehouse" if store % 5 == 0 else "fba",
                        "region": "remote" if store % 9 == 0 else "standard",
                        "price_band": "high" if store % 6 == 0 else "normal",
                        "category_type": "fmcg" if store % 4 == 3 else "durable"},
            "metrics": metrics, "targets": {"gmv": 150_000, "conversion_rate": 0.05},
        }


def jsonl(records: Iterator[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


# -- the daily watch (issue #17) ----------------------------------------------------------------

# Weekly seasonality of traffic, Monday first: weekends busier, Mondays slow.
WEEKDAY_TRAFFIC = (0.92, 0.97, 1.0, 1.0, 1.03, 1.12, 1.08)
# Shares of the stores whose history holds an event the daily rules are there to catch.
TRAFFIC_DROP_SHARE = 0.03   # visitors fall to 40-60 % of normal from one day on
ODR_RISING_SHARE = 0.03     # Amazon stores: order defect rate climbs towards 1 %
LATE_RISING_SHARE = 0.02    # Amazon stores: late shipment rate climbs towards 4 %
RETURN_SPIKE_SHARE = 0.01   # return rate to 2.5-3.5 times normal from one day on


def daily(stores: int, days: int, *, first: date = date(2026, 8, 1), seed: int = 17,
          operators: bool = False) -> Iterator[list[dict[str, Any]]]:
    """One list of snapshots per day (a day's batch), ``days`` days from ``first``, each
    store every day, as a shop system sends them: counts (visitors, orders, GMV, ad
    spend and sales, returns) from which the rates are derived, and the rates a platform
    states itself (chat response on Shopee; order defects and late shipments on Amazon).

    Each store has its own level of traffic, conversion, order value and ad cost, a
    weekly rhythm, and day-to-day noise. A few percent of stores carry an event (a
    traffic drop, a rising ODR or late-shipment rate, a return spike) that starts on a
    random day, about half of them in the last two weeks, so the change and trend
    rules of the daily pack fire, on the last day as on the others. With ``operators``
    each store names its operator (7 stores each), as monthly snapshots do; a daily feed
    need not (examples/daily.jsonl), and a day with operators changes their monthly
    cards (``watcher.assessment.verdict.months_of``). Deterministic for a seed.
    """
    rng = random.Random(seed)
    profiles = [_profile(rng, store, days, operators) for store in range(stores)]
    for day in range(days):
        when = first + timedelta(days=day)
        weekday = WEEKDAY_TRAFFIC[when.weekday()]
        observed = f"{(when + timedelta(days=1)).isoformat()}T02:00:00Z"
        yield [_day(rng, p, day, when.isoformat(), weekday, observed) for p in profiles]


def _profile(rng: random.Random, store: int, days: int, operators: bool) -> dict[str, Any]:
    def onset(share: float) -> int | None:
        if rng.random() >= share:
            return None
        # half in the last two weeks (incidents live at the end), half earlier
        return rng.randint(max(1, days - 14), days - 1) if rng.random() < 0.5 \
            else rng.randint(min(8, days - 1), days - 1)

    platform = PLATFORMS[store % 3]
    amazon = platform == "amazon"
    return {
        "store": f"st-{store:05d}", "platform": platform,
        "operator": f"op-{store // 7:04d}" if operators else None,
        "visitors": rng.lognormvariate(7.0, 0.8),   # median about 1,100 a day
        "conversion": rng.uniform(0.03, 0.08), "aov": rng.uniform(18, 90),
        "ads_share": rng.uniform(0.2, 0.45), "acos": rng.uniform(0.1, 0.24),
        "returns": rng.uniform(0.01, 0.035), "first_response": rng.uniform(2, 14),
        "chat": rng.uniform(0.82, 0.97), "odr": rng.uniform(0.0008, 0.004),
        "late": rng.uniform(0.004, 0.02),
        "drop": onset(TRAFFIC_DROP_SHARE), "drop_to": rng.uniform(0.4, 0.6),
        "odr_rise": onset(ODR_RISING_SHARE) if amazon else None,
        "late_rise": onset(LATE_RISING_SHARE) if amazon else None,
        "return_spike": onset(RETURN_SPIKE_SHARE), "spike": rng.uniform(2.5, 3.5),
    }


def _day(rng: random.Random, p: dict[str, Any], day: int, period: str, weekday: float,
         observed: str) -> dict[str, Any]:
    def since(event: str) -> int | None:
        start = p[event]
        return None if start is None or day < start else day - start

    visitors = p["visitors"] * weekday * rng.gauss(1, 0.08)
    if since("drop") is not None:
        visitors *= p["drop_to"]
    visitors = max(1, round(visitors))
    orders = min(visitors, max(0, round(visitors * p["conversion"] * rng.gauss(1, 0.1))))
    gmv = round(orders * p["aov"] * rng.gauss(1, 0.05), 2)
    gmv_ads = round(gmv * p["ads_share"] * rng.gauss(1, 0.1), 2)
    return_rate = p["returns"] * (p["spike"] if since("return_spike") is not None else 1)
    metrics: dict[str, float] = {
        "visitors": visitors, "orders": orders, "gmv": gmv, "gmv_ads": gmv_ads,
        "ad_spend": round(gmv_ads * p["acos"] * rng.gauss(1, 0.08), 2),
        "returns": min(orders, round(orders * return_rate * rng.gauss(1, 0.2))),
        "cs_first_response_hours": round(p["first_response"] * rng.uniform(0.7, 1.3), 1),
    }
    if p["platform"] == "shopee":
        metrics["chat_response_rate"] = round(min(1.0, p["chat"] * rng.gauss(1, 0.02)), 4)
    if p["platform"] == "amazon":
        odr, late = p["odr"], p["late"]
        if (rising := since("odr_rise")) is not None:
            odr += 0.0004 * rising   # about 0.3 pt a week: crosses 1 % within weeks
        if (rising := since("late_rise")) is not None:
            late += 0.0015 * rising
        metrics["order_defect_rate"] = round(min(1.0, odr * rng.gauss(1, 0.05)), 5)
        metrics["late_shipment_rate"] = round(min(1.0, late * rng.gauss(1, 0.05)), 5)
    snapshot = {"store": p["store"], "platform": p["platform"], "period": period,
                "observed_at": observed, "metrics": metrics, "targets": {"acos": 0.3}}
    if p["operator"]:
        snapshot["operator"] = p["operator"]
    return snapshot
