"""Two pipelines (as two replicas would) racing on one database stay consistent."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.config import load_settings
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.store import open_database
from watcher.validation import read_records


@pytest.mark.postgres
class TestRacingReplicas:
    def test_the_same_snapshots_at_once_give_one_incident_each(
            self, pg_schema_url: str, default_pack_path: Path):
        body = jsonl(*[snapshot(store=f"s{i}", penalty_count=1) for i in range(40)])
        dbs = [open_database(pg_schema_url, auto_upgrade=(i == 0)) for i in range(2)]
        engine = RuleEngine(load_pack(default_pack_path))
        settings = load_settings(env={}, batch_size=7)
        pipelines = [Pipeline(db, engine, settings) for db in dbs]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(pipeline: Pipeline) -> None:
            try:
                barrier.wait()
                pipeline.ingest(read_records(body), "race")
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(p,)) for p in pipelines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        found = incidents(pipelines[0], status="open")
        assert len(found) == 40 and len({i.fingerprint for i in found}) == 40
        for db in dbs:
            db.dispose()
