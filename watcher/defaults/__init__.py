"""The built-in data kpi-watch ships inside its package, found with importlib.resources.

The rule pack (with its tests), the message templates, the column mappings and the
example data are used when the config names none. In the repository these are
symlinks to the top-level editable copies (``rules/``, ``channels/templates/``,
``mappings/``, ``examples/``), which a wheel stores as real files; nothing at run
time looks for the repository itself.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def packaged(name: str) -> Path:
    """The folder ``name`` of the package data, as a file-system path.

    A wheel installs unzipped, so the resource is a real folder; a zip import
    would be refused here rather than half-working.
    """
    resource = files(__name__) / name
    if not isinstance(resource, Path):
        raise RuntimeError(f"kpi-watch's package data ({name}) is not on the file system: "
                           f"install the package unzipped (pip install)")
    return resource.resolve()


def rules() -> Path:
    """The default rule pack (``rules/default/`` with its ``tests/``)."""
    return packaged("rules")


def templates() -> Path:
    """The notification templates (one per format, en and zh-CN)."""
    return packaged("templates")


def mappings() -> Path:
    """The column mappings for ERP and help-desk exports (saihu, dianxiaomi, zohodesk)."""
    return packaged("mappings")


def examples() -> Path:
    """The example data ``watcher run --with-examples`` drops in."""
    return packaged("examples")
