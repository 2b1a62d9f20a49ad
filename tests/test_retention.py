"""Retention: what is finished goes after its window; work still to do never does."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from tests.conftest import Clock, jsonl, snapshot
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from watcher import retention
from watcher.config import RetentionSettings
from watcher.pipeline import Pipeline
from watcher.retention import Pruned, Retention, prune
from watcher.store import Database, open_database
from watcher.store import repository as repo
from watcher.store.schema import notifications, rejected_inputs, snapshots
from watcher.validation import Rejection, read_records

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
DAY = 86400.0


def add_notification(db: Database, status: str, age_days: float) -> None:
    at = NOW - timedelta(days=age_days)
    with db.engine.begin() as conn:
        conn.execute(insert(notifications).values(
            channel="ops", alert={}, status=status, next_attempt_at=at, created_at=at,
            sent_at=at if status == "sent" else None, attempts=1))


def add_rejection(db: Database, age_days: float) -> None:
    with db.engine.begin() as conn:
        repo.insert_rejections(conn, [Rejection("http", "line 1", "metrics.gmv", "bad", "{}")],
                               NOW - timedelta(days=age_days))


def count(db: Database, table: object, *where: object) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())


class TestPrune:
    def test_delivered_notifications_go_after_the_window_and_undelivered_ones_never(
            self, db: Database):
        add_notification(db, "sent", 31)
        add_notification(db, "sent", 29)
        add_notification(db, "pending", 400)  # still failing after a year: still due
        pruned = prune(db, RetentionSettings(sent_notifications=30 * DAY), NOW)
        assert pruned.sent_notifications == 1
        with db.engine.connect() as conn:
            left = sorted(conn.execute(select(notifications.c.status)).scalars())
        assert left == ["pending", "sent"]

    def test_alerts_folded_into_a_digest_go_with_it_and_not_before_it_was_sent(
            self, db: Database):
        at = NOW - timedelta(days=31)
        with db.engine.begin() as conn:
            for sent in (True, False):
                digest = conn.execute(insert(notifications).values(
                    channel="bot", alert={}, status="pending", next_attempt_at=at,
                    created_at=at, attempts=0).returning(notifications.c.id)).scalar_one()
                conn.execute(insert(notifications), [dict(
                    channel="bot", alert={}, status="folded", carried_by=digest,
                    next_attempt_at=at, created_at=at, attempts=0) for _ in range(3)])
                if sent:
                    repo.mark_sent(conn, digest, at)  # its alerts went out with it
        pruned = prune(db, RetentionSettings(sent_notifications=30 * DAY), NOW)
        assert pruned.sent_notifications == 4  # the sent digest and the three it carried
        with db.engine.connect() as conn:
            left = sorted(conn.execute(select(notifications.c.status)).scalars())
        assert left == ["folded", "folded", "folded", "pending"]  # a digest still to send

    def test_rejections_go_after_the_window(self, db: Database):
        add_rejection(db, 91)
        add_rejection(db, 89)
        assert prune(db, RetentionSettings(), NOW).rejected_inputs == 1  # 90 days by default
        assert count(db, rejected_inputs) == 1

    def test_raw_payloads_are_cleared_and_the_values_kept(self, pipeline: Pipeline,
                                                          clock: Clock):
        clock.now = NOW - timedelta(days=200)
        pipeline.ingest(read_records(jsonl(snapshot(store="old"))), "test")
        clock.now = NOW - timedelta(days=10)
        pipeline.ingest(read_records(jsonl(snapshot(store="new"))), "test")
        pruned = prune(pipeline.db, RetentionSettings(raw_payloads=180 * DAY), NOW)
        assert pruned.raw_payloads == 1
        with pipeline.db.engine.connect() as conn:
            rows = {r.store: r for r in conn.execute(select(snapshots))}
        assert rows["old"].raw is None and rows["new"].raw is not None
        assert rows["old"].metrics == rows["new"].metrics  # the values stay

    def test_a_window_of_none_keeps_everything(self, db: Database):
        add_notification(db, "sent", 3000)
        add_rejection(db, 3000)
        keep_all = RetentionSettings(sent_notifications=None, rejected_inputs=None)
        assert prune(db, keep_all, NOW) == Pruned()
        assert count(db, notifications) == count(db, rejected_inputs) == 1

    def test_a_backlog_larger_than_a_chunk_goes_in_several_transactions(
            self, db: Database, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(retention, "CHUNK", 2)
        for _ in range(5):
            add_rejection(db, 100)
        assert prune(db, RetentionSettings(), NOW).rejected_inputs == 5
        assert count(db, rejected_inputs) == 0


@pytest.mark.postgres
class TestPruneOnAFleet:
    def test_while_another_replica_prunes_this_one_does_nothing(self, pg_schema_url: str):
        db = open_database(pg_schema_url, auto_upgrade=True)
        add_rejection(db, 100)
        with db.engine.connect() as other:  # another replica, in the middle of its pass
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": retention.RETENTION_LOCK})
            assert prune(db, RetentionSettings(), NOW) is None
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.RETENTION_LOCK})
        assert prune(db, RetentionSettings(), NOW) == Pruned(rejected_inputs=1)
        db.dispose()


class TestRetention:
    def test_the_worker_prunes_at_start_and_stops_when_told(self, db: Database):
        add_rejection(db, 100)
        stop = threading.Event()
        worker = threading.Thread(
            target=Retention(db, RetentionSettings(every=3600), clock=lambda: NOW).run_forever,
            args=(stop,))
        worker.start()
        for _ in range(100):
            if count(db, rejected_inputs) == 0:
                break
            stop.wait(0.05)
        stop.set()
        worker.join(5)
        assert not worker.is_alive()
        assert count(db, rejected_inputs) == 0

    def test_a_database_that_is_away_is_logged_and_the_worker_goes_on(self, tmp_path: Path):
        db = open_database(f"sqlite:///{tmp_path / 'w.db'}", auto_upgrade=True)
        rejected_inputs.drop(db.engine)  # every pass fails from now on
        stop = threading.Event()
        calls: list[datetime] = []

        def clock() -> datetime:
            calls.append(NOW)
            if len(calls) >= 2:
                stop.set()
            return NOW

        Retention(db, RetentionSettings(every=0.01), clock=clock).run_forever(stop)
        assert len(calls) >= 2  # a failed pass did not end the worker


class TestPruneCommand:
    def test_prints_what_it_removed(self, env: Path):  # noqa: F811
        code, _ = watcher("ingest", str(Path(__file__).parent.parent / "examples" /
                                          "bad-records.jsonl"))
        assert code == 1  # one record rejected, kept in the rejected log
        code, out = watcher("db", "prune", "--format", "json")
        assert code == 0 and json.loads(out) == {
            "sent_notifications": 0, "rejected_inputs": 0, "raw_payloads": 0}  # all recent
        (env / "watcher.yaml").write_text(
            (env / "watcher.yaml").read_text() + "retention: {rejected_inputs: 1s}\n")
        threading.Event().wait(1.2)
        code, out = watcher("db", "prune")
        assert code == 0 and "1 rejected input(s) removed" in out
