"""Storm control: many waiting alerts for one channel become one digest message.

When a platform change puts 500 stores below a threshold at once, a WeCom bot that
takes 20 messages a minute would need 25 minutes for them, one by one, and every
alert behind them would wait as long. So when more is waiting for a channel than
its send rate allows, the dispatcher folds the waiting alerts of each route into
one digest: counts per rule, the worst alerts by name, a link to the page filtered
on each rule. Critical alerts are folded apart from the rest and go first, and
resolutions apart from breaches, so a digest never mixes news of different weight.

Pure functions over alerts: the dispatcher (watcher/dispatcher.py) owns the claims
and the store; this module only decides what goes together and what it says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode

from watcher.alerts import SEVERITY_RANK as RANK
from watcher.alerts import Alert, AlertKind, Digest, DigestItem, DigestRule
from watcher.apply import labels_of
from watcher.config import Settings
from watcher.limits import DIGEST_MAX_STORES

CRITICAL = RANK["critical"]


def priority(alert: Alert) -> int:
    """Who goes first on a busy channel: the severity's rank (critical highest)."""
    return RANK.get(alert.severity, 0)


def fold_key(settings: Settings, alert: Alert, channel: str) -> str:
    """Alerts with the same key may share a digest: same route to ``channel``, same
    weight (critical or not), same news (breach or resolution)."""
    found = labels_of(alert)
    route = "default"
    for index, candidate in enumerate(settings.routes):
        if candidate.matches(found) and channel in candidate.channels:
            route = f"route{index}"
            break
    weight = "critical" if priority(alert) >= CRITICAL else "other"
    news = "resolved" if alert.kind is AlertKind.RESOLVED else "breach"
    return f"{route}|{weight}|{news}"


def _gap(alert: Alert) -> float:
    """How far past its threshold, relative to it: the larger, the worse."""
    if alert.value is None or alert.threshold is None:
        return 0.0
    diff = abs(alert.value - alert.threshold)
    return diff / abs(alert.threshold) if alert.threshold else diff


def worst_first(alerts: Sequence[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (-priority(a), -_gap(a), a.store or a.operator or "",
                                         a.rule))


def page_link(public_url: str | None, **filters: str) -> str | None:
    return f"{public_url.rstrip('/')}/?{urlencode(filters)}" if public_url else None


def digest(alerts: Sequence[Alert], *, public_url: str | None, now: datetime) -> Alert:
    """One message standing for ``alerts`` (of one fold key), in every language:
    the renderer words it from ``strings.yaml`` (``digest.*``)."""
    worst = worst_first(alerts)
    severity_of = {a.rule: a.severity for a in reversed(worst)}  # each rule's worst
    counts = Counter(a.rule for a in alerts)
    rules = [DigestRule(rule=rule, severity=severity_of[rule], count=count,
                        link=page_link(public_url, rule=rule))
             for rule, count in sorted(counts.items(), key=lambda rc: (
                 -RANK.get(severity_of[rc[0]], 0), -rc[1], rc[0]))]
    items = [DigestItem(incident_id=a.incident_id, store=a.store, platform=a.platform,
                        operator=a.operator, rule=a.rule, severity=a.severity,
                        metric=a.metric, value=a.value, threshold=a.threshold)
             for a in worst[:DIGEST_MAX_STORES]]
    first = worst[0]
    resolved = first.kind is AlertKind.RESOLVED
    link = rules[0].link if len(rules) == 1 else page_link(public_url, status=(
        "resolved" if resolved else "open"))
    total = len(alerts)
    return Alert(
        kind=AlertKind.DIGEST, incident_id=None, rule="digest", severity=first.severity,
        audience=first.audience, labels={"news": "resolved" if resolved else "breach"},
        title={"en": f"{total} {'resolved' if resolved else 'alerts'} in one message",
               "zh-CN": f"{total} 条{'恢复' if resolved else '告警'}合并为一条消息"},
        link=link, at=now, digest=Digest(total=total, rules=rules, worst=items, link=link))
