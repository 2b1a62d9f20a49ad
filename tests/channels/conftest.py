"""Alerts and loopback servers shared by the channel tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.daemon_harness import Webhook
from tests.daemon_harness import free_port as free_port
from watcher.alerts import Alert, AlertKind, Evidence
from watcher.channels.render import Renderer

AT = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def health_alert(**changes: Any) -> Alert:
    """The reference's real-time compliance alert: account health 88 < 90."""
    fields: dict[str, Any] = dict(
        kind=AlertKind.OPENED, incident_id=12, rule="account-health-low", severity="critical",
        audience="compliance",
        title={"en": "amz-us-01 (amazon): account health 88 is below 90 in 2026-10",
               "zh-CN": "amz-us-01（amazon）：账号健康分 88 低于 90（2026-10）"},
        store="amz-us-01", platform="amazon", operator="li.wei",
        metric="account_health_score", value=88, threshold=90, period="2026-10",
        labels={"dimension": "compliance"}, link="https://kpi.example.com/incidents/12", at=AT)
    fields.update(changes)
    return Alert(**fields)


def pip_alert(**changes: Any) -> Alert:
    """li.wei missed GMV three months running (and conversion in September)."""
    evidence = [Evidence(period=month, metric="gmv", value=value, threshold=150000,
                         store="amz-us-01")
                for month, value in (("2026-08", 120000), ("2026-09", 118000),
                                     ("2026-10", 99000))]
    evidence.append(Evidence(period="2026-09", metric="conversion_rate", value=0.021,
                             threshold=0.03, store="amz-us-01"))
    fields: dict[str, Any] = dict(
        kind=AlertKind.OPENED, incident_id=13, rule="pip-recommended", severity="high",
        audience="manager",
        title={"en": "li.wei missed targets 3 months in a row (2026-08, 2026-09, 2026-10): "
                     "start a performance-improvement plan",
               "zh-CN": "li.wei 连续 3 个月未达标（2026-08, 2026-09, 2026-10）："
                        "建议启动绩效改进计划（PIP）"},
        operator="li.wei", period="2026-10", evidence=evidence, at=AT)
    fields.update(changes)
    return Alert(**fields)


@pytest.fixture(scope="session")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()
