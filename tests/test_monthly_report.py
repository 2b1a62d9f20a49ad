"""The monthly report: each manager gets their team's month once, through their route."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import Clock, jsonl, snapshot
from watcher import monthly, plans
from watcher.alerts import AlertKind
from watcher.assessment.monthly_report import build_report, report_html, report_text
from watcher.assessment.roster import load_roster
from watcher.assessment.scorecard import Scorecard, build_card
from watcher.assessment.targets import TargetBook
from watcher.assessment.weights import ScorecardSettings
from watcher.channels.memory import MemoryChannel
from watcher.cli import app
from watcher.config import Settings, load_settings
from watcher.dispatcher import Dispatcher
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime
from watcher.snapshot import Snapshot
from watcher.store import Database
from watcher.validation import read_records

ROSTER = """\
people:
  - {operator: li.wei, tier: junior, team: east, manager: zhang.min, name: 李伟}
  - {operator: sun.li, tier: mid, team: east, manager: zhang.min}
  - {operator: chen.jing, tier: senior, team: west, manager: wang.fang}
"""


def card(operator: str, gmv: float, pack_path: Path) -> Scorecard:
    snap = Snapshot.model_validate(snapshot(store=f"s-{operator}", operator=operator, gmv=gmv,
                                            targets={"gmv": 150000}))
    return build_card(operator, Period.parse("2026-10"), [snap], load_pack(pack_path),
                      TargetBook(), ScorecardSettings())


class TestReport:
    def test_rows_show_grade_score_result_and_failing(
            self, tmp_path: Path, default_pack_path: Path):
        roster_path = tmp_path / "roster.yaml"
        roster_path.write_text(ROSTER, encoding="utf-8")
        roster = load_roster(roster_path)
        plain = card("li.wei", 100000, default_pack_path)
        report = build_report("2026-10", [plain], roster, [], plain.items and
                              datetime(2026, 11, 3, tzinfo=UTC).date(), team="east")
        [row] = report.rows
        assert (row.operator, row.name, row.grade, row.result, row.failing) == (
            "li.wei", "李伟", "D", "fail", ("gmv",))  # the card's own grade
        assert row.grade == plain.grade
        assert report.title == "Monthly report 2026-10: team east"
        text = report_text(report)
        assert "li.wei (李伟)" in text and "GMV" in text and "(none)" in text
        chinese = report_text(report, "zh-CN")  # a zh-CN manager's channel reads it so
        assert "销售额" in chinese and "不通过" in chinese and "（无）" in chinese
        assert "<td>D</td>" in report_html(report)


# -- sending -------------------------------------------------------------------------------


@pytest.fixture
def people(tmp_path: Path, settings: Settings) -> Settings:
    roster = tmp_path / "roster.yaml"
    roster.write_text(ROSTER, encoding="utf-8")
    routes = load_settings(env={}, channels={"zhang": {"urls": ["json://x/"]},
                                             "wang": {"urls": ["json://x/"]}}, routes=[
        {"match": {"audience": "manager", "manager": "zhang.min"}, "channels": ["zhang"]},
        {"match": {"audience": "manager", "manager": "wang.fang"}, "channels": ["wang"]},
    ]).routes
    return settings.model_copy(update={"roster": roster, "routes": routes, "channels": {
        "zhang": {"urls": ["json://x/"]}, "wang": {"urls": ["json://x/"]}}})


def runtime_of(db: Database, settings: Settings, clock: Clock, pack_path: Path) -> Runtime:
    return Runtime(settings, db, Pipeline(db, RuleEngine(load_pack(pack_path)), settings,
                                          clock=clock))


def test_each_manager_gets_their_teams_report_once(db: Database, people: Settings,
                                                   clock: Clock, default_pack_path: Path):
    runtime = runtime_of(db, people, clock, default_pack_path)
    for operator, gmv in (("li.wei", 1), ("sun.li", 200000), ("chen.jing", 1)):
        for period in ("2026-08", "2026-09", "2026-10"):
            runtime.pipeline.ingest(read_records(jsonl(snapshot(
                store=f"s-{operator}", operator=operator, period=period, gmv=gmv,
                targets={"gmv": 150000}))), "test")
    channels = {name: MemoryChannel.named(name) for name in ("zhang", "wang", "console")}
    dispatcher = Dispatcher(db, channels, people, clock=clock)

    def reports(name: str) -> list[str]:
        while dispatcher.run_once():
            pass
        return [a.note or "" for a in channels[name].sent if a.kind is AlertKind.REPORT]

    def send(at: datetime, on: Runtime = runtime) -> int:
        clock.now = at
        return monthly.send_due(on, at)

    assert send(datetime(2026, 11, 3, 8, 59, tzinfo=UTC)) == 0
    assert send(datetime(2026, 11, 3, 9, 0, tzinfo=UTC)) == 2
    [zhang] = reports("zhang")
    assert "li.wei (李伟)" in zhang and "sun.li" in zhang and "chen.jing" not in zhang
    assert "Monthly report 2026-10" in zhang
    assert "[recommended] recommended: start a plan" in zhang  # li.wei's PIP
    [wang] = reports("wang")
    assert "chen.jing" in wang and "li.wei" not in wang
    # once: a later pass, a restart or another replica sends nothing more
    assert send(datetime(2026, 11, 4, 9, 0, tzinfo=UTC)) == 0
    replica = runtime_of(db, people, clock, default_pack_path)
    assert send(datetime(2026, 11, 5, 9, 0, tzinfo=UTC), replica) == 0
    assert len(reports("zhang")) == 1 and reports("console") == []
    # a started plan with a checkpoint within the month is due for review next time
    [pip_id] = [i["id"] for i in _pips(db)]
    clock.now = datetime(2026, 11, 10, tzinfo=UTC)
    plans.act(db, pip_id, "start", ["pip-recommended"], people, clock.now, by="zhang.min")
    assert send(datetime(2026, 12, 3, 9, 0, tzinfo=UTC)) == 2
    assert "[in_plan] 2026-12-10 checkpoint review" in reports("zhang")[-1]


def _pips(db: Database) -> list[dict[str, int]]:
    from watcher.store import repository as repo
    with db.engine.connect() as conn:
        return [{"id": i.id} for i in repo.recommendations(
            conn, ["pip-recommended"], datetime(2026, 1, 1, tzinfo=UTC))
            if i.operator == "li.wei"]


runner = CliRunner()


def test_the_command_prints_a_teams_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           default_pack_path: Path):
    (tmp_path / "roster.yaml").write_text(ROSTER, encoding="utf-8")
    config = tmp_path / "watcher.yaml"
    config.write_text(f"roster: roster.yaml\nrules: {default_pack_path}\n")
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    records = tmp_path / "oct.jsonl"
    records.write_bytes(jsonl(*(snapshot(store=f"s-{o}", operator=o, gmv=100,
                                         targets={"gmv": 150})
                                for o in ("li.wei", "chen.jing"))))
    assert runner.invoke(app, ["--log-json", "ingest", str(records)]).exit_code == 0
    out = runner.invoke(app, ["--log-json", "report", "--period", "2026-10", "--team", "east",
                              "--format", "json"]).output
    found = json.loads(out[out.index("{\n"):])
    assert [r["operator"] for r in found["rows"]] == ["li.wei"]
    html = runner.invoke(app, ["report", "--period", "2026-10", "-f", "html"]).output
    assert "chen.jing" in html and html.startswith("<!doctype html>")
    bad = runner.invoke(app, ["report", "--period", "2026-Q3"])
    assert bad.exit_code == 2 and "a month" in bad.output
