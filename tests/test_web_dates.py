"""Days and times on the page follow the page's language, not the browser's.

A ``<input type="date">`` is drawn by the browser in its own locale (Chromium in en-US
shows mm/dd/yyyy on a Chinese page), so the incident list's day fields are text fields
asking for ``YYYY-MM-DD`` in the page's words; the server reads the day and refuses
anything else with a message in the page's language. Every day and time the pages write
goes through ``i18n.day`` and ``i18n.when``: ISO 8601 in both languages, the zone named.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Clock, snapshot
from tests.test_auth import client_for
from watcher.config import Settings
from watcher.pipeline import Pipeline
from watcher.web.i18n import day, when
from watcher.web.views import ListQuery, QueryProblem, parse_day, timeline


@pytest.fixture
def page(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as client:
        client.post("/v1/snapshots", json=snapshot(store="a", operator=None, penalty_count=1))
        yield client


def error_of(html: str) -> str:
    found = re.search(r'<p class="error"[^>]*>(.*?)</p>', html, re.S)
    assert found is not None, "the page says what is wrong"
    return found.group(1).strip()


def field(html: str, name: str, form: str = "filters") -> str:
    """The ``<input>`` of ``name`` in the form ``form`` (the desktop's or the phone's)."""
    found = re.search(rf'<form id="{form}".*?(<input [^>]*name="{name}"[^>]*>)', html, re.S)
    assert found is not None
    return found.group(1)


class TestReadingADay:
    @pytest.mark.parametrize(("text", "expected"), [
        ("2026-11-05", date(2026, 11, 5)), (" 2026-11-05 ", date(2026, 11, 5)),
        ("２０２６－１１－０５", date(2026, 11, 5))])  # a Chinese IME's full-width digits
    def test_a_day_is_written_year_month_day(self, text: str, expected: date):
        assert parse_day(text) == expected

    @pytest.mark.parametrize("text", ["11/05/2026", "05.11.2026", "2026-11-5", "2026/11/05",
                                      "1762300800", "2026-02-30", "2026-11-05T00:00",
                                      "2026年11月5日", "yesterday"])
    def test_anything_else_is_refused_never_guessed(self, text: str):
        with pytest.raises(ValueError):
            parse_day(text)
        with pytest.raises(QueryProblem) as caught:
            ListQuery.parse({"since": text})
        assert (caught.value.field, caught.value.key) == ("since", "error.date")

    def test_the_first_day_after_the_last_is_refused(self):
        with pytest.raises(QueryProblem) as caught:
            ListQuery.parse({"since": "2026-11-05", "until": "2026-11-01"})
        assert caught.value.field == "until"
        assert caught.value.text("en") == ("Field 'To': the first day (2026-11-05) is after "
                                           "the last (2026-11-01)")
        assert caught.value.text("zh-CN") == (
            "字段 “截止日期”：起始日期（2026-11-05）晚于截止日期（2026-11-01）")


class TestTheDayFields:
    @pytest.mark.parametrize(("lang", "placeholder", "label"), [
        ("en", "YYYY-MM-DD", "From"), ("zh-CN", "年-月-日", "起始日期")])
    def test_text_fields_that_ask_in_the_pages_language(self, page: TestClient, lang: str,
                                                        placeholder: str, label: str):
        html = page.get("/", params={"lang": lang}).text
        assert 'type="date"' not in html
        for form in ("filters", "filters-phone"):
            since = field(html, "since", form)
            assert 'type="text"' in since and f'placeholder="{placeholder}"' in since
            assert "aria-describedby" in since
        assert f"<label>{label}<input" in html

    @pytest.mark.parametrize(("lang", "message"), [
        ("en", "Field &#39;From&#39;: &#39;11/05/2026&#39; is not a day; write it "
               "YYYY-MM-DD, e.g. 2026-11-05"),
        ("zh-CN", "字段 “起始日期”：“11/05/2026”不是有效日期，请按 年-月-日 填写，例如 "
                  "2026-11-05")])
    def test_a_bad_day_is_a_400_in_the_pages_language_keeping_what_was_typed(
            self, page: TestClient, lang: str, message: str):
        response = page.get("/", params={"since": "11/05/2026", "lang": lang})
        assert response.status_code == 400
        assert error_of(response.text) == message
        assert 'value="11/05/2026"' in field(response.text, "since")
        assert 'aria-invalid="true"' in field(response.text, "since")
        assert "aria-invalid" not in field(response.text, "until")
        assert '<tr class="incident"' not in response.text  # nothing listed by a guess

    def test_hostile_or_huge_text_in_a_day_field_is_refused_short_and_escaped(
            self, page: TestClient):
        response = page.get("/", params={"until": "<b>" + "9" * 500 + "\x00"})
        assert response.status_code == 400
        assert "<b>" not in response.text and "&lt;b&gt;" in error_of(response.text)
        assert len(error_of(response.text)) < 200

    def test_a_good_day_is_shown_back_as_read(self, page: TestClient):
        html = page.get("/", params={"since": "２０２６－１１－０１", "until": "2026-11-30"}).text
        assert 'value="2026-11-01"' in field(html, "since")
        assert 'value="2026-11-30"' in field(html, "until")
        assert html.count('<tr class="incident"') == 1

    def test_other_bad_filters_speak_the_pages_language_too(self, page: TestClient):
        response = page.get("/", params={"sort": "loudest", "lang": "zh-CN"})
        assert response.status_code == 400
        assert error_of(response.text) == ("字段 “排序”：应为 newest / severity，"
                                           "而不是“loudest”")


class TestTimesOnThePages:
    AT = datetime(2026, 11, 5, 14, 3, 59, tzinfo=UTC)

    def test_one_way_in_both_languages_the_zone_named(self):
        assert when(self.AT, "en") == "2026-11-05 14:03 UTC"
        assert when(self.AT, "zh-CN") == "2026-11-05 14:03（UTC）"
        assert when("2026-11-05T22:03:00+08:00", "en") == "2026-11-05 14:03 UTC"
        assert when(None, "en") == "-" and when("not a time", "en") == "not a time"
        assert day(date(2026, 11, 5), "zh-CN") == day(date(2026, 11, 5), "en") == "2026-11-05"

    def test_a_retry_in_the_timeline_is_written_like_every_other_time(self):
        [line] = timeline([{"at": self.AT, "kind": "delivery_failed", "actor": "watcher",
                            "data": {"channel": "ops", "attempt": 1,
                                     "retry_at": "2026-11-05T14:08:00+00:00"}}], "zh-CN")
        assert "2026-11-05 14:08（UTC） 重试" in line.details

    @pytest.mark.parametrize(("lang", "written"), [("en", "2026-11-01 08:00 UTC"),
                                                   ("zh-CN", "2026-11-01 08:00（UTC）")])
    def test_the_list_and_the_incident_write_the_opening_time_in_the_pages_way(
            self, page: TestClient, clock: Clock, lang: str, written: str):
        [incident] = page.get("/v1/incidents").json()
        assert incident["opened_at"].startswith(clock.now.date().isoformat())
        listing = page.get("/", params={"lang": lang}).text
        assert f'<td class="meta nowrap">{written}</td>' in listing
        detail = page.get(f"/incidents/{incident['id']}", params={"lang": lang}).text
        assert detail.count(written) >= 2  # the facts and the timeline's "opened"
