"""The drop folder: files in, moved to processed/ or rejected/ with their errors beside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.daemon.dropfolder import DropFolder
from watcher.pipeline import Pipeline

FIXTURES = ROOT / "tests" / "fixtures" / "platforms"


@pytest.fixture
def drop(pipeline: Pipeline, tmp_path: Path) -> DropFolder:
    return DropFolder(tmp_path / "inbox", pipeline.ingest, max_bytes=100_000)


def moved(drop: DropFolder, where: str) -> list[str]:
    return sorted(str(p.relative_to(drop.folder / where))
                  for p in (drop.folder / where).rglob("*") if p.is_file())


class TestDropFolder:
    def test_a_good_file_is_ingested_and_moved_to_processed(self, drop: DropFolder,
                                                             pipeline: Pipeline):
        (drop.folder / "october.jsonl").write_bytes(jsonl(snapshot(penalty_count=1)))
        assert drop.scan(settle=False) == 1
        assert [n.split("-", 1)[1] for n in moved(drop, "processed")] == ["october.jsonl"]
        assert len(incidents(pipeline)) == 1

    def test_a_file_is_left_alone_until_its_size_settles(self, drop: DropFolder):
        (drop.folder / "growing.jsonl").write_bytes(jsonl(snapshot()))
        assert drop.scan() == 0  # first look: size noted
        assert drop.scan() == 1  # unchanged since: done

    def test_partly_bad_file_goes_to_processed_with_its_errors_beside(self, drop: DropFolder):
        (drop.folder / "mixed.jsonl").write_bytes(jsonl(snapshot(), snapshot(dispute_rate=4)))
        drop.scan(settle=False)
        names = moved(drop, "processed")
        error_file = next(n for n in names if n.endswith(".error.json"))
        report = json.loads((drop.folder / "processed" / error_file).read_text())
        assert report["accepted"] == 1
        assert report["rejected"][0]["location"] == "line 2"
        assert report["rejected"][0]["field"] == "metrics.dispute_rate"

    def test_a_wholly_bad_file_goes_to_rejected(self, drop: DropFolder):
        (drop.folder / "junk.json").write_text("{nope", encoding="utf-8")
        drop.scan(settle=False)
        assert any(n.endswith("junk.json.error.json") for n in moved(drop, "rejected"))

    def test_temporary_and_hidden_files_are_ignored(self, drop: DropFolder):
        (drop.folder / "x.jsonl.part").write_bytes(jsonl(snapshot()))
        (drop.folder / ".hidden.jsonl").write_bytes(jsonl(snapshot()))
        assert drop.scan(settle=False) == 0

    def test_a_seller_central_report_in_its_source_folder_becomes_incidents(
            self, drop: DropFolder, pipeline: Pipeline):
        target = drop.folder / "amazon-spapi" / "amz-us-01"
        target.mkdir(parents=True)
        report = (FIXTURES / "amazon-spapi-seller-performance.json").read_bytes()
        (target / "report.json").write_bytes(report)
        drop.scan(settle=False)
        assert moved(drop, "processed")[0].startswith("amazon-spapi/amz-us-01/")
        from watcher.store import repository as repo
        with pipeline.db.engine.connect() as conn:
            stored = repo.find_snapshots(conn, platform="amazon")
        assert {row["store"] for row in stored} == {"amz-us-01-us", "amz-us-01-ca"}
        us = next(row for row in stored if row["store"] == "amz-us-01-us")
        assert us["metrics"]["order_defect_rate_mfn"] == 0.0117
        assert "accountStatuses" in us["raw"]  # the platform payload is kept whole
