"""The roster: each operator's tier, team and manager, from a YAML or CSV file.

It decides the tier a card is weighed by, which team a card belongs to, and whose
channel an operator's PIP reaches.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import LOCAL, Clock, http_app, jsonl, snapshot
from tests.daemon_harness import Webhook
from watcher.assessment.roster import load_roster, parse_csv
from watcher.assessment.scorecard import build_card, build_team
from watcher.assessment.targets import TargetBook
from watcher.assessment.weights import ScorecardSettings
from watcher.channels import build_channels
from watcher.cli import app
from watcher.config import load_settings, route
from watcher.daemon.reload import RosterReloader
from watcher.dispatcher import Dispatcher
from watcher.errors import ConfigError
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
  - {operator: chen.jing, tier: 高级, team: west, manager: wang.fang}
  - {operator: sun.li, team: east, manager: zhang.min}
"""


def write(folder: Path, text: str, name: str = "roster.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


class TestLoading:
    def test_yaml_entries_with_chinese_tiers(self, tmp_path: Path):
        roster = load_roster(write(tmp_path, ROSTER))
        assert roster.get("li.wei") is not None
        assert roster.tier_of("li.wei") == "junior"
        assert roster.tier_of("chen.jing") == "senior"  # 高级
        assert roster.tier_of("sun.li") is None
        assert roster.labels_of("li.wei") == {"team": "east", "manager": "zhang.min"}
        assert {m: [p.operator for p in ps] for m, ps in roster.managers().items()} == {
            "zhang.min": ["li.wei", "sun.li"], "wang.fang": ["chen.jing"]}

    def test_csv_with_a_bom_and_blank_cells(self, tmp_path: Path):
        path = tmp_path / "roster.csv"
        path.write_text("\ufeffoperator,tier,team,manager,name\nli.wei,初级,east,zhang.min,"
                        "李伟\nsun.li,,east,zhang.min,\n", encoding="utf-8")
        roster = load_roster(path)
        assert roster.tier_of("li.wei") == "junior"
        assert roster.get("sun.li").name is None  # type: ignore[union-attr]

    @pytest.mark.parametrize(("text", "line", "key", "message"), [
        ("people:\n  - {operator: a, tier: boss}\n", 2, "people.0.tier", "is not a tier"),
        ("people:\n  - {operator: a}\n  - {operator: a}\n", 3, "people.1.operator",
         "already on the roster (line 2)"),
        ("people:\n  - {operator: a, teem: x}\n", 2, "people.0.teem", "is not a known key"),
        ("people:\n  - {tier: mid}\n", 2, "people.0.operator", "is required"),
        ("staff: []\n", 1, None, "a 'people:' list"),
    ])
    def test_a_broken_yaml_entry_names_file_line_and_key(self, tmp_path: Path, text: str,
                                                          line: int, key: str | None,
                                                          message: str):
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as caught:
            load_roster(path)
        assert caught.value.file == str(path)
        assert caught.value.line == line
        assert caught.value.key == key
        assert message in caught.value.reason

    def test_a_broken_csv_row_names_its_line(self):
        with pytest.raises(ConfigError) as caught:
            parse_csv("operator,tier\na,junior\nb,chief\n", "r.csv")
        assert (caught.value.line, caught.value.key) == (3, "tier")
        with pytest.raises(ConfigError) as caught:
            parse_csv("operator,role\n", "r.csv")
        assert (caught.value.line, caught.value.key) == (1, "role")

    def test_the_config_resolves_the_roster_beside_it(self, tmp_path: Path):
        write(tmp_path, ROSTER)
        config = tmp_path / "watcher.yaml"
        config.write_text("roster: roster.yaml\n")
        settings = load_settings(config, env={})
        assert settings.roster == tmp_path / "roster.yaml"


class TestReload:
    def test_an_edit_takes_effect_and_a_broken_one_keeps_the_old_roster(
            self, tmp_path: Path, pipeline: Pipeline):
        path = write(tmp_path, ROSTER)
        pipeline.use_roster(load_roster(path))
        with ThreadPoolExecutor(max_workers=1) as engine_thread:
            reloader = RosterReloader(path, pipeline, engine_thread)
            write(tmp_path, ROSTER.replace("team: east, manager: zhang.min, name",
                                           "team: north, manager: zhao.lei, name"))
            assert reloader.check()
            assert pipeline.roster.team_of("li.wei") == "north"
            write(tmp_path, ROSTER + "  - {operator: x, tier: chief}\n")
            assert not reloader.check()
            assert pipeline.roster.team_of("li.wei") == "north"


def month(operator: str, period: str = "2026-10", *, level: str | None = None,
          gmv: float = 100) -> Snapshot:
    record: dict[str, Any] = {"store": f"s-{operator}", "platform": "amazon",
                              "period": period, "operator": operator,
                              "metrics": {"gmv": gmv}, "targets": {"gmv": 150}}
    if level:
        record["segment"] = {"level": level}
    return Snapshot.model_validate(record)


class TestCards:
    @pytest.fixture
    def pack(self, default_pack_path: Path) -> Any:
        return load_pack(default_pack_path)

    def test_the_tier_comes_from_the_roster_then_the_level_then_the_default(
            self, tmp_path: Path, pack: Any):
        roster = load_roster(write(tmp_path, ROSTER))
        settings = ScorecardSettings()
        october = Period.parse("2026-10")

        def tier(operator: str, level: str | None) -> str:
            return build_card(operator, october, [month(operator, level=level)], pack,
                              TargetBook(), settings, roster).tier

        assert tier("li.wei", "senior") == "junior"  # the roster wins over the level
        assert tier("sun.li", "senior") == "senior"  # not on the roster's tiers: the level
        assert tier("nobody", None) == "mid"  # neither: the default tier

    def test_a_team_view_shows_only_that_teams_operators(self, tmp_path: Path, pack: Any):
        roster = load_roster(write(tmp_path, ROSTER))
        snaps = [month(o) for o in ("li.wei", "chen.jing", "sun.li", "nobody")]
        cards = build_team(Period.parse("2026-10"), snaps, pack, TargetBook(),
                           ScorecardSettings(), roster, "east")
        assert [(c.operator, c.team) for c in cards] == [("li.wei", "east"), ("sun.li", "east")]
        everyone = build_team(Period.parse("2026-10"), snaps, pack, TargetBook(),
                              ScorecardSettings(), roster)
        assert len(everyone) == 4


runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_pack_path: Path
            ) -> Path:
    write(tmp_path, ROSTER)
    config = tmp_path / "watcher.yaml"
    config.write_text(f"roster: roster.yaml\nrules: {default_pack_path}\n")
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    records = tmp_path / "oct.jsonl"
    records.write_bytes(jsonl(*(snapshot(store=f"s-{o}", operator=o, gmv=100,
                                         targets={"gmv": 150})
                                for o in ("li.wei", "chen.jing", "sun.li"))))
    assert runner.invoke(app, ["--log-json", "ingest", str(records)]).exit_code == 0
    return tmp_path


class TestTeamFilter:
    def test_the_command_shows_one_team_and_a_bare_team_flag_everyone(self, cli_env: Path):
        one = runner.invoke(app, ["--log-json", "scorecard", "--team", "east", "--period",
                                  "2026-10", "-f", "json"])
        assert one.exit_code == 0, one.output
        rows = [line for line in one.output.splitlines() if line.startswith('    "operator"')]
        assert rows == ['    "operator": "li.wei",', '    "operator": "sun.li",']
        for args in (["--team", "--period", "2026-10"], ["--period", "2026-10", "--team"]):
            every = runner.invoke(app, ["--log-json", "scorecard", *args])
            assert every.exit_code == 0, every.output
            assert "chen.jing" in every.output and "li.wei" in every.output

    def test_a_team_or_manager_not_on_the_roster_is_an_error_not_no_data(self, cli_env: Path):
        for args in (["scorecard", "--team", "eats", "--period", "2026-10"],
                     ["report", "--period", "2026-10", "--team", "eats"],
                     ["report", "--period", "2026-10", "--manager", "nobody"]):
            result = runner.invoke(app, ["--log-json", *args])
            assert result.exit_code == 1, result.output
            assert "on the roster" in result.output and "known:" in result.output

    def test_the_api_filters_by_team(self, cli_env: Path):
        runtime = Runtime.open(load_settings(cli_env / "watcher.yaml"))
        try:
            from fastapi.testclient import TestClient
            with http_app(runtime) as api, TestClient(api, base_url=LOCAL) as client:
                east = client.get("/v1/scorecards", params={"period": "2026-10", "team": "east"})
                assert east.status_code == 200
                assert [(r["operator"], r["team"]) for r in east.json()] == [
                    ("li.wei", "east"), ("sun.li", "east")]
                card = client.get("/v1/scorecards/chen.jing", params={"period": "2026-10"})
                assert (card.json()["tier"], card.json()["team"]) == ("senior", "west")
        finally:
            runtime.close()


# -- a PIP reaches the operator's manager only ---------------------------------------------


@pytest.fixture
def hooks() -> Iterator[dict[str, Webhook]]:
    made = {"zhang": Webhook(), "wang": Webhook(), "all-managers": Webhook()}
    yield made
    for hook in made.values():
        hook.stop()


def test_a_pip_reaches_the_operators_manager_only(db: Database, tmp_path: Path,
                                                    default_pack_path: Path, clock: Clock,
                                                    hooks: dict[str, Webhook]):
    """Two managers, each with a route; li.wei's PIP goes to zhang.min's channel, not to
    wang.fang's, and not to the catch-all managers' channel below them."""
    roster_path = write(tmp_path, ROSTER)
    settings = load_settings(
        env={}, database_url=str(db.engine.url.render_as_string(hide_password=False)),
        rules=str(default_pack_path), roster=str(roster_path),
        channels={name: {"urls": [f"json://127.0.0.1:{hook.port}/{name}"]}
                  for name, hook in hooks.items()},
        routes=[{"match": {"audience": "manager", "manager": "zhang.min"},
                 "channels": ["zhang"]},
                {"match": {"audience": "manager", "manager": "wang.fang"},
                 "channels": ["wang"]},
                {"match": {"audience": "manager"}, "channels": ["all-managers"]}])
    assert route(settings, {"audience": "manager", "manager": "zhang.min"}) == ["zhang"]
    pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)), settings, clock=clock)
    for period in ("2026-07", "2026-08", "2026-09"):
        pipeline.ingest(read_records(jsonl(snapshot(period=period, gmv=1,
                                                    targets={"gmv": 150000}))), "test")
    dispatcher = Dispatcher(db, build_channels(settings), settings, clock=clock)
    while dispatcher.run_once():
        pass
    received = {name: hook.wait_for(0, timeout=0.5) for name, hook in hooks.items()}
    pips = [r for r in received["zhang"] if "li.wei" in str(r["json"])
            and "3 months" in str(r["json"])]
    assert len(pips) == 1
    assert received["wang"] == []
    assert received["all-managers"] == []


def test_the_scorecards_page_filters_by_team(pipeline: Pipeline, tmp_path: Path,
                                            settings: Any):
    from tests.test_auth import client_for

    pipeline.use_roster(load_roster(write(tmp_path, ROSTER)))
    for operator in ("li.wei", "chen.jing", "sun.li"):
        pipeline.ingest(read_records(jsonl(snapshot(store=f"s-{operator}", operator=operator,
                                                    gmv=100, targets={"gmv": 150}))), "test")
    with client_for(pipeline, settings, "127.0.0.1") as client:
        east = client.get("/scorecards", params={"period": "2026-10", "team": "east"}).text
        assert 'name="team" value="east"' in east
        assert ">li.wei<" in east and ">sun.li<" in east and ">chen.jing<" not in east
        everyone = client.get("/scorecards", params={"period": "2026-10"}).text
        assert ">chen.jing<" in everyone
        card = client.get("/scorecards/chen.jing", params={"period": "2026-10"}).text
        assert "Senior" in card or "senior" in card
