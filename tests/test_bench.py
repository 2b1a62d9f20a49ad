"""The benchmark harness runs (benchmarks are not tests: no thresholds asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# A hang guard, not a timing: the harness runs for a minute or two on a quiet machine.
pytestmark = pytest.mark.timeout(300)


class TestBenchHarness:
    def test_quick_mode_prints_every_figure_as_json(self):
        result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json"], cwd=ROOT,
                                capture_output=True, text=True, timeout=240, check=True)
        figures = json.loads(result.stdout)
        assert figures["raw_engine"]["facts_per_s"] > 0
        assert figures["raw_engine"]["c_path_facts_per_s"] > 0
        assert figures["batch_sqlite"]["snapshots_per_s"] > 0
        assert figures["latency_200"]["notified"] > 0
        assert set(figures["rule_scaling"]) and set(figures["history_scaling"])
        assert all(v > 0 for v in figures["memory"]["rss_mb"].values())

    def test_the_history_bench_at_its_smallest_size_prints_its_figures_as_json(self):
        result = subprocess.run([sys.executable, "-m", "bench.history", "--quick", "--json"],
                                cwd=ROOT, capture_output=True, text=True, timeout=240,
                                check=True)
        figures = json.loads(result.stdout)
        assert figures["fill"]["snapshots"] == figures["stores"] * figures["days"]
        assert figures["full"]["snapshots_per_s"] > 0
        assert figures["no_history"]["snapshots_per_s"] > 0
        assert figures["history_rows"] > 0  # the batch's history was read from the store
        assert figures["live_history_incidents"]  # the generated events made rules fire
