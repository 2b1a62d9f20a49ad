"""The drop folder: files put in it are ingested, then moved out of the way.

Canonical snapshots (JSON, JSON Lines, CSV) go at the top; a platform payload
goes in ``<source>/<store>/`` (e.g. ``amazon-spapi/amz-us-01/report.json``),
since platform reports do not name our store ids. An ERP export read by a
column mapping with a store column may also go straight in ``<source>/``. A file lands in
``processed/`` when at least one record was accepted, or in ``rejected/`` when
none was; either way an ``.error.json`` beside it lists the rejected records.
Hidden files and ``*.part``/``*.tmp`` are still being written and are left
alone, as is a file whose size is still changing.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from watcher.errors import InputError
from watcher.outage import DATABASE_DOWN, Outage
from watcher.pipeline import IngestReport
from watcher.sources import BUILTIN, Catalog
from watcher.validation import RawRecord, Rejection, format_for_name, read_records

log = structlog.get_logger(__name__)

Ingest = Callable[[Iterable[RawRecord | Rejection], str], IngestReport]
INCOMPLETE = (".part", ".tmp", ".partial", ".crdownload")


class DropFolder:
    def __init__(self, folder: Path, ingest: Ingest, *, max_bytes: int,
                 sources: Catalog = BUILTIN) -> None:
        self.folder = folder
        self.ingest = ingest
        self.max_bytes = max_bytes
        self.sources = sources
        self._sizes: dict[Path, int] = {}
        for name in ("processed", "rejected"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        for source in sources.names():
            (folder / source).mkdir(exist_ok=True)

    def candidates(self) -> list[Path]:
        """Top-level files, ``<source>/<store>/`` files, and ``<source>/`` files of a column
        mapping that reads the store from its own column."""
        found = [p for p in sorted(self.folder.iterdir()) if p.is_file()]
        for source in self.sources.names():
            base = self.folder / source
            if base.is_dir():
                found += sorted(p for store in base.iterdir() if store.is_dir()
                                for p in store.iterdir() if p.is_file())
                if not self.sources.needs_store(source):
                    found += sorted(p for p in base.iterdir() if p.is_file())
        return [p for p in found if not p.name.startswith(".") and p.suffix not in INCOMPLETE]

    def ready_files(self) -> list[Path]:
        """Files whose size did not change since the last look (writers are done)."""
        ready = []
        current: dict[Path, int] = {}
        for path in self.candidates():
            size = path.stat().st_size
            current[path] = size
            if self._sizes.get(path) == size:
                ready.append(path)
        self._sizes = current
        return ready

    def scan(self, *, settle: bool = True) -> int:
        files = self.ready_files() if settle else self.candidates()
        for path in files:
            self.process(path)
        return len(files)

    def process(self, path: Path) -> None:
        relative = path.relative_to(self.folder)
        source = f"drop:{relative}"
        errors: list[dict[str, object]] = []
        accepted = 0
        try:
            if path.stat().st_size > self.max_bytes:
                raise InputError(f"file is {path.stat().st_size} bytes; the limit is "
                                 f"{self.max_bytes}", location=path.name)
            content = path.read_bytes()
            if len(relative.parts) > 1:
                store = relative.parts[1] if len(relative.parts) == 3 else None
                records: Iterable[RawRecord | Rejection] = self.sources.records(
                    relative.parts[0], content, store=store)
            else:
                records = read_records(content, format_for_name(path.name))
            report = self.ingest(records, source)
            accepted = report.accepted
            errors = [r.as_dict() for r in report.rejected]
        except InputError as exc:
            errors = [{"source": source, "location": exc.location, "field": exc.field,
                       "error": exc.reason}]
        target_dir = self.folder / ("processed" if accepted else "rejected")
        target_dir = target_dir.joinpath(*relative.parts[:-1])
        target_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{stamp}-{path.name}"
        shutil.move(str(path), target)
        if errors:
            target.with_name(target.name + ".error.json").write_text(
                json.dumps({"file": path.name, "accepted": accepted, "rejected": errors},
                           ensure_ascii=False, indent=2), encoding="utf-8")
        log.info("drop_file_done", file=path.name, accepted=accepted, rejected=len(errors),
                 moved_to=str(target))

    def run_forever(self, stop: threading.Event, poll_seconds: float) -> None:
        outage = Outage("drop-folder")
        while not stop.is_set():
            wait = poll_seconds
            try:
                self.scan()
            except DATABASE_DOWN as exc:  # the files wait; logged once per outage
                wait = max(wait, outage.failed(exc))
            except Exception:
                log.exception("drop_folder_scan_failed", folder=str(self.folder))
            else:
                outage.ok()
            stop.wait(wait)


