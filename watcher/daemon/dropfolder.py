"""The drop folder: files put in it are ingested, then moved out of the way.

Canonical snapshots (JSON, JSON Lines, CSV) go at the top; a platform payload
goes in ``<source>/<store>/`` (e.g. ``amazon-spapi/amz-us-01/report.json``),
since platform reports do not name our store ids. An ERP export read by a
column mapping with a store column may also go straight in ``<source>/``. A file lands in
``processed/`` when at least one record was accepted, or in ``rejected/`` when
none was; either way an ``.error.json`` beside it lists the rejected records.
Hidden files and ``*.part``/``*.tmp`` are still being written and are left
alone, as is a file whose size is still changing.

A file that cannot be read or processed is moved to ``rejected/`` with its
reason, and its refusal is in the rejected log: it is never retried forever,
and never holds up the files behind it. Only a database outage leaves a file
in place, to be tried again. The folder never leaves itself: a symbolic link
(to a file or a folder, at any level) is refused and logged once, never
followed, read or moved, and files are opened without following links.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from watcher.errors import ConfigError, InputError
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
        self._refused: set[Path] = set()  # links and files that could not be moved away
        for name in ("processed", "rejected", *sources.names()):
            place = folder / name
            if place.is_symlink():  # files would be moved out of, or read from, elsewhere
                raise ConfigError(f"'{name}' in the drop folder is a symbolic link; the drop "
                                  "folder reads and moves files only inside itself",
                                  file=str(place))
            place.mkdir(parents=True, exist_ok=True)

    def candidates(self) -> list[Path]:
        """Top-level files, ``<source>/<store>/`` files, and ``<source>/`` files of a column
        mapping that reads the store from its own column. Links are refused, not followed."""
        found = self._files(self.folder)
        for source in self.sources.names():
            base = self.folder / source
            if base.is_symlink():  # made a link since start: refused as a top-level entry
                continue
            for store in self._entries(base, folders=True):
                found += self._files(store)
            if not self.sources.needs_store(source):
                found += self._files(base)
        return [p for p in found if not p.name.startswith(".") and p.suffix not in INCOMPLETE]

    def _entries(self, folder: Path, *, folders: bool) -> list[Path]:
        """Regular files (or folders) directly in ``folder``, by name; never through a link."""
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except FileNotFoundError:  # a source folder someone removed: nothing in it
            return []
        except OSError as exc:
            log.warning("drop_folder_unreadable", folder=str(folder), error=exc.strerror)
            return []
        chosen = []
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                if not entry.name.startswith(".") and path not in self._refused:
                    self._refuse_link(path)
            elif entry.is_dir(follow_symlinks=False) if folders \
                    else entry.is_file(follow_symlinks=False):
                chosen.append(path)
        return chosen

    def _files(self, folder: Path) -> list[Path]:
        return [p for p in self._entries(folder, folders=False) if p not in self._refused]

    def _refuse_link(self, path: Path) -> None:
        """Logged and put in the rejected log once; left where it is (moving a link is
        harmless, but its owner should see it where they put it)."""
        self._refused.add(path)
        source = f"drop:{path.relative_to(self.folder)}"
        reason = ("is a symbolic link; the drop folder never follows links (copy the file "
                  "in instead)")
        log.warning("drop_link_refused", path=str(path))
        self._record(source, reason)

    def _record(self, source: str, reason: str, raw: str = "") -> None:
        """A refusal of a whole file in the rejected log (``watcher rejected list``)."""
        try:
            self.ingest([Rejection(source, "file", None, reason, raw)], source)
        except Exception:
            log.exception("drop_rejection_not_recorded", source=source)

    def ready_files(self) -> list[Path]:
        """Files whose size did not change since the last look (writers are done)."""
        ready = []
        current: dict[Path, int] = {}
        for path in self.candidates():
            try:
                size = path.lstat().st_size
            except OSError:
                continue  # gone since it was listed
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
            content = self._read(path)
            if len(relative.parts) > 1:
                store = relative.parts[1] if len(relative.parts) == 3 else None
                records: Iterable[RawRecord | Rejection] = self.sources.records(
                    relative.parts[0], content, store=store)
            else:
                records = read_records(content, format_for_name(path.name), max_records=None)
            report = self.ingest(records, source)
            accepted = report.accepted
            errors = [r.as_dict() for r in report.rejected]
        except DATABASE_DOWN:
            raise  # not the file's fault: it stays for the next scan (run_forever backs off)
        except Exception as exc:
            errors = [self._file_refused(path, source, exc)]
        self._move(path, relative, accepted, errors)

    def _read(self, path: Path) -> bytes:
        """The file's bytes, opened without following a link (one swapped in since the
        listing is refused by the kernel) and only if it is a regular file."""
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise InputError("is not a regular file", location="file")
            if status.st_size > self.max_bytes:
                raise InputError(f"file is {status.st_size} bytes; the limit is "
                                 f"{self.max_bytes}", location="file")
            return file.read(self.max_bytes + 1)

    def _file_refused(self, path: Path, source: str, exc: Exception) -> dict[str, object]:
        """Why a whole file was refused, put in the rejected log; the file moves on."""
        if isinstance(exc, InputError):
            location, field, reason = exc.location or "file", exc.field, exc.reason
        elif isinstance(exc, OSError):
            location, field, reason = "file", None, f"cannot be read: {exc.strerror or exc}"
        else:  # a fault of ours: this file only, kept in rejected/ to be dropped again
            log.exception("drop_file_failed", file=str(path))
            location, field = "file", None
            reason = f"could not be processed ({type(exc).__name__}: {exc})"
        self._record(source, reason)
        return {"source": source, "location": location, "field": field, "error": reason}

    def _move(self, path: Path, relative: Path, accepted: int,
              errors: list[dict[str, object]]) -> None:
        target_dir = self.folder / ("processed" if accepted else "rejected")
        target_dir = target_dir.joinpath(*relative.parts[:-1])
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        target = target_dir / f"{stamp}-{path.name}"
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), target)
            if errors:
                target.with_name(target.name + ".error.json").write_text(
                    json.dumps({"file": path.name, "accepted": accepted, "rejected": errors},
                               ensure_ascii=False, indent=2), encoding="utf-8")
        except OSError as exc:  # e.g. no right to move it: skipped from now on, said once
            self._refused.add(path)
            log.error("drop_file_not_moved", file=str(path), error=exc.strerror or str(exc))
            return
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
