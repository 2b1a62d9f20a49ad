"""What a newcomer meets first, trying the README: messages, tables and lists that
say what they mean (issue 15, point 5)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT, jsonl, snapshot
from watcher.cli import app
from watcher.pipeline import Pipeline
from watcher.store import repository as repo
from watcher.validation import read_records

runner = CliRunner()
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
EXAMPLES = ROOT / "examples"


def watcher(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--log-json", *args])
    return result.exit_code, result.output


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATCHER_CONFIG", raising=False)
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def examples(env: Path) -> Path:
    code, _ = watcher("ingest", str(EXAMPLES / "snapshots.jsonl"), str(EXAMPLES / "stores.csv"))
    assert code == 0
    return env


class TestBusyPort:
    def test_run_on_a_taken_port_says_so_suggests_another_and_starts_nothing(self, env: Path):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            code, out = watcher("run", "--port", str(port), "--with-examples")
        assert code == 1
        assert f"port {port} on 127.0.0.1 is already in use" in out
        assert f"--port {port + 1}" in out
        assert not (env / "data").exists() and not (env / "inbox").exists()


class TestTables:
    def test_cut_text_is_marked_and_times_are_iso_8601_with_the_zone(self, examples: Path):
        code, out = watcher("incidents", "list")
        assert code == 0
        lines = out.splitlines()
        assert any(line.rstrip().endswith("…") for line in lines[1:])  # titles over 60
        pip = next(line for line in lines if "pip-recommended" in line)
        assert re.search(ISO, pip)

    def test_a_short_value_is_never_cut(self, env: Path):
        data = env / "x.jsonl"
        data.write_bytes(jsonl(snapshot(period="2026-11-02", account_health_score=80.5)))
        watcher("ingest", str(data))
        _, out = watcher("incidents", "list")
        assert "2026-11-02" in out and "80.5" in out

    def test_json_times_have_the_same_form(self, env: Path):
        watcher("ingest", str(EXAMPLES / "bad-records.jsonl"))
        _, out = watcher("rejected", "list", "--format", "json")
        (rejected,) = json.loads(out)["rejected"]
        assert re.fullmatch(ISO, rejected["received_at"])
        _, out = watcher("rejected", "list")
        assert re.search(ISO, out.splitlines()[1])


class TestPaging:
    def test_the_total_counts_what_the_same_filters_page_through(self, pipeline: Pipeline):
        pipeline.ingest(read_records(jsonl(
            *(snapshot(f"s{n}", penalty_count=1) for n in range(4)),
            snapshot("s9", account_health_score=80))), "test")
        with pipeline.db.engine.connect() as conn:
            assert repo.count_incidents(conn) == 5
            assert repo.count_incidents(conn, rule="penalty-received") == 4
            assert repo.count_incidents(conn, rule="penalty-received", store="s1") == 1
            pages = [repo.list_incidents(conn, rule="penalty-received", limit=3, offset=o)
                     for o in (0, 3)]
        assert [len(p) for p in pages] == [3, 1]
        assert len({i.id for p in pages for i in p}) == 4


class TestIncidentShow:
    def test_each_timeline_event_says_its_value_and_period_as_the_page_does(self, env: Path):
        data = env / "x.jsonl"
        data.write_bytes(jsonl(snapshot(account_health_score=80)))
        watcher("ingest", str(data))
        code, out = watcher("incidents", "show", "1")
        assert code == 0
        assert re.search(rf"    {ISO}  opened by ", out)
        assert "Account health score 80 (threshold 90) in 2026-10" in out


class TestMessages:
    def test_a_pip_names_its_indicators_as_people_read_them(self, examples: Path):
        _, out = watcher("incidents", "list", "--rule", "pip-recommended", "--format", "json")
        (pip,) = json.loads(out)["incidents"]
        # the failing indicators of li.wei's monthly cards: GMV, and a mature store's margin
        assert pip["title"]["en"].endswith("(indicators: GMV, Net margin)")
        assert pip["title"]["zh-CN"].endswith("（未达标指标：销售额, 利润率）")


class TestDocsAgreeWithTheExamples:
    def test_li_wei_misses_the_gmv_target_four_months_running(self):
        records = [json.loads(line) for line in
                   (EXAMPLES / "snapshots.jsonl").read_text(encoding="utf-8").splitlines()]
        missed = sorted(r["period"] for r in records if r.get("operator") == "li.wei"
                        and r["metrics"]["gmv"] < r["targets"]["gmv"])
        assert missed == ["2026-07", "2026-08", "2026-09", "2026-10"]
        for doc in (ROOT / "README.md", EXAMPLES / "README.md"):
            assert "four months running" in doc.read_text(encoding="utf-8"), doc
