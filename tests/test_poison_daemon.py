"""A running daemon stays responsive while poison is ingested (issue 14, items 2-5):
``/healthz`` answers within a second throughout, every poison body gets a clear refusal,
and the valid requests sent at the same time are all accepted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import jsonl, snapshot
from tests.daemon_harness import running

JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}

POISON: dict[str, tuple[bytes, dict[str, str]]] = {
    "245 metric keys": (json.dumps(snapshot(**{f"custom_{n}": 1 for n in range(245)})).encode(),
                        JSON),
    "10,000 levels": (b"[" * 10_000 + b"]" * 10_000, JSON),
    "bare 42": (b"42", JSON),
    "bad UTF-8 line": (jsonl(snapshot(store="utf-a")) + b'\n{"store": "\xff"}\n', NDJSON),
    "ambiguous number": (json.dumps(snapshot(dispute_rate="3,5%")).encode(), JSON),
    # 2,000 wide records in one body: validation refuses each (MAX_METRICS), on the
    # engine thread, while the event loop keeps answering
    "a body of wide records": (jsonl(*[snapshot(store=f"w{n}", **{f"c{i}": i for i in range(101)})
                                       for n in range(2_000)]), NDJSON),
}


# Asks /healthz every 20 ms until told to stop on stdin; prints the slowest answer's
# seconds and the number of answers. Any answer but 200 fails it.
PROBE = """
import sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
slowest, count = 0.0, 0
with httpx.Client(timeout=5) as client:
    while not stop.is_set():
        started = time.monotonic()
        assert client.get(sys.argv[1] + "/healthz").status_code == 200
        slowest, count = max(slowest, time.monotonic() - started), count + 1
        if count == 1:
            print("ready", flush=True)
        time.sleep(0.02)
print(slowest, count)
"""


def test_healthz_answers_within_a_second_while_poison_is_ingested(tmp_path: Path):
    with running(tmp_path, {}) as daemon:
        inbox = tmp_path / "inbox"
        # the prober is a process of its own: this one is busy sending the bodies
        prober = subprocess.Popen([sys.executable, "-c", PROBE, daemon.url],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert prober.stdout is not None and prober.stdout.readline() == "ready\n"

        def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
            return httpx.post(f"{daemon.url}/v1/snapshots", content=body, headers=headers,
                              timeout=60)

        try:
            # a poison file first in the drop folder, a good one behind it
            (inbox / "a-deep.json").write_bytes(b"[" * 10_000 + b"]" * 10_000)
            (inbox / "b-good.jsonl").write_bytes(jsonl(snapshot(store="from-file")))
            with ThreadPoolExecutor(max_workers=16) as pool:
                poison = {name: pool.submit(post, body, headers)
                          for name, (body, headers) in POISON.items()}
                valid = [pool.submit(post, json.dumps(snapshot(store=f"ok-{n}")).encode(), JSON)
                         for n in range(12)]
                answers = {name: future.result() for name, future in poison.items()}
                accepted = [future.result() for future in valid]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not list((inbox / "processed").iterdir()):
                time.sleep(0.1)
        finally:
            slowest, probes = map(float, prober.communicate("stop\n", timeout=30)[0].split())
            prober.wait()

        assert probes >= 3 and slowest < 1.0, f"/healthz took {slowest:.2f} s"
        assert all(r.status_code == 200 and r.json()["accepted"] == 1 for r in accepted)
        for name, response in answers.items():
            report = response.json()
            if name == "bad UTF-8 line":
                assert response.status_code == 200 and report["accepted"] == 1, report
            else:
                assert response.status_code == 422, (name, report)
            assert report["errors"], name
        assert [p.name.split("-", 1)[1] for p in (inbox / "processed").iterdir()] == [
            "b-good.jsonl"]
        assert any(p.name.endswith("a-deep.json") for p in (inbox / "rejected").iterdir())
        print(f"slowest of {probes:.0f} /healthz during poison: {slowest * 1000:.0f} ms")
