"""The web page rendered in-process (FastAPI TestClient) on both databases.

Filters, paging, the incident timeline and PIP evidence, escaping of hostile text,
the language switch, and access: open on loopback without tokens, login cookie and
CSRF origin check once tokens exist, viewers read while responders act.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, LOCAL, Clock, jsonl, snapshot
from tests.test_api_endpoints import with_token
from tests.test_auth import client_for
from watcher.assessment.scorecard import Veto
from watcher.auth import Role
from watcher.config import Settings
from watcher.errors import InputError
from watcher.incidents import EventKind
from watcher.pipeline import Pipeline
from watcher.redact import register_secret
from watcher.store import Database
from watcher.web.access import safe_next, same_origin
from watcher.web.cards import card_url, chosen_period, default_period, veto_text
from watcher.web.i18n import MESSAGES, choose_language, from_accept_language
from watcher.web.views import ListQuery, timeline

SAME_SITE = {"origin": LOCAL}


@pytest.fixture
def page(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        yield client


def penalties(client: TestClient, *stores: str) -> list[int]:
    client.post("/v1/snapshots", headers=JSONL, content=jsonl(*(  # no operator: no part in any PIP
        snapshot(store=s, operator=None, penalty_count=1) for s in stores)))
    return [i["id"] for i in client.get("/v1/incidents", params={"limit": 1000}).json()]


def listed(response_text: str) -> int:
    return response_text.count('<tr class="incident"')


def pip_months(client: TestClient, operator: str = "li.wei") -> None:
    for period in ("2026-07", "2026-08", "2026-09"):
        client.post("/v1/snapshots", json=snapshot(period=period, operator=operator,
                                                   gmv=120000, targets={"gmv": 150000}))


def scorecard_month(client: TestClient) -> None:
    """October 2026: li.wei passes every judged indicator, chen.jing misses two."""
    client.post("/v1/snapshots", headers=JSONL, content=jsonl(
        snapshot("amz-us-01", operator="li.wei", gmv=160000, net_margin=0.3,
                 stockout_rate=0.02, targets={"gmv": 150000}, segment={"level": "junior"}),
        snapshot("shopee-my-02", platform="shopee", operator="chen.jing", gmv=40000,
                 stockout_rate=0.09, targets={"gmv": 60000})))


def table_rows(text: str, kind: str) -> dict[str, str]:
    """Each ``<tr class="{kind}">`` of a page by its first link's text or data attribute."""
    found = {}
    for row in text.split(f'<tr class="{kind}"')[1:]:
        row = row.split("</tr>")[0]
        key = re.search(r'data-indicator="([^"]*)"|class="operator-link"[^>]*>([^<]*)<', row)
        assert key is not None
        found[key.group(1) or key.group(2)] = row
    return found


class TestListQuery:
    def test_blank_form_fields_mean_any(self):
        query = ListQuery.parse({"store": "", "severity": "", "status": "open", "page": ""})
        assert (query.store, query.severity, query.status, query.page) == (None, None, "open", 1)

    def test_the_until_day_is_included(self):
        since, until = ListQuery.parse({"since": "2026-11-01", "until": "2026-11-01"}).window
        assert since == datetime(2026, 11, 1, tzinfo=UTC)
        assert until == datetime(2026, 11, 2, tzinfo=UTC)
        assert ListQuery.parse({"until": "9999-12-31"}).window == (None, None)  # no end

    def test_a_bad_value_names_its_field(self):
        with pytest.raises(InputError) as caught:
            ListQuery.parse({"since": "yesterday"})
        assert caught.value.field == "since"
        with pytest.raises(InputError) as caught:
            ListQuery.parse({"severity": "urgent"})
        assert caught.value.field == "severity"

    def test_links_keep_the_filters_and_drop_the_defaults(self):
        query = ListQuery.parse({"store": "a b", "since": "2026-11-01"})
        assert query.url() == "/?store=a+b&since=2026-11-01"
        assert query.url(page=2) == "/?store=a+b&since=2026-11-01&page=2"
        assert ListQuery().url() == "/"


class TestLanguage:
    def test_an_explicit_choice_beats_the_cookie_which_beats_the_browser(self):
        assert choose_language("zh-CN", "en", "en") == "zh-CN"
        assert choose_language(None, "zh-CN", "en") == "zh-CN"
        assert choose_language("klingon", None, "zh-TW,zh;q=0.9") == "zh-CN"
        assert choose_language(None, None, None) == "en"

    def test_accept_language_weights_decide(self):
        assert from_accept_language("fr-FR, zh-CN;q=0.4, en;q=0.8") == "en"
        assert from_accept_language("zh-HK;q=0.9, en;q=0.5") == "zh-CN"
        assert from_accept_language("en;q=0, de") == "en"  # nothing we have: the default

    def test_both_catalogues_say_everything_including_every_event_kind(self):
        assert MESSAGES["en"].keys() == MESSAGES["zh-CN"].keys()
        for kind in EventKind:
            assert f"event.{kind.value}" in MESSAGES["zh-CN"]


class TestSameOrigin:
    def test_a_form_from_this_site_passes(self):
        assert same_origin({"origin": "http://kpi:8080", "host": "kpi:8080"})
        assert same_origin({"referer": "http://kpi:8080/incidents/3", "host": "kpi:8080"})

    def test_another_site_or_no_origin_at_all_is_refused(self):
        assert not same_origin({"origin": "https://evil.example", "host": "kpi:8080"})
        assert not same_origin({"origin": "null", "host": "kpi:8080"})
        assert not same_origin({"host": "kpi:8080"})

    def test_the_public_url_counts_behind_a_proxy_that_rewrites_host(self):
        headers = {"origin": "https://kpi.example.com", "host": "127.0.0.1:8080"}
        assert same_origin(headers, "https://kpi.example.com/")
        assert not same_origin(headers, "http://kpi.example.com")

    def test_only_a_path_on_this_site_is_a_place_to_return_to(self):
        assert safe_next("/incidents/3?lang=en") == "/incidents/3?lang=en"
        for target in ("//evil.example/", "https://evil.example", "/\\evil", "", None):
            assert safe_next(target) == "/"


class TestTimeline:
    AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)

    def event(self, kind: str, data: dict[str, object], note: str | None = None,
              actor: str = "watcher") -> dict[str, object]:
        return {"at": self.AT, "kind": kind, "actor": actor, "note": note, "data": data}

    def test_each_kind_says_what_a_person_needs(self):
        lines = timeline([
            self.event("opened", {"metric": "dispute_rate", "value": 0.045,
                                  "threshold": 0.03, "period": "2026-09"}),
            self.event("escalated", {"step": 0, "channels": ["team-lead"]}),
            self.event("silenced", {"silence": 4}, "held by silence 4"),
            self.event("inhibited", {"inhibitor": 9, "rule": "account-suspended"}),
            self.event("acknowledged", {}, "calling", actor="ana"),
        ], "en")
        assert [line.label for line in lines] == [
            "opened", "escalated", "silenced", "inhibited", "acknowledged"]
        assert lines[0].details == ("Dispute rate 4.50% (threshold 3.00%) in 2026-09",)
        assert lines[1].details == ("step 1: team-lead",)
        assert lines[2].details == ("silence 4",)
        assert (lines[3].details, lines[3].incident_link) == (("held by incident 9",), 9)
        assert (lines[4].actor, lines[4].note) == ("ana", "calling")

    def test_a_delivery_failure_shows_the_reason_but_never_the_secret(self):
        register_secret("s3cr3t-hook-token")
        [line] = timeline([self.event(
            "delivery_failed",
            {"channel": "compliance-hook", "attempt": 2, "retry_at": "2026-11-01T08:05:00",
             "outcomes": [{"url": "https://hooks.example.com/s3cr3t-hook-token", "ok": False,
                           "reason": "HTTP 500 from s3cr3t-hook-token"}]},
            "failed: s3cr3t-hook-token")], "zh-CN")
        text = " ".join((*line.details, line.note or ""))
        assert line.label == "发送失败" and "渠道 compliance-hook，第 2 次" in text
        assert "HTTP 500" in text and "s3cr3t-hook-token" not in text


class TestIncidentListPage:
    def test_filters_narrow_the_list(self, page: TestClient):
        penalties(page, "a", "b")
        page.post("/v1/snapshots", json=snapshot(store="c", dispute_rate=0.09))
        assert listed(page.get("/").text) == 3
        assert listed(page.get("/", params={"severity": "critical"}).text) == 2
        only_b = page.get("/", params={"store": "b", "status": "open"}).text
        assert listed(only_b) == 1 and "b (amazon)" in only_b
        assert listed(page.get("/", params={"status": "resolved"}).text) == 0
        assert listed(page.get("/", params={"rule": "dispute-rate-high"}).text) == 1

    def test_a_time_range_selects_by_opening_day(self, page: TestClient, clock: Clock):
        penalties(page, "early")
        clock.advance(days=3)
        penalties(page, "late")
        opened = clock.now.date()
        text = page.get("/", params={"since": opened.isoformat()}).text
        assert listed(text) == 1 and "late (amazon)" in text
        assert listed(page.get("/", params={"until": date(2026, 11, 1).isoformat()}).text) == 1

    def test_pages_of_25_with_links_both_ways(self, page: TestClient):
        penalties(page, *(f"s{n:02d}" for n in range(30)))
        first = page.get("/", params={"severity": "critical"})
        assert listed(first.text) == 25
        assert 'href="/?severity=critical&amp;page=2"' in first.text
        second = page.get("/", params={"severity": "critical", "page": 2}).text
        assert listed(second) == 5 and 'id="next"' not in second
        assert 'href="/?severity=critical"' in second  # back to page 1
        assert listed(page.get("/", params={"per": 10, "page": 3}).text) == 10

    def test_a_bad_filter_is_400_naming_the_field_never_500(self, page: TestClient):
        response = page.get("/", params={"since": "last week"})
        assert response.status_code == 400
        # named as the form labels it, in the page's language
        assert "Field &#39;From&#39;" in response.text and listed(response.text) == 0

    def test_hostile_text_is_escaped_and_no_script_may_run(self, page: TestClient):
        penalties(page, "<script>alert(1)</script>")
        response = page.get("/")
        assert "<script>alert(1)" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy


class TestIncidentPage:
    def test_the_timeline_from_opening_to_resolution(self, page: TestClient):
        [incident_id] = penalties(page, "a")
        form = {"by": "ana", "note": "calling the store"}
        acked = page.post(f"/incidents/{incident_id}/ack", data=form, headers=SAME_SITE,
                          follow_redirects=False)
        assert acked.status_code == 303 and acked.headers["location"] == f"/incidents/{incident_id}"
        page.post(f"/incidents/{incident_id}/note", data={"by": "bo", "note": "<b>bold</b>"},
                  headers=SAME_SITE)
        page.post(f"/incidents/{incident_id}/resolve", data={"by": "ana"}, headers=SAME_SITE)
        text = page.get(f"/incidents/{incident_id}").text
        assert [kind for kind in ("opened", "notified", "acknowledged", "note", "resolved")
                if f'data-kind="{kind}"' in text] == [
            "opened", "acknowledged", "note", "resolved"]  # not yet sent: no dispatcher
        assert "calling the store" in text and "&lt;b&gt;bold&lt;/b&gt;" in text
        assert 'data-status="resolved"' in text and 'id="ack-form"' not in text
        api = page.get(f"/v1/incidents/{incident_id}").json()
        assert (api["status"], api["acknowledged_by"], api["resolved_by"]) == (
            "resolved", "ana", "ana")

    def test_the_name_given_is_remembered_for_the_next_form_even_in_chinese(
            self, page: TestClient):
        [incident_id] = penalties(page, "a")
        noted = page.post(f"/incidents/{incident_id}/note", data={"by": "李伟", "note": "x"},
                          headers=SAME_SITE, follow_redirects=False)
        assert noted.status_code == 303
        assert 'name="by" required maxlength="200" value="李伟"' in page.get(
            f"/incidents/{incident_id}").text

    def test_a_pip_shows_its_evidence_month_by_month(self, page: TestClient):
        pip_months(page)
        [pip] = page.get("/v1/incidents", params={"rule": "pip-recommended"}).json()
        text = page.get(f"/incidents/{pip['id']}").text
        assert 'id="evidence"' in text
        for period in ("2026-07", "2026-08", "2026-09"):
            assert f"<td>{period}</td><td>amz-us-01</td><td>GMV</td><td>120,000</td>" \
                   f"<td>&gt;= 150,000</td>" in text

    def test_a_form_problem_is_400_naming_the_field_and_keeps_what_was_typed(
            self, page: TestClient):
        [incident_id] = penalties(page, "a")
        response = page.post(f"/incidents/{incident_id}/note", data={"by": "ana"},
                             headers=SAME_SITE)
        assert response.status_code == 400 and "Field &#39;note&#39;: is required" in response.text
        assert 'value="ana"' in response.text
        nameless = page.post(f"/incidents/{incident_id}/ack", data={"note": "hi"},
                             headers=SAME_SITE)
        assert nameless.status_code == 400 and "Field &#39;by&#39;" in nameless.text
        assert page.get(f"/v1/incidents/{incident_id}").json()["status"] == "open"

    def test_acknowledging_twice_is_409_with_the_reason(self, page: TestClient):
        [incident_id] = penalties(page, "a")
        page.post(f"/incidents/{incident_id}/ack", data={"by": "ana"}, headers=SAME_SITE)
        again = page.post(f"/incidents/{incident_id}/ack", data={"by": "bo"},
                          headers=SAME_SITE)
        assert again.status_code == 409 and "only an open incident" in again.text

    def test_an_unknown_incident_is_404(self, page: TestClient):
        assert page.get("/incidents/999").status_code == 404
        assert page.post("/incidents/999/ack", data={"by": "a"},
                         headers=SAME_SITE).status_code == 404


class TestPipPage:
    def test_recommendations_with_months_indicators_and_evidence(self, page: TestClient):
        pip_months(page)
        penalties(page, "other")
        text = page.get("/pip").text
        assert text.count('class="card pip"') == 1
        assert '<dd class="months">2026-07, 2026-08, 2026-09</dd>' in text
        assert "<dd>GMV</dd>" in text and "li.wei" in text

    def test_in_chinese_the_indicators_are_named_in_chinese(self, page: TestClient):
        pip_months(page)
        text = page.get("/pip", params={"lang": "zh-CN"}).text
        assert "绩效改进计划" in text and "<dd>销售额</dd>" in text


class TestPageLanguage:
    def test_lang_switches_and_a_cookie_remembers_it(self, page: TestClient):
        chosen = page.get("/", params={"lang": "zh-CN"})
        assert '<html lang="zh-CN">' in chosen.text and "筛选" in chosen.text
        assert "kw_lang=zh-CN" in chosen.headers["set-cookie"]
        assert '<html lang="zh-CN">' in page.get("/").text
        assert '<html lang="en">' in page.get("/", params={"lang": "en"}).text

    def test_the_browser_language_is_the_default(self, page: TestClient):
        text = page.get("/", headers={"accept-language": "zh-CN,zh;q=0.9"}).text
        assert '<html lang="zh-CN">' in text and 'href="/?lang=en"' in text

    def test_the_switch_keeps_the_filters(self, page: TestClient):
        text = page.get("/", params={"store": "a"}).text
        assert 'href="/?store=a&amp;lang=zh-CN"' in text

    def test_the_page_fits_a_phone(self, page: TestClient):
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in \
            page.get("/").text


class TestPageAccess:
    def test_open_on_loopback_until_a_token_exists(self, page: TestClient):
        assert page.get("/").status_code == 200
        assert page.get("/login", follow_redirects=False).headers["location"] == "/"

    def test_not_on_loopback_the_page_asks_for_a_token_even_without_any(
            self, pipeline: Pipeline, settings: Settings):
        with client_for(pipeline, settings, "0.0.0.0") as client:
            response = client.get("/pip", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fpip"

    def test_once_tokens_exist_the_page_redirects_to_login_and_keeps_the_way_back(
            self, page: TestClient, db: Database):
        with_token(page, db, Role.VIEWER)
        response = page.get("/incidents/4?lang=en", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fincidents%2F4%3Flang%3Den"
        assert 'name="next" value="/incidents/4?lang=en"' in page.get(
            response.headers["location"]).text

    def test_a_link_from_another_site_gets_one_same_site_hop_to_send_the_cookie(
            self, page: TestClient, db: Database):
        with_token(page, db, Role.VIEWER)
        response = page.get("/incidents/4", headers={"sec-fetch-site": "cross-site"},
                            follow_redirects=False)
        assert response.status_code == 200
        assert '<meta http-equiv="refresh" content="0;url=/incidents/4">' in response.text

    def test_login_keeps_the_token_in_a_strict_httponly_cookie(self, page: TestClient,
                                                               db: Database):
        token = with_token(page, db, Role.VIEWER)["Authorization"].split()[1]
        response = page.post("/login", data={"token": token, "next": "/pip"},
                             headers=SAME_SITE, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/pip"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("kw_token=") and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert page.get("/pip").status_code == 200

    def test_a_bad_or_ingest_token_is_refused_at_login(self, page: TestClient, db: Database):
        feed = with_token(page, db, Role.INGEST)["Authorization"].split()[1]
        bad = page.post("/login", data={"token": "kw_nope"}, headers=SAME_SITE)
        assert bad.status_code == 401 and "unknown or revoked" in bad.text
        ingest = page.post("/login", data={"token": feed}, headers=SAME_SITE)
        assert ingest.status_code == 403 and "can only send data" in ingest.text
        assert "kw_token" not in page.cookies

    def test_a_viewer_reads_but_cannot_act(self, page: TestClient, db: Database):
        [incident_id] = penalties(page, "a")
        viewer = with_token(page, db, Role.VIEWER)
        text = page.get(f"/incidents/{incident_id}", headers=viewer).text
        assert 'id="ack-form"' not in text and "needs the responder role" in text
        refused = page.post(f"/incidents/{incident_id}/ack", data={"by": "v"},
                            headers={**viewer, **SAME_SITE})
        assert refused.status_code == 403
        assert page.get(f"/v1/incidents/{incident_id}", headers=viewer).json()["status"] == "open"

    def test_a_form_post_without_a_token_is_refused(self, page: TestClient, db: Database):
        [incident_id] = penalties(page, "a")
        with_token(page, db, Role.RESPONDER)
        refused = page.post(f"/incidents/{incident_id}/ack", data={"by": "x"},
                            headers=SAME_SITE)
        assert refused.status_code == 401 and 'href="/login"' in refused.text

    def test_a_form_from_another_site_is_refused_even_with_the_cookie(
            self, page: TestClient, db: Database):
        [incident_id] = penalties(page, "a")
        token = with_token(page, db, Role.RESPONDER)["Authorization"].split()[1]
        page.post("/login", data={"token": token}, headers=SAME_SITE)
        for headers in ({"origin": "https://evil.example"}, {}):
            refused = page.post(f"/incidents/{incident_id}/ack", data={"by": "x"},
                                headers=headers)
            assert refused.status_code == 403 and "not sent from this site" in refused.text
        accepted = page.post(f"/incidents/{incident_id}/ack", data={"by": "x"},
                             headers=SAME_SITE, follow_redirects=False)
        assert accepted.status_code == 303

    def test_open_mode_still_checks_the_origin(self, page: TestClient):
        [incident_id] = penalties(page, "a")
        refused = page.post(f"/incidents/{incident_id}/resolve", data={"by": "x"},
                            headers={"origin": "https://evil.example"})
        assert refused.status_code == 403
        assert page.get(f"/v1/incidents/{incident_id}").json()["status"] == "open"

    def test_logout_forgets_the_token(self, page: TestClient, db: Database):
        token = with_token(page, db, Role.VIEWER)["Authorization"].split()[1]
        page.post("/login", data={"token": token}, headers=SAME_SITE)
        out = page.post("/logout", headers=SAME_SITE, follow_redirects=False)
        assert out.status_code == 303 and 'kw_token=""' in out.headers["set-cookie"]
        assert page.get("/", follow_redirects=False).status_code == 303


class TestCardViews:
    def test_the_default_period_is_the_last_full_month(self):
        assert default_period(date(2026, 11, 1)) == "2026-10"
        assert default_period(date(2026, 11, 30)) == "2026-10"
        assert default_period(date(2026, 1, 15)) == "2025-12"

    def test_a_month_quarter_or_year_is_a_period_anything_else_names_the_field(self):
        assert [chosen_period(p).text for p in ("2026-10", "2026-Q3", "2026")] == [
            "2026-10", "2026-Q3", "2026"]
        for text in ("2026-10-05", "Q3", "2026-13", "2026-10\x00", "2" * 21):
            with pytest.raises(InputError) as caught:
                chosen_period(text)
            assert caught.value.field == "period"

    def test_a_veto_is_worded_in_the_visitors_language(self):
        veto = Veto(metric="penalty_count", value=2, store="amz-us-01", period="2026-09")
        assert veto_text(veto, "en") == "Penalties = 2 at amz-us-01 in 2026-09"
        assert veto_text(veto, "zh-CN") == "2026-09 amz-us-01：违规处罚次数 = 2"

    def test_a_cards_link_quotes_the_whole_operator_name(self):
        assert card_url("a/b c?#", "2026-Q3") == "/scorecards/a%2Fb%20c%3F%23?period=2026-Q3"


class TestScorecardPages:
    def test_the_team_defaults_to_the_last_full_month_one_row_per_operator(
            self, page: TestClient):
        scorecard_month(page)
        response = page.get("/scorecards")  # the clock says 2026-11-01
        assert response.status_code == 200
        assert 'name="period" value="2026-10"' in response.text
        rows = table_rows(response.text, "operator")
        assert list(rows) == ["chen.jing", "li.wei"]
        li = rows["li.wei"]
        assert 'href="/scorecards/li.wei?period=2026-10"' in li and ">junior<" in li
        assert '<td class="num">1.00</td>' in li and '<span class="badge r-pass">pass' in li
        chen = rows["chen.jing"]
        assert '<td class="num">0.00</td>' in chen and '<span class="badge r-fail">fail' in chen
        assert '<td class="failing">GMV, Stockout rate</td>' in chen
        assert '<div class="scroll">' in response.text  # the table scrolls on a phone

    def test_every_page_links_to_the_scorecards(self, page: TestClient):
        assert '<a id="nav-scorecards" href="/scorecards">Scorecards</a>' in page.get("/").text
        assert '<a id="nav-scorecards" href="/scorecards">考核</a>' in page.get(
            "/pip", params={"lang": "zh-CN"}).text

    def test_a_period_without_snapshots_says_so(self, page: TestClient):
        scorecard_month(page)
        response = page.get("/scorecards", params={"period": "2026-Q1"})
        assert response.status_code == 200 and table_rows(response.text, "operator") == {}
        assert "No operator has snapshots in 2026-Q1." in response.text

    def test_a_card_states_each_indicators_value_need_source_and_status(
            self, page: TestClient):
        scorecard_month(page)
        response = page.get("/scorecards/chen.jing", params={"period": "2026-10"})
        assert response.status_code == 200
        text = response.text
        assert '<h1 id="title">chen.jing: 2026-10</h1>' in text
        assert "<dd>monthly</dd>" in text and "<dd>mid</dd>" in text
        assert '<dd id="score">0.00 (pass mark 0.80)</dd>' in text
        assert 'data-result="fail">fail</span>' in text
        items = table_rows(text, "item")
        assert [re.findall(r"<td[^>]*>(.*?)</td>", items[m]) for m in ("gmv", "stockout_rate")] \
            == [["GMV", "40,000", "&gt;= 60,000", "target",  # mid tier: performance x2
                 '<span class="badge r-fail">fail</span>', "2", "shopee-my-02"],
                ["Stockout rate", "9.00%", "&lt;= 5.00%", "rule stockout-rate-high",
                 '<span class="badge r-fail">fail</span>', "1", "shopee-my-02"]]
        assert 'data-status="no_data"' in items["conversion_rate"]
        assert 'href="/scorecards?period=2026-10"' in text  # back to the team
        assert 'class="pip-link"' not in text

    def test_a_veto_fails_a_card_whatever_its_score_and_lowers_its_grade(
            self, page: TestClient):
        page.post("/v1/snapshots", json=snapshot("tts-uk-03", platform="tiktok",
                                                 operator="zhao.min", gmv=90000,
                                                 targets={"gmv": 80000}, penalty_count=1,
                                                 major_penalty_count=1))
        team = table_rows(page.get("/scorecards").text, "operator")["zhao.min"]
        assert "r-fail" in team and '<td class="vetoes">Major penalties</td>' in team
        assert '<td class="grade" data-grade="A">A</td>' in team
        assert '<td class="num bonus">1.2</td>' in team
        card = page.get("/scorecards/zhao.min", params={"period": "2026-10"}).text
        assert '<dd id="score">1.00 (pass mark 0.80)</dd>' in card
        assert 'data-result="fail"' in card
        assert "Major penalties = 1 at tts-uk-03 in 2026-10" in card
        assert 'data-grade="A">A (bonus x1.2)' in card
        assert ("lowered one band from S: Major penalties = 1 at tts-uk-03 in 2026-10"
                in card)
        assert '<dd id="grade-meaning">Bonus x1.2; promotion candidate' in card

    def test_a_minor_penalty_fails_no_card(self, page: TestClient):
        page.post("/v1/snapshots", json=snapshot("tts-uk-03", platform="tiktok",
                                                 operator="zhao.min", gmv=90000,
                                                 targets={"gmv": 80000}, penalty_count=1))
        team = table_rows(page.get("/scorecards").text, "operator")["zhao.min"]
        assert 'data-result="pass"' in team and '<td class="vetoes">-</td>' in team

    def test_in_chinese_indicators_results_and_sources_are_named_in_chinese(
            self, page: TestClient):
        scorecard_month(page)
        team = page.get("/scorecards", params={"lang": "zh-CN"}).text
        assert "<h1>运营考核 · 2026-10</h1>" in team
        assert '<td class="failing">销售额, 缺货率</td>' in team and "不合格" in team
        card = page.get("/scorecards/li.wei", params={"period": "2026-10"}).text  # cookie
        assert '<html lang="zh-CN">' in card and "<dd>月度</dd>" in card
        assert "<dd>初级</dd>" in card and "1.00（合格线 0.80）" in card
        assert "S（奖金系数 1.5）" in card and "优先晋升" in card
        stockout = table_rows(card, "item")["stockout_rate"]
        assert "<td>缺货率</td>" in stockout and "规则 stockout-rate-high" in stockout
        assert "达标" in stockout

    def test_a_bad_period_is_400_naming_the_field_never_500(self, page: TestClient):
        scorecard_month(page)
        for url in ("/scorecards", "/scorecards/li.wei"):
            for period in ("2026-10-05", "Q3", "2026-13", "x" * 300, "2026\x00"):
                response = page.get(url, params={"period": period})
                assert response.status_code == 400, (url, period)
                assert ("Field &#39;Period&#39;: must be a week (2026-W45), a month (2026-10)"
                        in response.text)
                assert 'class="operator"' not in response.text
                assert 'class="item"' not in response.text
        kept = page.get("/scorecards", params={"period": "2026-10-05"}).text
        assert 'name="period" value="2026-10-05"' in kept  # to correct, not to retype

    def test_an_operator_without_snapshots_in_the_period_is_404(self, page: TestClient):
        scorecard_month(page)
        for operator, period in (("nobody", "2026-10"), ("li.wei", "2026-09"),
                                 ("li.wei\x00", "2026-10"), (" li.wei", "2026-10")):
            response = page.get(card_url(operator, period))
            assert response.status_code == 404, operator
        missing = page.get("/scorecards/nobody", params={"period": "2026-10"}).text
        assert "nobody has no snapshots in 2026-10." in missing

    def test_a_hostile_operator_name_is_escaped_and_its_link_still_works(
            self, page: TestClient):
        hostile = "<script>alert(1)</script>/x?y#z"
        page.post("/v1/snapshots", json=snapshot(operator=hostile, gmv=1))
        team = page.get("/scorecards")
        assert "<script>alert(1)" not in team.text
        [link] = re.findall(r'class="operator-link" href="([^"]*)"', team.text)
        assert link == "/scorecards/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%2Fx%3Fy%23z" \
                       "?period=2026-10"
        card = page.get(link)
        assert card.status_code == 200 and "<script>alert(1)" not in card.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;/x?y#z: 2026-10" in card.text
        assert "script-src" not in card.headers["content-security-policy"]

    def test_an_operator_with_a_pip_links_to_it(self, page: TestClient):
        pip_months(page)
        card = page.get("/scorecards/li.wei", params={"period": "2026-09"}).text
        [link] = re.findall(r'class="pip-link" href="([^"]*)"', card)
        assert link == "/?operator=li.wei&amp;rule=pip-recommended"
        assert listed(page.get("/", params={"operator": "li.wei",
                                            "rule": "pip-recommended"}).text) == 1

    def test_once_tokens_exist_a_viewer_token_is_needed(self, page: TestClient, db: Database):
        scorecard_month(page)
        viewer = with_token(page, db, Role.VIEWER)
        feeder = with_token(page, db, Role.INGEST)
        for url in ("/scorecards?period=2026-10", "/scorecards/li.wei?period=2026-10"):
            anonymous = page.get(url, follow_redirects=False)
            assert anonymous.status_code == 303
            assert anonymous.headers["location"].startswith("/login?next=%2Fscorecards")
            assert page.get(url, headers=feeder).status_code == 403
            assert page.get(url, headers=viewer).status_code == 200
