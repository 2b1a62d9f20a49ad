"""The drop folder: files in, moved to processed/ or rejected/ with their errors beside."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.daemon.dropfolder import DropFolder
from watcher.errors import ConfigError
from watcher.pipeline import Pipeline
from watcher.store import repository as repo

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


def rejected_log(pipeline: Pipeline) -> list[dict[str, object]]:
    with pipeline.db.engine.connect() as conn:
        return repo.list_rejections(conn)


class TestPoisonFiles:
    """Issue 14, item 2: a file that cannot be read or processed moves to rejected/ with
    its reason, is in the rejected log, and never holds up the files behind it."""

    def test_a_245_key_file_and_a_10000_deep_file_are_rejected_and_the_next_file_goes_in(
            self, drop: DropFolder, pipeline: Pipeline):
        wide = snapshot(**{f"custom_{n}": 1 for n in range(245)})
        (drop.folder / "a-wide.json").write_text(json.dumps(wide), encoding="utf-8")
        (drop.folder / "b-deep.json").write_bytes(b"[" * 10_000 + b"]" * 10_000)
        (drop.folder / "c-good.jsonl").write_bytes(jsonl(snapshot(penalty_count=1)))
        assert drop.scan(settle=False) == 3
        assert drop.scan(settle=False) == 0  # nothing left to retry
        assert [n.split("-", 1)[1] for n in moved(drop, "processed")] == ["c-good.jsonl"]
        rejected = moved(drop, "rejected")
        assert sum(n.endswith(".error.json") for n in rejected) == 2
        errors = [r["error"] for r in rejected_log(pipeline)]
        assert any("MAX_METRICS" in e for e in errors)
        assert any("MAX_NESTING_DEPTH" in e for e in errors)
        assert len(incidents(pipeline)) == 1

    def test_an_unreadable_file_moves_to_rejected_with_its_reason(
            self, drop: DropFolder, pipeline: Pipeline):
        locked = drop.folder / "a-locked.jsonl"
        locked.write_bytes(jsonl(snapshot()))
        locked.chmod(0)
        (drop.folder / "b-good.jsonl").write_bytes(jsonl(snapshot(store="b")))
        try:
            if os.access(locked, os.R_OK):
                pytest.skip("running as root: a mode of 0 does not stop reading")
            drop.scan(settle=False)
        finally:
            for path in drop.folder.rglob("*locked*"):
                path.chmod(0o600)
        [error_file] = [n for n in moved(drop, "rejected") if n.endswith(".error.json")]
        report = json.loads((drop.folder / "rejected" / error_file).read_text())
        assert "cannot be read" in report["rejected"][0]["error"]
        assert any("cannot be read" in str(r["error"]) for r in rejected_log(pipeline))
        assert [n.split("-", 1)[1] for n in moved(drop, "processed")] == ["b-good.jsonl"]

    def test_a_file_whose_processing_fails_is_rejected_and_does_not_block_the_next(
            self, pipeline: Pipeline, tmp_path: Path):
        def ingest(records: Any, source: str) -> Any:
            if "a-" in source:
                raise ArithmeticError("a fault of ours")
            return pipeline.ingest(records, source)

        drop = DropFolder(tmp_path / "inbox", ingest, max_bytes=100_000)
        (drop.folder / "a-first.jsonl").write_bytes(jsonl(snapshot()))
        (drop.folder / "b-second.jsonl").write_bytes(jsonl(snapshot(store="b")))
        drop.scan(settle=False)
        assert [n.split("-", 1)[1] for n in moved(drop, "processed")] == ["b-second.jsonl"]
        assert any(n.endswith("a-first.jsonl") for n in moved(drop, "rejected"))

    def test_an_empty_file_is_rejected_saying_it_holds_nothing(self, drop: DropFolder,
                                                                 pipeline: Pipeline):
        (drop.folder / "empty.csv").write_text("store,platform,period,metrics.gmv\n")
        drop.scan(settle=False)
        assert any("holds no snapshot" in str(r["error"]) for r in rejected_log(pipeline))


    def test_a_file_that_is_not_text_is_rejected_and_the_next_goes_in(
            self, drop: DropFolder, pipeline: Pipeline):
        (drop.folder / "a-binary.json").write_bytes(b"\xff\xfe\x00garbage")
        (drop.folder / "b-good.jsonl").write_bytes(jsonl(snapshot(store="b")))
        drop.scan(settle=False)
        assert any(n.endswith("a-binary.json") for n in moved(drop, "rejected"))
        assert [n.split("-", 1)[1] for n in moved(drop, "processed")] == ["b-good.jsonl"]
        assert any("not UTF-8" in str(r["error"]) for r in rejected_log(pipeline))

class TestLinks:
    """Issue 14, item 3: the drop folder never leaves its folder."""

    def test_a_link_to_an_outside_file_is_refused_logged_and_never_read_or_moved(
            self, drop: DropFolder, pipeline: Pipeline, tmp_path: Path):
        secret = tmp_path / "outside" / "secret.txt"
        secret.parent.mkdir()
        secret.write_text("password=hunter2\n")
        (drop.folder / "innocent.csv").symlink_to(secret)
        (drop.folder / "amazon-spapi" / "link.json").symlink_to(secret)
        assert drop.scan(settle=False) == 0
        drop.scan(settle=False)  # refused once, not again and again
        assert secret.read_text() == "password=hunter2\n"
        assert (drop.folder / "innocent.csv").is_symlink()  # left where it was
        logged = rejected_log(pipeline)
        assert len(logged) == 2
        assert all("symbolic link" in str(r["error"]) for r in logged)
        assert not any("hunter2" in str(r["raw"]) for r in logged)

    def test_a_linked_store_folder_is_not_entered_and_its_files_stay_outside(
            self, drop: DropFolder, pipeline: Pipeline, tmp_path: Path):
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        report = FIXTURES / "amazon-spapi-seller-performance.json"
        (outside / "report.json").write_bytes(report.read_bytes())
        (drop.folder / "amazon-spapi" / "amz-us-01").symlink_to(outside,
                                                               target_is_directory=True)
        assert drop.scan(settle=False) == 0
        assert (outside / "report.json").exists()
        assert moved(drop, "processed") == [] and moved(drop, "rejected") == []
        assert any("symbolic link" in str(r["error"]) for r in rejected_log(pipeline))

    def test_a_source_folder_swapped_for_a_link_while_running_is_not_entered(
            self, drop: DropFolder, pipeline: Pipeline, tmp_path: Path):
        outside = tmp_path / "elsewhere"
        (outside / "amz-us-01").mkdir(parents=True)
        report = FIXTURES / "amazon-spapi-seller-performance.json"
        (outside / "amz-us-01" / "report.json").write_bytes(report.read_bytes())
        (drop.folder / "amazon-spapi").rmdir()
        (drop.folder / "amazon-spapi").symlink_to(outside, target_is_directory=True)
        assert drop.scan(settle=False) == 0
        assert (outside / "amz-us-01" / "report.json").exists()
        assert any("symbolic link" in str(r["error"]) for r in rejected_log(pipeline))

    def test_a_linked_rejected_folder_refuses_to_start(self, pipeline: Pipeline,
                                                       tmp_path: Path):
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        (tmp_path / "outside").mkdir()
        (inbox / "rejected").symlink_to(tmp_path / "outside", target_is_directory=True)
        with pytest.raises(ConfigError, match="symbolic link"):
            DropFolder(inbox, pipeline.ingest, max_bytes=100_000)

    def test_a_file_swapped_for_a_link_after_listing_is_not_read(
            self, drop: DropFolder, pipeline: Pipeline, tmp_path: Path):
        secret = tmp_path / "secret.txt"
        secret.write_text("password=hunter2\n")
        path = drop.folder / "swapped.jsonl"
        path.symlink_to(secret)
        drop.process(path)  # as if listed as a file a moment before
        assert secret.read_text() == "password=hunter2\n"
        assert not any("hunter2" in str(r["raw"]) for r in rejected_log(pipeline))

