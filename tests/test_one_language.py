"""One language per channel: every notification kind, rendered in zh-CN in every
format, carries no English word that is not a metric id or a name (store, platform,
operator, rule id, link).

The alerts come from the real pipeline, timers and dispatcher grouping wherever they
can (opened, grouped by rule and by store, worsened, escalated, reminder, released by a
silence and by an inhibition, resolved); the few the scenario cannot reach cheaply
(a platform target's and a PIP streak's recovery, a re-open told to a channel) are
built as the code builds them, and the test checks that every kind and every note of
strings.yaml was rendered.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import yaml
from sqlalchemy import select

from tests.conftest import ROOT, Clock, jsonl, snapshot
from tests.test_auth import client_for
from watcher import indicators
from watcher.actions import act
from watcher.alerts import Alert, AlertKind
from watcher.assessment.monthly_report import MonthlyReport, PipDue, ReportRow
from watcher.assessment.pip import PlanStatus
from watcher.assessment.roster import Roster
from watcher.assessment.scorecard import Veto
from watcher.channels.render import DEFAULT_TEMPLATES, FORMATS, Renderer
from watcher.config import Route, Settings, load_settings
from watcher.digest import digest
from watcher.dispatcher import grouped
from watcher.monthly import report_alert
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.loader import load_pack
from watcher.silences import Silence
from watcher.store import repository as repo
from watcher.store.schema import notifications
from watcher.timers import Timers
from watcher.validation import read_records
from watcher.weekly_digest import build, digest_alert

# ids, and the platforms' own names (a brand is not translated: Shopee, Amazon, Seller Central)
NAMES = {"amz-us-01", "amz-uk-02", "amz-de-03", "amazon", "shopee", "li.wei", "kpi-watch",
         "UTC", "Shopee", "Amazon", "TikTok Shop", "Seller Central", "A-to-z"}
WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
TAG = re.compile(r"<[^>]+>")
URL = re.compile(r"https?://\S+")


def allowed(alert: Alert) -> set[str]:
    """Metric ids and names this alert may show as they are."""
    names = set(NAMES) | set(indicators.INDICATORS) | {alert.rule}
    names |= {i.rule for i in alert.items}
    if alert.digest is not None:
        names |= {r.rule for r in alert.digest.rules} | {w.rule for w in alert.digest.worst}
    names |= {str(v) for v in alert.note_args.values()}  # ids, periods, conditions
    if alert.weekly is not None:  # the route's match, as the config writes it
        names |= {f"{k}={'|'.join(v)}" for k, v in alert.weekly.match.items()}
    return names


def english_words(text: str, names: set[str]) -> list[str]:
    text = URL.sub(" ", html.unescape(TAG.sub(" ", text)))
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    return WORD.findall(text)


def scenario(pipeline: Pipeline, settings: Settings, clock: Clock) -> list[Alert]:
    pipeline.settings = load_settings(
        env={}, database_url=settings.database_url, rules=str(settings.rules),
        channels={"lead": {"urls": ["json://127.0.0.1:9/lead"], "language": "zh-CN"}},
        routes=[{"match": {"audience": "compliance"}, "channels": ["console"],
                 "escalate": [{"after": "30m", "channels": ["lead"]}],
                 "repeat_interval": "4h"}],
        inhibit=[{"source": {"rule": "penalty-received"}, "target": {"severity": "high"},
                  "equal": ["store"]}])
    timers = Timers(pipeline.db, pipeline.settings, clock=clock)
    health = [snapshot(store=s, period="2026-11", account_health_score=85)
              for s in ("amz-us-01", "amz-uk-02", "amz-de-03")]
    pipeline.ingest(read_records(jsonl(*health)), "t")
    with pipeline.db.engine.begin() as conn:
        repo.add_silence(conn, Silence(matchers={"store": "amz-uk-02"}, starts_at=clock(),
                                       ends_at=clock() + timedelta(hours=1), created_by="ana",
                                       comment="migration", created_at=clock()))
    pipeline.ingest(read_records(jsonl(
        snapshot(store="amz-de-03", penalty_count=1, dispute_rate=0.05),
        snapshot(store="amz-us-01", period="2026-11-02", platform="shopee",
                 penalty_points=1))), "t")
    pipeline.ingest(read_records(jsonl(snapshot(store="amz-us-01", period="2026-11-02",
                                                platform="shopee", penalty_points=4))), "t")
    clock.advance(minutes=30)
    timers.run_once()  # escalations
    clock.advance(hours=4)
    timers.run_once()  # reminders; the silence has ended: released
    pipeline.ingest(read_records(jsonl(
        snapshot(store="amz-de-03", penalty_count=0, dispute_rate=0.05),
        snapshot(store="amz-us-01", period="2026-11", account_health_score=99))), "t")
    clock.advance(minutes=1)
    timers.run_once()  # the penalty resolved: the dispute rate is released
    with pipeline.db.engine.connect() as conn:
        health_de = next(i for i in repo.list_incidents(conn, store="amz-de-03")
                         if i.rule == "account-health-low")
    act(pipeline.db, health_de.id, "resolve", "ana", None, now=clock())  # by a person
    with pipeline.db.engine.connect() as conn:
        stored = [Alert.model_validate(a) for a in
                  conn.execute(select(notifications.c.alert).order_by(notifications.c.id))
                  .scalars()]
    opened = [a for a in stored if a.kind is AlertKind.OPENED]
    built = [digest(opened, public_url="https://kpi.example.com", now=clock()),
             grouped([a for a in opened if a.rule == "account-health-low"]),
             grouped([a for a in opened if a.store == "amz-de-03"]),
             _platform_resolved(stored[0]), *_streak_notes(stored[0]),
             stored[0].model_copy(update={"note": "fired again within the flap hold-down",
                                          "note_key": "reopened"}),
             _report(stored[0]), _weekly(pipeline, clock),
             Alert(kind=AlertKind.TEST, rule="channel-test", severity="info",
                   audience="test", at=stored[0].at, title={
                       "en": "kpi-watch test message", "zh-CN": "kpi-watch 测试消息"})]
    return stored + built


def _weekly(pipeline: Pipeline, clock: Clock) -> Alert:
    """The compliance route's weekly digest of the scenario's week (all three lists)."""
    digest_route = Route.model_validate({"match": {"audience": "compliance"},
                                         "channels": ["console"], "digest": "weekly"})
    week = Period.week_of(clock().date())
    with pipeline.db.engine.connect() as conn:
        found = repo.list_incidents(conn, limit=1000)
    digest = build(week, 0, digest_route, opened=found, still_open=[
        i for i in found if i.live], resolved=[i for i in found if not i.live],
        roster=Roster(), now=clock(), public_url="https://kpi.example.com")
    assert digest.opened and digest.still_open and digest.resolved
    return digest_alert(digest, digest_route, clock())


def _report(base: Alert) -> Alert:
    """A manager's monthly report: a failing card with a veto, and a PIP to start."""
    row = ReportRow(operator="li.wei", name=None, tier="junior", grade="D", score=0.4,
                    result="fail", failing=("gmv", "net_margin"), vetoes=(Veto(
                        metric="major_penalty_count", value=1, store="amz-us-01",
                        period="2026-10"),))
    pip = PipDue(incident=7, operator="li.wei", status=PlanStatus.RECOMMENDED, due=None,
                 step="recommended")
    report = MonthlyReport(period="2026-10", manager="li.wei", rows=(row,), pips=(pip,))
    return report_alert(report, {"manager": "li.wei"}, base.at)


def _platform_resolved(base: Alert) -> Alert:
    return base.model_copy(update={
        "kind": AlertKind.RESOLVED, "note_key": "recovered_platform", "note": "recovered",
        "note_args": {"metric": "order_defect_rate", "value": "0.50%", "comparator": "<",
                      "target": "1.00%", "period": "2026-11"}})


def _streak_notes(base: Alert) -> list[Alert]:
    return [base.model_copy(update={"kind": AlertKind.RESOLVED, "rule": "pip-recommended",
                                    "note_key": key, "note": "recovered", "note_args": args})
            for key, args in (
                ("streak_withdrawn", {"month": "2026-09", "first": "2026-08",
                                      "last": "2026-10"}),)]


class TestChineseAllTheWay:
    def test_every_kind_in_every_format_has_no_english_words(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        alerts = scenario(pipeline, settings, clock)
        renderer = Renderer()
        leaks: dict[str, list[str]] = {}
        for alert in alerts:
            for fmt in FORMATS:
                for service in ("", "wecombot"):
                    shown = renderer.render(alert, fmt, "zh-CN", service=service)
                    words = english_words(shown.subject + "\n" + shown.body, allowed(alert))
                    if words:
                        leaks[f"{alert.kind.value}/{alert.note_key}/{fmt}"] = words
        assert leaks == {}
        kinds = {a.kind for a in alerts} | {AlertKind.FIRING}  # FIRING is never notified
        assert kinds == set(AlertKind)
        notes = yaml.safe_load((DEFAULT_TEMPLATES / "strings.yaml").read_text())["zh-CN"]
        assert set(notes["notes"]) <= {a.note_key for a in alerts}
        assert any(a.items for a in alerts)

    def test_the_english_word_check_catches_a_leak(self):
        alert = Alert(kind=AlertKind.REMINDER, rule="pip-recommended", severity="high",
                      audience="c", title={"zh-CN": "店铺"}, at=_now(), note="still open: reminder")
        shown = Renderer().render(alert, "text", "zh-CN")
        assert english_words(shown.body, allowed(alert)) == ["still", "open", "reminder"]

    def test_a_grouped_title_says_what_it_groups(self, pipeline: Pipeline,
                                                 settings: Settings, clock: Clock):
        alerts = scenario(pipeline, settings, clock)
        by_rule = grouped([a for a in alerts if a.kind is AlertKind.OPENED
                           and a.rule == "account-health-low" and a.note_key is None])
        renderer = Renderer()
        assert renderer.render(by_rule, "text", "en").subject == \
            "[CRITICAL] 3 stores: account health score below 90"
        assert renderer.render(by_rule, "text", "zh-CN").subject == \
            "[严重] 3 家店铺：账号健康分低于 90"


def _now() -> Any:
    from datetime import UTC, datetime
    return datetime(2026, 11, 1, tzinfo=UTC)


class TestRuleDescriptions:
    """A rule's description speaks the page's language: the pack gives each rule one in
    en and zh-CN, and a Chinese incident page shows no English description."""

    PACK = load_pack(ROOT / "rules")

    def test_every_rule_of_the_default_pack_is_described_in_chinese(self):
        for rule in self.PACK.rules:
            zh, en = rule.description_of("zh-CN"), rule.description_of("en")
            assert zh != en, rule.id
            assert english_words(zh, NAMES | set(indicators.INDICATORS) | {"UV", "ACOS"}) \
                == [], rule.id

    def test_a_chinese_incident_page_has_no_english_description(
            self, pipeline: Pipeline, settings: Settings):
        with client_for(pipeline, settings, "127.0.0.1") as client:
            client.post("/v1/snapshots", json=snapshot(account_health_score=86, ahr_score=150))
            incidents = client.get("/v1/incidents").json()
            assert {i["rule"] for i in incidents} == {"account-health-low", "ahr-at-risk"}
            for incident in incidents:
                rule = self.PACK.get(incident["rule"])
                assert rule is not None
                page = html.unescape(client.get(f"/incidents/{incident['id']}",
                                                params={"lang": "zh-CN"}).text)
                shown = re.search(r'id="rule-description">([^<]*)<', page)
                assert shown is not None and shown.group(1) == rule.description_of("zh-CN")
                assert english_words(shown.group(1), NAMES) == []
                assert rule.description_of("en") not in page
                english = html.unescape(client.get(f"/incidents/{incident['id']}",
                                                   params={"lang": "en"}).text)
                assert rule.description_of("en") in english
                assert rule.description_of("zh-CN") not in english

    def test_a_rule_of_some_platforms_says_so_beside_its_description(
            self, pipeline: Pipeline, settings: Settings):
        with client_for(pipeline, settings, "127.0.0.1") as client:
            client.post("/v1/snapshots", json=snapshot(account_health_score=86, ahr_score=150))
            ids = {i["rule"]: i["id"] for i in client.get("/v1/incidents").json()}

            def scope(rule: str, lang: str) -> str | None:
                page = client.get(f"/incidents/{ids[rule]}", params={"lang": lang}).text
                found = re.search(r'id="rule-scope">([^<]*)<', page)
                return found.group(1) if found else None

            assert scope("ahr-at-risk", "en") == "(Amazon only)"
            assert scope("ahr-at-risk", "zh-CN") == "（仅 Amazon）"
            assert scope("account-health-low", "en") is None  # every platform: nothing said
