"""From the engine's verdict on a snapshot to firings and recoveries.

Pure: the engine decided *whether* a rule holds; this module describes it
(value versus threshold, in words) and says which rules were evaluable but did
not fire, which is what resolves an incident automatically. The monthly assessment
is not judged here but on the operator's monthly card (watcher.assessment.verdict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watcher import indicators
from watcher.incidents import Firing, Recovery, fingerprint
from watcher.indicators import Unit
from watcher.rules.engine import Verdict, applicable_variant, normalise_segment
from watcher.rules.expression import Comparison, Condition, comparisons, holds, requirements
from watcher.rules.history import HISTORY_KINDS
from watcher.rules.model import Rule, RulePack, SubjectKind
from watcher.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one snapshot did: the rules that fired, and what can recover.

    Recoveries are asked for, not listed: a snapshot is evaluable by most rules
    of the pack but meets a live incident of its store for very few of them, so
    only those are checked (``recovery``). This keeps the cost per snapshot
    independent of the number of rules (bench/README.md, rule scaling).
    """

    snapshot: Snapshot
    pack: RulePack
    firings: list[Firing] = field(default_factory=list)
    fired: frozenset[tuple[str, str | None]] = frozenset()
    # history rules (change, trend) that were evaluable and did not fire, by rule id
    settled: dict[str, Recovery] = field(default_factory=dict)

    def recovery(self, rule_id: str, subject_kind: str, subject: str, *,
                 hysteresis: bool = True) -> Recovery | None:
        """The recovery of a live incident of this snapshot's store or operator, if any.

        A rule recovers when it was evaluable on this snapshot (its metrics, and
        targets, are present; its period kind and platform apply) and did not fire, and, when
        it has a ``resolve`` condition (hysteresis), that condition holds: between
        the two the incident stays as it is. ``hysteresis=False`` asks only whether
        the firing condition stopped holding (what breaks a ``for`` run).
        """
        snap = self.snapshot
        base, _, metric = rule_id.partition("/")
        rule = self.pack.get(base)
        if rule is None or not rule.enabled or (base, metric or None) in self.fired:
            return None
        if _subject(rule, snap) != (subject_kind, subject) or not rule.applies_to(snap):
            return None
        if rule.kind == "platform_target":
            return _platform_recovery(rule_id, snap, metric) if metric else None
        if rule.kind in HISTORY_KINDS:
            return self.settled.get(rule_id)
        if rule.kind != "threshold":
            return None
        variant = (applicable_variant(rule, normalise_segment(snap.segment))
                   if rule.variants and snap.segment else None)
        condition = variant.compiled if variant else rule.compiled
        targets = {k: t.value for k, t in snap.targets.items()}
        if condition is None or not _evaluable(condition, snap.metrics, targets):
            return None
        resolve = rule.resolve_condition(variant) if hysteresis else None
        if resolve is not None:
            if not (_evaluable(resolve, snap.metrics, targets)
                    and holds(resolve, snap.metrics, targets)):
                return None  # between the firing and the resolve condition: unchanged
            condition = resolve
        return _recovery(rule, snap, condition, targets)


def format_value(metric: str | None, value: float | None) -> str:
    if value is None:
        return "-"
    indicator = indicators.get(metric) if metric else None
    if indicator is not None and indicator.unit is Unit.FRACTION:
        return f"{value * 100:.2f}%"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class PerLanguage(dict[str, str]):
    """A message value that differs by language (display names: GMV / 销售额); a
    language it lacks gets the English one."""

    def of(self, language: str) -> str:
        return self.get(language) or self.get("en", "")


def metric_names(metrics: list[str], language: str) -> str:
    """Metric ids as people read them in ``language``: ``gmv`` -> GMV, 销售额."""
    named = [indicators.get(m) for m in metrics]
    return ", ".join(i.name(language) if i is not None else m
                     for i, m in zip(named, metrics, strict=True))


def render_title(rule: Rule, values: dict[str, Any], metrics: dict[str, float] | None = None,
                 targets: dict[str, float] | None = None) -> dict[str, str]:
    """The rule's words for this firing: the first of its ``message_cases`` that holds
    on the snapshot's ``metrics`` and ``targets``, else its ``message``."""
    message = rule.message
    if metrics is not None:
        case = next((c for c in rule.message_cases
                     if holds(c.compiled, metrics, targets or {})), None)
        message = case.text if case is not None else message
    return {lang: text.format_map(_Blank({
        k: v.of(lang) if isinstance(v, PerLanguage) else v for k, v in values.items()}))
        for lang, text in message.items()}


def outcome(pack: RulePack, version: str, verdict: Verdict) -> Outcome:
    snap = verdict.snapshot
    firings: list[Firing] = []
    fired: set[tuple[str, str | None]] = set()
    for form in verdict.fired:
        rule = form.rule
        if not rule.enabled or not rule.applies_to(snap):
            continue  # the engine's guards say the same; a hand-built verdict may not
        if form.metric is None:
            if (rule.id, None) not in fired and form.condition is not None:
                fired.add((rule.id, None))
                targets = {k: t.value for k, t in snap.targets.items()}
                firings.append(_firing(rule, version, snap, form.condition, targets))
        elif rule.kind == "platform_target" and (rule.id, form.metric) not in fired:
            fired.add((rule.id, form.metric))
            firings.append(_platform_firing(rule, version, snap, form.metric))
    return Outcome(snap, pack, firings, frozenset(fired))


def _evaluable(condition: Condition, metrics: dict[str, float], targets: dict[str, float]) -> bool:
    needed_metrics, needed_targets = requirements(condition)
    return needed_metrics <= metrics.keys() and needed_targets <= targets.keys()


def _primary(condition: Condition, metrics: dict[str, float],
             targets: dict[str, float]) -> Comparison:
    parts = comparisons(condition)
    return next((c for c in parts if holds(c, metrics, targets)), parts[0])


def _subject(rule: Rule, snap: Snapshot) -> tuple[str, str]:
    if rule.subject is SubjectKind.OPERATOR and snap.operator:
        return "operator", snap.operator
    return "store", snap.store


def _values(snap: Snapshot, metric: str, value: float | None,
            threshold: float | None) -> dict[str, Any]:
    indicator = indicators.get(metric)
    return {
        # every metric of the snapshot by its id ("{policy_warning_count} warnings"), then
        # the fixed names, which win over a metric of the same name
        **{m: format_value(m, v) for m, v in snap.metrics.items()},
        "store": snap.store, "platform": snap.platform, "operator": snap.operator or "-",
        "period": snap.period.text, "metric": metric,
        "metric_name": indicator.name_en if indicator else metric,
        "metric_name_zh": indicator.name_zh if indicator else metric,
        "value": format_value(metric, value), "threshold": format_value(metric, threshold),
    }


def _firing(rule: Rule, version: str, snap: Snapshot, condition: Condition,
            targets: dict[str, float]) -> Firing:
    primary = _primary(condition, snap.metrics, targets)
    value = snap.metrics.get(primary.metric)
    threshold = targets.get(primary.metric) if primary.value is None else primary.value
    kind, subject = _subject(rule, snap)
    return Firing(
        rule=rule.id, rule_version=version, subject_kind=kind, subject=subject,
        store=snap.store, platform=snap.platform, operator=snap.operator,
        severity=rule.severity.value, audience=rule.audience, metric=primary.metric,
        value=value, threshold=threshold, period=snap.period.text, period_end=snap.period.end,
        title=render_title(rule, _values(snap, primary.metric, value, threshold),
                           snap.metrics, targets),
        labels={**rule.labels, "platform": snap.platform, "store": snap.store,
                **({"operator": snap.operator} if snap.operator else {})},
    )


def _recovery(rule: Rule, snap: Snapshot, condition: Condition,
              targets: dict[str, float]) -> Recovery:
    kind, subject = _subject(rule, snap)
    metric = comparisons(condition)[0].metric
    value = format_value(metric, snap.metrics.get(metric))
    args = {"metric": metric, "value": value, "period": snap.period.text,
            "condition": str(condition)}
    note = "recovered: {metric} is {value} in {period} (rule: {condition})".format(**args)
    return Recovery(fingerprint(rule.id, kind, subject), snap.period.text, snap.period.end, note,
                    key="recovered", args=args)


def _platform_firing(rule: Rule, version: str, snap: Snapshot, metric: str) -> Firing:
    """A metric whose platform-stated target is missed is its own incident."""
    target = snap.targets[metric]
    value = snap.metrics[metric]
    values = {**_values(snap, metric, value, target.value),
              "comparator": target.comparator.value if target.comparator else ""}
    return Firing(
        rule=f"{rule.id}/{metric}", rule_version=version, subject_kind="store",
        subject=snap.store, store=snap.store, platform=snap.platform, operator=snap.operator,
        severity=rule.severity_for(metric).value, audience=rule.audience,
        metric=metric, value=value, threshold=target.value, period=snap.period.text,
        period_end=snap.period.end,
        title=render_title(rule, values, snap.metrics,
                           {k: t.value for k, t in snap.targets.items()}),
        labels={**rule.labels, "platform": snap.platform, "store": snap.store,
                "metric": metric})


def _platform_recovery(rule_id: str, snap: Snapshot, metric: str) -> Recovery | None:
    target = snap.targets.get(metric)
    if target is None or target.comparator is None or metric not in snap.metrics:
        return None
    args = {"metric": metric, "value": format_value(metric, snap.metrics[metric]),
            "comparator": target.comparator.value, "target": format_value(metric, target.value),
            "period": snap.period.text}
    note = ("recovered: {metric} is {value}, meeting the platform target {comparator} "
            "{target} in {period}").format(**args)
    return Recovery(fingerprint(rule_id, "store", snap.store), snap.period.text,
                    snap.period.end, note, key="recovered_platform", args=args)
