"""``python -m bench.pages [--stores N] [--months M] [--repeat R] [--postgres] [--json]``:
the web page at fleet size.

A store holding N stores × M months of generated history (``bench/generate.py``: every
indicator, targets, ~4 % breaches), then each page asked R times in-process (FastAPI's
TestClient, no network): the health board, the incident list filtered, an incident with
its chart, the team's scorecards and one operator's card with its score chart (12
cards) and six small charts.
The board and the team cards are built first, as the daemon does at start (in the
background); then before each page a batch restates the last month of ``--batch`` stores
(the next ones each time) and the kept views catch up in the background, as after any
batch. Prints per page the first answer after that batch and p50 and p95 of the next R,
in milliseconds. Read the figures on this small
shared machine as an order of magnitude (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any

from fastapi.testclient import TestClient

from bench.generate import jsonl, snapshots
from bench.measure import percentile
from bench.runs import RULES, pg_schema
from watcher.config import load_settings
from watcher.daemon.coalesce import Coalescer
from watcher.daemon.http import create_app
from watcher.daemon.runner import refresh_kept_forever
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime, freeze_heap
from watcher.store import open_database
from watcher.store import repository as repo
from watcher.validation import read_records

CHUNK = 20_000


@contextmanager
def database(postgres: bool) -> Iterator[str]:
    if postgres:
        with pg_schema() as url:
            if url is None:
                raise SystemExit("PostgreSQL is not reachable")
            yield url
    else:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/w.db"


def fill(pipeline: Pipeline, stores: int, months: int) -> float:
    """Ingest the history a chunk at a time; the seconds it took."""
    started = time.perf_counter()
    records = snapshots(stores * months, stores=stores, first_year=2024)
    while chunk := list(islice(records, CHUNK)):
        pipeline.ingest(read_records(jsonl(iter(chunk))), "bench")
    return time.perf_counter() - started


def timed(client: TestClient, url: str, repeat: int, new_data: Callable[[], object]
          ) -> dict[str, float]:
    """The first answer right after a batch of new data apart from the next ``repeat``."""
    new_data()
    times, cpu = [], []
    for _ in range(repeat + 1):
        started, used = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code}")
    # CPU time of the whole process (the background refresh included): what the answer
    # cost, apart from waiting for the CPU on a machine shared with other work
    return {"first_ms": round(times[0], 1), "p50_ms": round(percentile(times[1:], 50), 1),
            "p95_ms": round(percentile(times[1:], 95), 1), "first_cpu_ms": round(cpu[0], 1),
            "p95_cpu_ms": round(percentile(cpu[1:], 95), 1)}


def run(stores: int, months: int, repeat: int, postgres: bool, batch: int) -> dict[str, Any]:
    with database(postgres) as url:
        db = open_database(url, auto_upgrade=True)
        settings = load_settings(env={})
        pipeline = Pipeline(db, RuleEngine(load_pack(RULES)), settings)
        seconds = fill(pipeline, stores, months)
        runtime = Runtime(settings, db, pipeline)
        last = f"{2024 + (months - 1) // 12:04d}-{(months - 1) % 12 + 1:02d}"
        batches = iter(range(1, 1000))

        def new_data() -> None:
            """A batch restating the last month of ``batch`` stores (the next ones each
            time), as another replica or an ERP export would send it."""
            turn = next(batches)
            records = snapshots(batch, stores=stores, seed=1000 + turn, first_year=2024,
                                first_store=turn * batch, first_month=months - 1)
            pipeline.ingest(read_records(jsonl(records)), "bench")

        freeze_heap()  # as ``watcher run`` does before it serves
        # what the daemon does at start, in the background (watcher.daemon.runner)
        started = time.perf_counter()
        runtime.refresh_kept()
        kept_s = time.perf_counter() - started
        stop, due = threading.Event(), threading.Event()
        pipeline.on_commit.append(due.set)
        refresher = threading.Thread(target=refresh_kept_forever, args=(runtime, stop, due),
                                     daemon=True)
        refresher.start()
        with db.engine.connect() as conn:
            charted = next(i for i in repo.list_incidents(conn, limit=1000)
                           if i.metric and i.store)
        engine_thread = ThreadPoolExecutor(max_workers=1)
        app = create_app(runtime, Coalescer(pipeline.ingest_many, engine_thread).ingest_async)
        pages = {"/board": "/board",
                 "/ filtered": f"/?store={charted.store}&status=open",
                 "/ by severity": "/?sort=severity",
                 "/incidents/{id} (chart)": f"/incidents/{charted.id}",
                 "/scorecards (team)": f"/scorecards?period={last}",
                 "/scorecards/{op} (score+6 charts)": f"/scorecards/op-0001?period={last}",
                 "GET /v1/board": "/v1/board"}
        try:
            with TestClient(app, base_url="http://localhost") as client:
                figures = {name: timed(client, path, repeat, new_data)
                           for name, path in pages.items()}
        finally:
            stop.set()
            due.set()
            refresher.join()
            engine_thread.shutdown()
            db.dispose()
    return {"stores": stores, "months": months, "snapshots": stores * months,
            "database": "postgresql" if postgres else "sqlite", "batch": batch,
            "fill_s": round(seconds, 1), "kept_s": round(kept_s, 1), "pages": figures,
            "load": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pages")
    parser.add_argument("--stores", type=int, default=5000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--batch", type=int, default=100,
                        help="stores restated before each page's first answer")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.stores, args.months, args.repeat, args.postgres, args.batch)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['snapshots']:,} snapshots ({result['stores']:,} stores x "
          f"{result['months']} months, {result['database']}), filled in {result['fill_s']} s; "
          f"board and team cards built in {result['kept_s']} s (at start, in the background); "
          f"load average {result['load']}")
    print(f"first: the first answer after a batch restating {result['batch']} stores")
    print(f"{'page':32} {'first ms':>9} {'p50 ms':>9} {'p95 ms':>9} {'first cpu':>9} "
          f"{'p95 cpu':>9}")
    for name, f in result["pages"].items():
        print(f"{name:32} {f['first_ms']:>9} {f['p50_ms']:>9} {f['p95_ms']:>9} "
              f"{f['first_cpu_ms']:>9} {f['p95_cpu_ms']:>9}")


if __name__ == "__main__":
    main()
