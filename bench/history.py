"""``python -m bench.history [--stores N] [--days D] [--repeat R] [--postgres [--no-analyze]]
[--operators] [--quick] [--profile] [--json]``: what the rules on history (``kind:
change``, ``kind: trend``) cost in a day's batch.

N stores × D days of daily snapshots (``bench/generate.py``, ``daily``: counts and
platform rates with a weekly rhythm and noise, a few percent of stores with a traffic
drop, a rising ODR or late-shipment rate or a return spike) are stored through the
pipeline a day's batch at a time with the full default pack, on a SQLite file (or a
PostgreSQL database with ``--postgres``). Then day D+1's batch (N snapshots) is ingested
R times with the full pack and R times with the history rules taken out, alternately,
each time on a fresh copy of the filled database (so every run meets the same stored
state); the difference of the medians is what the history rules cost. In the full-pack
runs the pipeline's history steps are timed in place: the read of the batch's history
(``load_history``, and within it the query) and the judging (``judge``), by the wall
clock and by this process's CPU time (the machine may be shared).

Peak memory is the process's VmHWM over the batch, reset before it (Linux
``/proc/self/clear_refs``). ``--operators`` names each store's operator, as monthly
snapshots do (a day then changes their monthly cards). ``--profile`` prints cProfile's
top functions of one more full-pack run (not timed). Read the figures on the small
shared machine as an order of magnitude (bench/README.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.generate import daily, jsonl
from bench.measure import peak_rss_mb, reset_peak_rss, rss_mb
from bench.runs import PG_URL, RULES
from watcher.config import load_settings
from watcher.pipeline import Pipeline
from watcher.rules import history
from watcher.rules.engine import RuleEngine
from watcher.rules.history import HISTORY_KINDS
from watcher.rules.loader import load_pack
from watcher.rules.model import RulePack
from watcher.store import open_database
from watcher.store.schema import incidents
from watcher.validation import read_records

QUICK = {"stores": 200, "days": 35, "repeat": 1}


# -- copies of one filled database ----------------------------------------------------------


@contextmanager
def sqlite_copies() -> Iterator[tuple[str, Callable[[str], str], Callable[[str], None]]]:
    """(the URL to fill, copy(name) -> URL of a fresh copy, drop(name))."""
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "base.db"

        def copy(name: str) -> str:
            shutil.copyfile(base, Path(folder) / f"{name}.db")
            return f"sqlite:///{folder}/{name}.db"

        def drop(name: str) -> None:
            for suffix in ("", "-wal", "-shm"):
                (Path(folder) / f"{name}.db{suffix}").unlink(missing_ok=True)

        yield f"sqlite:///{base}", copy, drop


@contextmanager
def postgres_copies() -> Iterator[tuple[str, Callable[[str], str], Callable[[str], None]]]:
    """The same on PostgreSQL: a database of its own, copied with ``CREATE DATABASE ...
    TEMPLATE`` (a file copy on the server)."""
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 3})
    prefix = f"bench_history_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{prefix}"'))
    except Exception as exc:
        raise SystemExit(f"PostgreSQL is not reachable ({exc.__class__.__name__})") from None
    made = [prefix]

    def url(name: str) -> str:
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def copy(name: str) -> str:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{prefix}_{name}" TEMPLATE "{prefix}"'))
        made.append(f"{prefix}_{name}")
        return url(f"{prefix}_{name}")

    def drop(name: str) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{prefix}_{name}"'))

    try:
        yield url(prefix), copy, drop
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- the history steps, timed in place ------------------------------------------------------


@contextmanager
def timed_history() -> Iterator[dict[str, float]]:
    """The pipeline's history steps timed where they run: ``load_history`` (the read),
    ``history_rows`` within it (the query and its rows), ``judge`` (every history rule
    on every snapshot), and the firings ``judge`` added."""
    parts: dict[str, float] = {f"{step}_{clock}": 0.0 for step in ("read", "query", "judge")
                               for clock in ("s", "cpu_s")}
    parts |= {"history_rows": 0, "firings": 0}
    load, rows, judge = history.load_history, history.history_rows, history.judge

    def add(step: str, started: tuple[float, float]) -> None:
        parts[f"{step}_s"] += time.perf_counter() - started[0]
        parts[f"{step}_cpu_s"] += time.process_time() - started[1]

    def timed_load(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter(), time.process_time()
        try:
            return load(*args, **kwargs)
        finally:
            add("read", started)

    def timed_rows(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter(), time.process_time()
        found = list(rows(*args, **kwargs))
        add("query", started)
        parts["history_rows"] += len(found)
        return found

    def timed_judge(result: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter(), time.process_time()
        judged = judge(result, *args, **kwargs)
        add("judge", started)
        parts["firings"] += len(judged.firings) - len(result.firings)
        return judged

    history.load_history, history.history_rows, history.judge = (timed_load, timed_rows,
                                                                  timed_judge)
    try:
        yield parts
    finally:
        history.load_history, history.history_rows, history.judge = load, rows, judge


# -- the runs -------------------------------------------------------------------------------


def without_history(pack: RulePack) -> RulePack:
    return pack.model_copy(update={"rules": tuple(r for r in pack.rules
                                                  if r.kind not in HISTORY_KINDS)})


def fill(url: str, pack: RulePack, batches: Iterator[list[dict[str, Any]]],
         analyze: bool = True) -> float:
    """Each day's batch ingested in turn; the seconds it took. On PostgreSQL the tables
    are then analysed (``analyze``), as autovacuum does on a production server: the test
    server runs without it, and without statistics the planner scans the whole table for
    the history of 500 stores."""
    db = open_database(url, auto_upgrade=True)
    pipeline = Pipeline(db, RuleEngine(pack), load_settings(env={}))
    started = time.perf_counter()
    for batch in batches:
        pipeline.ingest(read_records(jsonl(iter(batch))), "bench")
    seconds = time.perf_counter() - started
    if analyze and db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    db.dispose()
    return seconds


def day_batch(url: str, pack: RulePack, body: bytes, count: int,
              profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """One day's batch on a fresh copy: seconds, peak memory, the history steps' times."""
    db = open_database(url)
    pipeline = Pipeline(db, RuleEngine(pack), load_settings(env={}))
    with timed_history() as parts:
        before = rss_mb()
        reset_peak_rss()
        if profile is not None:
            profile.enable()
        started, cpu = time.perf_counter(), time.process_time()
        report = pipeline.ingest(read_records(body), "day")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if profile is not None:
            profile.disable()
        peak = peak_rss_mb()
    with db.engine.connect() as conn:
        live = dict(conn.execute(select(incidents.c.rule, func.count()).where(
            incidents.c.status != "resolved").group_by(incidents.c.rule)).all())
    db.dispose()
    if report.accepted != count:
        raise RuntimeError(f"the day's batch: {report.accepted} of {count} accepted")
    return {"seconds": seconds, "cpu_s": cpu, "opened": report.opened, "resolved": report.resolved,
            "rss_before_mb": before, "peak_rss_mb": peak, "live": live, **parts}


def run(stores: int, days: int, repeat: int, postgres: bool, profile: bool = False,
        operators: bool = False, analyze: bool = True) -> dict[str, Any]:
    pack = load_pack(RULES)
    variants = {"full": pack, "no_history": without_history(pack)}
    batches = daily(stores, days + 1, operators=operators)
    stored = islice(batches, days)  # generated as they are stored: not held in memory
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    profiled = None
    with (postgres_copies() if postgres else sqlite_copies()) as (base, copy, drop):
        fill_s = fill(base, pack, stored, analyze)
        body = jsonl(iter(next(batches)))
        for turn in range(repeat):
            for name, variant in (variants.items() if turn % 2 == 0
                                  else reversed(variants.items())):
                try:
                    runs[name].append(day_batch(copy(f"{name}_{turn}"), variant, body,
                                                stores))
                finally:
                    drop(f"{name}_{turn}")
        if profile:
            profiler = cProfile.Profile()
            try:
                day_batch(copy("profile"), pack, body, stores, profiler)
            finally:
                drop("profile")
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
            profiled = out.getvalue()
    full, bare = runs["full"], runs["no_history"]

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    per = 1e6 / stores
    full_s, bare_s = median(full, "seconds"), median(bare, "seconds")
    full_cpu, bare_cpu = median(full, "cpu_s"), median(bare, "cpu_s")
    result = {
        "stores": stores, "days": days, "repeat": repeat,
        "database": "postgresql" if postgres else "sqlite", "operators": operators,
        "analyzed": analyze and postgres,
        "history_rules": [r.id for r in pack.rules if r.kind in HISTORY_KINDS],
        "window_days": history.needed_days(pack.rules),
        "fill": {"snapshots": stores * days, "seconds": fill_s,
                 "snapshots_per_s": stores * days / fill_s},
        "full": {"seconds": full_s, "snapshots_per_s": stores / full_s, "cpu_s": full_cpu,
                 "runs_s": [r["seconds"] for r in full]},
        "no_history": {"seconds": bare_s, "snapshots_per_s": stores / bare_s,
                       "cpu_s": bare_cpu, "runs_s": [r["seconds"] for r in bare]},
        # wall clock; "_cpu": this process's CPU time (the machine is shared)
        "history_us_per_snapshot": {
            "difference": (full_s - bare_s) * per,
            "difference_cpu": (full_cpu - bare_cpu) * per,
            **{f"{step}{suffix}": median(full, f"{step}{clock}") * per
               for step in ("read", "query", "judge")
               for suffix, clock in (("", "_s"), ("_cpu", "_cpu_s"))}},
        "history_query_ms": median(full, "query_s") * 1000,
        "history_rows": int(median(full, "history_rows")),
        "firings": int(median(full, "firings")),
        "opened": {name: int(median(rows, "opened")) for name, rows in runs.items()},
        "live_history_incidents": {rule: n for rule, n in full[0]["live"].items()
                                   if rule in {r.id for r in pack.rules
                                               if r.kind in HISTORY_KINDS}},
        "peak_rss_mb": {name: {"before": median(rows, "rss_before_mb"),
                               "peak": median(rows, "peak_rss_mb")}
                        for name, rows in runs.items()},
    }
    if profiled is not None:
        result["profile"] = profiled
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90, help="days stored before the batch")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pack")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['stores']} stores x {QUICK['days']} days, one run each")
    parser.add_argument("--operators", action="store_true",
                        help="the snapshots name operators (their monthly cards rebuilt)")
    parser.add_argument("--no-analyze", dest="analyze", action="store_false",
                        help="PostgreSQL: leave the filled tables without statistics")
    parser.add_argument("--profile", action="store_true", help="cProfile one more run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    size = QUICK if args.quick else {"stores": args.stores, "days": args.days,
                                     "repeat": args.repeat}
    result = run(size["stores"], size["days"], size["repeat"], args.postgres, args.profile,
                 args.operators, args.analyze)
    if args.json:
        print(json.dumps(result))
        return
    print(table(result))
    if "profile" in result:
        print(result["profile"], file=sys.stderr)


def table(r: dict[str, Any]) -> str:
    us, full, bare = r["history_us_per_snapshot"], r["full"], r["no_history"]
    peak = r["peak_rss_mb"]
    rows = [
        ("stored before the batch", f"{r['fill']['snapshots']:,}", "snapshots",
         f"{r['stores']:,} stores x {r['days']} days, {r['database']}"
         f"{', operators' if r['operators'] else ''}"
         f"{', analysed' if r['analyzed'] else ''}, filled in "
         f"{r['fill']['seconds']:.0f} s ({r['fill']['snapshots_per_s']:,.0f}/s)"),
        ("day's batch, full pack", f"{full['snapshots_per_s']:,.0f}", "snapshots/s",
         f"{full['seconds']:.2f} s (CPU {full['cpu_s']:.2f} s), median of {r['repeat']}"),
        ("day's batch, no history rules", f"{bare['snapshots_per_s']:,.0f}", "snapshots/s",
         f"{bare['seconds']:.2f} s (CPU {bare['cpu_s']:.2f} s), median of {r['repeat']}"),
        ("history rules, difference", f"{us['difference']:,.1f}", "us/snapshot",
         f"CPU {us['difference_cpu']:,.1f}; {len(r['history_rules'])} rules: "
         f"{', '.join(r['history_rules'])}"),
        ("  reading the history", f"{us['read']:,.1f}", "us/snapshot",
         f"CPU {us['read_cpu']:,.1f}; {r['history_rows']:,} rows, window "
         f"{r['window_days']} days"),
        ("    of which the query", f"{us['query']:,.1f}", "us/snapshot",
         f"CPU {us['query_cpu']:,.1f}; {r['history_query_ms']:,.0f} ms for the batch"),
        ("  judging", f"{us['judge']:,.1f}", "us/snapshot",
         f"CPU {us['judge_cpu']:,.1f}; {r['firings']:,} firings in the batch"),
        ("peak RSS, full pack", f"{peak['full']['peak']:,.0f}", "MiB",
         f"{peak['full']['before']:,.0f} MiB before the batch"),
        ("peak RSS, no history rules", f"{peak['no_history']['peak']:,.0f}", "MiB",
         f"{peak['no_history']['before']:,.0f} MiB before the batch"),
        ("opened in the batch", f"{r['opened']['full']:,} / {r['opened']['no_history']:,}",
         "incidents", "full pack / no history rules"),
        ("live history incidents", f"{sum(r['live_history_incidents'].values()):,}",
         "incidents", ", ".join(f"{k} {v}" for k, v in
                                Counter(r["live_history_incidents"]).most_common())),
    ]
    width, value = max(len(x[0]) for x in rows), max(len(x[1]) for x in rows)
    return "\n".join(f"{a:<{width}}  {b:>{value}}  {c:<12} {d}" for a, b, c, d in rows)


if __name__ == "__main__":
    main()
