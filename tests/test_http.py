"""The HTTP API in-process (FastAPI TestClient) on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSON, JSONL, LOCAL, http_app, jsonl, snapshot
from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime


@pytest.fixture
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    small = settings.model_copy(update={"max_body_bytes": 20_000})
    with (http_app(Runtime(small, pipeline.db, pipeline)) as app,
          TestClient(app, base_url=LOCAL) as test_client):
        yield test_client


class TestSnapshotsEndpoint:
    def test_an_object_an_array_and_json_lines_are_accepted(self, client: TestClient):
        one = client.post("/v1/snapshots", json=snapshot(store="a", penalty_count=1))
        many = client.post("/v1/snapshots", json=[snapshot(store="b"), snapshot(store="c")])
        lines = client.post("/v1/snapshots", headers=JSONL, content=jsonl(snapshot(store="d"),
                                                           snapshot(store="e")))
        assert [r.json()["accepted"] for r in (one, many, lines)] == [1, 2, 2]
        assert one.json()["incidents_opened"] == 1

    def test_per_record_errors_and_422_when_nothing_was_accepted(self, client: TestClient):
        mixed = client.post("/v1/snapshots", headers=JSONL, content=jsonl(
            snapshot(store="a"), snapshot(store="b", dispute_rate=7)))
        assert mixed.status_code == 200
        assert mixed.json()["errors"] == [{"source": "http", "location": "line 2",
                                           "field": "metrics.dispute_rate",
                                           "error": mixed.json()["errors"][0]["error"]}]
        bad = client.post("/v1/snapshots", json={"store": "x"})
        assert bad.status_code == 422 and bad.json()["accepted"] == 0
        assert bad.json()["errors"][0]["field"] in ("platform", "period", "metrics")

    def test_an_oversized_body_is_refused_with_the_limit(self, client: TestClient):
        response = client.post("/v1/snapshots", headers=JSON,
                               content=b"{" + b" " * 30_000 + b"}")
        assert response.status_code == 413 and "limit" in response.json()["detail"]

    def test_csv_by_content_type(self, client: TestClient):
        body = "store,platform,period,metrics.penalty_count\ns,amazon,2026-10,1\n"
        response = client.post("/v1/snapshots", content=body,
                               headers={"content-type": "text/csv"})
        assert response.json()["incidents_opened"] == 1


class TestIncidentsEndpoint:
    def test_list_filter_detail_and_acknowledge(self, client: TestClient):
        client.post("/v1/snapshots", json=[snapshot(store="a", penalty_count=1),
                                           snapshot(store="b", account_health_score=10)])
        listed = client.get("/v1/incidents", params={"store": "a"}).json()
        assert [i["rule"] for i in listed] == ["penalty-received"]
        incident_id = listed[0]["id"]
        acked = client.post(f"/v1/incidents/{incident_id}/ack",
                            json={"by": "ana", "note": "looking"})
        assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
        again = client.post(f"/v1/incidents/{incident_id}/ack", json={"by": "ana"})
        assert again.status_code == 409
        noted = client.post(f"/v1/incidents/{incident_id}/notes",
                            json={"by": "bo", "note": "store called back"})
        assert [e["kind"] for e in noted.json()["events"]] == ["opened", "acknowledged", "note"]

    def test_unknown_incident_is_404_and_a_missing_actor_names_the_field(
            self, client: TestClient):
        assert client.get("/v1/incidents/999").status_code == 404
        response = client.post("/v1/incidents/999/ack", json={"note": "x"})
        assert response.status_code == 422 and "by" in json.dumps(response.json())

    def test_health_and_readiness(self, client: TestClient):
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200


class TestMetricsEndpoint:
    def test_counts_ingestion_incidents_and_the_outbox(self, client: TestClient):
        client.post("/v1/snapshots", headers=JSONL,
                    content=jsonl(snapshot(store="m1", penalty_count=1),
                                  snapshot(store="m2", dispute_rate=9)))
        text = client.get("/metrics").text
        assert 'watcher_snapshots_ingested_total{source="http"}' in text
        assert 'watcher_snapshots_rejected_total{source="http"}' in text
        assert 'watcher_incidents{status="open"} 1.0' in text
        assert "watcher_outbox_backlog 1.0" in text
        assert "watcher_rule_evaluation_seconds_bucket" in text


class TestSourcesEndpoint:
    def test_a_platform_payload_is_mapped_and_stored(self, client: TestClient):
        from tests.test_dropfolder import FIXTURES
        body = (FIXTURES / "shopee-get-shop-performance.json").read_bytes()
        response = client.post("/v1/sources/shopee", params={"store": "shopee-my-02",
                                                              "period": "2026-10-28"},
                               headers=JSON, content=body)
        assert response.status_code == 200 and response.json()["accepted"] == 1

    def test_a_platform_error_envelope_is_refused_with_its_message(self, client: TestClient):
        from tests.test_dropfolder import FIXTURES
        body = (FIXTURES / "shopee-error.json").read_bytes()
        response = client.post("/v1/sources/shopee", params={"store": "s"}, headers=JSON,
                               content=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["error"]

    def test_an_unknown_source_is_404_and_a_missing_store_names_the_field(
            self, client: TestClient):
        assert client.post("/v1/sources/ebay", params={"store": "s"}, headers=JSON, content=b"{}"
                           ).status_code == 404
        missing = client.post("/v1/sources/shopee", headers=JSON, content=b"{}")
        assert missing.status_code == 400 and "store" in missing.text
