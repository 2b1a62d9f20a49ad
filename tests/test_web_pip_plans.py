"""The /pip page runs a plan: start, review notes, close; script-free forms with the
page's Origin check; responders act, viewers read."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.test_api_endpoints import with_token
from tests.test_auth import client_for
from tests.test_web import SAME_SITE, pip_months
from watcher.auth import Role
from watcher.config import Settings
from watcher.pipeline import Pipeline


@pytest.fixture
def page(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        yield client


def pip_id(client: TestClient) -> int:
    pip_months(client)
    [found] = client.get("/v1/incidents", params={"rule": "pip-recommended"}).json()
    return int(found["id"])


def status(text: str) -> str:
    found = re.search(r'id="status" data-status="([a-z_]+)"', text)
    assert found is not None
    return found.group(1)


class TestPlanPage:
    def test_start_review_and_close_from_the_page(self, page: TestClient):
        number = pip_id(page)
        listing = page.get("/pip").text
        assert 'data-plan="recommended"' in listing and f'href="/pip/{number}"' in listing
        shown = page.get(f"/pip/{number}")
        assert status(shown.text) == "recommended" and 'id="start-form"' in shown.text
        started = page.post(f"/pip/{number}/start", headers=SAME_SITE, data={
            "by": "张敏", "days": "60", "goals": "gmv=155000\n"})
        assert started.status_code == 200  # after the redirect
        assert status(started.text) == "in_plan"
        goals = started.text.split('id="goals"')[1].split("</table>")[0]
        assert "<td>GMV</td><td>&gt;= 155,000</td><td>120,000 (2026-09)</td><td>no</td>" \
            in goals
        reviewed = page.post(f"/pip/{number}/checkpoint", headers=SAME_SITE,
                             data={"by": "张敏", "note": "weekly calls agreed"})
        assert "weekly calls agreed" in reviewed.text.split('id="checkpoints"')[1]
        extended = page.post(f"/pip/{number}/close", headers=SAME_SITE,
                             data={"by": "张敏", "outcome": "extended", "days": "30"})
        assert status(extended.text) == "extended"
        closed = page.post(f"/pip/{number}/close", headers=SAME_SITE,
                           data={"by": "张敏", "outcome": "passed", "note": "back on track"})
        assert status(closed.text) == "passed"
        kinds = re.findall(r'data-kind="([a-z_]+)"', closed.text)
        assert kinds == ["opened", "plan_started", "plan_reviewed", "plan_closed",
                         "plan_closed"]
        assert "back on track" in closed.text
        assert 'data-plan="passed"' in page.get("/pip").text
        assert page.get(f"/v1/pip/{number}").json()["status"] == "passed"  # one verdict

    def test_a_bad_field_is_a_400_naming_it_and_a_wrong_step_a_409(self, page: TestClient):
        number = pip_id(page)
        bad = page.post(f"/pip/{number}/start", headers=SAME_SITE,
                        data={"by": "a", "goals": "gmv=lots"})
        assert bad.status_code == 400 and "goal" in bad.text
        early = page.post(f"/pip/{number}/checkpoint", headers=SAME_SITE,
                          data={"by": "a", "note": "x"})
        assert early.status_code == 409
        assert page.get("/pip/999999").status_code == 404

    def test_a_post_from_another_site_is_refused(self, page: TestClient):
        number = pip_id(page)
        refused = page.post(f"/pip/{number}/start", data={"by": "a"},
                            headers={"origin": "https://evil.example"})
        assert refused.status_code == 403
        assert status(page.get(f"/pip/{number}").text) == "recommended"


def test_a_viewer_reads_the_plan_but_cannot_act(pipeline: Pipeline, settings: Settings):
    with client_for(pipeline, settings, "127.0.0.1") as client:
        auth = with_token(client, pipeline.db, Role.ADMIN)
        viewer = with_token(client, pipeline.db, Role.VIEWER)["Authorization"].split()[1]
        for period in ("2026-07", "2026-08", "2026-09"):
            client.post("/v1/snapshots", headers=auth, json={
                "store": "amz-us-01", "platform": "amazon", "period": period,
                "operator": "li.wei", "metrics": {"gmv": 1}, "targets": {"gmv": 150000}})
        [found] = client.get("/v1/incidents", headers=auth,
                             params={"rule": "pip-recommended"}).json()
        client.cookies.set("kw_token", viewer)
        shown = client.get(f"/pip/{found['id']}")
        assert shown.status_code == 200 and 'id="start-form"' not in shown.text
        refused = client.post(f"/pip/{found['id']}/start", headers=SAME_SITE, data={"by": "a"})
        assert refused.status_code == 403
