"""``python -m bench.fleet [--count N] [--json]``: one replica against two, fed by NATS.

Each run gets a fresh PostgreSQL schema and a fresh JetStream stream. The
replicas (daemon subprocesses) start first; then the generated snapshots are
published one per message on ``<prefix>.<platform>.<store>``, and the clock runs
from the first publish until the shared durable consumer has every message
acknowledged (each one committed). Short by design: the machine is small and
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

from bench.generate import snapshots
from bench.runs import daemon, pg_schema
from watcher.store import open_database

NATS_URL = os.environ.get("WATCHER_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def publish_and_drain(bus: dict[str, Any], records: list[dict[str, Any]]) -> float:
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
        for record in records:
            await js.publish(f"{prefix}.{record['platform']}.{record['store']}",
                             json.dumps(record).encode())
        while True:
            info = await js.consumer_info(bus["stream"], bus["durable"])
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        try:
            await js.delete_stream(bus["stream"])
        finally:
            await nc.close()


def run(replicas: int, count: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    bus = {"url": NATS_URL, "stream": f"BENCH_{tag}", "subject": f"b{tag}.kpi.snapshots.>",
           "durable": f"bench-{tag}", "batch": 100}
    records = list(snapshots(count, seed=5))
    with pg_schema() as url:
        if url is None:
            return {"skipped": "PostgreSQL not reachable"}
        open_database(url, auto_upgrade=True).dispose()
        with ExitStack() as stack:
            for _ in range(replicas):
                stack.enter_context(daemon(database_url=url, nats=bus))
            seconds = asyncio.run(publish_and_drain(bus, records))
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
