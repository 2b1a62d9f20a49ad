"""Realistic snapshot streams: many stores, every indicator, segments, targets, ~4 % breaches.

Deterministic for a seed. Each store belongs to an operator (7 stores each on
average); periods are months, so streaks (PIP) and restatement paths are real.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
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
