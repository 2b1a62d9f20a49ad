"""Weekly digests through the daemon's parts, on SQLite and PostgreSQL: the pipeline opens
and resolves incidents, the timer loop sends each digest route's week once, and the
dispatcher delivers it through the real apprise WeCom plugin, whose HTTP requests are
captured with ``responses``: what is checked is what WeCom would have received.

The week is 2026-W47 (Monday 16 to Sunday 22 November); digests go out on Monday 23
at 09:00 UTC unless said otherwise. Time is an injected clock.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import LOCAL, Clock, http_app, jsonl, snapshot
from watcher import weekly
from watcher.channels.apprise_channel import AppriseChannel
from watcher.channels.base import ChannelDef
from watcher.cli import app
from watcher.config import Settings, load_settings
from watcher.dispatcher import Dispatcher
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime
from watcher.store import Database
from watcher.store.schema import digest_deliveries
from watcher.timers import Timers
from watcher.validation import read_records

KEYS = {"east": "11111111-0000-4444-8888-000000000001",  # a zh-CN group bot
        "ops": "22222222-0000-4444-8888-000000000002"}  # an English one
API = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"
ROSTER = """\
people:
  - {operator: li.wei, tier: junior, team: east, manager: zhang.min}
  - {operator: chen.jing, tier: senior, team: west, manager: wang.fang}
"""
TUESDAY = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PUBLIC_URL = "https://kpi.example.com"


def configure(tmp_path: Path, settings: Settings, *, east_notify: str = "digest",
              east_digest: Any = "weekly", east_match: dict[str, str] | None = None,
              people: str = ROSTER) -> Settings:
    """East's bot (zh-CN) gets only the weekly digest of team east; everything else of
    compliance goes to the ops bot (en) one by one, and its digest too."""
    roster = tmp_path / "roster.yaml"
    roster.write_text(people, encoding="utf-8")
    channels = {"east": {"urls": [f"wecombot://{KEYS['east']}"], "language": "zh-CN"},
                "ops": {"urls": [f"wecombot://{KEYS['ops']}"], "language": "en"}}
    return load_settings(
        env={}, database_url=settings.database_url, rules=str(settings.rules),
        roster=str(roster), public_url=PUBLIC_URL, channels=channels, routes=[
            {"match": east_match or {"team": "east"}, "channels": ["east"],
             "digest": east_digest,
             "notify": east_notify},
            {"match": {"audience": "compliance"}, "channels": ["ops"], "digest": "weekly",
             "notify": "both"}])


class Daemon:
    """One replica's parts over the shared database: pipeline, timers, dispatcher."""

    def __init__(self, db: Database, settings: Settings, clock: Clock,
                 pack_path: Path) -> None:
        self.pipeline = Pipeline(db, RuleEngine(load_pack(pack_path)), settings, clock=clock)
        self.runtime = Runtime(settings, db, self.pipeline)
        self.timers = Timers(db, settings, clock=clock,
                             weekly=lambda now: weekly.send_due(self.runtime, now))
        channels = {name: AppriseChannel(ChannelDef.from_config(
            name, settings.channels[name], env={}), throttle_seconds=0)
            for name in ("east", "ops")}
        self.dispatcher = Dispatcher(db, channels, settings, clock=clock)

    def ingest(self, *records: dict[str, Any]) -> None:
        """Records in, then a timer pass, as the running daemon does every 30 s."""
        self.pipeline.ingest(read_records(jsonl(*records)), "test")
        self.timers.run_once()

    def deliver(self) -> None:
        while self.dispatcher.run_once():
            pass


def sent(bot: str) -> list[str]:
    """The markdown of each message the bot received."""
    url = API.format(key=KEYS[bot])
    return [json.loads(call.request.body)["markdown"]["content"]
            for call in responses.calls if call.request.url == url]


def of_week(bot: str, week: str) -> list[str]:
    """The bot's digests of ``week``."""
    return [m for m in sent(bot) if m.startswith("### **") and week in m.splitlines()[0]]


def one_by_one(bot: str) -> list[str]:
    """The bot's messages about one incident (not digests)."""
    return [m for m in sent(bot) if "周报" not in m and "Weekly digest" not in m]


def capture() -> None:
    for key in KEYS.values():
        responses.post(API.format(key=key), json={"errcode": 0, "errmsg": "ok"})


def a_week(daemon: Daemon, clock: Clock) -> None:
    """Three east stores get a penalty on Tuesday, one of them recovers on Thursday; two
    west stores pass the dispute-rate limit on Wednesday; and one east incident from the
    week before is still open."""
    clock.now = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
    daemon.ingest(snapshot(store="east-old", operator="li.wei", penalty_count=1))
    clock.now = TUESDAY
    daemon.ingest(*[snapshot(store=f"east-{n}", operator="li.wei", penalty_count=1)
                    for n in (1, 2, 3)])
    clock.now = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    daemon.ingest(*[snapshot(store=f"west-{n}", operator="chen.jing", dispute_rate=0.05)
                    for n in (1, 2)])
    clock.now = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)
    daemon.ingest(snapshot(store="east-3", operator="li.wei", penalty_count=0))
    daemon.deliver()


def deliveries(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(digest_deliveries))
                   .scalar_one())


@pytest.fixture
def east(tmp_path: Path, settings: Settings) -> Settings:
    return configure(tmp_path, settings)


class TestSentOnce:
    @responses.activate
    def test_each_route_gets_its_week_once_in_its_channels_language(
            self, db: Database, east: Settings, clock: Clock, default_pack_path: Path):
        capture()
        daemon = Daemon(db, east, clock, default_pack_path)
        a_week(daemon, clock)
        # notify: digest: east's bot heard nothing of east's incidents, not even the
        # critical penalties, and the ops route (after it) did not take them either
        assert one_by_one("east") == []
        assert len(one_by_one("ops")) == 2 and all("west-" in m for m in one_by_one("ops"))
        # (the week before's digest went out on the first pass after its Monday 09:00)
        assert len(of_week("east", "2026-W46")) == 1
        clock.now = MONDAY_9.replace(hour=8, minute=59)
        assert daemon.timers.run_once() == 0  # not yet
        clock.now = MONDAY_9
        assert daemon.timers.run_once() == 2
        daemon.deliver()
        [chinese] = of_week("east", "2026-W47")
        assert chinese.startswith("### **2026-W47 周报：路由 0（team=east）**")
        assert "本周新开 3 · 仍未解决 3 · 本周解决 1" in chinese  # east-old is still open
        assert "east-1" in chinese and "已持续 5 天" in chinese and "团队 east" in chinese
        assert "east-old" in chinese and "已持续 12 天" in chinese
        assert "本周解决" in chinese and "2026-11-19 解决" in chinese
        assert f"{PUBLIC_URL}/?since=2026-11-16&until=2026-11-22" in chinese
        assert "west" not in chinese and "Opened" not in chinese
        [english] = of_week("ops", "2026-W47")
        assert english.startswith("### **Weekly digest 2026-W47: route 1 "
                                  "(audience=compliance)**")
        assert "Opened 5 · still open 5 · resolved 1" in english
        assert "#### Team east" in english and "#### Team west" in english

        # a later pass, a restarted daemon and a second replica send nothing more
        clock.advance(hours=1)
        assert daemon.timers.run_once() == 0
        restarted = Daemon(db, east, clock, default_pack_path)
        assert restarted.timers.run_once() == 0
        clock.advance(days=2)
        assert Daemon(db, east, clock, default_pack_path).timers.run_once() == 0
        restarted.deliver()
        assert len(of_week("east", "2026-W47")) == len(of_week("ops", "2026-W47")) == 1
        assert deliveries(db) == 2 + 2 + 2  # W45 (the first pass), W46, W47
        # the next week is the next digest
        clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        assert restarted.timers.run_once() == 2
        restarted.deliver()
        [next_week] = of_week("east", "2026-W48")
        assert "本周新开 0 · 仍未解决 3 · 本周解决 0" in next_week

    @responses.activate
    def test_two_replicas_at_the_hour_send_it_once(
            self, db: Database, east: Settings, clock: Clock, default_pack_path: Path):
        capture()
        first = Daemon(db, east, clock, default_pack_path)
        a_week(first, clock)
        second = Daemon(db, east, clock, default_pack_path)
        clock.now = MONDAY_9
        with ThreadPoolExecutor(2) as pool:  # both at once, past the timers' leader lock
            counts = list(pool.map(lambda d: weekly.send_due(d.runtime, MONDAY_9),
                                   [first, second]))
        assert sorted(counts) == [0, 2] or counts == [1, 1]
        assert sum(counts) == 2
        first.deliver()
        second.deliver()
        assert len(of_week("east", "2026-W47")) == 1 and deliveries(db) == 2 + 2 + 2

    @responses.activate
    def test_a_daemon_down_at_the_hour_sends_it_when_back(
            self, tmp_path: Path, db: Database, settings: Settings, clock: Clock,
            default_pack_path: Path):
        capture()
        friday = configure(tmp_path, settings, east_digest={"day": "fri", "hour": 17})
        daemon = Daemon(db, friday, clock, default_pack_path)
        a_week(daemon, clock)
        clock.now = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # down from here...
        daemon.timers.run_once()
        daemon.deliver()
        assert of_week("east", "2026-W47") == []
        clock.now = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)  # ...to Saturday
        back = Daemon(db, friday, clock, default_pack_path)
        assert back.timers.run_once() == 1  # east's Friday digest; ops' went on Monday
        back.deliver()
        [late] = of_week("east", "2026-W47")
        assert "本周新开 3" in late
        assert back.timers.run_once() == 0


    @responses.activate
    def test_a_route_moved_in_the_list_is_the_same_route_one_changed_is_a_new_one(
            self, db: Database, east: Settings, clock: Clock, default_pack_path: Path):
        capture()
        daemon = Daemon(db, east, clock, default_pack_path)
        a_week(daemon, clock)
        clock.now = MONDAY_9
        assert daemon.timers.run_once() == 2
        moved = east.model_copy(update={"routes": east.routes[::-1]})
        assert weekly.send_due(Daemon(db, moved, clock, default_pack_path).runtime,
                               clock.now) == 0
        changed = east.model_copy(update={"routes": (
            east.routes[0].model_copy(update={"channels": ("east", "ops")}),
            east.routes[1])})
        assert weekly.send_due(Daemon(db, changed, clock, default_pack_path).runtime,
                               clock.now) == 1


class TestMessages:
    @responses.activate
    def test_notify_both_sends_each_incident_and_the_digest(
            self, tmp_path: Path, db: Database, settings: Settings, clock: Clock,
            default_pack_path: Path):
        capture()
        both = configure(tmp_path, settings, east_notify="both")
        daemon = Daemon(db, both, clock, default_pack_path)
        a_week(daemon, clock)
        told = one_by_one("east")  # four openings and east-3's recovery, one by one
        assert len(told) == 5 and sum("已恢复" in m for m in told) == 1
        clock.now = MONDAY_9
        daemon.timers.run_once()
        daemon.deliver()
        assert len(of_week("east", "2026-W47")) == 1

    @responses.activate
    def test_300_incidents_of_six_teams_fit_one_wecom_message_naming_the_worst(
            self, tmp_path: Path, db: Database, settings: Settings, clock: Clock,
            default_pack_path: Path):
        """Six teams of 50 breaching stores: ten lines a list would be three times
        WeCom's 4096 bytes of markdown, so each list names fewer and says how many more."""
        capture()
        teams = "people:\n" + "".join(
            f"  - {{operator: op{t}, tier: junior, team: 第{t}组}}\n" for t in range(6))
        everyone = configure(tmp_path, settings, east_match={"audience": "compliance"},
                             people=teams)
        daemon = Daemon(db, everyone, clock, default_pack_path)
        clock.now = TUESDAY
        daemon.ingest(*[snapshot(store=f"店铺-{n:03d}", operator=f"op{n % 6}",
                                 dispute_rate=0.05) for n in range(299)],
                      snapshot(store="店铺-299", operator="op5", penalty_count=1))
        clock.now = MONDAY_9
        assert daemon.timers.run_once() == 2
        daemon.deliver()
        [message] = of_week("east", "2026-W47")
        size = len(message.encode())
        named = message.count("店铺-") - message.count("问题最多的店铺")
        print(f"weekly digest of 300 incidents in 6 teams: {size} bytes of WeCom markdown "
              f"(limit 4096), {named} incident and store lines named")
        assert size <= 4096
        assert "截断" not in message  # not cut: it names fewer and says how many more
        assert "本周新开 300 · 仍未解决 300 · 本周解决 0" in message
        assert message.count("本周新开 50 · 仍未解决 50 · 本周解决 0") == 6
        assert all(f"#### 团队 第{t}组" in message for t in range(6))
        shown = int(message.count("开启") / 6)  # lines of each team's "opened" list
        assert 1 <= shown < 10
        assert message.count(f"…… 另有 {50 - shown} 条") == 12  # opened and open, per team
        # the worst first: the one critical incident heads its team's lists and the stores
        assert "- 店铺-299：1 个未解决，最严重：严重" in message.split("#### ")[0]
        sixth = message.split("#### 团队 第5组")[1]
        assert sixth.split("**本周新开**\n- ")[1].startswith("#300 严重 店铺-299")


class TestOneVerdict:
    @responses.activate
    def test_the_counts_are_what_the_incident_api_lists(
            self, db: Database, east: Settings, clock: Clock, default_pack_path: Path):
        capture()
        daemon = Daemon(db, east, clock, default_pack_path)
        a_week(daemon, clock)
        week = Period.parse("2026-W47")
        with db.engine.connect() as conn:
            digest = weekly.digest_for(conn, east, daemon.pipeline.roster, 1, week, MONDAY_9)
        window = {"since": "2026-11-16T00:00:00Z", "until": "2026-11-23T00:00:00Z"}
        with http_app(daemon.runtime) as api, TestClient(api, base_url=LOCAL) as client:
            def count(**query: str) -> int:
                answer = client.get("/v1/incidents", params={**query, "limit": "1000"})
                assert answer.status_code == 200, answer.text
                return len(answer.json())

            assert digest.opened == count(**window) == 5
            assert digest.still_open == count(status="open", until=window["until"]) + count(
                status="acknowledged", until=window["until"]) == 5
            assert digest.resolved == count(status="resolved",
                                            resolved_since=window["since"],
                                            resolved_until=window["until"]) == 1


runner = CliRunner()


def test_the_command_previews_a_routes_week(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            settings: Settings, default_pack_path: Path):
    roster = tmp_path / "roster.yaml"
    roster.write_text(ROSTER, encoding="utf-8")
    config = tmp_path / "watcher.yaml"
    config.write_text(f"""\
rules: {default_pack_path}
roster: roster.yaml
routes:
  - match: {{team: east}}
    channels: [console]
    digest: {{every: weekly, day: monday, hour: 9}}
    notify: digest
""")
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    records = tmp_path / "week.jsonl"
    records.write_bytes(jsonl(*[snapshot(store=f"east-{n}", operator="li.wei",
                                         penalty_count=1) for n in (1, 2)]))
    assert runner.invoke(app, ["ingest", str(records)]).exit_code == 0
    week = Period.week_of(datetime.now(UTC).date()).text  # the incidents opened just now
    shown = runner.invoke(app, ["digest", "--week", week, "--language", "zh-CN"])
    assert shown.exit_code == 0, shown.output
    # the current week is not over: its digest says so
    assert f"{week} 周报（截至目前）：路由 0（team=east）" in shown.output
    assert "本周新开 2 · 仍未解决 2" in shown.output
    out = runner.invoke(app, ["--log-json", "digest", "--week", week, "--route", "0",
                              "--format", "json"]).output
    found = json.loads(out[out.index("{\n"):])
    assert (found["total"], found["next_offset"]) == (1, None)
    [digest] = found["digests"]
    assert (digest["week"], digest["opened"], digest["still_open"]) == (week, 2, 2)
    assert digest["start"].endswith("+00:00")  # the CLI's one way of writing a moment
    bad = runner.invoke(app, ["digest", "--week", "2026-11"])
    assert bad.exit_code == 2 and "ISO week" in bad.output
    english = runner.invoke(app, ["digest", "--week", week]).output
    assert f"Weekly digest {week} so far: route 0" in english
    numbered = runner.invoke(app, ["digest", "--week", "2026-48"])
    assert numbered.exit_code == 2
    assert "'2026-48' is not an ISO week: write YYYY-Www (e.g. 2026-W48)" in numbered.output
    future = runner.invoke(app, ["digest", "--week", "2099-W01"])
    assert future.exit_code == 2
    assert "2099-W01 has not begun (it starts 2098-12-29)" in future.output
    missing = runner.invoke(app, ["digest", "--route", "3"])
    assert missing.exit_code == 2 and "there are 1 routes" in missing.output
