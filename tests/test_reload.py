"""Editing a rule file takes effect without restart; a broken edit keeps the old rules."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.daemon.reload import RuleReloader
from watcher.pipeline import Pipeline
from watcher.rules.status import RulesStatus
from watcher.validation import read_records


def touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, (stat.st_atime + 5, stat.st_mtime + 5))


def edit_and_reload(pipeline: Pipeline, tmp_path: Path, pack: Path, old: str, new: str,
                    status: RulesStatus | None = None) -> tuple[bool, Path]:
    """A copy of ``pack`` under reload, edited in compliance.yaml: (took effect, file)."""
    rules = tmp_path / "rules"
    shutil.copytree(pack, rules)
    with ThreadPoolExecutor(max_workers=1) as engine_thread:
        reloader = RuleReloader(rules, pipeline, engine_thread, status=status)
        file = rules / "default" / "compliance.yaml"
        file.write_text(file.read_text().replace(old, new))
        touch_later(file)
        return reloader.check(), file


class TestRuleReloader:
    def test_a_changed_threshold_applies_to_the_next_snapshot(
            self, pipeline: Pipeline, tmp_path: Path, default_pack_path: Path):
        old_version = pipeline.engine.version
        took, _ = edit_and_reload(pipeline, tmp_path, default_pack_path,
                                  "account_health_score < 90", "account_health_score < 95")
        assert took is True
        assert pipeline.engine.version != old_version
        pipeline.ingest(read_records(jsonl(snapshot(account_health_score=93))), "t")
        [incident] = incidents(pipeline)
        assert incident.rule == "account-health-low"
        assert incident.rule_version == pipeline.engine.version

    def test_a_broken_edit_is_refused_and_the_old_rules_keep_running(
            self, pipeline: Pipeline, tmp_path: Path, default_pack_path: Path):
        version = pipeline.engine.version
        took, _ = edit_and_reload(pipeline, tmp_path, default_pack_path,
                                  "condition: penalty_count > 0", "condition: penalty_count >")
        assert took is False
        assert pipeline.engine.version == version
        pipeline.ingest(read_records(jsonl(snapshot(penalty_count=1))), "t")
        assert [i.rule for i in incidents(pipeline)] == ["penalty-received"]
