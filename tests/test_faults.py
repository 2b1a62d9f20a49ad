"""Fault injection on real daemons (subprocesses, loopback only), each bounded in time:
a replica killed mid-dispatch, the database restarted under load, a channel down for a
while, the same snapshots sent to two replicas at once.

The promise under test: nothing accepted is lost, nobody is paged twice for the same
thing, and a dead replica's work moves on by itself.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import JSONL, jsonl, snapshot
from tests.daemon_harness import Daemon, Webhook, alerting_config, store_of
from tests.private_postgres import PrivatePostgres, private_postgres
from watcher.store import open_database
from watcher.store.schema import snapshots


def breach(store: str) -> dict[str, Any]:
    return snapshot(store=store, operator=None, penalty_count=1)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Daemon]]:
    """Daemons the test starts; whatever still runs at the end is killed."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def start_replicas(replicas: list[Daemon], folder: Path, config: dict[str, Any],
                   count: int = 2) -> list[Daemon]:
    for index in range(count):
        (folder / f"replica-{index}").mkdir()
        replicas.append(Daemon(folder / f"replica-{index}", config).start())
    return replicas


@pytest.fixture
def hook() -> Iterator[Webhook]:
    webhook = Webhook()
    yield webhook
    webhook.stop()


@pytest.mark.postgres
class TestReplicaKilledMidDispatch:
    def test_every_notification_is_delivered_and_only_the_send_in_flight_repeats(
            self, tmp_path: Path, pg_schema_url: str, hook: Webhook, replicas: list[Daemon]):
        open_database(pg_schema_url, auto_upgrade=True).dispose()
        hook.delay = 0.3  # a slow channel: sends are in flight when the kill comes
        config = {"database_url": pg_schema_url, "claim_lease_seconds": 8,
                  **alerting_config(hook)}
        first, second = start_replicas(replicas, tmp_path, config)
        stores = [f"kd-{i}" for i in range(10)]
        response = first.post(jsonl(*[breach(s) for s in stores]))
        assert response.json()["incidents_opened"] == len(stores)
        wait_until(lambda: len(hook.received) >= 3, 20, "three notifications sent")
        senders = [d for d in (first, second) if '"event": "notified"' in d.output()]
        assert senders  # claims are small: one replica or both may be sending
        senders[0].kill()  # kill -9, mid-dispatch
        before_kill = [store_of(n) for n in hook.received]
        wait_until(lambda: {store_of(n) for n in hook.received} == set(stores), 30,
                   "the survivor took over the dead replica's claims")
        time.sleep(1.0)  # a duplicate would arrive now
        times = Counter(store_of(n) for n in hook.received)
        repeated = {store for store, n in times.items() if n > 1}
        # at most the one send in flight at the kill (a channel is sent in order)
        assert len(repeated) <= 1 and repeated <= set(before_kill)
        survivor = first if senders[0] is second else second
        assert survivor.terminate() == 0


class TestDatabaseRestart:
    @pytest.fixture
    def database(self) -> Iterator[PrivatePostgres]:
        yield from private_postgres()

    def test_clients_get_a_retryable_503_while_it_is_down_and_every_200_is_stored(
            self, tmp_path: Path, database: PrivatePostgres, replicas: list[Daemon]):
        open_database(database.url, auto_upgrade=True).dispose()
        [daemon] = start_replicas(replicas, tmp_path, {"database_url": database.url}, 1)
        answers: dict[str, httpx.Response] = {}
        stop = threading.Event()

        def client() -> None:
            for index in range(3000):
                if stop.is_set():
                    return
                store = f"pg-{index}"
                answers[store] = httpx.post(f"{daemon.url}/v1/snapshots", timeout=15,
                                            headers=JSONL, content=jsonl(breach(store)))
                time.sleep(0.01)

        def accepted() -> int:
            return sum(1 for r in list(answers.values()) if r.status_code == 200)

        sender = threading.Thread(target=client)
        sender.start()
        try:
            wait_until(lambda: accepted() >= 20, 20, "accepted before the stop")
            database.stop()
            stopped_at = len(answers)
            wait_until(lambda: len(answers) >= stopped_at + 5, 20, "answers while down")
            database.start()
            restarted_at = accepted()
            wait_until(lambda: accepted() >= restarted_at + 20, 30, "accepted after restart")
        finally:
            stop.set()
            sender.join(20)
        codes = Counter(r.status_code for r in answers.values())
        assert set(codes) <= {200, 503}, codes  # never a 500
        refused = [r for r in answers.values() if r.status_code == 503]
        assert refused and all(r.headers["retry-after"].isdigit() for r in refused)
        assert "retry later" in refused[0].json()["detail"]
        db = open_database(database.url)
        with db.engine.connect() as conn:
            stored = {row.store for row in conn.execute(select(snapshots.c.store))}
        db.dispose()
        assert {s for s, r in answers.items() if r.status_code == 200} <= stored
        assert httpx.get(f"{daemon.url}/readyz").status_code == 200
        assert daemon.terminate() == 0


class TestChannelDown:
    def test_notifications_go_out_once_the_channel_is_back(
            self, tmp_path: Path, replicas: list[Daemon]):
        hook = Webhook(listening=False)  # down
        config = {"retry_base_seconds": 0.2, "retry_max_seconds": 1.0, **alerting_config(hook)}
        [daemon] = start_replicas(replicas, tmp_path, config, 1)
        stores = ["cd-1", "cd-2", "cd-3"]
        assert daemon.post(jsonl(*[breach(s) for s in stores])).json()[
            "incidents_opened"] == 3

        def failures(incident_id: int) -> int:
            events = httpx.get(f"{daemon.url}/v1/incidents/{incident_id}").json()["events"]
            return sum(1 for e in events if e["kind"] == "delivery_failed")

        wait_until(lambda: all(failures(i) >= 3 for i in (1, 2, 3)), 20,
                   "three failed attempts each while the channel is down")
        hook.start()
        try:
            wait_until(lambda: len(hook.received) >= 3, 20, "delivered after it returned")
            time.sleep(1.5)  # a second delivery would arrive now
            assert sorted(store_of(n) for n in hook.received) == stores
            for incident_id in (1, 2, 3):
                detail = httpx.get(f"{daemon.url}/v1/incidents/{incident_id}").json()
                assert detail["events"][-1]["kind"] == "notified"
            assert daemon.terminate() == 0
        finally:
            hook.stop()


@pytest.mark.postgres
class TestSameSnapshotsToTwoReplicas:
    def test_one_incident_and_one_notification_each(
            self, tmp_path: Path, pg_schema_url: str, hook: Webhook, replicas: list[Daemon]):
        open_database(pg_schema_url, auto_upgrade=True).dispose()
        pair = start_replicas(replicas, tmp_path,
                              {"database_url": pg_schema_url, "batch_size": 7,
                               **alerting_config(hook)})
        stores = [f"tw-{i}" for i in range(40)]
        body = jsonl(*[breach(s) for s in stores])
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda d: d.post(body), pair))
        assert [a.status_code for a in answers] == [200, 200]
        # each incident was opened by exactly one of the two
        assert sum(a.json()["incidents_opened"] for a in answers) == len(stores)
        wait_until(lambda: len(hook.received) >= len(stores), 20, "every notification")
        time.sleep(1.0)
        assert sorted(store_of(n) for n in hook.received) == sorted(stores)
        listed = httpx.get(f"{pair[0].url}/v1/incidents", params={"limit": 1000}).json()
        assert sorted(i["store"] for i in listed) == sorted(stores)
