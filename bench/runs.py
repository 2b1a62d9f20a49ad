"""One function per figure group; each returns a dict of figures."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import durable_rules_engine as c_engine
import httpx
import orjson
import structlog
from durable import engine as durable_engine
from sqlalchemy import create_engine, text

from bench.generate import jsonl, snapshots
from bench.measure import peak_rss_mb, percentile
from watcher.config import load_settings
from watcher.pipeline import Pipeline
from watcher.rules.compiler import compile_pack
from watcher.rules.engine import QuietHost, RuleEngine, drive
from watcher.rules.facts import to_fact
from watcher.rules.loader import load_pack
from watcher.rules.model import Rule, RulePack
from watcher.snapshot import Snapshot
from watcher.store import open_database
from watcher.validation import read_records

# JSON Lines bodies; the daemon refuses a POST without a content type in the open mode.
JSONL_TYPE = {"content-type": "application/x-ndjson"}

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
PG_URL = os.environ.get("WATCHER_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def raw_engine(pack: RulePack, count: int) -> dict[str, Any]:
    """durable-rules alone on the compiled pack: assert + retract per fact, two ways.

    Through durable-rules' Python API (``Host.assert_fact``, which encodes the
    fact with ``json.dumps`` on each call and builds a ``Closure`` per firing),
    and through its C extension the way the pipeline drives it (``drive``: the
    fact encoded once by orjson). Facts are flattened and encoded before timing.
    """
    name = f"bench_{uuid.uuid4().hex[:8]}"
    definition = compile_pack(pack)
    for rule in definition.values():
        rule["run"] = lambda _c: None
    host = QuietHost()
    host.register_rulesets({name: definition})
    keys = frozenset(k for r in pack.rules for v in r.variants for k in v.when)
    facts = [to_fact(Snapshot.model_validate(s), str(i), keys)
             for i, s in enumerate(snapshots(count))]
    started = time.perf_counter()
    for fact in facts:
        with suppress(durable_engine.MessageNotHandledException):
            host.assert_fact(name, fact)
        with suppress(durable_engine.MessageNotHandledException):
            host.retract_fact(name, fact)
    api = count / (time.perf_counter() - started)
    handle = host.get_ruleset(name)._handle
    encoded = [orjson.dumps(fact).decode() for fact in facts]
    fired: list[str] = []
    started = time.perf_counter()
    for fact_json in encoded:
        drive(handle, c_engine.assert_fact, fact_json, fired)
        drive(handle, c_engine.retract_fact, fact_json, fired)
    c_path = count / (time.perf_counter() - started)
    return {"facts_per_s": api, "c_path_facts_per_s": c_path, "rules": len(pack.rules),
            "durable_rules": len(definition)}


@contextmanager
def pg_schema() -> Iterator[str | None]:
    try:
        admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc.__class__.__name__}", file=sys.stderr)
        yield None
        return
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def batch(url: str, body: bytes, count: int, pack: RulePack) -> dict[str, Any]:
    db = open_database(url, auto_upgrade=True)
    pipeline = Pipeline(db, RuleEngine(pack), load_settings(env={}))
    started = time.perf_counter()
    report = pipeline.ingest(read_records(body), "bench")
    elapsed = time.perf_counter() - started
    db.dispose()
    return {"snapshots_per_s": count / elapsed, "opened": report.opened,
            "accepted": report.accepted}


def cli_ingest(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.jsonl"
        path.write_bytes(jsonl(snapshots(count, seed=11)))
        env = {**os.environ, "WATCHER_DATABASE_URL": f"sqlite:///{folder}/w.db"}
        env.pop("WATCHER_CONFIG", None)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "watcher.cli", "--log-json", "ingest",
                               "--format", "json", str(path)],
                              cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
    accepted = json.loads(done.stdout)["files"][0]["accepted"]
    if accepted != count:
        raise RuntimeError(f"watcher ingest accepted {accepted} of {count}")
    return {"snapshots_per_s": count / elapsed, "seconds": elapsed}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Hook:
    """Loopback webhook: records when each store's alert arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                now = time.perf_counter()
                try:
                    store = json.loads(body).get("alert", {}).get("store")
                except ValueError:
                    store = None
                if store:
                    hook.arrived.setdefault(store, now)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def daemon(hook: Hook | None = None, **config: Any
           ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The daemon as a subprocess on a fresh SQLite file (or ``database_url``), alerting
    to ``hook`` if given; ``config`` adds or overrides config-file keys."""
    folder = Path(tempfile.mkdtemp())
    port = free_port()
    settings: dict[str, Any] = {
        "database_url": f"sqlite:///{folder}/w.db", "rules": str(RULES),
        "drop_folder": str(folder / "inbox"), "port": port, "dispatch_poll_seconds": 0.05}
    if hook is not None:
        settings |= {"channels": {"hook": {"urls": [f"json://127.0.0.1:{hook.port}/hook"]}},
                     "default_channels": ["hook"]}
    (folder / "config.yaml").write_text(json.dumps(settings | config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    proc = subprocess.Popen([sys.executable, "-m", "watcher.cli", "--log-json",
                             "--log-level", "warning", "run", "--config",
                             str(folder / "config.yaml")], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:  # whatever happens from here on, the daemon does not outlive the run
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def latency(rate: int, seconds: float, per_request: int = 1) -> dict[str, Any]:
    """Open-loop: ``rate`` snapshots a second offered in POSTs of ``per_request``, each
    sent on schedule whether or not earlier ones have been answered (as independent
    senders would), drawn from the realistic stream (about 4 % breach a rule); for each
    breach, the time from sending it to the webhook's receipt of its notification."""
    hook = Hook()
    sent: dict[str, float] = {}
    errors: dict[str, int] = {}
    total = int(rate * seconds)
    records = list(snapshots(total, stores=total, seed=11))
    requests = [records[i:i + per_request] for i in range(0, total, per_request)]
    try:
        with daemon(hook) as (url, _proc):
            offered = asyncio.run(_offer(f"{url}/v1/snapshots", rate / per_request, requests,
                                         sent, errors))
            time.sleep(2)  # the last notifications on their way
    finally:
        hook.close()
    waits = [(hook.arrived[s] - t) * 1000 for s, t in sent.items() if s in hook.arrived]
    return {"offered_per_s": offered * per_request, "per_request": per_request,
            "notified": len(waits), "sent": len(sent), "failed_requests": errors,
            "p50_ms": percentile(waits, 50), "p95_ms": percentile(waits, 95),
            "p99_ms": percentile(waits, 99)}


async def _offer(url: str, per_second: float, requests: list[list[dict[str, Any]]],
                 sent: dict[str, float], errors: dict[str, int]) -> float:
    """POST each request on a fixed schedule; the request rate actually offered. A request
    that fails is counted in ``errors`` and its snapshots left out of ``sent``."""
    limits = httpx.Limits(max_connections=256)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, pool=None), limits=limits,
                                 headers=JSONL_TYPE) as client:
        async def post(records: list[dict[str, Any]]) -> None:
            body = jsonl(iter(records))
            now = time.perf_counter()
            for record in records:
                sent[record["store"]] = now
            try:
                failed = (await client.post(url, content=body)).status_code != 200
            except httpx.HTTPError as exc:
                failed = True
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            if failed:
                for record in records:
                    sent.pop(record["store"], None)

        start = time.perf_counter()
        tasks = []
        for index, records in enumerate(requests):
            pause = start + index / per_second - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            tasks.append(asyncio.create_task(post(records)))
        offered = len(requests) / (time.perf_counter() - start)
        await asyncio.gather(*tasks)
    return offered


def single_posts(seconds: float, clients: int = 8) -> dict[str, Any]:
    """One snapshot per POST from several clients at once, as fast as they go: the
    request rate one daemon serves (concurrent posts share engine turns)."""
    hook = Hook()
    bodies = [json.dumps(r).encode() for r in snapshots(int(2_000 * seconds), seed=5)]
    position = iter(range(len(bodies)))
    lock = threading.Lock()
    done = [0]
    try:
        with daemon(hook) as (url, _proc):
            stop = time.perf_counter() + seconds

            def client() -> None:
                with httpx.Client(timeout=60, headers=JSONL_TYPE) as http:
                    while time.perf_counter() < stop:
                        with lock:
                            index = next(position, None)
                        if index is None:
                            return
                        http.post(f"{url}/v1/snapshots", content=bodies[index])
                        with lock:
                            done[0] += 1

            started = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
    finally:
        hook.close()
    return {"requests_per_s": done[0] / elapsed, "clients": clients}


def online(counts: list[int], per_request: int = 100) -> dict[str, Any]:
    """HTTP POSTs in batches as fast as one client goes; daemon peak RSS at each mark."""
    hook = Hook()
    result: dict[str, Any] = {"rss_mb": {}}
    try:
        with daemon(hook) as (url, proc), httpx.Client(timeout=60,
                                                             headers=JSONL_TYPE) as client:
            records = snapshots(max(counts), stores=20_000, seed=3)
            done, started = 0, time.perf_counter()
            for mark in sorted(counts):
                while done < mark:
                    chunk = [next(records) for _ in range(min(per_request, mark - done))]
                    client.post(f"{url}/v1/snapshots", content=jsonl(iter(chunk)))
                    done += len(chunk)
                result["rss_mb"][mark] = peak_rss_mb(proc.pid)
            result["snapshots_per_s"] = done / (time.perf_counter() - started)
    finally:
        hook.close()
    return result


def rule_scaling(count: int) -> dict[str, Any]:
    """Throughput as the pack grows: the default pack cut to 10 rules, or grown to 30 and
    100 with extra threshold rules on real metrics (that rarely fire)."""
    base = load_pack(RULES)
    metrics = ("gmv", "net_margin", "stockout_rate", "dispute_rate", "conversion_rate")
    extra = []
    for n in range(100):
        metric = metrics[n % len(metrics)]
        op = ">" if metric in ("stockout_rate", "dispute_rate") else "<"
        bound = {"gmv": 1000 + n, "net_margin": 0.01, "stockout_rate": 0.9,
                 "dispute_rate": 0.9, "conversion_rate": 0.001}[metric]
        extra.append(Rule.model_validate({
            "id": f"extra-{n}", "description": "scaling rule",
            "condition": f"{metric} {op} {bound}", "severity": "low", "audience": "ops",
            "message": {"en": "x", "zh-CN": "x"}}))
    out: dict[str, Any] = {}
    for total in (10, 30, 100):
        rules = (*base.rules, *extra)[:total]
        pack = RulePack(rules=rules)
        raw = raw_engine(pack, count)
        with tempfile.TemporaryDirectory() as db_dir:
            e2e = batch(f"sqlite:///{db_dir}/w.db", jsonl(snapshots(count)), count, pack)
        out[str(len(pack.rules))] = {"raw_facts_per_s": raw["facts_per_s"],
                                     "c_path_facts_per_s": raw["c_path_facts_per_s"],
                                     "e2e_snapshots_per_s": e2e["snapshots_per_s"]}
    return out


def history_scaling(stores: int) -> dict[str, Any]:
    """A month's batch after 1, 12 and 36 stored months: streak checks must not slow."""
    pack = load_pack(RULES)
    out: dict[str, Any] = {}
    for months in (1, 12, 36):
        with tempfile.TemporaryDirectory() as db_dir:
            db = open_database(f"sqlite:///{db_dir}/w.db", auto_upgrade=True)
            pipeline = Pipeline(db, RuleEngine(pack), load_settings(env={}))
            history = list(snapshots(stores * (months + 1), stores=stores, seed=5))
            pipeline.ingest(read_records(jsonl(iter(history[:stores * months]))), "history")
            body = jsonl(iter(history[stores * months:]))
            started = time.perf_counter()
            pipeline.ingest(read_records(body), "month")
            out[str(months)] = stores / (time.perf_counter() - started)
            db.dispose()
    return out
