"""``python -m bench [--quick] [--json]``: the figures of bench/README.md in one run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from typing import Any

from bench import runs
from bench.generate import jsonl, snapshots
from watcher.rules.loader import load_pack
from watcher.runtime import freeze_heap


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: ends within a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    freeze_heap()  # as the ``watcher`` entry point does
    quick = args.quick
    n = 5_000 if quick else 100_000
    pack = load_pack(runs.RULES)
    body = jsonl(snapshots(n))
    figures: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "date": datetime.now(UTC).date().isoformat()},
        "snapshots": n,
    }
    figures["raw_engine"] = runs.raw_engine(pack, min(n, 50_000))
    with tempfile.TemporaryDirectory() as folder:
        figures["batch_sqlite"] = runs.batch(f"sqlite:///{folder}/w.db", body, n, pack)
    with runs.pg_schema() as url:
        figures["batch_postgresql"] = runs.batch(url, body, n, pack) if url else None
    batch = figures["batch_sqlite"]
    batch["ratio_to_raw_engine"] = batch["snapshots_per_s"] / figures["raw_engine"]["facts_per_s"]
    batch["ratio_to_c_path"] = (batch["snapshots_per_s"]
                                / figures["raw_engine"]["c_path_facts_per_s"])
    figures["cli_ingest_sqlite"] = runs.cli_ingest(n // 5 if quick else n)
    figures["latency_200"] = runs.latency(200, 3 if quick else 20)
    figures["latency_1000"] = runs.latency(1000, 2 if quick else 10, per_request=10)
    figures["single_posts"] = runs.single_posts(2 if quick else 10)
    marks = [2_000, 10_000] if quick else [100_000, 1_000_000]
    online = runs.online(marks)
    figures["online_http"] = {"snapshots_per_s": online["snapshots_per_s"]}
    rss = online["rss_mb"]
    figures["memory"] = {"rss_mb": rss, "growth": rss[marks[1]] / rss[marks[0]] - 1}
    figures["rule_scaling"] = runs.rule_scaling(2_000 if quick else 20_000)
    figures["history_scaling"] = runs.history_scaling(200 if quick else 2_000)
    if args.json:
        print(json.dumps(figures, default=str))
        return
    print(table(figures, marks))


def table(f: dict[str, Any], marks: list[int]) -> str:
    raw, batch = f["raw_engine"], f["batch_sqlite"]
    rows = [
        ("raw engine, Python API", f"{raw['facts_per_s']:,.0f}", "facts/s",
         f"assert+retract, {raw['durable_rules']} durable rules"),
        ("raw engine, C path", f"{raw['c_path_facts_per_s']:,.0f}", "facts/s",
         "as the pipeline drives it"),
        ("batch, SQLite (in-process)", f"{batch['snapshots_per_s']:,.0f}", "snapshots/s",
         f"{batch['ratio_to_raw_engine']:.0%} of the Python API, "
         f"{batch['ratio_to_c_path']:.0%} of the C path"),
    ]
    if f["batch_postgresql"]:
        rows.append(("batch, PostgreSQL", f"{f['batch_postgresql']['snapshots_per_s']:,.0f}",
                     "snapshots/s", ""))
    rows += [
        ("watcher ingest (CLI, SQLite)", f"{f['cli_ingest_sqlite']['snapshots_per_s']:,.0f}",
         "snapshots/s", "includes process start"),
        ("online HTTP, 100 per POST", f"{f['online_http']['snapshots_per_s']:,.0f}",
         "snapshots/s", "one client"),
    ]
    for rate in (200, 1000):
        lat = f[f"latency_{rate}"]
        rows.append((f"accept->channel @{rate}/s", f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f}"
                     f" / {lat['p99_ms']:.0f}", "ms p50/p95/p99",
                     f"{lat['per_request']} per POST, offered {lat['offered_per_s']:.0f}/s, "
                     f"{lat['notified']} notified"))
    rows.append(("HTTP, 1 per POST", f"{f['single_posts']['requests_per_s']:,.0f}",
                 "requests/s", f"{f['single_posts']['clients']} clients at once"))
    rss = f["memory"]["rss_mb"]
    rows.append(("daemon peak RSS", f"{rss[marks[0]]:.0f} -> {rss[marks[1]]:.0f}", "MiB",
                 f"{marks[0]:,} -> {marks[1]:,} snapshots ({f['memory']['growth']:+.1%})"))
    for rules, fig in f["rule_scaling"].items():
        rows.append((f"{rules} rules", f"{fig['raw_facts_per_s']:,.0f} / "
                     f"{fig['c_path_facts_per_s']:,.0f} / {fig['e2e_snapshots_per_s']:,.0f}",
                     "API / C / e2e", "raw engine facts/s, end-to-end snapshots/s"))
    for months, rate in f["history_scaling"].items():
        rows.append((f"month batch after {months} month(s)", f"{rate:,.0f}", "snapshots/s", ""))
    width, value = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>{value}}  {c:<16} {d}" for a, b, c, d in rows)


if __name__ == "__main__":
    main()
