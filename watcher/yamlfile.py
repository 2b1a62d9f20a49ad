"""YAML with line numbers: every error about a user-edited file names file and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from watcher.errors import ConfigError

Lines = dict[tuple[str | int, ...], int]


def load(path: Path, *, max_bytes: int = 5_000_000) -> tuple[Any, Lines]:
    """Parse ``path``; return the data and a map from key paths to 1-based line numbers."""
    return loads(read_text(path, max_bytes=max_bytes), str(path))


def read_text(path: Path, *, max_bytes: int, encoding: str = "utf-8") -> str:
    """A user-edited file's text; too big, unreadable or not UTF-8 names the file."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"file is {size} bytes; the limit is {max_bytes}", file=str(path))
        return path.read_text(encoding=encoding)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=str(path)) from None


def loads(text: str, name: str) -> tuple[Any, Lines]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", file=name, line=line) from None
    lines: Lines = {}
    if node is None:
        return None, lines
    try:
        return _build(node, (), lines), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {problem}", file=name,
                          line=mark.line + 1 if mark is not None else None) from None


def _build(node: yaml.Node, path: tuple[str | int, ...], lines: Lines) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if isinstance(key, list | dict):  # YAML allows "? [a, b]: ..." keys; we do not
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value, not a list or a mapping",
                    key_node.start_mark)
            result[key] = _build(value_node, (*path, str(key)), lines)
            lines[(*path, str(key))] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def line_of(lines: Lines, loc: Sequence[str | int]) -> int | None:
    """Line of the deepest known prefix of ``loc``."""
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def config_error(exc: ValidationError, name: str, lines: Lines,
                 prefix: Sequence[str | int] = ()) -> ConfigError:
    """The first validation error as a ConfigError naming file, line and key."""
    error = exc.errors(include_url=False)[0]
    loc = [*prefix, *error["loc"]]
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "extra_forbidden":
        message = "is not a known key"
    key = ".".join(str(p) for p in loc)
    return ConfigError(message, file=name, key=key or None, line=line_of(lines, loc))
