"""YAML with line numbers: every error about a user-edited file names file and line.

Documents are composed by ``_BoundedLoader``, which refuses deep nesting and alias
expansion beyond a small budget (``watcher/limits.py``) while composing, so a few
hundred bytes of nested aliases ("billion laughs") or a self-referencing alias are
refused before anything is built from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from watcher.errors import ConfigError
from watcher.limits import YAML_MAX_ALIAS_NODES, YAML_MAX_DEPTH

Lines = dict[tuple[str | int, ...], int]


def load(path: Path, *, max_bytes: int = 5_000_000,
         limit_name: str | None = None) -> tuple[Any, Lines]:
    """Parse ``path``; return the data and a map from key paths to 1-based line numbers."""
    return loads(read_text(path, max_bytes=max_bytes, limit_name=limit_name), str(path))


def read_text(path: Path, *, max_bytes: int, encoding: str = "utf-8",
              limit_name: str | None = None) -> str:
    """A user-edited file's text; too big, unreadable or not in ``encoding`` names the
    file. At most ``max_bytes`` are read, even from a file that grows while it is read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            size = max(path.stat().st_size, len(data))
            limit = f" ({limit_name})" if limit_name else ""
            raise ConfigError(f"file is {size} bytes; the limit is {max_bytes}{limit}",
                              file=str(path))
        return data.decode(encoding)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"not {encoding.upper()} text", file=str(path)) from None


def loads(text: str, name: str) -> tuple[Any, Lines]:
    try:
        loader = _BoundedLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
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


class _PythonEvents(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's own parser, for an installation without libyaml."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


try:  # libyaml parses about seven times faster; the composer stays ours
    from yaml._yaml import CParser as _Events
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Events = _PythonEvents  # type: ignore[misc,assignment]


class _BoundedLoader(_Events, yaml.composer.Composer, yaml.constructor.SafeConstructor,
                     yaml.resolver.Resolver):
    """Counts, while composing, the nodes each node stands for once aliases are expanded.

    libyaml's parser brings a composer of its own, which cannot count: PyYAML's is used."""

    get_single_node = yaml.composer.Composer.get_single_node
    compose_document = yaml.composer.Composer.compose_document
    compose_scalar_node = yaml.composer.Composer.compose_scalar_node
    compose_sequence_node = yaml.composer.Composer.compose_sequence_node
    compose_mapping_node = yaml.composer.Composer.compose_mapping_node

    def __init__(self, text: str) -> None:
        _Events.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._sizes: dict[int, int] = {}  # id(node) -> expanded node count, once complete
        self._alias_nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                if id(target) not in self._sizes:
                    raise _refusal(f"alias '*{event.anchor}' refers to the node that holds it",
                                   event)
                self._alias_nodes += self._sizes[id(target)]
                if self._alias_nodes > YAML_MAX_ALIAS_NODES:
                    raise _refusal(f"aliases expand to more than {YAML_MAX_ALIAS_NODES} "
                                   "nodes (limit YAML_MAX_ALIAS_NODES)", event)
            return yaml.composer.Composer.compose_node(self, parent, index)
        self._depth += 1
        if self._depth > YAML_MAX_DEPTH:
            raise _refusal(f"nested more than {YAML_MAX_DEPTH} levels deep "
                           "(limit YAML_MAX_DEPTH)", event)
        try:
            node = yaml.composer.Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        return node


def _refusal(problem: str, event: yaml.Event | None) -> yaml.MarkedYAMLError:
    mark: Any = event.start_mark if event is not None else None
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


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
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


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
