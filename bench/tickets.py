"""Reading a help desk's per-ticket export (``aggregate:`` mappings, mappings/zohodesk.yaml).

    .venv/bin/python -m bench.tickets [ROWS]

Generates a Zoho Desk ticket export of ROWS tickets (default 100,000) over three
departments and 28 days, and times ``Catalog.records`` on it: CSV decoding, every row's
identity, timestamp and measures, and the per-store-day records. bench/README.md quotes
the result.
"""

from __future__ import annotations

import sys
import time

from watcher import defaults
from watcher.sources import load_catalog

HEADER = ("Ticket Id,Subject,Department,Channel,Status,Ticket Owner,Created Time,Closed Time,"
          "First Response Time,Account Name")
DEPARTMENTS = ("Shopee MY", "Amazon US", "TikTok UK")
STATUSES = ("Closed", "Open", "On Hold", "Escalated")


def export(rows: int) -> bytes:
    lines = [HEADER]
    for i in range(rows):
        lines.append(f"{i},s,{DEPARTMENTS[i % 3]},Chat,{STATUSES[i % 4]},o,"
                     f"{1 + i % 28:02d} Nov 2026 {1 + i % 12:02d}:{i % 60:02d} AM,,"
                     f"{i % 40}:{i % 60:02d} hrs,a")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    catalog = load_catalog(defaults.mappings())
    body = export(rows)
    started = time.perf_counter()
    records = catalog.records("zohodesk", body)
    elapsed = time.perf_counter() - started
    print(f"{rows:,} tickets ({len(body) / 1e6:.1f} MB) -> {len(records)} snapshots "
          f"in {elapsed:.2f} s: {rows / elapsed:,.0f} tickets/s")


if __name__ == "__main__":
    main()
