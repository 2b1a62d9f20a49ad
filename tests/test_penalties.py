"""Penalties end to end: platform payloads through the adapters and the real pipeline,
on SQLite and PostgreSQL. Alerts name what happened, and a rise in Shopee penalty points
is told again on the incident already open (rule setting ``renotify_when_worse``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from sqlalchemy import select

from tests.conftest import Clock, jsonl
from tests.sources import as_bytes, fixture, fixture_json
from watcher.alerts import Alert
from watcher.channels.render import Renderer
from watcher.daemon.schemas import RuleOut
from watcher.errors import ConfigError
from watcher.evaluation import render_title
from watcher.incidents import Firing, Incident, Status, Update, on_firing, worse
from watcher.pipeline import Pipeline
from watcher.rules.loader import load_pack
from watcher.rules.model import Rule
from watcher.sources import get_source
from watcher.store import repository as repo
from watcher.store.schema import notifications
from watcher.validation import read_records

SHOP = "shopee-my-02"


def ingest(pipeline: Pipeline, records: list[dict[str, Any]]) -> None:
    pipeline.ingest(read_records(jsonl(*records)), "test")


def shopee(pipeline: Pipeline, day: str, points: int, *tiers: int) -> None:
    """The shop's penalty answer on ``day``, as the Shopee poller would send it."""
    payload = fixture_json("shopee-shop-penalty.json")
    payload["response"]["penalty_points"]["overall_penalty_points"] = points
    payload["response"]["ongoing_punishment"] = [
        {"punishment_tier": t, "days_left": 5, "punishment_name": "deboost"} for t in tiers]
    ingest(pipeline, get_source("shopee").parse(as_bytes(payload), store=SHOP, period=day))


def incident(pipeline: Pipeline, rule: str) -> Any:
    with pipeline.db.engine.connect() as conn:
        [found] = repo.list_incidents(conn, rule=rule)
    return found


def alerts(pipeline: Pipeline, incident_id: int) -> list[Alert]:
    """The alerts queued for the incident, one per timeline event (whatever the channels)."""
    with pipeline.db.engine.connect() as conn:
        rows = conn.execute(select(notifications.c.event_id, notifications.c.alert)
                            .where(notifications.c.incident_id == incident_id)
                            .order_by(notifications.c.id)).all()
    first = {event: alert for event, alert in reversed(rows)}
    return [Alert.model_validate(first[event]) for event in dict.fromkeys(e for e, _ in rows)]


def kinds(pipeline: Pipeline, incident_id: int) -> list[str]:
    return [a.kind.value for a in alerts(pipeline, incident_id)]


class TestShopeePenaltyPoints:
    def test_points_alert_and_every_rise_alerts_the_open_incident_again(
            self, pipeline: Pipeline, clock: Clock):
        shopee(pipeline, "2026-10-05", 3, 1)
        points = incident(pipeline, "shopee-penalty-points")
        assert points.title["en"] == (f"{SHOP} (shopee): 3 Shopee penalty points this quarter "
                                      "(tier 1 at 3), 2026-10-05")
        assert kinds(pipeline, points.id) == ["opened"]

        clock.advance(days=1)
        shopee(pipeline, "2026-10-06", 3, 1)  # the same points the next day: not news
        assert kinds(pipeline, points.id) == ["opened"]

        clock.advance(days=6)
        shopee(pipeline, "2026-10-12", 6, 1, 2)  # 3 -> 6: told again, on the same incident
        again = incident(pipeline, "shopee-penalty-points")
        assert again.id == points.id and again.status.value == "open"
        assert kinds(pipeline, points.id) == ["opened", "worsened"]
        worse = alerts(pipeline, points.id)[-1]
        assert worse.title["en"] == (f"{SHOP} (shopee): 6 Shopee penalty points this quarter "
                                     "(tier 2 at 6), 2026-10-12")
        assert worse.note == "penalty_points: 3 → 6, 2026-10-12"
        rendered = Renderer().render(worse, "text", "en")
        assert rendered.subject.startswith("[HIGH] Worse: shopee-my-02 (shopee): 6 Shopee")
        assert Renderer().render(worse, "text", "zh-CN").subject.startswith(
            "[高] 恶化：shopee-my-02（shopee）：本季度虾皮扣分 6 分（第 2 级：6 分起）")

        clock.advance(days=1)
        shopee(pipeline, "2026-10-13", 4, 1)  # a fall (a point expired): not news
        clock.advance(days=1)
        shopee(pipeline, "2026-10-14", 5, 1)  # but any rise from there is
        assert kinds(pipeline, points.id) == ["opened", "worsened", "worsened"]
        assert alerts(pipeline, points.id)[-1].note == "penalty_points: 4 → 5, 2026-10-14"

    def test_an_older_day_restated_higher_is_not_a_rise(self, pipeline: Pipeline,
                                                         clock: Clock):
        shopee(pipeline, "2026-10-12", 3)
        clock.advance(hours=1)
        shopee(pipeline, "2026-10-10", 5)  # a backfill of an earlier day
        points = incident(pipeline, "shopee-penalty-points")
        assert kinds(pipeline, points.id) == ["opened"]
        assert points.value == 3

    def test_the_quarterly_reset_resolves_and_the_next_quarter_opens_anew(
            self, pipeline: Pipeline, clock: Clock):
        shopee(pipeline, "2026-09-30", 9)
        clock.advance(days=1)
        shopee(pipeline, "2026-10-01", 0)
        assert incident(pipeline, "shopee-penalty-points").status.value == "resolved"
        clock.advance(days=20)  # past the flap hold-down
        shopee(pipeline, "2026-10-21", 2)
        with pipeline.db.engine.connect() as conn:
            found = repo.list_incidents(conn, rule="shopee-penalty-points")
        assert [i.status.value for i in found] == ["open", "resolved"]
        assert "2 Shopee penalty points this quarter (no tier yet" in found[0].title["en"]

    def test_the_punishment_in_force_is_named_beside_the_points(self, pipeline: Pipeline):
        shopee(pipeline, "2026-10-05", 3, 1)
        penalty = incident(pipeline, "penalty-received")
        assert penalty.title["en"] == (f"{SHOP} (shopee): 1 Shopee punishment in force "
                                       "(tier 1) in 2026-10-05")
        assert penalty.title["zh-CN"] == (f"{SHOP}（shopee）：1 项虾皮处罚生效中（第 1 级）"
                                          "（2026-10-05）")


class TestPenaltyAlertsNameWhatHappened:
    def test_amazon_suspension_from_the_report(self, pipeline: Pipeline):
        records = get_source("amazon-spapi").parse(fixture("amazon-spapi-messy.json"),
                                                   store="amz-de-01")
        ingest(pipeline, records)
        penalty = incident(pipeline, "penalty-received")
        assert penalty.title["en"] == ("amz-de-01 (amazon): account suspended (2 penalties "
                                       "in all) in 2026-10-30")
        assert penalty.title["zh-CN"] == ("amz-de-01（amazon）：账户已被暂停，共 2 次处罚"
                                          "（2026-10-30）")

    def test_lingxing_policy_warnings(self, pipeline: Pipeline):
        records = get_source("lingxing").parse(fixture("lingxing-store-target-detail.json"),
                                               store="amz-us-01")
        ingest(pipeline, records)
        penalty = incident(pipeline, "penalty-received")
        assert penalty.title["en"] == "amz-us-01 (amazon): 3 policy warnings in 2026-10-28"
        with pipeline.db.engine.connect() as conn:
            assert repo.list_incidents(conn, rule="ahr-at-risk") == []  # AHR 236: healthy

    def test_a_suspension_after_a_warning_is_told_with_its_name(self, pipeline: Pipeline,
                                                                clock: Clock):
        source = get_source("amazon-spapi")

        def report(day: str, status: str, warnings: int) -> list[dict[str, Any]]:
            entry = {"marketplaceId": "ATVPDKIKX0DER",
                     "warningStates": [{"warningType": f"w{i}", "status": "BAD"}
                                       for i in range(warnings)]}
            body = {"accountStatuses": [{"marketplaceId": "ATVPDKIKX0DER", "status": status}],
                    "performanceMetrics": [entry]}
            return source.parse(as_bytes(body), store="amz-us-01", period=day)

        ingest(pipeline, report("2026-10-20", "NORMAL", 1))
        clock.advance(days=1)
        ingest(pipeline, report("2026-10-21", "SUSPENDED", 1))
        penalty = incident(pipeline, "penalty-received")
        assert [(a.kind.value, a.title["en"]) for a in alerts(pipeline, penalty.id)] == [
            ("opened", "amz-us-01 (amazon): 1 policy warning in 2026-10-20"),
            ("worsened", "amz-us-01 (amazon): account suspended (2 penalties in all) "
                         "in 2026-10-21")]


class TestMessageCases:
    """``message_cases``: the first case whose ``when`` holds on the snapshot gives the words."""

    RULE: ClassVar[dict[str, Any]] = {
        "id": "warned", "description": "d", "condition": "warning_count > 0",
        "severity": "high", "audience": "compliance",
        "message": {"en": "{value} warnings", "zh-CN": "{value} 次警告"},
        "message_cases": [{"when": "warning_count == 1", "en": "1 warning",
                           "zh-CN": "1 次警告"}],
    }

    def rule(self, **changes: Any) -> Rule:
        return Rule.model_validate({**self.RULE, **changes})

    def test_the_first_case_that_holds_wins_else_the_message(self):
        rule = self.rule()
        assert render_title(rule, {"value": "1"}, {"warning_count": 1}) == {
            "en": "1 warning", "zh-CN": "1 次警告"}
        assert render_title(rule, {"value": "2"}, {"warning_count": 2}) == {
            "en": "2 warnings", "zh-CN": "2 次警告"}
        assert render_title(rule, {"value": "1"}) == {"en": "1 warnings", "zh-CN": "1 次警告"}

    def test_a_case_naming_a_metric_the_snapshot_lacks_does_not_hold(self):
        rule = self.rule(message_cases=[{"when": "account_suspended > 0", "en": "suspended",
                                         "zh-CN": "暂停"}])
        assert render_title(rule, {"value": "1"}, {"warning_count": 1})["en"] == "1 warnings"

    def test_a_bad_case_is_refused_naming_the_key(self, tmp_path: Path):
        for case, says in (({"when": "warning_count >", "en": "x", "zh-CN": "y"}, "when"),
                           ({"when": "warning_count > 1", "en": "x"}, "zh-CN")):
            file = tmp_path / "r.yaml"
            file.write_text(yaml.safe_dump({"rules": [{**self.RULE, "message_cases": [case]}]}),
                            encoding="utf-8")
            with pytest.raises(ConfigError) as caught:
                load_pack(file)
            assert "message_cases" in str(caught.value) and says in str(caught.value)

    def test_a_streak_rule_takes_neither_cases_nor_renotification(self):
        streak = {**self.RULE, "kind": "streak", "subject": "operator", "condition": None}
        with pytest.raises(ValueError, match="streak rule takes no 'message_cases'"):
            Rule.model_validate(streak)
        with pytest.raises(ValueError, match="streak rule takes no"):
            Rule.model_validate({**streak, "message_cases": [], "renotify_when_worse": True})

    def test_the_api_lists_the_cases_and_the_renotification(self, default_pack_path: Path):
        rule = load_pack(default_pack_path).get("penalty-received")
        assert rule is not None
        shown = RuleOut.of(rule)
        assert shown.renotify_when_worse is True
        assert shown.message_cases[0].when.startswith("account_deactivated > 0")
        assert set(shown.message_cases[0].message) == {"en", "zh-CN"}


class TestWorse:
    """``incidents.worse``: judged by the metric's direction against the latest value."""

    def firing(self, metric: str, value: float, period: str = "2026-10-12") -> Firing:
        return Firing(rule="r", rule_version="v", subject_kind="store", subject="s",
                      store="s", platform="shopee", operator=None, severity="high",
                      audience="compliance", metric=metric, value=value, threshold=0,
                      period=period, period_end=date.fromisoformat(period), title={})

    def live(self, firing: Firing) -> Incident:
        now = datetime(2026, 10, 12, tzinfo=UTC)
        return Incident(id=1, fingerprint=firing.fingerprint, status=Status.OPEN,
                        opened_at=now, updated_at=now, **firing.model_dump())

    @pytest.mark.parametrize(("metric", "before", "after", "expected"), [
        ("penalty_points", 3, 6, True), ("penalty_points", 6, 3, False),
        ("penalty_points", 3, 3, False), ("ahr_score", 150, 90, True),
        ("ahr_score", 90, 150, False), ("not_a_metric", 1, 2, False),
    ])
    def test_worse_follows_the_direction(self, metric: str, before: float, after: float,
                                         expected: bool):
        assert worse(self.live(self.firing(metric, before)), self.firing(metric, after)) \
            is expected

    def test_only_a_rule_that_asks_is_renotified(self):
        now = datetime(2026, 10, 13, tzinfo=UTC)
        live = self.live(self.firing("penalty_points", 3))
        rise = self.firing("penalty_points", 6, "2026-10-13")
        quiet = on_firing(live, rise, now)
        loud = on_firing(live, rise, now, renotify_when_worse=True)
        assert quiet is not None and loud is not None and isinstance(loud, Update)
        assert "worse" not in quiet.event.data
        assert loud.event.data["worse"] is True and loud.event.data["previous"] == 3
