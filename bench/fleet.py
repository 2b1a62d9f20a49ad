"""``python -m bench.fleet [--count N] [--json]``: one replica against two, fed by NATS.

Each run gets a fresh PostgreSQL schema and a fresh JetStream stream. The
replicas (daemon subprocesses) start first; then the generated snapshots are
published one per message on ``<prefix>.<platform>.<store>`` (a burst: faster than
the replicas consume), and the clock runs from the first publish until the shared
durable consumer has every message committed (then, untimed, that each one is
acknowledged). Short by design: the machine is small and
shared, so read the figures as a ratio, not as capacity (docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from contextlib import ExitStack
from typing import Any

import nats
from sqlalchemy import create_engine, text

from bench.generate import snapshots
from bench.runs import daemon, pg_schema
from watcher.store import open_database

NATS_URL = os.environ.get("WATCHER_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def publish_and_drain(bus: dict[str, Any], records: list[dict[str, Any]],
                            url: str) -> float:
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    prefix = bus["subject"].removesuffix(".>")
    try:
        for _ in range(300):  # the replicas create the stream and the consumer
            try:
                await js.consumer_info(bus["stream"], bus["durable"])
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        started = time.perf_counter()
        # Concurrent publishes (500 awaiting their acks at a time) outrun the replicas,
        # so the figure is theirs: one publish after another was the slower side.
        for start in range(0, len(records), 500):
            await asyncio.gather(*(
                js.publish(f"{prefix}.{record['platform']}.{record['store']}",
                           json.dumps(record).encode())
                for record in records[start:start + 500]))
        # Watch the database, not the consumer: on NATS 2.9 a consumer_info under load
        # costs the server enough to slow the replicas down (330/s against 905/s for
        # one replica when asked every 50 ms rather than every second).
        db = create_engine(url)
        deadline = started + 600
        try:
            while time.perf_counter() < deadline:
                with db.connect() as conn:
                    stored = conn.execute(text("SELECT count(*) FROM snapshots")).scalar_one()
                if stored >= len(records):
                    break
                await asyncio.sleep(0.02)
            else:
                raise RuntimeError(f"only {stored} of {len(records)} snapshots stored in 600 s")
        finally:
            db.dispose()
        elapsed = time.perf_counter() - started
        while True:  # every message is acknowledged (each is acked right after its commit)
            info = await js.consumer_info(bus["stream"], bus["durable"])
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return elapsed
            await asyncio.sleep(0.05)
    finally:
        try:
            await js.delete_stream(bus["stream"])
        finally:
            await nc.close()


def run(replicas: int, count: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    bus = {"url": NATS_URL, "stream": f"BENCH_{tag}", "subject": f"b{tag}.kpi.snapshots.>",
           "durable": f"bench-{tag}"}
    records = list(snapshots(count, seed=5))
    with pg_schema() as url:
        if url is None:
            return {"skipped": "PostgreSQL not reachable"}
        open_database(url, auto_upgrade=True).dispose()
        with ExitStack() as stack:
            for _ in range(replicas):
                stack.enter_context(daemon(database_url=url, nats=bus))
            seconds = asyncio.run(publish_and_drain(bus, records, url))
    return {"replicas": replicas, "snapshots": count, "seconds": round(seconds, 2),
            "snapshots_per_s": round(count / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = {"cpus": os.cpu_count(), "one": run(1, args.count), "two": run(2, args.count)}
    if args.json:
        print(json.dumps(figures))
        return
    for name in ("one", "two"):
        f = figures[name]
        print(f"{name} replica(s): {f.get('snapshots_per_s', f.get('skipped'))} snapshots/s "
              f"({f.get('snapshots')} in {f.get('seconds')} s)")


if __name__ == "__main__":
    main()
