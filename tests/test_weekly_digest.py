"""The weekly digest, pure: when a route's week is due, which incidents it counts, how it
groups them per team, and what it says in each language, within a size."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from watcher.alerts import AlertKind, WeeklyDigest
from watcher.assessment.roster import Roster
from watcher.channels.limits import Limit, fits
from watcher.channels.render import Renderer
from watcher.config import Route, Settings, load_settings, policy, route
from watcher.errors import ConfigError
from watcher.incidents import Incident, Status
from watcher.period import Period
from watcher.weekly_digest import build, chosen_week, digest_alert, due_week, week_bounds

W47 = Period.parse("2026-W47")  # Monday 2026-11-16 to Sunday 2026-11-22
SENT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the Monday after, 09:00
TUESDAY = datetime(2026, 11, 17, 12, tzinfo=UTC)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def incident(id_: int, *, store: str = "amz-us-01", severity: str = "high",
             rule: str = "dispute-rate-high", opened: datetime = TUESDAY,
             resolved: datetime | None = None, team: str | None = None,
             operator: str | None = None, audience: str = "compliance") -> Incident:
    return Incident(id=id_, fingerprint=f"{rule}|{store}|{id_}", rule=rule, rule_version="1",
                    subject_kind="store", subject=store, store=store, platform="amazon",
                    operator=operator, metric="dispute_rate", value=0.05, threshold=0.03,
                    period="2026-11", period_end=None, evidence=[],
                    status=Status.RESOLVED if resolved else Status.OPEN, severity=severity,
                    audience=audience, title={"en": f"{rule} at {store}",
                                              "zh-CN": f"{store} 的 {rule}"},
                    labels={"team": team} if team else {}, opened_at=opened,
                    updated_at=resolved or opened, resolved_at=resolved)


def routes(*given: dict[str, object]) -> Settings:
    return load_settings(env={}, channels={"ops": {"urls": ["json://x/"]}}, routes=list(given))


class TestSchedule:
    @pytest.mark.parametrize(("now", "week"), [
        (datetime(2026, 11, 23, 8, 59, tzinfo=UTC), "2026-W46"),  # not yet: last week's
        (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), "2026-W47"),  # Monday 09:00: W47
        (datetime(2026, 11, 26, 3, 0, tzinfo=UTC), "2026-W47"),  # back on Thursday: still
        (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), "2026-W48"),
        (datetime(2027, 1, 4, 9, 0, tzinfo=UTC), "2026-W53"),  # a long ISO year
    ])
    def test_a_monday_digest_covers_the_iso_week_just_closed(self, now: datetime, week: str):
        assert due_week(now, day=1, hour=9).text == week

    def test_a_friday_digest_covers_the_last_whole_week_before_it(self):
        friday = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # Friday of W48
        assert due_week(friday, day=5, hour=17).text == "2026-W47"
        assert due_week(friday - timedelta(minutes=1), day=5, hour=17).text == "2026-W46"

    def test_a_week_is_monday_to_the_next_monday_utc(self):
        assert week_bounds(W47) == (datetime(2026, 11, 16, tzinfo=UTC),
                                    datetime(2026, 11, 23, tzinfo=UTC))
        with pytest.raises(ValueError, match="not a week"):
            week_bounds(Period.parse("2026-11"))


class TestConfig:
    def test_digest_weekly_defaults_to_monday_nine_and_both_kinds_of_message(self):
        [r] = routes({"match": {"team": "east"}, "channels": ["ops"],
                      "digest": "weekly"}).routes
        assert r.digest is not None and (r.digest.day, r.digest.hour) == (1, 9)
        assert r.each  # a digest besides the messages unless notify: digest

    @pytest.mark.parametrize("day", ["friday", "Fri", "fri", 5, "5"])
    def test_a_day_is_a_name_a_prefix_or_its_iso_number(self, day: object):
        [r] = routes({"channels": ["ops"], "digest": {"every": "weekly", "day": day,
                                                      "hour": 17}}).routes
        assert r.digest is not None and r.digest.day_name == "friday"

    @pytest.mark.parametrize(("given", "says"), [
        ({"digest": {"day": "t"}}, "not a day of the week"),  # tuesday or thursday?
        ({"digest": {"day": 8}}, "routes.0.digest.day"),
        ({"digest": {"hour": 24}}, "routes.0.digest.hour"),
        ({"digest": "daily"}, "routes.0.digest.every"),
        ({"digest": True}, 'is "weekly" or {every: weekly, day: monday, hour: 9}, not true'),
        ({"notify": "digest"}, "needs a digest"),
        ({"notify": "sometimes", "digest": "weekly"}, "routes.0.notify"),
        ({"notify": "digest", "digest": "weekly", "repeat_interval": "4h"},
         "cannot escalate, remind or group"),
    ])
    def test_a_wrong_digest_setting_is_refused_naming_its_key(self, given: dict[str, object],
                                                              says: str):
        with pytest.raises(ConfigError, match=says):
            routes({"channels": ["ops"], **given})

    def test_a_digest_only_route_takes_its_incidents_and_sends_none_of_them(self):
        settings = load_settings(env={}, channels={"ops": {"urls": ["json://x/"]},
                                                   "all": {"urls": ["json://y/"]}}, routes=[
            {"match": {"team": "east"}, "channels": ["ops"], "digest": "weekly",
             "notify": "digest"},
            {"match": {"audience": "compliance"}, "channels": ["all"]}])
        east = {"team": "east", "audience": "compliance", "severity": "critical"}
        west = {"team": "west", "audience": "compliance", "severity": "critical"}
        assert route(settings, east) == []  # first match wins: the digest carries it
        assert route(settings, west) == ["all"]
        assert route(settings, east, each=False) == ["ops"]  # a document (monthly report)

    def test_a_later_route_does_not_escalate_what_a_digest_only_route_took(self):
        settings = load_settings(env={}, channels={"ops": {"urls": ["json://x/"]},
                                                   "lead": {"urls": ["json://y/"]}}, routes=[
            {"match": {"team": "east"}, "channels": ["ops"], "digest": "weekly",
             "notify": "digest"},
            {"match": {"audience": "compliance"}, "channels": ["ops"],
             "escalate": [{"after": "30m", "channels": ["lead"]}], "repeat_interval": "4h"}])
        east = {"team": "east", "audience": "compliance"}
        assert policy(settings, east) is None
        assert policy(settings, {**east, "team": "west"}) is settings.routes[1]


class TestBuild:
    def test_opened_still_open_and_resolved_are_counted_per_team_worst_first(self):
        roster = Roster.model_validate({"people": [
            {"operator": "li.wei", "tier": "junior", "team": "west"}]})
        before = incident(1, severity="critical", opened=at(2), team="east", store="s1")
        new_high = incident(2, opened=at(18), team="east", store="s2")
        new_critical = incident(3, severity="critical", opened=at(19), team="east",
                                store="s2")
        fixed = incident(4, opened=at(10), resolved=at(20), team="east", store="s3")
        by_roster = incident(5, opened=at(17), operator="li.wei", store="s4")  # no label
        nobody = incident(6, opened=at(21), store="s5")
        [r] = routes({"match": {"audience": "compliance"}, "channels": ["ops"],
                      "digest": "weekly"}).routes
        digest = build(W47, 0, r, opened=[new_high, new_critical, by_roster, nobody],
                       still_open=[before, new_high, new_critical, by_roster, nobody],
                       resolved=[fixed], roster=roster, now=SENT,
                       public_url="https://kpi.example.com")
        assert (digest.opened, digest.still_open, digest.resolved) == (4, 5, 1)
        assert [s.team for s in digest.sections] == ["east", "west", None]
        east = digest.sections[0]
        assert (east.opened, east.still_open, east.resolved) == (2, 3, 1)
        assert [i.incident_id for i in east.opened_list] == [3, 2]  # critical first
        assert [(i.incident_id, i.age_days) for i in east.open_list] == [(1, 20), (3, 3),
                                                                         (2, 4)]
        assert [i.incident_id for i in east.resolved_list] == [4]
        # s2 has two open (one critical): before s1, critical too but alone
        assert [(s.store, s.open, s.worst) for s in digest.stores][:2] == [
            ("s2", 2, "critical"), ("s1", 1, "critical")]
        assert digest.link == ("https://kpi.example.com/?since=2026-11-16&until=2026-11-22")

    def test_only_what_the_route_matches_counts(self):
        [r] = routes({"match": {"audience": "compliance", "rule": "penalty-received"},
                      "channels": ["ops"], "digest": "weekly"}).routes
        penalty = incident(1, rule="penalty-received", severity="critical")
        dispute = incident(2)
        manager = incident(3, rule="penalty-received", audience="manager")
        digest = build(W47, 0, r, opened=[penalty, dispute, manager],
                       still_open=[penalty, dispute, manager], resolved=[], roster=Roster(),
                       now=SENT, public_url="https://kpi.example.com/")
        assert (digest.opened, digest.still_open) == (1, 1)
        assert digest.link is not None and digest.link.endswith("&rule=penalty-received")


class TestWords:
    def digest_of(self, count: int, *, store: str = "amz-us-01"
                  ) -> tuple[WeeklyDigest, Route]:
        [r] = routes({"match": {"team": "east"}, "channels": ["ops"], "digest": "weekly"
                      }).routes
        found = [incident(n, team="east", store=f"{store}-{n}", opened=at(17))
                 for n in range(1, count + 1)]
        return build(W47, 0, r, opened=found, still_open=found, resolved=[], roster=Roster(),
                     now=SENT, public_url="https://kpi.example.com"), r

    def test_english_and_chinese(self):
        digest, r = self.digest_of(2)
        alert = digest_alert(digest, r, SENT)
        assert alert.kind is AlertKind.WEEKLY and alert.severity == "info"
        english = Renderer().render(alert, "markdown", "en")
        assert english.subject == "[INFO] Weekly digest 2026-W47: route 0 (team=east)"
        assert "Opened 2 · still open 2 · resolved 0" in english.body
        assert "#### Team east" in english.body and "open 5 d" in english.body
        assert "[Open the list](https://kpi.example.com/?since=2026-11-16" in english.body
        chinese = Renderer().render(alert, "markdown", "zh-CN").body
        assert "2026-W47 周报：路由 0（team=east）" in chinese
        assert "本周新开 2 · 仍未解决 2 · 本周解决 0" in chinese and "已持续 5 天" in chinese
        assert "团队 east" in chinese and "Team" not in chinese

    def test_a_week_not_yet_closed_is_labelled_so_far_in_both_languages(self):
        [r] = routes({"match": {"team": "east"}, "channels": ["ops"], "digest": "weekly"
                      }).routes
        digest = build(W47, 0, r, opened=[], still_open=[], resolved=[], roster=Roster(),
                       now=at(19))  # the Thursday of W47
        assert not digest.closed
        alert = digest_alert(digest, r, at(19))
        assert Renderer().render(alert, "text", "en").subject.endswith(
            "Weekly digest 2026-W47 so far: route 0 (team=east)")
        assert "2026-W47 周报（截至目前）：路由 0" in Renderer().render(alert, "text",
                                                                 "zh-CN").body
        assert alert.title["en"].startswith("Weekly digest 2026-W47 so far")
        closed = build(W47, 0, r, opened=[], still_open=[], resolved=[], roster=Roster(),
                       now=SENT)
        assert closed.closed and "so far" not in digest_alert(closed, r, SENT).title["en"]

    @pytest.mark.parametrize(("text", "says"), [
        ("2099-W01", "2099-W01 has not begun (it starts 2098-12-29)"),
        ("2026-W48", "2026-W48 has not begun (it starts 2026-11-23)"),
        ("2026-48", "'2026-48' is not an ISO week: write YYYY-Www (e.g. 2026-W48)"),
        ("2026-11", "'2026-11' is not an ISO week: write YYYY-Www (e.g. 2026-W11)"),
        ("soon", "'soon' is not an ISO week: write YYYY-Www (e.g. 2026-W48)"),
        ("2026-W54", "'2026-W54' is not a real date"),
    ])
    def test_a_week_asked_for_must_be_a_week_that_has_begun(self, text: str, says: str):
        with pytest.raises(ValueError, match=re.escape(says)):
            chosen_week(text, at(19))
        assert chosen_week("2026-W47", at(19)) == W47  # running: allowed, "so far"

    def test_a_long_list_names_fewer_and_says_how_many_more(self):
        digest, r = self.digest_of(300)
        alert = digest_alert(digest, r, SENT)
        body = Renderer().render(alert, "markdown", "en", digest_items=3).body
        assert "Opened 300 · still open 300" in body
        assert body.count("… and 297 more") == 2  # opened, still open
        assert fits(body, Limit(max_bytes=4096))

    def test_a_quiet_week_says_so(self):
        digest, r = self.digest_of(0)
        body = Renderer().render(digest_alert(digest, r, SENT), "text", "zh-CN").body
        assert "本周没有新开、未解决或已解决的事件。" in body
