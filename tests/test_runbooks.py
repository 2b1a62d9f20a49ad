"""Runbooks: what to do when a rule fires, on the rule, the incident page, the API and in
every notification after the facts (cut first when a service's size limit bites)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.channels.conftest import health_alert
from tests.conftest import ROOT, snapshot
from tests.test_auth import client_for
from watcher.apply import alert_for
from watcher.channels.limits import limit_for, truncate
from watcher.channels.render import FORMATS, Renderer
from watcher.config import Settings
from watcher.errors import ConfigError
from watcher.incidents import Incident
from watcher.limits import RUNBOOK_TEXT_MAX
from watcher.pipeline import Pipeline
from watcher.rules.loader import load_pack

RUNBOOK = {"en": "Open Account Health and file the plan of action.",
           "zh-CN": "打开账户状况页面并提交行动计划。",
           "link": "https://sellercentral.amazon.com/performance/account/health"}

RULE = """rules:
  - id: health
    description: Account health below 90
    condition: account_health_score < 90
    severity: critical
    audience: compliance
    message: {{en: "low", zh-CN: "低"}}
    runbook: {runbook}
"""


def write(tmp_path: Path, runbook: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULE.format(runbook=runbook), encoding="utf-8")
    return path


class TestTheRuleCarriesIt:
    def test_text_in_both_languages_and_an_optional_link(self, tmp_path: Path):
        pack = load_pack(write(tmp_path, '{en: "Do this.", zh-CN: "这样做。", '
                                         'link: "https://example.com/runbook"}'))
        runbook = pack.rules[0].runbook
        assert runbook is not None
        assert (runbook.of("zh-CN"), runbook.of("en"), runbook.link) == (
            "这样做。", "Do this.", "https://example.com/runbook")

    @pytest.mark.parametrize(("runbook", "says"), [
        ('{en: "Do this."}', "zh-CN"),
        ('{en: "Do this.", zh-CN: "做", fr: "Faites"}', "fr"),
        ('{en: "Do this.", zh-CN: "做", link: "javascript:alert(1)"}', "link"),
        (f'{{en: "{"x" * (RUNBOOK_TEXT_MAX + 1)}", zh-CN: "做"}}', "RUNBOOK_TEXT_MAX"),
        ('{en: " ", zh-CN: "做"}', "1 to"),
    ])
    def test_a_bad_runbook_is_refused_naming_the_rule_and_the_key(
            self, tmp_path: Path, runbook: str, says: str):
        with pytest.raises(ConfigError) as caught:
            load_pack(write(tmp_path, runbook))
        assert "runbook" in str(caught.value) and says in str(caught.value)

    def test_every_rule_of_the_default_pack_has_one_in_both_languages(self):
        pack = load_pack(ROOT / "rules")
        for rule in pack.rules:
            assert rule.runbook is not None, rule.id
            assert rule.runbook.text["en"].strip() and rule.runbook.text["zh-CN"].strip()


class TestNotifications:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_the_runbook_follows_the_facts_in_every_format(self, fmt: str):
        alert = health_alert(runbook={"en": RUNBOOK["en"], "zh-CN": RUNBOOK["zh-CN"]},
                             runbook_link=RUNBOOK["link"])
        body = Renderer().render(alert, fmt, "en").body
        assert "What to do" in body and "file the plan of action" in body
        assert RUNBOOK["link"] in body
        assert body.index("88") < body.index("What to do")  # after the value
        chinese = Renderer().render(alert, fmt, "zh-CN").body
        assert "处理建议" in chinese and "提交行动计划" in chinese

    def test_without_a_runbook_nothing_is_added(self):
        assert "What to do" not in Renderer().render(health_alert(), "text", "en").body

    def test_a_size_limit_cuts_the_runbook_before_any_fact(self):
        long = "检查。" * 400  # 3,600 bytes of Chinese: more than a WeCom text message holds
        alert = health_alert(runbook={"en": long, "zh-CN": long})
        body = Renderer().render(alert, "text", "zh-CN").body
        cut = truncate(body, limit_for("wecombot", "text"), "…")
        assert len(cut.encode()) <= 2048
        facts = Renderer().render(health_alert(), "text", "zh-CN").body
        assert cut.startswith(facts)  # every fact, the link included, then what fits

    def test_an_alert_takes_the_runbook_of_the_incidents_rule_in_force(self):
        pack = load_pack(ROOT / "rules")
        incident = Incident.model_validate({
            "id": 3, "fingerprint": "platform-target/order_defect_rate|store:s",
            "rule": "platform-target/order_defect_rate", "rule_version": "v",
            "subject_kind": "store", "subject": "s", "store": "s", "platform": "amazon",
            "operator": None, "severity": "high", "audience": "compliance", "status": "open",
            "metric": "order_defect_rate", "value": 0.02, "threshold": 0.01,
            "period": "2026-10", "period_end": "2026-10-31", "title": {"en": "t"},
            "labels": {}, "evidence": [], "opened_at": "2026-11-01T00:00:00Z",
            "updated_at": "2026-11-01T00:00:00Z"})
        alert = alert_for(incident, health_alert().kind, health_alert().at, None, pack=pack)
        rule = pack.get("platform-target")
        assert rule is not None and rule.runbook is not None
        assert alert.runbook == rule.runbook.text
        assert alert_for(incident, health_alert().kind, health_alert().at, None).runbook == {}


@pytest.fixture
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as found:
        yield found


class TestPageAndApi:
    def test_the_incident_page_shows_the_rules_description_and_what_to_do(
            self, client: TestClient):
        client.post("/v1/snapshots", json=snapshot(account_health_score=86))
        [incident] = client.get("/v1/incidents").json()
        html = client.get(f"/incidents/{incident['id']}").text
        assert 'id="rule-description">Account health score below 90' in html
        assert 'id="runbook"' in html and "plan of action" in html
        chinese = client.get(f"/incidents/{incident['id']}", params={"lang": "zh-CN"}).text
        assert "处理建议" in chinese and "行动计划" in chinese

    def test_the_api_gives_the_runbook_with_the_rule_and_the_incident(
            self, client: TestClient):
        rules = {r["id"]: r for r in client.get("/v1/rules").json()["rules"]}
        runbook = rules["ahr-at-risk"]["runbook"]
        assert runbook["link"] == RUNBOOK["link"] and set(runbook["text"]) == {"en", "zh-CN"}
        client.post("/v1/snapshots", json=snapshot(account_health_score=86))
        [incident] = client.get("/v1/incidents").json()
        detail = client.get(f"/v1/incidents/{incident['id']}").json()
        assert detail["runbook"] == rules["account-health-low"]["runbook"]
        assert detail["rule_description"] == rules["account-health-low"]["description"]


class TestDescriptionLanguages:
    """``description:`` is one string for every language (as packs always wrote it) or
    ``{en, zh-CN}``, both required, as ``message`` requires them."""

    def pack(self, tmp_path: Path, description: str) -> Path:
        file = tmp_path / "rules.yaml"
        file.write_text(RULE.format(runbook="{en: a, zh-CN: b}").replace(
            "description: Account health below 90", f"description: {description}"),
            encoding="utf-8")
        return file

    def test_a_string_is_every_languages_and_keeps_the_packs_version(self, tmp_path: Path):
        pack = load_pack(self.pack(tmp_path, "Account health below 90"))
        [rule] = pack.rules
        assert rule.descriptions == {"en": "Account health below 90",
                                     "zh-CN": "Account health below 90"}
        assert rule.model_dump(mode="json")["description"] == "Account health below 90"

    def test_a_mapping_speaks_each_language(self, tmp_path: Path):
        [rule] = load_pack(self.pack(tmp_path, "{en: Health below 90, zh-CN: 健康分低于 90}")
                           ).rules
        assert (rule.description_of("en"), rule.description_of("zh-CN")) == (
            "Health below 90", "健康分低于 90")
        assert rule.description_of("fr") == "Health below 90"

    @pytest.mark.parametrize(("written", "error"), [
        ("{en: Health below 90}", "needs a description in zh-CN"),
        ("{en: a, zh-CN: b, fr: c}", "'fr' is not a language"),
        ("{en: a, zh-CN: ' '}", "the zh-CN text is empty")])
    def test_a_mapping_without_both_languages_is_refused(self, tmp_path: Path, written: str,
                                                        error: str):
        with pytest.raises(ConfigError, match=error) as caught:
            load_pack(self.pack(tmp_path, written))
        assert caught.value.key is not None and caught.value.key.startswith(
            "rules.0.description")

    def test_the_api_gives_the_english_string_and_each_language(self, client: TestClient):
        rules = {r["id"]: r for r in client.get("/v1/rules").json()["rules"]}
        health = rules["account-health-low"]
        assert health["description"] == health["descriptions"]["en"] == \
            "Account health score below 90 (platform score on a 0-100 scale)"
        assert health["descriptions"]["zh-CN"] == "账号健康分低于 90（平台评分，0–100 分制）"
        client.post("/v1/snapshots", json=snapshot(account_health_score=86))
        [incident] = client.get("/v1/incidents").json()
        detail = client.get(f"/v1/incidents/{incident['id']}").json()
        assert detail["rule_descriptions"] == health["descriptions"]
        assert detail["rule_description"] == health["description"]
