"""Failover in seconds: a dispatcher killed with SIGKILL while it holds claims loses them
within ``claim_lease_seconds`` (10 s), and a restarted or surviving replica delivers
them, within 15 s of the kill.

Real daemons (subprocesses) against a loopback webhook that blocks: the first replica
is killed in the middle of a send, holding the claims on what it was about to send.
The time from the kill to the last of those deliveries is printed (docs/scale.md
keeps the measured figures); the test holds it to the issue's bound of 15 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import jsonl, snapshot
from tests.daemon_harness import Daemon, Webhook, alerting_config, store_of
from tests.test_faults import wait_until
from watcher.store import open_database
from watcher.store.schema import notifications

FAILOVER_BOUND = 15.0  # seconds, from the issue


@pytest.fixture
def hook() -> Iterator[Webhook]:
    webhook = Webhook()
    yield webhook
    webhook.stop()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def claims_of(url: str, pid: int) -> dict[str, datetime]:
    """The stores whose notification the process ``pid`` holds a live claim on."""
    db = open_database(url, auto_upgrade=False)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(select(notifications.c.alert, notifications.c.claimed_by,
                                       notifications.c.claimed_until)
                                .where(notifications.c.status == "pending"))
            now = datetime.now(UTC)
            return {str(alert["store"]): until for alert, by, until in rows
                    if by and f"-{pid}-" in by and until is not None
                    and until.replace(tzinfo=UTC) > now}
    finally:
        db.dispose()


def kill_while_sending(first: Daemon, hook: Webhook, url: str) -> tuple[set[str], float]:
    """Breaches for 10 stores; once ``first`` is blocked in a send holding claims,
    SIGKILL it. The stores it held, and the moment it died."""
    stores = [f"fo-{i}" for i in range(10)]
    hook.delay = 8.0  # the webhook holds every answer: a send in flight blocks
    response = first.post(jsonl(*[snapshot(store=s, operator=None, penalty_count=1)
                                  for s in stores]))
    assert response.json()["incidents_opened"] == len(stores)
    assert first.proc is not None
    held: dict[str, Any] = {}

    def blocked_holding_claims() -> bool:
        nonlocal held
        held = claims_of(url, first.proc.pid) if hook.received else {}  # type: ignore[union-attr]
        return len(held) >= 2

    wait_until(blocked_holding_claims, 20, "the first replica blocked in a send, holding claims")
    first.kill()  # SIGKILL: no cleanup, its claims stay in the store
    killed_at = time.monotonic()
    hook.delay = 0.0  # the channel answers again
    return set(held), killed_at


def delivered_within(hook: Webhook, held: set[str], killed_at: float) -> float:
    wait_until(lambda: held <= {store_of(n) for n in hook.received}, 30,
               "every claim of the dead replica delivered")
    return time.monotonic() - killed_at


class TestFailover:
    @pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql",
                                                             marks=pytest.mark.postgres)])
    def test_a_restarted_daemon_delivers_what_the_killed_one_held_within_15_s(
            self, tmp_path: Path, hook: Webhook, daemons: list[Daemon], store: str,
            request: pytest.FixtureRequest):
        url = (f"sqlite:///{tmp_path / 'watcher.db'}" if store == "sqlite"
               else str(request.getfixturevalue("pg_schema_url")))
        open_database(url, auto_upgrade=True).dispose()
        config = {"database_url": url, "retry_base_seconds": 0.2, **alerting_config(hook)}
        (tmp_path / "first").mkdir()
        (tmp_path / "second").mkdir()
        first = Daemon(tmp_path / "first", config).start()
        daemons.append(first)
        held, killed_at = kill_while_sending(first, hook, url)
        daemons.append(Daemon(tmp_path / "second", config).start())  # the restart
        took = delivered_within(hook, held, killed_at)
        print(f"failover ({store}, restart): {len(held)} claims of the killed daemon "
              f"delivered {took:.1f} s after the kill")
        assert took <= FAILOVER_BOUND
        assert {store_of(n) for n in hook.received} == {f"fo-{i}" for i in range(10)}

    @pytest.mark.postgres
    def test_a_surviving_replica_delivers_what_the_killed_one_held_within_15_s(
            self, tmp_path: Path, hook: Webhook, daemons: list[Daemon], pg_schema_url: str):
        open_database(pg_schema_url, auto_upgrade=True).dispose()
        config = {"database_url": pg_schema_url, "retry_base_seconds": 0.2,
                  **alerting_config(hook)}
        for name in ("first", "second"):
            (tmp_path / name).mkdir()
            daemons.append(Daemon(tmp_path / name, config).start())
        first, second = daemons
        held, killed_at = kill_while_sending(first, hook, pg_schema_url)
        took = delivered_within(hook, held, killed_at)
        print(f"failover (postgresql, surviving replica): {len(held)} claims of the killed "
              f"replica delivered {took:.1f} s after the kill")
        assert took <= FAILOVER_BOUND
        wait_until(lambda: {store_of(n) for n in hook.received} == {
            f"fo-{i}" for i in range(10)}, 30, "every notification delivered")
        assert second.terminate() == 0
