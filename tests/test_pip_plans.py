"""A PIP is a plan: a manager starts it, reviews it, closes it; the manager is reminded.

The transitions are pure (``watcher.assessment.pip``); the store, the timeline,
the reminders, the CLI and the API are exercised on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import LOCAL, Clock, http_app, jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher import plans
from watcher.alerts import AlertKind
from watcher.assessment import pip
from watcher.assessment.pip import Goal, Outcome, PlanStatus
from watcher.assessment.roster import load_roster
from watcher.channels.memory import MemoryChannel
from watcher.cli import app
from watcher.config import Settings, load_settings
from watcher.dispatcher import Dispatcher
from watcher.errors import InputError, InvalidTransition, NotFound
from watcher.incidents import Incident, Status
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.snapshot import Comparator, Snapshot
from watcher.store import Database
from watcher.timers import Timers
from watcher.validation import read_records

RULES = ["pip-recommended"]
NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def incident(**changes: Any) -> Incident:
    fields: dict[str, Any] = dict(
        id=7, fingerprint="pip-recommended|operator:li.wei", rule="pip-recommended",
        rule_version="v", subject_kind="operator", subject="li.wei", store=None,
        platform=None, operator="li.wei", status=Status.OPEN, severity="high",
        audience="manager", metric=None, value=None, threshold=None, period="2026-09",
        period_end=date(2026, 9, 30), title={"en": "PIP"}, labels={},
        evidence=[{"period": "2026-07", "metric": "gmv", "value": 1.0, "target": 140000.0,
                   "comparator": None},
                  {"period": "2026-09", "metric": "gmv", "value": 1.0, "target": 150000.0,
                   "comparator": None},
                  {"period": "2026-09", "metric": "stockout_rate", "value": 0.09,
                   "target": 0.05, "comparator": None}],
        opened_at=NOW, updated_at=NOW)
    fields.update(changes)
    return Incident(**fields)


class TestTransitions:
    def test_goals_default_to_the_missed_indicators_with_their_latest_targets(self):
        plan, update = pip.start(incident(), None, "zhang.min", NOW, days=60, every=30)
        assert plan.goals == (Goal(metric="gmv", target=150000, comparator=Comparator.GE),
                              Goal(metric="stockout_rate", target=0.05,
                                   comparator=Comparator.LE))
        assert plan.status is PlanStatus.IN_PLAN
        assert plan.checkpoints == (date(2026, 12, 1),)
        assert plan.ends_on == date(2026, 12, 31)
        assert update.changes["status"] is Status.ACKNOWLEDGED
        assert (update.event.kind.value, update.event.actor) == ("plan_started", "zhang.min")

    def test_given_goals_replace_the_defaults(self):
        goal = pip.parse_goal("gmv=160000")
        plan, _ = pip.start(incident(), None, "zhang.min", NOW, days=90, every=30,
                            goals=[goal, pip.parse_goal("dispute_rate<=2%")])
        assert [str(g) for g in plan.goals] == ["gmv >= 160000", "dispute_rate <= 0.02"]
        assert plan.checkpoints == (date(2026, 12, 1), date(2026, 12, 31))

    @pytest.mark.parametrize("text", ["gmv", "gmv=lots", "nothing=3", "=3"])
    def test_a_bad_goal_names_the_field(self, text: str):
        with pytest.raises(InputError) as caught:
            pip.parse_goal(text)
        assert caught.value.field == "goal"

    def test_a_plan_starts_once_and_only_on_a_live_recommendation(self):
        plan, _ = pip.start(incident(), None, "a", NOW, days=60, every=30)
        with pytest.raises(InvalidTransition):
            pip.start(incident(), plan, "a", NOW, days=60, every=30)
        with pytest.raises(InvalidTransition):
            pip.start(incident(status=Status.RESOLVED), None, "a", NOW, days=60, every=30)
        with pytest.raises(InputError):
            pip.start(incident(), None, "a", NOW, days=0, every=30)

    def test_a_review_fills_the_earliest_open_checkpoint(self):
        plan, _ = pip.start(incident(), None, "a", NOW, days=90, every=30)
        plan, update = pip.review(incident(), plan, "a", "on track", NOW + timedelta(days=29))
        assert plan.reviewed(date(2026, 12, 1)) is not None
        assert plan.reviewed(date(2026, 12, 31)) is None
        assert (update.event.kind.value, update.event.note) == ("plan_reviewed", "on track")
        with pytest.raises(InputError):
            pip.review(incident(), plan, "a", "  ", NOW)

    def test_extended_moves_the_end_and_the_plan_goes_on_then_passed_resolves(self):
        plan, _ = pip.start(incident(), None, "a", NOW, days=60, every=30)
        plan, update = pip.close(incident(), plan, Outcome.EXTENDED, "a", "one more month",
                                 NOW, days=30)
        assert (plan.status, plan.ends_on) == (PlanStatus.EXTENDED, date(2027, 1, 30))
        assert date(2026, 12, 31) in plan.checkpoints  # the old end is now a review
        assert "status" not in update.changes
        plan, update = pip.close(incident(), plan, Outcome.PASSED, "a", None, NOW)
        assert plan.status is PlanStatus.PASSED and not plan.active
        assert (update.changes["status"], update.changes["resolved_by"]) == (Status.RESOLVED,
                                                                               "a")
        with pytest.raises(InvalidTransition):
            pip.close(incident(), plan, Outcome.FAILED, "a", None, NOW)

    def test_the_status_of_a_pip_without_a_plan(self):
        assert pip.status_of(incident(), None) is PlanStatus.RECOMMENDED
        assert pip.status_of(incident(status=Status.RESOLVED), None) is PlanStatus.WITHDRAWN

    def test_reminders_come_before_each_checkpoint_and_the_end_once_each(self):
        plan, _ = pip.start(incident(), None, "a", NOW, days=60, every=30)
        assert pip.due_reminders(plan, date(2026, 11, 27), 3) == []
        [first] = pip.due_reminders(plan, date(2026, 11, 28), 3)
        assert first.key == "checkpoint:2026-12-01"
        plan = pip.reminded(plan, first)
        assert pip.due_reminders(plan, date(2026, 11, 30), 3) == []
        [end] = pip.due_reminders(plan, date(2026, 12, 28), 3)
        assert end.key == "end:2026-12-31"

    def test_goal_values_are_the_latest_month_of_the_operators_stores(self):
        goals = (Goal(metric="gmv", target=150000, comparator=Comparator.GE),
                 Goal(metric="dispute_rate", target=0.03, comparator=Comparator.LE))
        snaps = [Snapshot.model_validate(snapshot(store=s, period=p, gmv=g))
                 for s, p, g in (("a", "2026-09", 10), ("a", "2026-10", 100000),
                                 ("b", "2026-10", 60000))]
        gmv, dispute = pip.goal_values(goals, snaps)
        assert (gmv.value, gmv.period, gmv.met) == (160000, "2026-10", True)
        assert (dispute.value, dispute.met) == (None, None)


# -- through the pipeline and the store ------------------------------------------------------


def feed(pipeline: Pipeline, *months: tuple[str, float]) -> None:
    for period, gmv in months:
        pipeline.ingest(read_records(jsonl(snapshot(period=period, gmv=gmv,
                                                    targets={"gmv": 150000}))), "test")


def the_pip(pipeline: Pipeline) -> Incident:
    [found] = [i for i in incidents(pipeline) if i.rule == "pip-recommended"]
    return found


@pytest.fixture
def recommended(pipeline: Pipeline) -> Incident:
    feed(pipeline, ("2026-07", 1), ("2026-08", 1), ("2026-09", 120000))
    return the_pip(pipeline)


class TestStoredPlans:
    def test_start_review_close_each_on_the_timeline_with_actor_and_note(
            self, pipeline: Pipeline, settings: Settings, recommended: Incident, clock: Clock):
        db = pipeline.db
        shown = plans.show(db, recommended.id, RULES, clock())
        assert (shown.status, shown.goals) == (PlanStatus.RECOMMENDED, [])
        started = plans.act(db, recommended.id, "start", RULES, settings, clock(),
                            by="zhang.min")
        assert started.status is PlanStatus.IN_PLAN
        [goal] = started.goals
        assert (goal.metric, goal.target, goal.value, goal.period, goal.met) == (
            "gmv", 150000, 120000, "2026-09", False)
        assert [c.due for c in started.checkpoints] == [date(2026, 12, 1)]
        assert started.ends_on == date(2026, 12, 31)
        clock.advance(days=30)
        plans.act(db, recommended.id, "checkpoint", RULES, settings, clock(),
                  by="zhang.min", note="GMV up, keep going")
        closed = plans.act(db, recommended.id, "close", RULES, settings, clock(),
                           by="zhang.min", note="target met", outcome=Outcome.PASSED)
        assert closed.status is PlanStatus.PASSED
        assert closed.checkpoints[0].note == "GMV up, keep going"
        steps = [(e["kind"], e["actor"], e["note"]) for e in closed.events]
        assert steps[1][:2] == ("plan_started", "zhang.min")
        assert steps[2:] == [("plan_reviewed", "zhang.min", "GMV up, keep going"),
                             ("plan_closed", "zhang.min", "plan passed: target met (goals "
                              "met: 0 of 1; gmv >= 150,000: 120,000 (2026-09, not met))")]
        assert the_pip(pipeline).status is Status.RESOLVED
        assert plans.show(db, recommended.id, RULES, clock()).status is PlanStatus.PASSED

    def test_closing_keeps_where_the_goals_stood_beside_the_managers_outcome(
            self, pipeline: Pipeline, settings: Settings, recommended: Incident, clock: Clock):
        db = pipeline.db
        plans.act(db, recommended.id, "start", RULES, settings, clock(), by="zhang.min")
        feed(pipeline, ("2026-10", 151000))
        closed = plans.act(db, recommended.id, "close", RULES, settings, clock(),
                           by="zhang.min", outcome=Outcome.PASSED)
        last = closed.events[-1]
        assert last["note"] == "plan passed: goals met: 1 of 1"
        assert last["data"]["goals_unmet"] == 0
        assert last["data"]["goals"][0]["value"] == 151000

    def test_only_a_pip_incident_has_a_plan(self, pipeline: Pipeline, settings: Settings,
                                           recommended: Incident, clock: Clock):
        other = next(i for i in incidents(pipeline) if i.rule != "pip-recommended")
        with pytest.raises(NotFound):
            plans.act(pipeline.db, other.id, "start", RULES, settings, clock(), by="a")
        with pytest.raises(InvalidTransition):
            plans.act(pipeline.db, recommended.id, "checkpoint", RULES, settings, clock(),
                      by="a", note="no plan yet")

    def test_a_good_month_leaves_a_recommendation_open(self, pipeline: Pipeline,
                                                       recommended: Incident):
        feed(pipeline, ("2026-10", 200000))
        assert the_pip(pipeline).status is Status.OPEN

    def test_a_restatement_withdraws_a_recommendation(self, pipeline: Pipeline,
                                                      recommended: Incident, clock: Clock):
        feed(pipeline, ("2026-08", 160000))
        assert the_pip(pipeline).status is Status.RESOLVED
        shown = plans.show(pipeline.db, recommended.id, RULES, clock())
        assert shown.status is PlanStatus.WITHDRAWN

    def test_a_restatement_never_withdraws_a_started_plan(
            self, pipeline: Pipeline, settings: Settings, recommended: Incident, clock: Clock):
        plans.act(pipeline.db, recommended.id, "start", RULES, settings, clock(), by="zhang.min")
        feed(pipeline, ("2026-08", 160000))
        assert the_pip(pipeline).status is Status.ACKNOWLEDGED
        assert events(pipeline, recommended.id) == ["opened", "plan_started", "note"]
        shown = plans.show(pipeline.db, recommended.id, RULES, clock())
        assert shown.status is PlanStatus.IN_PLAN
        assert "2026-08 was restated" in shown.events[-1]["note"]


class TestReminders:
    def test_the_manager_is_reminded_before_each_checkpoint_and_the_end_with_values(
            self, db: Database, settings: Settings, clock: Clock, tmp_path: Path,
            default_pack_path: Path):
        roster = tmp_path / "roster.yaml"
        roster.write_text("people:\n  - {operator: li.wei, manager: zhang.min, team: east}\n")
        settings = settings.model_copy(update={
            "roster": roster, "channels": {"zhang": {"urls": ["json://127.0.0.1:9/"]}},
            "routes": load_settings(env={}, channels={"zhang": {"urls": ["json://x/"]}},
                                    routes=[{"match": {"manager": "zhang.min"},
                                             "channels": ["zhang"]}]).routes})
        from watcher.rules.engine import RuleEngine
        from watcher.rules.loader import load_pack
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)), settings,
                            clock=clock)
        feed(pipeline, ("2026-07", 1), ("2026-08", 1), ("2026-09", 120000))
        pip_id = the_pip(pipeline).id
        plans.act(db, pip_id, "start", RULES, settings, clock(), by="zhang.min")
        timers = Timers(db, settings, clock=clock, roster=lambda: load_roster(roster))
        channel = MemoryChannel.named("zhang")
        dispatcher = Dispatcher(db, {"zhang": channel, "console": MemoryChannel.named(
            "console")}, settings, clock=clock)

        def pass_at(day: date) -> list[str]:
            clock.now = datetime.combine(day, NOW.timetz())
            timers.run_once()
            while dispatcher.run_once():
                pass
            return [a.note or "" for a in reminders()]

        def reminders() -> list[Any]:
            return [a for a in channel.sent if a.kind is AlertKind.REMINDER]

        assert pass_at(date(2026, 11, 27)) == []
        [checkpoint] = pass_at(date(2026, 11, 28))  # 3 days before 2026-12-01
        assert "checkpoint review on 2026-12-01" in checkpoint
        assert "gmv >= 150,000: 120,000 (2026-09, not met)" in checkpoint
        assert reminders()[0].evidence[0].value == 120000
        assert len(pass_at(date(2026, 11, 29))) == 1  # once
        feed(pipeline, ("2026-10", 155000))
        notes = pass_at(date(2026, 12, 28))
        assert len(notes) == 2 and "plan ends on 2026-12-31" in notes[1]
        assert "155,000 (2026-10, met)" in notes[1]
        assert events(pipeline, pip_id).count("plan_reminded") == 2


# -- CLI and API ---------------------------------------------------------------------------


runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--log-json", *args])
    return result.exit_code, result.output


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_pack_path: Path) -> int:
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    config = tmp_path / "watcher.yaml"
    config.write_text(f"rules: {default_pack_path}\n")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    records = tmp_path / "months.jsonl"
    records.write_bytes(jsonl(*(snapshot(period=p, gmv=1, targets={"gmv": 150000})
                                for p in ("2026-07", "2026-08", "2026-09"))))
    assert cli("ingest", str(records))[0] == 0
    _code, out = cli("incidents", "list", "--rule", "pip-recommended", "-f", "json")
    return int(json.loads(out[out.index("{"):])["incidents"][0]["id"])


def json_of(out: str) -> dict[str, Any]:
    return dict(json.loads(out[out.index("{\n"):]))


class TestCommand:
    def test_start_show_checkpoint_close(self, cli_env: int):
        pip_id = str(cli_env)
        code, out = cli("pip", "start", pip_id, "--by", "zhang.min", "--days", "90",
                        "--goal", "gmv=160000", "-f", "json")
        assert code == 0, out
        started = json_of(out)
        assert started["status"] == "in_plan"
        assert [(g["metric"], g["target"], g["value"]) for g in started["goals"]] == [
            ("gmv", 160000, 1)]
        assert len(started["checkpoints"]) == 2 and started["ends_on"]
        code, out = cli("pip", "checkpoint", pip_id, "--by", "zhang.min", "--note", "slow")
        assert code == 0 and "reviewed by zhang.min: slow" in out
        code, out = cli("pip", "close", pip_id, "--outcome", "failed", "--by", "zhang.min",
                        "--note", "no progress")
        assert code == 0 and f"PIP #{pip_id} li.wei: failed" in out
        code, out = cli("pip", "show", pip_id, "--format", "json")
        assert json_of(out)["status"] == "failed"
        code, out = cli("pip", "close", pip_id, "--outcome", "passed", "--by", "x")
        assert code == 1 and "closed (failed)" in out

    def test_a_bad_goal_is_refused_with_the_field(self, cli_env: int):
        code, out = cli("pip", "start", str(cli_env), "--by", "a", "--goal", "gmv=lots")
        assert code == 1 and "field 'goal'" in out


class TestApi:
    def test_start_checkpoint_close_over_http(self, pipeline: Pipeline, settings: Settings,
                                              recommended: Incident):
        runtime = Runtime(settings, pipeline.db, pipeline)
        with http_app(runtime) as api, TestClient(api, base_url=LOCAL) as client:
            url = f"/v1/pip/{recommended.id}"
            assert client.get(url).json()["status"] == "recommended"
            started = client.post(f"{url}/start", json={
                "by": "zhang.min", "days": 30, "goals": [{"metric": "gmv", "target": 155000}]})
            assert started.status_code == 200, started.text
            assert started.json()["goals"][0]["comparator"] == ">="
            assert client.post(f"{url}/start", json={"by": "x"}).status_code == 409
            bad = client.post(f"{url}/checkpoint", json={"by": "a", "note": ""})
            assert bad.status_code == 422
            assert client.post(f"{url}/checkpoint", json={"by": "a", "note": "ok"}
                               ).status_code == 200
            closed = client.post(f"{url}/close", json={"by": "a", "outcome": "passed"})
            assert closed.json()["status"] == "passed"
            assert client.get("/v1/pip/999999").status_code == 404
            unknown = client.post(f"{url}/start", json={"by": "a", "goals": [
                {"metric": "nope", "target": 1}]})
            assert unknown.status_code == 422
