"""The pipeline, end to end on the store: snapshots in, incidents and outbox out."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select, text

from tests.conftest import Clock, jsonl, snapshot
from watcher.pipeline import Pipeline
from watcher.snapshot import Snapshot
from watcher.store import Database
from watcher.store import repository as repo
from watcher.store.schema import monthly_cards, notifications, snapshots
from watcher.validation import read_records, validate


def ingest(pipeline: Pipeline, *records: dict[str, object]) -> dict[str, object]:
    return pipeline.ingest(read_records(jsonl(*records)), "test").as_dict()


def incidents(pipeline: Pipeline, **filters: str) -> list:  # type: ignore[type-arg]
    with pipeline.db.engine.connect() as conn:
        return repo.list_incidents(conn, **filters)  # type: ignore[arg-type]


def events(pipeline: Pipeline, incident_id: int) -> list[str]:
    with pipeline.db.engine.connect() as conn:
        return [e["kind"] for e in repo.incident_events_of(conn, incident_id)]


class TestCompliance:
    def test_health_below_90_opens_a_critical_compliance_incident(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(account_health_score=88))
        [incident] = incidents(pipeline)
        assert (incident.rule, incident.subject, incident.severity, incident.audience) == (
            "account-health-low", "amz-us-01", "critical", "compliance")
        assert (incident.value, incident.threshold, incident.status.value) == (88, 90, "open")
        assert "88" in incident.title["en"] and "账号健康分" in incident.title["zh-CN"]

    def test_boundary_values_do_not_fire(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(account_health_score=90, dispute_rate=0.03, penalty_count=0))
        assert incidents(pipeline) == []

    def test_one_snapshot_can_fire_several_rules(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(account_health_score=70, penalty_count=2, dispute_rate="3.5%"))
        assert sorted(i.rule for i in incidents(pipeline)) == [
            "account-health-low", "dispute-rate-high", "penalty-received"]


class TestRestatement:
    def test_the_same_snapshot_twice_gives_one_incident_and_one_row(self, pipeline: Pipeline):
        first = ingest(pipeline, snapshot(penalty_count=1))
        second = ingest(pipeline, snapshot(penalty_count=1))
        assert (first["incidents_opened"], second["incidents_opened"]) == (1, 0)
        assert second["unchanged"] == 1
        assert len(incidents(pipeline)) == 1
        with pipeline.db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(snapshots)).scalar() == 1
            assert conn.execute(select(func.count()).select_from(notifications)).scalar() == 1

    def test_a_changed_restatement_replaces_values_and_adds_an_event(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(dispute_rate=0.04))
        report = ingest(pipeline, snapshot(dispute_rate=0.05))
        assert report["restated"] == 1
        [incident] = incidents(pipeline)
        assert incident.value == 0.05
        assert events(pipeline, incident.id) == ["opened", "firing"]
        with pipeline.db.engine.connect() as conn:
            [row] = repo.find_snapshots(conn, store="amz-us-01")
        assert row["metrics"] == {"dispute_rate": 0.05} and row["revision"] == 2


class TestRecovery:
    def test_a_later_snapshot_within_threshold_resolves_with_a_timeline_entry(
            self, pipeline: Pipeline, clock: Clock):
        ingest(pipeline, snapshot(period="2026-09", dispute_rate=0.045))
        clock.advance(days=30)
        report = ingest(pipeline, snapshot(period="2026-10", dispute_rate=0.021))
        assert report["incidents_resolved"] == 1
        [incident] = incidents(pipeline)
        assert incident.status.value == "resolved" and incident.resolved_by == "watcher"
        assert events(pipeline, incident.id) == ["opened", "resolved"]

    def test_an_older_period_does_not_resolve_newer_evidence(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(period="2026-10", dispute_rate=0.045))
        ingest(pipeline, snapshot(period="2026-09", dispute_rate=0.01))
        assert incidents(pipeline)[0].status.value == "open"

    def test_a_snapshot_without_the_metric_leaves_the_incident_alone(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(period="2026-09", dispute_rate=0.045))
        ingest(pipeline, snapshot(period="2026-10", gmv=5))
        assert incidents(pipeline)[0].status.value == "open"

    def test_a_new_breach_after_resolution_is_a_new_incident(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(period="2026-08", penalty_count=1))
        ingest(pipeline, snapshot(period="2026-09", penalty_count=0))
        ingest(pipeline, snapshot(period="2026-10", penalty_count=3))
        assert [i.status.value for i in incidents(pipeline)] == ["open", "resolved"]


class TestRejection:
    def test_a_bad_record_is_kept_with_line_and_field_and_the_rest_goes_in(
            self, pipeline: Pipeline):
        body = jsonl(snapshot(store="a", penalty_count=0),
                     snapshot(store="b", dispute_rate=3.5),
                     snapshot(store="c", penalty_count=1))
        report = pipeline.ingest(read_records(body), "file:x.jsonl").as_dict()
        assert (report["accepted"], report["rejected"]) == (2, 1)
        [error] = report["errors"]
        assert (error["location"], error["field"]) == ("line 2", "metrics.dispute_rate")
        with pipeline.db.engine.connect() as conn:
            [kept] = repo.list_rejections(conn)
        assert kept["location"] == "line 2" and '"store": "b"' in kept["raw"]
        assert kept["source"] == "file:x.jsonl"

    def test_a_nul_character_rejects_its_record_and_is_kept_escaped(self, pipeline: Pipeline):
        """PostgreSQL text cannot hold NUL: from any source, the record is refused by name
        and the good records beside it go in (a whole batch once failed on it)."""
        body = jsonl(snapshot(store="a", penalty_count=0),
                     snapshot(store="b", segment={"category": "app\x00arel"}, gmv=1),
                     snapshot(store="c", penalty_count=1))
        report = pipeline.ingest(read_records(body), "drop:x.jsonl").as_dict()
        assert (report["accepted"], report["rejected"]) == (2, 1)
        [error] = report["errors"]
        assert (error["location"], error["field"]) == ("line 2", "segment.category")
        with pipeline.db.engine.connect() as conn:
            [kept] = repo.list_rejections(conn)
        assert "\\u0000" in kept["raw"] and "\x00" not in kept["raw"]


class TestOutbox:
    def test_an_opened_incident_is_queued_in_the_same_transaction(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(account_health_score=50))
        with pipeline.db.engine.connect() as conn:
            [row] = conn.execute(select(notifications)).mappings().all()
        assert row["channel"] == "console" and row["status"] == "pending"
        assert row["alert"]["kind"] == "opened" and row["alert"]["rule"] == "account-health-low"

    def test_resolution_notifies_the_channels_told_of_the_incident(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(period="2026-09", penalty_count=1))
        ingest(pipeline, snapshot(period="2026-10", penalty_count=0))
        with pipeline.db.engine.connect() as conn:
            kinds = conn.execute(select(notifications.c.alert)).scalars().all()
        assert [k["kind"] for k in kinds] == ["opened", "resolved"]


class TestBatchOrdering:
    def test_resolve_and_reopen_of_one_store_in_a_single_batch(self, pipeline: Pipeline):
        ingest(pipeline, snapshot(period="2026-08", dispute_rate=0.05))
        report = ingest(pipeline, snapshot(period="2026-09", dispute_rate=0.01),
                        snapshot(period="2026-10", dispute_rate=0.06))
        assert (report["incidents_resolved"], report["incidents_opened"]) == (1, 1)
        assert [i.status.value for i in incidents(pipeline)] == ["open", "resolved"]


class TestSnapshotInsert:
    def test_the_batch_insert_stores_exactly_what_a_core_insert_stores(self, db: Database):
        """SQLite takes a faster path for the hottest write; its rows must not differ."""
        record = snapshot(store="s1", operator="李", gmv=1.5, dispute_rate="3%",
                          segment={"stage": "mature", "special_category": True},
                          targets={"gmv": {"value": 2, "comparator": ">="}})
        record["observed_at"] = "2026-11-01T02:00:00Z"
        [raw] = read_records(jsonl(record))
        verdict = validate(raw)
        assert isinstance(verdict, Snapshot)
        now = datetime.now(UTC)
        row = repo.snapshot_row(verdict, raw.text, "test", now)
        with db.engine.begin() as conn:  # two rows: a batch formats a repeated date once
            repo.insert_snapshots(conn, [row, dict(row, key="second")])
            conn.execute(insert(snapshots), [dict(row, key="core")])
            fast, second, core = conn.execute(text("SELECT * FROM snapshots ORDER BY id")).all()
        assert fast[2:] == second[2:] == core[2:]

    def test_the_monthly_card_upsert_replaces_its_row(self, pipeline: Pipeline):
        """The PIP's monthly verdict takes the same fast path; a restated month
        replaces its row rather than adding one."""
        month = snapshot(store="s1", gmv=1, targets={"gmv": 150000})
        ingest(pipeline, month)
        with pipeline.db.engine.connect() as conn:
            [failed] = conn.execute(select(monthly_cards.c.result, monthly_cards.c.score)).all()
        assert tuple(failed) == ("fail", 0.0)
        ingest(pipeline, dict(month, metrics={"gmv": 200000}))
        with pipeline.db.engine.connect() as conn:
            rows = conn.execute(select(monthly_cards.c.result, monthly_cards.c.evidence)).all()
        assert [tuple(row) for row in rows] == [("pass", [])]


class TestResolvedByAPerson:
    """A person's resolution is news to whoever was told of the incident."""

    def test_the_channels_told_get_a_resolved_message_in_their_language(
            self, pipeline: Pipeline):
        from watcher.actions import act
        from watcher.alerts import Alert

        ingest(pipeline, snapshot(account_health_score=85))
        [incident] = incidents(pipeline)
        act(pipeline.db, incident.id, "resolve", "ana", "fixed the listing",
            public_url="https://kpi.example.com")
        with pipeline.db.engine.connect() as conn:
            rows = conn.execute(select(notifications).order_by(notifications.c.id)
                                ).mappings().all()
        opened, resolved = rows
        assert resolved["channel"] == opened["channel"]
        alert = Alert.model_validate(resolved["alert"])
        assert (alert.kind.value, alert.note_key, alert.note_args) == (
            "resolved", "resolved_by", {"by": "ana"})
        assert alert.link == f"https://kpi.example.com/incidents/{incident.id}"

    def test_an_acknowledgement_tells_nobody(self, pipeline: Pipeline):
        from watcher.actions import act

        ingest(pipeline, snapshot(account_health_score=85))
        [incident] = incidents(pipeline)
        act(pipeline.db, incident.id, "ack", "ana", None)
        with pipeline.db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(notifications)).scalar() == 1
