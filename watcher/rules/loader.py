"""Loading rule packs: a file or a folder of YAML files into one frozen ``RulePack``.

Every limit of ``watcher/limits.py``'s "rule files" section is checked here or in the
models before anything is compiled; ``watcher/rules/trial.py`` then compiles the pack
in a child process before any process of ours does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watcher import yamlfile
from watcher.errors import ConfigError
from watcher.limits import RULE_FILE_MAX_BYTES, RULE_PACK_MAX_RULES
from watcher.rules.model import Rule, RulePack

RULE_SUFFIXES = (".yaml", ".yml")


def rule_files(path: Path) -> list[Path]:
    """Rule files under ``path``; ``*.test.yaml`` files and ``tests/`` hold rule tests."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError("no such file or folder", file=str(path))
    return sorted(
        p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and not is_test_file(p, path))


def is_test_file(file: Path, folder: Path) -> bool:
    """Rule tests (``watcher rules test``) sit in a ``tests/`` folder or are ``*.test.yaml``."""
    return (file.name.endswith((".test.yaml", ".test.yml"))
            or "tests" in file.relative_to(folder).parts)


def load_pack(path: Path) -> RulePack:
    files = rule_files(path)
    if not files:
        raise ConfigError("holds no rule files (*.yaml)", file=str(path))
    rules: list[Rule] = []
    origins: dict[str, tuple[str, int]] = {}
    for file in files:
        for rule, line in _load_file(file, room=RULE_PACK_MAX_RULES - len(rules)):
            if rule.id in origins:
                first, first_line = origins[rule.id]
                raise ConfigError(f"rule id '{rule.id}' is already defined in "
                                  f"{first}:{first_line}", file=str(file), line=line, key="id")
            origins[rule.id] = (str(file), line)
            rules.append(rule)
    return RulePack(rules=tuple(rules), sources=tuple(str(f) for f in files), origins=origins)


def _load_file(file: Path, room: int) -> list[tuple[Rule, int]]:
    data, lines = yamlfile.load(file, max_bytes=RULE_FILE_MAX_BYTES,
                                 limit_name="RULE_FILE_MAX_BYTES")
    name = str(file)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError("a rule file is a mapping with a 'rules:' list", file=name,
                          line=yamlfile.line_of(lines, ()))
    unknown = set(data) - {"rules", "pack", "description"}
    if unknown:
        key = sorted(str(k) for k in unknown)[0]  # YAML keys may be numbers or booleans
        raise ConfigError("is not a known key (expected rules, pack, description)", file=name,
                          key=key, line=yamlfile.line_of(lines, (key,)))
    if len(data["rules"]) > room:
        raise ConfigError(f"a pack holds at most {RULE_PACK_MAX_RULES} rules "
                          "(limit RULE_PACK_MAX_RULES)", file=name, key=f"rules.{room}",
                          line=yamlfile.line_of(lines, ("rules", max(room, 0))))
    loaded: list[tuple[Rule, int]] = []
    for index, item in enumerate(data["rules"]):
        prefix: tuple[str | int, ...] = ("rules", index)
        line = yamlfile.line_of(lines, prefix) or 0
        if not isinstance(item, dict):
            raise ConfigError("a rule is a mapping", file=name, line=line,
                              key=f"rules.{index}")
        try:
            rule = Rule.model_validate(_normalise(item))
        except ValidationError as exc:
            raise yamlfile.config_error(exc, name, lines, prefix) from None
        loaded.append((rule, line))
    return loaded


def _normalise(item: dict[str, Any]) -> dict[str, Any]:
    labels = item.get("labels")
    if isinstance(labels, dict):
        item = {**item, "labels": {str(k): str(v) for k, v in labels.items()}}
    return item
