"""The NATS JetStream source: the payload contract, acknowledgement after commit,
rejections, redelivery, and replicas sharing one durable consumer.

Tests that need the NATS server skip with the reason when none is reachable, unless
``WATCHER_REQUIRE_NATS=1`` (CI); see tests/nats_harness.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import ROOT, jsonl, snapshot
from tests.daemon_harness import Daemon, Webhook, alerting_config, store_of
from tests.nats_harness import Bus, private_bus
from watcher.bus.messages import Message, address, records_of
from watcher.bus.nats import NatsSource
from watcher.config import load_settings
from watcher.errors import ConfigError
from watcher.pipeline import IngestReport, Pipeline
from watcher.store import open_database
from watcher.store import repository as repo
from watcher.store.schema import incidents, notifications, snapshots
from watcher.validation import RawRecord, Rejection

PUBLISHED = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
PLATFORMS = ROOT / "tests" / "fixtures" / "platforms"


@pytest.fixture
def bus() -> Iterator[Bus]:
    yield from private_bus()


def message(data: bytes, subject: str = "kpi.snapshots.amazon.amz-us-01", *,
            headers: dict[str, str] | None = None, sequence: int = 7) -> Message:
    return Message(subject=subject, data=data, headers=headers or {}, sequence=sequence,
                   published_at=PUBLISHED)


def breach(store: str, **metrics: object) -> dict[str, object]:
    return snapshot(store=store, operator=None, **(metrics or {"penalty_count": 1}))


class TestRecordsOf:
    """The payload contract, without a server."""

    def test_a_canonical_snapshot_is_placed_in_its_message_and_dated_by_the_stream(self):
        [record] = records_of(message(json.dumps(breach("amz-us-01")).encode()),
                              "kpi.snapshots", max_bytes=1000)
        assert isinstance(record, RawRecord)
        assert record.location == "message 7 line 1"
        assert record.data["observed_at"] == PUBLISHED.isoformat()

    def test_an_observed_at_stated_by_the_publisher_is_kept(self):
        stated = {**breach("amz-us-01"), "observed_at": "2026-11-01T00:00:00Z"}
        [record] = records_of(message(jsonl(stated)), "kpi.snapshots", max_bytes=1000)
        assert isinstance(record, RawRecord)
        assert record.data["observed_at"] == "2026-11-01T00:00:00Z"

    def test_a_record_for_another_store_than_its_subject_is_rejected_naming_both(self):
        records = records_of(message(jsonl(breach("amz-us-01"), breach("amz-us-02"))),
                             "kpi.snapshots", max_bytes=1000)
        assert isinstance(records[0], RawRecord)
        rejected = records[1]
        assert isinstance(rejected, Rejection)
        assert (rejected.location, rejected.field) == ("message 7 line 2", "store")
        assert "amz-us-02" in rejected.error and "amz-us-01" in rejected.error

    def test_bulk_subjects_carry_any_store(self):
        records = records_of(message(jsonl(breach("a"), breach("b")), "kpi.snapshots.bulk"),
                             "kpi.snapshots", max_bytes=1000)
        assert all(isinstance(r, RawRecord) for r in records) and len(records) == 2

    def test_a_platform_payload_is_read_for_the_store_of_its_subject(self):
        body = (PLATFORMS / "shopee-get-shop-performance.json").read_bytes()
        records = records_of(message(body, "kpi.snapshots.shopee.shopee-my-02",
                                     headers={"Watcher-Source": "shopee",
                                              "Watcher-Period": "2026-10-28"}),
                             "kpi.snapshots", max_bytes=len(body))
        [record] = records
        assert isinstance(record, RawRecord)
        assert record.data["store"] == "shopee-my-02"
        assert record.location == "message 7 shopee snapshot 1"

    def test_a_platform_payload_without_a_store_in_its_subject_is_rejected(self):
        [rejected] = records_of(message(b"{}", "kpi.snapshots.bulk",
                                        headers={"Watcher-Source": "shopee"}),
                                "kpi.snapshots", max_bytes=1000)
        assert isinstance(rejected, Rejection)
        assert "kpi.snapshots.<platform>.<store>" in rejected.error

    @pytest.mark.parametrize(("body", "says"), [
        (b"\xff\xfe{", "not UTF-8"),
        (b"x" * 2000, "limit is 1000"),
        (b"", "holds no snapshot"),
    ])
    def test_an_unreadable_message_is_one_rejection_keeping_its_text(self, body: bytes,
                                                                     says: str):
        [rejected] = records_of(message(body), "kpi.snapshots", max_bytes=1000)
        assert isinstance(rejected, Rejection)
        assert rejected.location == "message 7" and says in rejected.error
        assert rejected.raw == body.decode("utf-8", errors="replace")

    def test_the_address_is_platform_and_store_after_the_prefix(self):
        assert address("kpi.snapshots.amazon.amz-us-01", "kpi.snapshots") == (
            "amazon", "amz-us-01")
        assert address("kpi.snapshots.bulk", "kpi.snapshots") is None
        assert address("other.amazon.s1", "kpi.snapshots") is None


class TestNatsSettings:
    def test_nats_is_off_unless_configured(self):
        assert load_settings(env={}).nats is None

    def test_the_url_with_its_credentials_may_come_from_the_environment(self,
                                                                       tmp_path: Path):
        path = tmp_path / "config.yaml"
        path.write_text("nats:\n  stream: S\n", encoding="utf-8")
        env = {"WATCHER_NATS_URL": "nats://kpi:s3cret@nats.internal:4222"}
        settings = load_settings(path, env=env)
        assert settings.nats is not None
        assert (settings.nats.url, settings.nats.stream) == (env["WATCHER_NATS_URL"], "S")
        assert load_settings(env=env).nats is None  # the variable alone does not turn it on

    def test_the_subject_must_be_a_prefix_wildcard(self, tmp_path: Path):
        path = tmp_path / "config.yaml"
        path.write_text("nats:\n  subject: kpi.snapshots\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(path, env={})
        assert caught.value.key == "nats.subject" and caught.value.line == 2


# -- against the server ----------------------------------------------------------------


def count(pipeline: Pipeline, table: object, *where: object) -> int:
    with pipeline.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)  # type: ignore[arg-type]
                                .where(*where)).scalar_one())


Ingest = Callable[[Iterable[RawRecord | Rejection], str], IngestReport]


@pytest.fixture
def consume(bus: Bus) -> Iterator[Callable[..., None]]:
    """Run a NatsSource on its own thread (as the daemon does) until the test ends."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    engine = ThreadPoolExecutor(max_workers=1)

    def start(ingest: Ingest, **overrides: object) -> None:
        def on_engine(records: Iterable[RawRecord | Rejection], source: str) -> IngestReport:
            return engine.submit(ingest, list(records), source).result()
        settings = bus.settings.model_copy(update=overrides)
        source = NatsSource(settings, on_engine, max_bytes=1_000_000)
        thread = threading.Thread(target=source.run_forever, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(10)
    engine.shutdown()


class TestNatsSource:
    def test_published_snapshots_open_incidents_and_are_acknowledged(
            self, bus: Bus, consume: Callable[..., None], pipeline: Pipeline):
        bus.publish(*[(f"amazon.s{i}", json.dumps(breach(f"s{i}")).encode())
                      for i in range(5)], ("amazon.ok", json.dumps(
                          snapshot(store="ok", operator=None, penalty_count=0)).encode()))
        consume(pipeline.ingest)
        info = bus.wait_drained()
        assert info.delivered.consumer_seq == 6  # each delivered once: none came back
        assert count(pipeline, incidents, incidents.c.rule == "penalty-received") == 5
        with pipeline.db.engine.connect() as conn:
            [row] = repo.find_snapshots(conn, store="ok")
        assert row["source"] == f"nats:{bus.settings.stream}" and row["observed_at"]

    def test_a_bad_record_goes_to_the_rejected_log_and_its_message_is_acknowledged(
            self, bus: Bus, consume: Callable[..., None], pipeline: Pipeline):
        bad = snapshot(store="s1", operator=None, dispute_rate=3.5)
        bus.publish(("amazon.s1", jsonl(breach("s1"), bad)))
        consume(pipeline.ingest)
        info = bus.wait_drained()
        assert info.delivered.consumer_seq == 1  # acknowledged at once, not redelivered
        with pipeline.db.engine.connect() as conn:
            [rejection] = repo.list_rejections(conn)
        assert rejection["location"] == "message 1 line 2"
        assert rejection["field"] == "metrics.dispute_rate"
        assert count(pipeline, incidents) == 1  # the good record beside it went in

    def test_a_message_that_keeps_failing_goes_to_the_rejected_log_after_max_deliver(
            self, bus: Bus, consume: Callable[..., None], pipeline: Pipeline):
        def ingest(records: list[RawRecord | Rejection], source: str) -> IngestReport:
            if any(isinstance(r, RawRecord) and r.data.get("store") == "poison"
                   for r in records):
                raise RuntimeError("the engine choked\nSQL: secret details")
            return pipeline.ingest(records, source)

        bus.publish(("amazon.poison", json.dumps(breach("poison")).encode()),
                    ("amazon.s1", json.dumps(breach("s1")).encode()))
        consume(ingest, max_deliver=3)
        bus.wait_drained()
        with pipeline.db.engine.connect() as conn:
            [rejection] = repo.list_rejections(conn)
        assert rejection["location"] == "message 1"
        assert rejection["error"] == ("failed 3 deliveries; last error: RuntimeError: "
                                      "the engine choked")
        assert json.loads(rejection["raw"])["store"] == "poison"
        # the healthy neighbour was committed once, not failed along with it
        assert count(pipeline, incidents) == 1

    def test_a_message_failing_while_the_rejected_log_is_down_waits_for_the_log(
            self, bus: Bus, consume: Callable[..., None], pipeline: Pipeline):
        down = threading.Event()
        down.set()
        calls: list[int] = []

        def ingest(records: list[RawRecord | Rejection], source: str) -> IngestReport:
            calls.append(len(records))
            if down.is_set():
                raise ConnectionError("the database is down")
            return pipeline.ingest(records, source)

        bus.publish(("amazon.s1", json.dumps(breach("s1")).encode()))
        consume(ingest, max_deliver=2)
        deadline = time.monotonic() + 20
        while len(calls) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)  # 2 failed deliveries, then the log write failing too
        assert bus.consumer().num_ack_pending == 1  # still in the stream, not dropped
        down.clear()
        bus.wait_drained()
        with pipeline.db.engine.connect() as conn:
            [rejection] = repo.list_rejections(conn)
        assert rejection["location"] == "message 1"
        assert "more than max_deliver (2)" in rejection["error"]
        assert json.loads(rejection["raw"])["store"] == "s1"


# -- daemons ---------------------------------------------------------------------------


class TestConsumerKilled:
    """A consumer killed with -9 around its commit: the message comes back, nothing is
    lost and nothing is doubled."""

    @pytest.mark.parametrize("point", ["before-commit", "after-commit"])
    def test_the_message_is_redelivered_and_opens_one_incident(
            self, bus: Bus, tmp_path: Path, point: str):
        hook = Webhook()
        config = {"database_url": f"sqlite:///{tmp_path / 'watcher.db'}",
                  "rules": str(ROOT / "rules"), "nats": bus.config(), **alerting_config(hook)}
        (tmp_path / "crasher.yaml").write_text(json.dumps(config), encoding="utf-8")
        bus.publish(("amazon.rs-1", json.dumps(breach("rs-1")).encode()))
        crasher = subprocess.run([sys.executable, "-m", "tests.bus_crasher",
                                  str(tmp_path / "crasher.yaml"), point], cwd=ROOT,
                                 timeout=60, capture_output=True)
        assert crasher.returncode == -9, crasher.stderr.decode()[-2000:]
        db = open_database(config["database_url"])
        with db.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(snapshots)).scalar_one()
        assert stored == (1 if point == "after-commit" else 0)
        daemon = Daemon(tmp_path, config).start()
        try:
            info = bus.wait_drained()
            [delivered] = hook.wait_for(1)
            time.sleep(0.5)
            assert len(hook.received) == 1 and store_of(delivered) == "rs-1"
            assert info.delivered.consumer_seq == 2  # the killed delivery, then one more
            with db.engine.connect() as conn:
                opened = conn.execute(select(func.count()).select_from(incidents)).scalar_one()
                sent = conn.execute(select(func.count()).select_from(notifications)
                                    ).scalar_one()
            assert (opened, sent) == (1, 1)
            assert daemon.terminate() == 0
        finally:
            if daemon.proc and daemon.proc.poll() is None:
                daemon.kill()
            hook.stop()
            db.dispose()


@pytest.mark.postgres
class TestTwoReplicas:
    def test_nats_and_http_at_once_give_one_incident_and_one_notification_each(
            self, bus: Bus, tmp_path: Path, pg_schema_url: str):
        open_database(pg_schema_url, auto_upgrade=True).dispose()
        hook = Webhook()
        config = {"database_url": pg_schema_url, "nats": bus.config(batch=5),
                  **alerting_config(hook)}
        replicas = []
        try:
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                replicas.append(Daemon(tmp_path / name, config).start())
            stores = [f"rs-{i}" for i in range(30)]
            body = jsonl(*[breach(s) for s in stores])
            with ThreadPoolExecutor(3) as pool:
                posts = [pool.submit(r.post, body) for r in replicas]
                bus.publish(*[(f"amazon.{s}", json.dumps(breach(s)).encode())
                              for s in stores])
                assert [p.result().status_code for p in posts] == [200, 200]
            bus.wait_drained()
            received = hook.wait_for(len(stores))
            time.sleep(1.0)  # a duplicate would arrive now
            assert sorted(store_of(n) for n in hook.received) == sorted(stores)
            listed = httpx.get(f"{replicas[0].url}/v1/incidents",
                               params={"limit": 1000}).json()
            assert sorted(i["store"] for i in listed) == sorted(stores)
            assert len(received) == len(stores)
            for replica in replicas:
                assert replica.terminate() == 0
                assert "nats_consuming" in replica.output()
        finally:
            for replica in replicas:
                if replica.proc and replica.proc.poll() is None:
                    replica.kill()
            hook.stop()
