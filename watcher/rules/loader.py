"""Loading rule packs: a file or a folder of YAML files into one frozen ``RulePack``.

Every limit of ``watcher/limits.py``'s "rule files" section is checked here or in the
models before anything is compiled; ``watcher/rules/trial.py`` then compiles the pack
in a child process before any process of ours does.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watcher import indicators, yamlfile
from watcher.errors import ConfigError
from watcher.indicators import DeclaredMetric
from watcher.limits import RULE_FILE_MAX_BYTES, RULE_PACK_MAX_RULES
from watcher.platforms import Platforms
from watcher.rules.expression import METRIC_ID, Condition, comparisons
from watcher.rules.history import history_metrics
from watcher.rules.model import MetricDeclaration, Rule, RulePack

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


def load_pack(path: Path, platforms: Platforms | None = None) -> RulePack:
    """``platforms``: the names a rule's ``platforms:`` may use (watcher/platforms.py);
    default: those of the built-in sources and mappings."""
    if platforms is None:
        from watcher.sources import builtin_platforms  # the sources import the config

        platforms = builtin_platforms()
    files = rule_files(path)
    if not files:
        raise ConfigError("holds no rule files (*.yaml)", file=str(path))
    loaded: list[_File] = []
    origins: dict[str, tuple[str, int]] = {}
    declared: dict[str, tuple[str, int]] = {}
    metrics: dict[str, DeclaredMetric] = {}
    count = 0
    for file in files:
        part = _load_file(file, room=RULE_PACK_MAX_RULES - count)
        count += len(part.rules)
        for rule, _index, line in part.rules:
            if rule.id in origins:
                first, first_line = origins[rule.id]
                raise ConfigError(f"rule id '{rule.id}' is already defined in "
                                  f"{first}:{first_line}", file=part.name, line=line, key="id")
            origins[rule.id] = (part.name, line)
        for metric, (declaration, line) in part.metrics.items():
            if metric in declared:
                first, first_line = declared[metric]
                raise ConfigError(f"metric '{metric}' is already declared in "
                                  f"{first}:{first_line}", file=part.name, line=line,
                                  key=f"metrics.{metric}")
            declared[metric] = (part.name, line)
            metrics[metric] = declaration
        loaded.append(part)
    for part in loaded:
        _check_metrics(part, metrics)
        _check_platforms(part, platforms)
    return RulePack(rules=tuple(rule for part in loaded for rule, _, _ in part.rules),
                    sources=tuple(str(f) for f in files), origins=origins, metrics=metrics)


@dataclass(frozen=True)
class _File:
    name: str
    lines: yamlfile.Lines
    rules: list[tuple[Rule, int, int]]  # rule, index in the file, line
    metrics: dict[str, tuple[DeclaredMetric, int]]


def _load_file(file: Path, room: int) -> _File:
    data, lines = yamlfile.load(file, max_bytes=RULE_FILE_MAX_BYTES,
                                limit_name="RULE_FILE_MAX_BYTES")
    name = str(file)
    if data is None:
        return _File(name, lines, [], {})
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError("a rule file is a mapping with a 'rules:' list", file=name,
                          line=yamlfile.line_of(lines, ()))
    unknown = set(data) - {"rules", "pack", "description", "metrics"}
    if unknown:
        key = sorted(str(k) for k in unknown)[0]  # YAML keys may be numbers or booleans
        raise ConfigError("is not a known key (expected rules, pack, description, metrics)",
                          file=name, key=key, line=yamlfile.line_of(lines, (key,)))
    if len(data["rules"]) > room:
        raise ConfigError(f"a pack holds at most {RULE_PACK_MAX_RULES} rules "
                          "(limit RULE_PACK_MAX_RULES)", file=name, key=f"rules.{room}",
                          line=yamlfile.line_of(lines, ("rules", max(room, 0))))
    metrics = _declarations(data.get("metrics"), name, lines)
    rules: list[tuple[Rule, int, int]] = []
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
        rules.append((rule, index, line))
    return _File(name, lines, rules, metrics)


def _declarations(section: Any, name: str, lines: yamlfile.Lines
                  ) -> dict[str, tuple[DeclaredMetric, int]]:
    """The ``metrics:`` section: ``{id: {unit, direction, range, names}}``."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError("'metrics:' maps metric ids to their unit, direction and range",
                          file=name, key="metrics", line=yamlfile.line_of(lines, ("metrics",)))
    declared: dict[str, tuple[DeclaredMetric, int]] = {}
    for metric, spec in section.items():
        key = str(metric)
        line = yamlfile.line_of(lines, ("metrics", key)) or 0
        if not METRIC_ID.match(key):
            raise ConfigError("a metric id is lower-case letters, digits and '_'", file=name,
                              key=f"metrics.{key}", line=line)
        if indicators.get(key) is not None:
            raise ConfigError(f"'{key}' is a registry metric (docs/snapshot-format.md); it "
                              "needs no declaration", file=name, key=f"metrics.{key}",
                              line=line)
        try:
            declaration = MetricDeclaration.model_validate(spec)
        except ValidationError as exc:
            raise yamlfile.config_error(exc, name, lines, ("metrics", key)) from None
        declared[key] = (declaration.declared(key), line)
    return declared


def _check_metrics(part: _File, declared: dict[str, DeclaredMetric]) -> None:
    """A rule names registry metrics or metrics the pack declares; nothing is guessed."""
    for rule, index, _line in part.rules:
        conditions: list[tuple[tuple[str | int, ...], Condition | None]] = [
            (("rules", index, "condition"), rule.compiled)]
        conditions += [(("rules", index, "variants", v, "condition"), variant.compiled)
                       for v, variant in enumerate(rule.variants)]
        conditions += [(("rules", index, "resolve"), rule.compiled_resolve)]
        conditions += [(("rules", index, "variants", v, "resolve"), variant.compiled_resolve)
                       for v, variant in enumerate(rule.variants)]
        named = [(path, comparison.metric) for path, condition in conditions
                 for comparison in (comparisons(condition) if condition is not None else ())]
        named += [(("rules", index, key), metric) for key, metric in history_metrics(rule)]
        for path, metric in named:
            if indicators.get(metric) is None and metric not in declared:
                raise ConfigError(
                    _unknown(metric, declared), file=part.name,
                    line=yamlfile.line_of(part.lines, path),
                    key=".".join(str(p) for p in path))


def _check_platforms(part: _File, platforms: Platforms) -> None:
    """A rule on a platform no source produces would never fire: refused, with the name
    meant (``tiktokshop`` is the source, ``tiktok`` its platform)."""
    for rule, index, _line in part.rules:
        for number, name in enumerate(rule.platforms):
            problem = platforms.problem(name)
            if problem is not None:
                raise ConfigError(problem, file=part.name, key=f"rules.{index}.platforms",
                                  line=yamlfile.line_of(part.lines,
                                                        ("rules", index, "platforms", number))
                                  or yamlfile.line_of(part.lines,
                                                      ("rules", index, "platforms")))


def _unknown(metric: str, declared: dict[str, DeclaredMetric]) -> str:
    known = [*indicators.INDICATORS, *indicators.RAW_FIELDS, *declared]
    close = difflib.get_close_matches(metric, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (f"'{metric}' is not a known metric{hint}; a metric the registry does not hold "
            "is declared in the pack's 'metrics:' section with its unit, direction and range")


def _normalise(item: dict[str, Any]) -> dict[str, Any]:
    labels = item.get("labels")
    if isinstance(labels, dict):
        item = {**item, "labels": {str(k): str(v) for k, v in labels.items()}}
    return item
