"""Snapshots, silences and rules over HTTP (FastAPI TestClient) on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, LOCAL, Clock, http_app, jsonl, snapshot
from watcher.auth import Role, create_token
from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime
from watcher.store import Database
from watcher.store.database import utcnow

PACK = """
pack: test
rules:
  - id: margin-low
    description: Net margin below 20 %
    condition: net_margin < 0.20
    variants:
      - when: {stage: novice}
        condition: net_margin < 0.15
    severity: medium
    audience: manager
    labels: {dimension: performance}
    message: {en: "{store}: margin {value}", zh-CN: "{store}：毛利率 {value}"}
  - id: pip-recommended
    kind: streak
    months: 3
    subject: operator
    description: Three consecutive monthly assessments below target
    severity: high
    audience: manager
    message: {en: "{operator}: PIP", zh-CN: "{operator}：PIP"}
"""


@contextmanager
def app_client(db: Database, settings: Settings, pipeline: Pipeline) -> Iterator[TestClient]:
    with (http_app(Runtime(settings, db, pipeline)) as app,
          TestClient(app, base_url=LOCAL) as client):
        yield client


@pytest.fixture
def api(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with app_client(pipeline.db, settings, pipeline) as test_client:
        yield test_client


@pytest.fixture
def pack_client(db: Database, settings: Settings, clock: Clock,
                tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "pack.yaml").write_text(PACK, encoding="utf-8")
    pipeline = Pipeline(db, RuleEngine(load_pack(tmp_path / "pack.yaml")), settings, clock=clock)
    with app_client(db, settings, pipeline) as test_client:
        yield test_client


def with_token(client: TestClient, db: Database, role: Role) -> dict[str, str]:
    _, clear = create_token(db, role.value, role)
    return {"Authorization": f"Bearer {clear}"}


class TestSnapshotQueries:
    def test_stored_snapshots_latest_period_first_filtered_and_paged(self, api: TestClient):
        api.post("/v1/snapshots", headers=JSONL, content=jsonl(
            snapshot(store="a", period="2026-08"), snapshot(store="a", period="2026-09"),
            snapshot(store="b", period="2026-09", platform="shopee", operator="chen.jing")))
        listed = api.get("/v1/snapshots").json()
        assert [(s["store"], s["period"]) for s in listed] == [
            ("a", "2026-09"), ("b", "2026-09"), ("a", "2026-08")]
        assert listed[0]["metrics"] == {"gmv": 1000.0} and listed[0]["revision"] == 1
        assert [s["period"] for s in api.get(
            "/v1/snapshots", params={"store": "a"}).json()] == ["2026-09", "2026-08"]
        assert [s["store"] for s in api.get(
            "/v1/snapshots", params={"operator": "chen.jing"}).json()] == ["b"]
        assert [s["store"] for s in api.get(
            "/v1/snapshots", params={"period": "2026-09", "platform": "shopee"}).json()] == ["b"]
        second = api.get("/v1/snapshots", params={"limit": 1, "offset": 1}).json()
        assert [(s["store"], s["period"]) for s in second] == [("b", "2026-09")]

    def test_a_restatement_is_one_snapshot_with_its_revision(self, api: TestClient):
        api.post("/v1/snapshots", json=snapshot(store="a", gmv=1000))
        api.post("/v1/snapshots", json=snapshot(store="a", gmv=1200))
        [stored] = api.get("/v1/snapshots").json()
        assert (stored["revision"], stored["metrics"]["gmv"]) == (2, 1200.0)

    def test_one_snapshot_by_its_identity_or_404(self, api: TestClient):
        api.post("/v1/snapshots", json=snapshot(
            store="a", targets={"order_defect_rate": {"value": 0.01, "comparator": "<"}},
            order_defect_rate=0.004))
        found = api.get("/v1/snapshots/amazon/a/2026-10")
        assert found.status_code == 200
        assert found.json()["targets"] == {"order_defect_rate": {"value": 0.01,
                                                                  "comparator": "<"}}
        missing = api.get("/v1/snapshots/amazon/a/2026-09")
        assert missing.status_code == 404 and "no snapshot of a" in missing.json()["detail"]

    def test_a_malformed_period_or_paging_is_422_naming_the_parameter(self, api: TestClient):
        bad = api.get("/v1/snapshots", params={"period": "October"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "period"]
        huge = api.get("/v1/snapshots", params={"offset": 10**12})
        assert huge.status_code == 422 and huge.json()["detail"][0]["loc"] == ["query", "offset"]


class TestSilencesEndpoint:
    def test_create_list_and_expire(self, api: TestClient):
        created = api.post("/v1/silences", json={
            "matchers": {"store": "a"}, "by": "ana", "comment": "store migration",
            "duration": "30m"})
        assert created.status_code == 201
        silence = created.json()
        assert silence["active"] is True and silence["created_by"] == "ana"
        assert [s["id"] for s in api.get("/v1/silences").json()] == [silence["id"]]

        ended = api.delete(f"/v1/silences/{silence['id']}")
        assert ended.status_code == 200 and ended.json()["active"] is False
        assert api.get("/v1/silences").json() == []
        assert [s["id"] for s in api.get("/v1/silences", params={"all": "true"}).json()
                ] == [silence["id"]]

    def test_a_silence_made_over_http_holds_back_a_matching_notification(
            self, api: TestClient, clock: Clock):
        api.post("/v1/silences", json={"matchers": {"store": "a"}, "by": "ana",
                                          "comment": "known issue"})
        clock.now = utcnow()  # the silence started at the real now; the pipeline follows
        api.post("/v1/snapshots", json=snapshot(store="a", penalty_count=1))
        [incident] = api.get("/v1/incidents", params={"store": "a"}).json()
        events = api.get(f"/v1/incidents/{incident['id']}").json()["events"]
        assert [e["kind"] for e in events] == ["opened", "silenced"]
        assert "known issue" in events[1]["note"]

    def test_a_bad_matcher_or_duration_is_422_naming_the_field(self, api: TestClient):
        base = {"by": "ana", "comment": "x"}
        key = api.post("/v1/silences", json={**base, "matchers": {"shop": "a"}})
        assert key.status_code == 422
        assert key.json()["detail"][0]["loc"][:3] == ["body", "matchers", "shop"]
        long = api.post("/v1/silences", json={**base, "matchers": {"store": "a"},
                                                 "duration": "400d"})
        assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["body",
                                                                               "duration"]
        empty = api.post("/v1/silences", json={**base, "matchers": {}})
        assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body",
                                                                                 "matchers"]

    def test_expiring_an_unknown_silence_is_404(self, api: TestClient):
        assert api.delete("/v1/silences/77").status_code == 404

    def test_a_viewer_lists_silences_but_only_a_responder_makes_or_ends_one(
            self, api: TestClient, db: Database):
        viewer = with_token(api, db, Role.VIEWER)
        body = {"matchers": {"store": "a"}, "by": "ana", "comment": "x"}
        assert api.get("/v1/silences", headers=viewer).status_code == 200
        assert api.post("/v1/silences", json=body, headers=viewer).status_code == 403
        responder = with_token(api, db, Role.RESPONDER)
        made = api.post("/v1/silences", json=body, headers=responder)
        assert made.status_code == 201
        path = f"/v1/silences/{made.json()['id']}"
        assert api.delete(path, headers=viewer).status_code == 403
        assert api.delete(path, headers=responder).status_code == 200


class TestRulesEndpoint:
    def test_the_pack_in_force_with_its_version_and_each_rule(self, pack_client: TestClient):
        body = pack_client.get("/v1/rules").json()
        assert len(body["version"]) == 12
        margin, pip = body["rules"]
        assert (margin["id"], margin["kind"], margin["severity"], margin["audience"]) == (
            "margin-low", "threshold", "medium", "manager")
        assert margin["labels"] == {"dimension": "performance"}
        assert margin["variants"] == [{"when": {"stage": "novice"},
                                       "condition": "net_margin < 0.15", "resolve": None}]
        assert (margin["resolve"], margin["for_periods"], margin["for_seconds"]) == (
            None, None, None)
        assert margin["months"] is None and margin["message"]["zh-CN"].startswith("{store}")
        assert (margin["periods"], margin["platforms"]) == ([], [])  # every one
        assert (pip["kind"], pip["months"], pip["subject"], pip["condition"]) == (
            "streak", 3, "operator", None)

    def test_incidents_record_the_version_the_endpoint_shows(self, pack_client: TestClient):
        pack_client.post("/v1/snapshots", json=snapshot(store="a", net_margin=0.1))
        [incident] = pack_client.get("/v1/incidents").json()
        assert incident["rule_version"] == pack_client.get("/v1/rules").json()["version"]

    def test_an_ingest_token_cannot_read_the_rules(self, pack_client: TestClient, db: Database):
        feed = with_token(pack_client, db, Role.INGEST)
        assert pack_client.get("/v1/rules", headers=feed).status_code == 403


class TestNulCharacters:
    """PostgreSQL text cannot hold NUL: refused at the door, never a 500."""

    def test_a_record_holding_a_nul_is_rejected_by_field_and_its_neighbours_stored(
            self, api: TestClient):
        response = api.post("/v1/snapshots", headers=JSONL, content=jsonl(
            snapshot(store="a"), {**snapshot(store="b"), "metrics": {"g\u0000mv": 1}}))
        assert response.status_code == 200 and response.json()["accepted"] == 1
        [error] = response.json()["errors"]
        assert (error["location"], error["field"]) == ("line 2", "metrics.g\\u0000mv")
        assert "NUL" in error["error"]

    def test_a_nul_in_a_filter_or_an_actor_is_422(self, api: TestClient):
        assert api.get("/v1/incidents", params={"store": "a\u0000"}).status_code == 422
        api.post("/v1/snapshots", json=snapshot(store="a", penalty_count=1))
        [incident] = api.get("/v1/incidents").json()
        acked = api.post(f"/v1/incidents/{incident['id']}/ack", json={"by": "a\u0000"})
        assert acked.status_code == 422 and acked.json()["detail"][0]["loc"] == ["body", "by"]

    def test_an_id_beyond_the_32_bit_columns_is_422(self, api: TestClient):
        assert api.get(f"/v1/incidents/{2**40}").status_code == 422
        assert api.delete(f"/v1/silences/{2**40}").status_code == 422
