"""The incident list at a glance: a sort by severity, cells that never wrap mid-value, and
filters that fold away on a phone (a <details> element: no script)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, jsonl, snapshot
from tests.test_auth import client_for
from watcher.config import Settings
from watcher.pipeline import Pipeline


@pytest.fixture
def page(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        client.post("/v1/snapshots", headers=JSONL, content=jsonl(
            snapshot("a", "2026-09", account_health_score=80),          # critical, oldest
            snapshot("b", "2026-10", dispute_rate=0.05),                  # high
            snapshot("c", "2026-10", net_margin=0.05),                    # medium
            snapshot("d", "2026-10", account_health_score=70)))           # critical
        yield client


def severities(html: str) -> list[str]:
    return re.findall(r'<tr class="incident" id="incident-\d+" data-severity="(\w+)"', html)


class TestIncidentList:
    def test_most_severe_first_on_request_newest_first_by_default(self, page: TestClient):
        by_severity = page.get("/", params={"sort": "severity"}).text
        assert severities(by_severity) == ["critical", "critical", "high", "medium"]
        ids = re.findall(r'id="incident-(\d+)"', by_severity)
        assert int(ids[0]) > int(ids[1])  # newest first among equals
        newest = page.get("/").text
        assert re.findall(r'id="incident-(\d+)"', newest) == sorted(
            re.findall(r'id="incident-(\d+)"', newest), key=int, reverse=True)
        assert 'name="sort"' in newest

    def test_the_order_is_kept_across_pages_and_a_bad_one_names_its_field(
            self, page: TestClient):
        first = page.get("/", params={"sort": "severity", "per": 2}).text
        assert "sort=severity" in re.search(r'id="next" href="([^"]*)"', first).group(1)
        assert severities(page.get("/", params={"sort": "severity", "per": 2,
                                                "page": 2}).text) == ["high", "medium"]
        bad = page.get("/", params={"sort": "loudest"})
        assert bad.status_code == 400 and "sort" in bad.text

    def test_the_api_sorts_as_the_page_does(self, page: TestClient):
        for sort in ("newest", "severity"):
            api = [i["id"] for i in page.get("/v1/incidents", params={"sort": sort}).json()]
            html = page.get("/", params={"sort": sort}).text
            assert api == [int(i) for i in re.findall(r'id="incident-(\d+)"', html)]
        by_severity = page.get("/v1/incidents", params={"sort": "severity"}).json()
        assert [i["severity"] for i in by_severity] == ["critical", "critical", "high", "medium"]
        assert by_severity[0]["id"] > by_severity[1]["id"]  # newest first among equals
        assert [i["id"] for i in page.get("/v1/incidents").json()] == sorted(
            (i["id"] for i in by_severity), reverse=True)  # newest first by default
        paged = [i["severity"] for i in page.get("/v1/incidents", params={
            "sort": "severity", "limit": 2, "offset": 2}).json()]
        assert paged == ["high", "medium"]

    def test_the_api_refuses_an_unknown_order_naming_it(self, page: TestClient):
        bad = page.get("/v1/incidents", params={"sort": "loudest"})
        assert bad.status_code == 422
        [error] = bad.json()["detail"]
        assert error["loc"] == ["query", "sort"] and error["input"] == "loudest"
        assert "newest" in error["msg"] and "severity" in error["msg"]

    def test_ids_periods_and_times_never_wrap(self, page: TestClient):
        row = page.get("/").text.split('<tr class="incident"')[1].split("</tr>")[0]
        cells = re.findall(r"<td([^>]*)>", row)
        assert 'class="nowrap"' in cells[0]          # #id
        assert 'class="nowrap"' in cells[5]          # the period
        assert "nowrap" in cells[6]                  # opened

    def test_on_a_phone_the_filters_fold_away_until_one_is_used(self, page: TestClient):
        plain = page.get("/").text
        assert '<details id="filter-box" class="filter-box narrow-only">' in plain
        assert 'id="filters" class="filters card wide-only"' in plain  # the wide screen's
        assert 'id="filters-phone"' in plain.split('<details id="filter-box"')[1]
        filtered = page.get("/", params={"store": "a"}).text
        assert '<details id="filter-box" class="filter-box narrow-only" open>' in filtered
