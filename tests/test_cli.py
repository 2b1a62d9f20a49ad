"""The watcher command, as a user runs it (typer's runner, a real SQLite file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT, jsonl, snapshot
from watcher.cli import app
from watcher.config import load_settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WATCHER_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    config = tmp_path / "watcher.yaml"
    config.write_text(f"rules: {ROOT / 'rules'}\n", encoding="utf-8")
    monkeypatch.setenv("WATCHER_CONFIG", str(config))
    return tmp_path


def watcher(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--log-json", *args])
    return result.exit_code, result.output


class TestIngest:
    def test_a_bad_record_is_reported_by_line_and_field_and_the_rest_ingested(self, env: Path):
        code, out = watcher("ingest", str(ROOT / "examples" / "bad-records.jsonl"))
        assert code == 1
        assert "2 accepted" in out and "1 rejected" in out
        assert "line 2, field 'metrics.dispute_rate'" in out
        code, out = watcher("rejected", "list", "--format", "json")
        [kept] = json.loads(out)["rejected"]
        assert kept["location"] == "line 2" and "amz-us-08" in kept["raw"]

    def test_clean_input_exits_zero_and_the_examples_give_a_pip(self, env: Path):
        code, _ = watcher("ingest", str(ROOT / "examples" / "snapshots.jsonl"),
                          str(ROOT / "examples" / "stores.csv"))
        assert code == 0
        code, out = watcher("incidents", "list", "--format", "json")
        found = {(i["rule"], i["subject"], i["status"]) for i in json.loads(out)["incidents"]}
        assert ("pip-recommended", "li.wei", "open") in found
        assert ("dispute-rate-high", "shopee-my-02", "resolved") in found
        assert ("penalty-received", "tts-uk-03", "open") in found
        assert ("account-health-low", "amz-us-01", "open") in found

    def test_ingesting_twice_opens_nothing_new(self, env: Path):
        path = env / "one.jsonl"
        path.write_bytes(jsonl(snapshot(penalty_count=2)))
        watcher("ingest", str(path))
        code, out = watcher("ingest", str(path))
        assert code == 0 and "1 unchanged" in out and "0 incident(s) opened" in out


class TestIncidents:
    @pytest.fixture
    def incident_id(self, env: Path) -> int:
        path = env / "x.jsonl"
        path.write_bytes(jsonl(snapshot(account_health_score=80)))
        watcher("ingest", str(path))
        _, out = watcher("incidents", "list", "--format", "json")
        return int(json.loads(out)["incidents"][0]["id"])

    def test_show_json_carries_the_contract_fields_and_the_timeline(self, incident_id: int):
        code, out = watcher("incidents", "show", str(incident_id), "--format", "json")
        data = json.loads(out)
        assert code == 0
        for key in ("id", "rule", "subject", "store", "operator", "status", "severity",
                    "opened_at", "resolved_at", "events"):
            assert key in data
        assert [e["kind"] for e in data["events"]] == ["opened"]

    def test_ack_then_resolve_are_timeline_entries_with_actor_and_note(self, incident_id: int):
        assert watcher("incidents", "ack", str(incident_id), "--by", "ana",
                       "--note", "calling the store")[0] == 0
        assert watcher("incidents", "resolve", str(incident_id), "--by", "ana")[0] == 0
        _, out = watcher("incidents", "show", str(incident_id), "--format", "json")
        data = json.loads(out)
        assert data["status"] == "resolved"
        assert [(e["kind"], e["actor"], e["note"]) for e in data["events"]][1:] == [
            ("acknowledged", "ana", "calling the store"), ("resolved", "ana", None)]

    def test_acknowledging_a_resolved_incident_is_refused(self, incident_id: int):
        watcher("incidents", "resolve", str(incident_id), "--by", "ana")
        code, out = watcher("incidents", "ack", str(incident_id), "--by", "ana")
        assert code == 1 and "already resolved" not in out and "only an open incident" in out

    def test_status_filter(self, incident_id: int):
        _, out = watcher("incidents", "list", "--status", "resolved", "--format", "json")
        assert json.loads(out) == {"total": 0, "limit": 100, "offset": 0, "next_offset": None,
                                   "incidents": []}

    def test_json_lists_say_how_many_in_all_and_where_the_next_page_starts(self, env: Path):
        path = env / "many.jsonl"
        path.write_bytes(jsonl(*(snapshot(f"s{n}", penalty_count=1) for n in range(5))))
        watcher("ingest", str(path))
        _, out = watcher("incidents", "list", "--limit", "2", "--format", "json")
        first = json.loads(out)
        assert (first["total"], first["limit"], first["offset"], first["next_offset"]) == (
            5, 2, 0, 2)
        _, out = watcher("incidents", "list", "--limit", "2", "--offset", "4", "--format",
                         "json")
        last = json.loads(out)
        assert len(last["incidents"]) == 1 and last["next_offset"] is None
        seen = {i["id"] for i in first["incidents"]} | {i["id"] for i in last["incidents"]}
        assert len(seen) == 3
        code, out = watcher("incidents", "list", "--limit", "2")
        assert code == 0 and "(1-2 of 5; next page: --offset 2)" in out

    def test_most_severe_first_on_request_and_an_unknown_order_is_refused(self, env: Path):
        path = env / "mixed.jsonl"
        path.write_bytes(jsonl(snapshot("a", "2026-09", account_health_score=80),
                               snapshot("b", "2026-10", dispute_rate=0.05),
                               snapshot("c", "2026-10", account_health_score=70)))
        watcher("ingest", str(path))
        _, out = watcher("incidents", "list", "--sort", "severity", "--format", "json")
        found = json.loads(out)["incidents"]
        assert [(i["severity"], i["store"]) for i in found] == [
            ("critical", "c"), ("critical", "a"), ("high", "b")]
        _, out = watcher("incidents", "list", "--format", "json")
        assert [i["store"] for i in json.loads(out)["incidents"]] == ["c", "b", "a"]
        code, out = watcher("incidents", "list", "--sort", "loudest")
        assert code == 2 and "--sort is newest or severity, not 'loudest'" in out


class TestRulesCheck:
    def test_the_default_pack_checks(self, env: Path):
        code, out = watcher("rules", "check", str(ROOT / "rules"))
        assert code == 0 and "OK" in out

    def test_a_broken_file_is_reported_with_file_and_line(self, env: Path):
        bad = env / "bad.yaml"
        bad.write_text("rules:\n  - id: x\n    description: d\n    condition: gmv <\n"
                       "    severity: high\n    audience: ops\n"
                       "    message: {en: a, zh-CN: b}\n", encoding="utf-8")
        code, out = watcher("rules", "check", str(bad))
        assert code == 2 and f"config error: {bad}, line 4" in out


class TestIngestSource:
    def test_a_seller_central_report_ingests_with_source_and_store(self, env: Path):
        fixture = ROOT / "tests" / "fixtures" / "platforms" / "amazon-spapi-seller-performance.json"
        code, out = watcher("ingest", "--source", "amazon-spapi", "--store", "amz-us-01",
                            str(fixture))
        assert code == 0 and "2 accepted" in out

    def test_source_without_store_is_refused(self, env: Path):
        code, out = watcher("ingest", "--source", "shopee", "x.json")
        assert code == 2 and "--store" in out

    def test_an_unknown_source_lists_the_known_ones(self, env: Path):
        code, out = watcher("ingest", "--source", "ebay", "--store", "s", "x.json")
        assert code == 2 and "amazon-spapi" in out


class TestReadmeConfiguration:
    def test_the_configuration_example_in_the_readme_loads(self, tmp_path: Path) -> None:
        """The README's annotated config is what users copy: it must be a valid config."""
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        block = text.split("## Configuration", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
        path = tmp_path / "config.yaml"
        path.write_text(block, encoding="utf-8")
        settings = load_settings(path, env={"SMTP_PASSWORD": "pw", "WECOM_BOT_KEY": "k" * 20})
        assert {"compliance-hook", "managers-mail", "team-lead"} <= settings.channel_names()
