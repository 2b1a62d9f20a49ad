"""Rule pack -> durable-rules ruleset definition.

Each rule becomes one durable rule per *form* (its default condition and each
segment variant). Variant selection happens here, at compile time: a form's
condition is guarded by its own segment match and by "not matched by any form
that beats it" (more segment keys wins; on a tie the one listed first), so on
any fact at most one form of a rule can fire and the engine alone decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from watcher import indicators
from watcher.rules.expression import BoolOp, Comparison, Condition
from watcher.rules.facts import PLATFORM_TARGETS
from watcher.rules.history import HISTORY_KINDS
from watcher.rules.model import Rule, RulePack, Variant

_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}
# A metric misses a platform-stated target on the wrong side of its good side.
_MISSED_HIGHER = (("tge_", "$lt"), ("tgt_", "$lte"))
_MISSED_LOWER = (("tle_", "$gt"), ("tlt_", "$gte"))


@dataclass(frozen=True, slots=True)
class Form:
    """One compiled alternative of a rule: ``variant`` is None for the default."""

    key: str
    rule: Rule
    variant: Variant | None
    metric: str | None = None  # platform-target forms: the metric checked against its target
    side: str | None = None

    @property
    def condition(self) -> Condition | None:
        return self.variant.compiled if self.variant else self.rule.compiled


_ALL_SIDES = _MISSED_HIGHER + _MISSED_LOWER


def forms(rule: Rule, watched: list[str]) -> list[Form]:
    if rule.kind in HISTORY_KINDS:
        return []  # judged on the store's history, in Python (watcher/rules/history.py)
    if rule.kind == "platform_target":
        return [Form(f"{rule.id}@target:{metric}:{side}", rule, None, metric, side)
                for metric in watched for side, _ in _ALL_SIDES]
    if rule.kind == "streak":
        return []  # judged on the operator's monthly cards, not per snapshot (apply.py)
    result = [Form(f"{rule.id}@{i + 1}", rule, v) for i, v in enumerate(rule.variants)]
    if rule.compiled is not None:
        result.append(Form(f"{rule.id}@0", rule, None))
    return result


def segment_keys(pack: RulePack) -> frozenset[str]:
    return frozenset(k for r in pack.rules for v in r.variants for k in v.when)


def condition_json(condition: Condition) -> dict[str, Any]:
    if isinstance(condition, BoolOp):
        return {"$and" if condition.op == "and" else "$or":
                [condition_json(p) for p in condition.parts]}
    return _comparison_json(condition)


def _comparison_json(c: Comparison) -> dict[str, Any]:
    field = "m_" + c.metric
    if c.value is None:
        return _against_field(field, c.op, "t_" + c.metric)
    if c.op == "==":
        return {field: c.value}
    return {_OPS[c.op]: {field: c.value}}


def _against_field(field: str, op: str, other: str) -> dict[str, Any]:
    """Compare two fields of the fact, guarded: inside ``$or`` durable-rules lets a
    comparison against a *missing* ``$m`` field match, so its presence is required."""
    compare = {field: {"$m": other}} if op == "==" else {_OPS.get(op, op): {field: {"$m": other}}}
    return {"$and": [{"$ex": {other: 1}}, compare]}


def _beats(other: Variant, mine: Variant | None, others: tuple[Variant, ...]) -> bool:
    if mine is None:
        return True
    if len(other.when) != len(mine.when):
        return len(other.when) > len(mine.when)
    return others.index(other) < others.index(mine)


def _compatible(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(b.get(k, v) == v for k, v in a.items())


def _segment_guard(rule: Rule, variant: Variant | None) -> list[dict[str, Any]]:
    guards: list[dict[str, Any]] = []
    mine = variant.when if variant else {}
    for key, value in mine.items():
        guards.append({"s_" + key: value})
    for other in rule.variants:
        if other is variant or not _beats(other, variant, rule.variants):
            continue
        if not _compatible(other.when, mine):
            continue  # cannot match together with this form
        extra = {k: v for k, v in other.when.items() if k not in mine}
        alternatives = [{"$neq": {"s_" + k: v}} for k, v in extra.items()]
        guards.append(alternatives[0] if len(alternatives) == 1 else {"$or": alternatives})
    return guards


def _period_guard(rule: Rule) -> list[dict[str, Any]]:
    return _one_of("pk", rule.periods)


def _platform_guard(rule: Rule) -> list[dict[str, Any]]:
    """``platforms:``: the fact's lower-case platform (``pf``) is one of them."""
    return _one_of("pf", rule.platforms)


def _one_of(attribute: str, values: tuple[str, ...]) -> list[dict[str, Any]]:
    if not values:
        return []
    options = [{attribute: v} for v in values]
    return [options[0] if len(options) == 1 else {"$or": options}]


def target_metrics(pack: RulePack) -> list[str]:
    """Metric ids a streak rule watches: the registry plus any metric a rule names."""
    named = {m for r in pack.rules for m in r.metrics()}
    return sorted(set(indicators.INDICATORS) | named)


def platform_target_json(metric: str, side: str,
                         guards: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # Leading conditions shared by the group come first (watcher/rules/facts.py): the
    # rule's period and platform guards too are the same for each of its forms.
    op = dict(_ALL_SIDES)[side]
    stated = "p" + side[1:] + metric
    return {"$and": [{PLATFORM_TARGETS: 1}, *(guards or []), {"$ex": {stated: 1}},
                     {op: {"m_" + metric: {"$m": stated}}}]}


def form_json(form: Form) -> dict[str, Any]:
    if form.metric is not None and form.side is not None:  # a platform-target form
        return platform_target_json(form.metric, form.side,
                                    [*_period_guard(form.rule), *_platform_guard(form.rule)])
    condition = form.condition
    assert condition is not None
    parts = [*_period_guard(form.rule), *_platform_guard(form.rule),
             *_segment_guard(form.rule, form.variant), condition_json(condition)]
    return parts[0] if len(parts) == 1 else {"$and": parts}


def compile_pack(pack: RulePack) -> dict[str, dict[str, Any]]:
    """The durable-rules definition (without actions): ``{form key: {"all": [...]}}``."""
    return {form.key: {"all": [{"m": form_json(form)}]} for form in pack_forms(pack)}


def pack_forms(pack: RulePack) -> list[Form]:
    watched = target_metrics(pack)
    return [form for rule in pack.rules if rule.enabled for form in forms(rule, watched)]
