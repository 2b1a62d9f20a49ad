"""From the engine's verdict on a snapshot to firings, recoveries and a monthly assessment.

Pure: the engine decided *whether* a rule holds; this module describes it
(value versus threshold, in words) and says which rules were evaluable but did
not fire, which is what resolves an incident automatically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watcher import indicators
from watcher.incidents import Firing, Recovery, fingerprint
from watcher.indicators import Unit
from watcher.rules.compiler import Form
from watcher.rules.engine import Verdict, applicable_variant, normalise_segment
from watcher.rules.expression import Comparison, Condition, comparisons, holds, requirements
from watcher.rules.model import Rule, RulePack, SubjectKind
from watcher.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Assessment:
    """One store's monthly assessment for its operator: missed when any target was missed."""

    operator: str
    store: str
    platform: str
    period: str
    missed: bool
    evidence: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Outcome:
    snapshot: Snapshot
    firings: list[Firing] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    assessment: Assessment | None = None


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


def render_title(rule: Rule, values: dict[str, Any]) -> dict[str, str]:
    return {lang: text.format_map(_Blank(values)) for lang, text in rule.message.items()}


def outcome(pack: RulePack, version: str, verdict: Verdict) -> Outcome:
    snap = verdict.snapshot
    fired_threshold: dict[str, Form] = {}
    missed: list[Form] = []
    platform: dict[tuple[str, str], Form] = {}
    for form in verdict.fired:
        if form.metric is None:
            fired_threshold[form.rule.id] = form
        elif form.rule.kind == "platform_target":
            platform[(form.rule.id, form.metric)] = form
        else:
            missed.append(form)
    targets = {k: t.value for k, t in snap.targets.items()}
    segment = normalise_segment(snap.segment) if snap.segment else {}
    kind = snap.period.kind.value
    result = Outcome(snap)
    for rule in pack.rules:
        if rule.enabled and rule.kind == "platform_target":
            _platform_targets(rule, version, snap, platform, result)
        if not rule.enabled or rule.kind != "threshold":
            continue
        if rule.periods and kind not in rule.periods:
            continue
        fired = fired_threshold.get(rule.id)
        if fired is not None:
            assert fired.condition is not None
            result.firings.append(_firing(rule, version, snap, fired.condition, targets))
            continue
        variant = applicable_variant(rule, segment) if rule.variants else None
        condition = variant.compiled if variant else rule.compiled
        if condition is not None and _evaluable(condition, snap.metrics, targets):
            result.recoveries.append(_recovery(rule, snap, condition, targets))
    if snap.operator and snap.period.kind.value == "month" and snap.targets:
        evidence = [_miss_evidence(snap, form.metric) for form in missed if form.metric]
        unique = list({e["metric"]: e for e in evidence}.values())
        result_assessment = Assessment(snap.operator, snap.store, snap.platform,
                                       snap.period.text, bool(unique), unique)
        return Outcome(snap, result.firings, result.recoveries, result_assessment)
    return result


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
        title=render_title(rule, _values(snap, primary.metric, value, threshold)),
        labels={**rule.labels, "platform": snap.platform, "store": snap.store,
                **({"operator": snap.operator} if snap.operator else {})},
    )


def _recovery(rule: Rule, snap: Snapshot, condition: Condition,
              targets: dict[str, float]) -> Recovery:
    kind, subject = _subject(rule, snap)
    first = comparisons(condition)[0]

    def note() -> str:
        value = snap.metrics.get(first.metric)
        return (f"recovered: {first.metric} is {format_value(first.metric, value)} in "
                f"{snap.period.text} (rule: {condition})")

    return Recovery(fingerprint(rule.id, kind, subject), snap.period.text, snap.period.end, note)


def _miss_evidence(snap: Snapshot, metric: str) -> dict[str, Any]:
    target = snap.targets[metric]
    return {"period": snap.period.text, "store": snap.store, "metric": metric,
            "value": snap.metrics[metric], "target": target.value,
            "comparator": target.comparator.value if target.comparator else None}


def _platform_targets(rule: Rule, version: str, snap: Snapshot,
                      fired: dict[tuple[str, str], Form], result: Outcome) -> None:
    """Each metric whose platform-stated target is missed is its own incident."""
    for metric, target in snap.targets.items():
        if target.comparator is None or metric not in snap.metrics:
            continue
        rule_id = f"{rule.id}/{metric}"
        value = snap.metrics[metric]
        if (rule.id, metric) in fired:
            values = {**_values(snap, metric, value, target.value),
                      "comparator": target.comparator.value}
            result.firings.append(Firing(
                rule=rule_id, rule_version=version, subject_kind="store", subject=snap.store,
                store=snap.store, platform=snap.platform, operator=snap.operator,
                severity=rule.severity_for(metric).value, audience=rule.audience,
                metric=metric, value=value, threshold=target.value, period=snap.period.text,
                period_end=snap.period.end, title=render_title(rule, values),
                labels={**rule.labels, "platform": snap.platform, "store": snap.store,
                        "metric": metric}))
        else:
            result.recoveries.append(Recovery(
                fingerprint(rule_id, "store", snap.store), snap.period.text, snap.period.end,
                f"recovered: {metric} is {format_value(metric, value)}, meeting the platform "
                f"target {target.comparator.value} {format_value(metric, target.value)} in "
                f"{snap.period.text}"))
