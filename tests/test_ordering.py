"""Statements of one snapshot arriving out of order (a redelivered bus message, a slow
replica): the one observed last stays, whatever order they arrive in."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.config import load_settings
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.snapshot import Snapshot
from watcher.store import Database, open_database
from watcher.store import repository as repo
from watcher.validation import read_records

T1, T2, T3 = "2026-11-01T01:00:00Z", "2026-11-01T02:00:00Z", "2026-11-01T03:00:00Z"


def stated(observed_at: str | None, penalties: int) -> dict[str, Any]:
    record = snapshot(operator=None, penalty_count=penalties)
    if observed_at:
        record["observed_at"] = observed_at
    return record


def ingest(pipeline: Pipeline, *records: dict[str, Any]) -> dict[str, Any]:
    return pipeline.ingest(read_records(jsonl(*records)), "test").as_dict()


def stored_penalties(pipeline: Pipeline) -> float:
    with pipeline.db.engine.connect() as conn:
        [row] = repo.find_snapshots(conn, store="amz-us-01")
    return float(row["metrics"]["penalty_count"])


class TestObservedAtOrdering:
    def test_a_late_statement_observed_earlier_does_not_replace_the_newer_one(
            self, pipeline: Pipeline):
        ingest(pipeline, stated(T2, 1))
        late = ingest(pipeline, stated(T1, 0))
        assert (late["unchanged"], late["restated"], late["incidents_resolved"]) == (1, 0, 0)
        assert stored_penalties(pipeline) == 1
        assert [i.status.value for i in incidents(pipeline)] == ["open"]

    def test_a_statement_observed_later_replaces_the_stored_one(self, pipeline: Pipeline):
        ingest(pipeline, stated(T1, 1))
        later = ingest(pipeline, stated(T2, 0))
        assert (later["restated"], later["incidents_resolved"]) == (1, 1)
        assert stored_penalties(pipeline) == 0

    def test_in_one_batch_the_latest_observation_wins_whatever_its_place(
            self, pipeline: Pipeline):
        report = ingest(pipeline, stated(T2, 0), stated(T1, 1))
        assert report["incidents_opened"] == 0
        assert stored_penalties(pipeline) == 0

    def test_a_repeated_newer_statement_keeps_an_older_one_between_them_out(
            self, pipeline: Pipeline):
        ingest(pipeline, stated(T1, 1))
        assert ingest(pipeline, stated(T3, 1))["unchanged"] == 1  # same content, seen later
        assert ingest(pipeline, stated(T2, 0))["unchanged"] == 1  # observed before T3
        assert stored_penalties(pipeline) == 1

    def test_without_observation_times_arrival_order_decides(self, pipeline: Pipeline):
        ingest(pipeline, stated(T2, 1))
        assert ingest(pipeline, stated(None, 0))["restated"] == 1
        assert stored_penalties(pipeline) == 0


@pytest.mark.postgres
class TestReplicasRestatingTogether:
    def test_a_replica_waits_for_the_other_and_then_sees_the_newer_statement(
            self, pg_schema_url: str, default_pack_path: Any):
        db = open_database(pg_schema_url, auto_upgrade=True)
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)),
                            load_settings(env={}))
        ingest(pipeline, stated(T1, 1))
        newer = Snapshot.model_validate(stated(T3, 0))
        older: dict[str, Any] = {}
        with db.engine.connect() as other:  # the other replica, mid-transaction
            with other.begin():
                repo.snapshot_state(other, [newer.key], lock=True)
                racing = threading.Thread(
                    target=lambda: older.update(ingest(pipeline, stated(T2, 1))))
                racing.start()
                deadline = time.monotonic() + 10
                while not _waiting_on(db, "FOR UPDATE") and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _waiting_on(db, "FOR UPDATE"), "the racing batch did not wait"
                repo.restate_snapshots(other, [repo.snapshot_row(newer, "", "other",
                                                                 datetime.now(UTC))])
            racing.join(10)
        assert (older["unchanged"], older["restated"]) == (1, 0)
        assert stored_penalties(pipeline) == 0
        db.dispose()

    def test_two_months_of_one_operator_assessed_at_once_still_make_the_streak(
            self, pg_schema_url: str, default_pack_path: Any,
            monkeypatch: pytest.MonkeyPatch):
        db = open_database(pg_schema_url, auto_upgrade=True)
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)),
                            load_settings(env={}))
        ingest(pipeline, month("2026-08", 1))
        read, release = threading.Event(), threading.Event()
        months_of = repo.operators_months

        def held(*args: Any, **kwargs: Any) -> Any:
            months = months_of(*args, **kwargs)
            if threading.current_thread().name == "september":
                read.set()  # September has judged the streak on what it saw; hold it here
                release.wait(10)
            return months

        monkeypatch.setattr(repo, "operators_months", held)
        september = threading.Thread(name="september",
                                     target=lambda: ingest(pipeline, month("2026-09", 1)))
        october = threading.Thread(target=lambda: ingest(pipeline, month("2026-10", 1)))
        september.start()
        assert read.wait(10)
        october.start()
        deadline = time.monotonic() + 10
        while not _waiting_on(db, "pg_advisory_xact_lock") and time.monotonic() < deadline:
            time.sleep(0.05)
        waited = _waiting_on(db, "pg_advisory_xact_lock")
        release.set()
        september.join(10)
        october.join(10)
        pips = [i for i in incidents(pipeline) if i.rule == "pip-recommended"]
        assert [[e["period"] for e in p.evidence] for p in pips] == [
            ["2026-08", "2026-09", "2026-10"]]
        assert waited, "October did not wait for September"
        db.dispose()


def month(period: str, gmv: float) -> dict[str, Any]:
    return snapshot(period=period, gmv=gmv, targets={"gmv": 150000})


def _waiting_on(db: Database, statement: str) -> bool:
    """A session waits for a lock in a statement containing ``statement``. On a connection
    of its own: pg_stat_activity holds still within a transaction."""
    with db.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE :pattern"), {"pattern": f"%{statement}%"}).scalar())
