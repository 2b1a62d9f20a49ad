"""A snapshot as the flat fact durable-rules matches on.

durable-rules compares top-level attributes of one message, so nested metrics,
targets and segment become prefixed keys: ``m_<metric>``, ``t_<metric>`` (the
target), ``s_<segment key>`` (always present, "" when unknown, so that a
"not equal" guard can match), ``pk`` (period kind), ``pf`` (the platform in
lower case, what a rule's ``platforms:`` is compared with), and targets re-stated by
the side that is good: ``tge_`` (value must be >= it), ``tgt_``, ``tle_``,
``tlt_``. A plain target takes its side from the indicator's direction; a
platform target carries its comparator, and is also stated as ``pge_`` /
``pgt_`` / ``ple_`` / ``plt_`` so that platform-target rules see only targets
a platform stated.

Guards for rules that come by the hundred, one per metric and side:
durable-rules evaluates a leading condition shared by rules once, so a fact
fails a whole group in one test (docs/durable-rules.md). ``ptarget`` (1): the
snapshot states a platform target, the first condition of every
platform-target rule; ``has_tge`` / ``has_tgt`` / ``has_tle`` / ``has_tlt``
(1): it holds a target on that side, the third of every PIP month check
(after the period kind and the operator).
"""

from __future__ import annotations

import functools
from typing import Any

from watcher import indicators
from watcher.indicators import Direction
from watcher.snapshot import Comparator, Snapshot

PLATFORM_TARGETS = "ptarget"


def side_guard(prefix: str) -> str:
    """The attribute saying a fact holds a target on this side (``tge_`` -> ``has_tge``)."""
    return "has_" + prefix.rstrip("_")


_GUARD = {prefix: side_guard(prefix) for prefix in ("tge_", "tgt_", "tle_", "tlt_")}
_SIDE = {
    Comparator.LT: ("tlt_",), Comparator.LE: ("tle_",), Comparator.GT: ("tgt_",),
    Comparator.GE: ("tge_",), Comparator.EQ: ("tle_", "tge_"),
}


def segment_value(value: str | bool | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower()


def to_fact(snapshot: Snapshot, fact_id: str, segment_keys: frozenset[str]) -> dict[str, Any]:
    fact: dict[str, Any] = {
        "id": fact_id,
        "store": snapshot.store,
        "platform": snapshot.platform,
        "operator": snapshot.operator or "",
        "pk": snapshot.period.kind.value,
        "pf": snapshot.platform.lower(),
        **_blank_segment(segment_keys),
    }
    for key, value in snapshot.segment.items():  # strings arrive lower-cased already
        fact["s_" + key] = value if type(value) is str else segment_value(value)
    for metric, number in snapshot.metrics.items():
        fact["m_" + metric] = number
    for metric, target in snapshot.targets.items():
        fact["t_" + metric] = target.value
        for prefix in target_sides(metric, target.comparator):
            fact[prefix + metric] = target.value
            fact[_GUARD[prefix]] = 1
        if target.comparator is not None:
            fact[PLATFORM_TARGETS] = 1
            for prefix in _SIDE[target.comparator]:
                fact["p" + prefix[1:] + metric] = target.value
    return fact


@functools.lru_cache(maxsize=16)
def _blank_segment(segment_keys: frozenset[str]) -> dict[str, str]:
    return {"s_" + key: "" for key in segment_keys}


def target_sides(metric: str, comparator: Comparator | None) -> tuple[str, ...]:
    if comparator is not None:
        return _SIDE[comparator]
    indicator = indicators.get(metric)
    if indicator is None:
        return ()
    return ("tge_",) if indicator.direction is Direction.HIGHER_IS_BETTER else ("tle_",)
