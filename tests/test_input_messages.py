"""What the API and the pages say about a bad parameter: the period any form of it takes
(weeks included), a severity refused like a status, the field named by its label in the
visitor's language, and whatever was sent echoed without the characters that would change
how the message reads (a bidi override, a control character)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, jsonl, snapshot
from tests.test_auth import client_for
from watcher.config import Settings
from watcher.echo import shown
from watcher.pipeline import Pipeline

RLO = "\u202e"


@pytest.fixture
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as test_client:
        response = test_client.post("/v1/snapshots", headers=JSONL, content=jsonl(
            snapshot("wk1", "2026-W47", platform="shopee", gmv=1000),
            snapshot("d", "2026-10", account_health_score=70)))
        assert response.json()["accepted"] == 2
        yield test_client


class TestPeriodsAsParameters:
    def test_a_weekly_snapshot_is_read_back_by_its_week(self, client: TestClient):
        one = client.get("/v1/snapshots/shopee/wk1/2026-W47")
        assert one.status_code == 200 and one.json()["period"] == "2026-W47"
        listed = client.get("/v1/snapshots", params={"period": "2026-W47"})
        assert [s["store"] for s in listed.json()] == ["wk1"]

    @pytest.mark.parametrize(("url", "where", "message"), [
        ("/v1/snapshots/shopee/wk1/2026-W54", ["path", "period"], "'2026-W54' is not a real date"),
        ("/v1/snapshots?period=bogus", ["query", "period"],
         "'bogus' is not a period; expected YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY-Qn or YYYY"),
    ])
    def test_a_bad_period_is_refused_with_the_period_parsers_message(
            self, client: TestClient, url: str, where: list[str], message: str):
        response = client.get(url)
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == where and error["msg"].startswith(message)
        assert "\\d{4}" not in response.text  # no regex shown to the client


class TestSeverity:
    def test_the_api_refuses_an_unknown_severity_like_an_unknown_status(self, client: TestClient):
        for name in ("severity", "status"):
            response = client.get("/v1/incidents", params={name: "bogus"})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", name]
        assert client.get("/v1/incidents", params={"severity": "critical"}).json()

    @pytest.mark.parametrize(("lang", "label"), [("en", "Severity"), ("zh-CN", "严重程度")])
    def test_the_page_refuses_it_with_400_in_the_visitors_language(
            self, client: TestClient, lang: str, label: str):
        response = client.get("/", params={"severity": "bogus"},
                              headers={"accept-language": lang})
        assert response.status_code == 400 and label in response.text


class TestScorecardPeriod:
    @pytest.mark.parametrize(("lang", "label", "week"), [
        ("en", "Field &#39;Period&#39;", "a week (2026-W45)"),
        ("zh-CN", "字段 “考核周期”", "周（2026-W45）")])
    def test_a_bad_period_names_weeks_and_the_fields_label(
            self, client: TestClient, lang: str, label: str, week: str):
        response = client.get("/scorecards", params={"period": "bogus"},
                              headers={"accept-language": lang})
        assert response.status_code == 400
        assert label in response.text and week in response.text

    def test_a_week_is_a_scorecard_period(self, client: TestClient):
        assert client.get("/scorecards", params={"period": "2026-W47"}).status_code == 200


class TestEcho:
    def test_control_and_bidi_characters_are_replaced_and_spaces_kept(self):
        assert shown(f"2026{RLO}-11\x1b[2J\u2028x\u00a0y") == "2026\ufffd-11\ufffd[2J\ufffdx y"
        assert shown("店铺 amz-us-01") == "店铺 amz-us-01"
        assert shown("x" * 50, 10) == "x" * 9 + "…"

    def test_the_incident_list_page_does_not_echo_a_bidi_override(self, client: TestClient):
        response = client.get("/", params={"since": f"{RLO}2026-11-05"})
        assert response.status_code == 400
        assert RLO not in response.text and "\ufffd2026-11-05" in response.text

    def test_the_api_does_not_echo_a_bidi_override(self, client: TestClient):
        response = client.get("/v1/incidents", params={"since": f"{RLO}2026"})
        assert response.status_code == 422
        assert RLO not in response.text
        assert response.json()["detail"][0]["input"] == "\ufffd2026"
        missing = client.get(f"/v1/snapshots/shopee/{RLO}x/2026-10")
        assert missing.status_code == 404 and RLO not in missing.text


def test_a_refused_period_is_echoed_safe_and_short_wherever_it_is_read():
    from watcher.period import Period

    with pytest.raises(ValueError) as caught:
        Period.parse(f"{RLO}2026-10" + "x" * 100)
    message = str(caught.value)
    assert RLO not in message and message.startswith("'\ufffd2026-10xxx")
    assert len(message) < 150
