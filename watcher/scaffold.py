"""``watcher init``: a working, commented starting point in a folder of the user's.

What it writes is copied from the package data (watcher/defaults/): a config that
points at editable copies of the built-in rule pack (with its tests), templates and
mappings, an empty targets file and roster, and an example of the environment that
carries channel secrets. Nothing is overwritten unless asked: a team's edited rules
are worth more than a fresh copy.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from watcher import defaults
from watcher.errors import AlreadyExists


@dataclass(frozen=True, slots=True)
class Item:
    source: Path  # a packaged file or folder
    name: str  # where it goes, relative to the target folder


def plan() -> tuple[Item, ...]:
    init = defaults.packaged("init")
    return (
        Item(init / "config.yaml", "config.yaml"),
        Item(defaults.rules(), "rules"),
        Item(defaults.templates(), "templates"),
        Item(defaults.mappings(), "mappings"),
        Item(init / "targets.yaml", "targets.yaml"),
        Item(init / "roster.yaml", "roster.yaml"),
        Item(init / "env.example", ".env.example"),
    )


def init_folder(target: Path, *, force: bool = False) -> list[Path]:
    """Write the starting point into ``target`` (created if missing); the paths written.

    Without ``force`` an existing file or folder of the plan refuses the whole
    run before anything is written, naming it; with ``force`` each is replaced.
    """
    items = plan()
    if not force:
        for item in items:
            if (target / item.name).exists():
                raise AlreadyExists(str(target / item.name))
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for item in items:
        dest = target / item.name
        if item.source.is_dir():
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(item.source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(item.source, dest)
        written.append(dest)
    return written
