"""Rule unit tests (``watcher rules test``): snapshots in, the incidents they open out.

Like ``promtool test rules``: a rule pack is data that people edit, so it ships
with cases that pin what it must do. Each case sends canonical snapshots in
order and lists the incidents they must open, *and no others*; a case that
differs fails with a diff. Test files live where the rule loader never reads
them: a ``tests/`` folder of the pack, or files named ``*.test.yaml``.

The replay is the real pipeline (validation with derived metrics, engine,
incidents, PIP streaks) on a scratch in-memory SQLite store that notifies
nobody, the one ``watcher rules backtest`` uses, so a test can never disagree
with what the daemon would do. Snapshots are taken one at a time in the order
listed, each at its ``observed_at`` when it has one (so ``for: 10m`` and
``reopen_hold`` can be tested); the same store, platform and period again is a
restatement; an identical one is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from watcher import backtest, yamlfile
from watcher.config import Settings
from watcher.errors import ConfigError
from watcher.incidents import Incident
from watcher.indicators import DeclaredMetric
from watcher.platforms import Platforms
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import RULE_SUFFIXES, is_test_file, load_pack
from watcher.rules.model import Severity
from watcher.snapshot import Snapshot
from watcher.validation import RawRecord, Rejection, validate

_OPTIONAL = ("severity", "metric", "status", "title", "title_zh")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpectedIncident(_Frozen):
    """An incident a case must open; fields left out are not checked."""

    rule: str = Field(min_length=1)
    subject: str = Field(min_length=1)
    severity: Severity | None = None
    metric: str | None = None
    status: Literal["open", "resolved"] | None = None
    title: str | None = Field(default=None, description="the English title, exactly")
    title_zh: str | None = Field(default=None, description="the zh-CN title, exactly")

    def matches(self, actual: ActualIncident) -> bool:
        return (self.rule, self.subject) == (actual.rule, actual.subject) and all(
            getattr(self, name) is None or str(getattr(self, name)) == getattr(actual, name)
            for name in _OPTIONAL)

    def __str__(self) -> str:
        checked = [f"{n} {getattr(self, n)}" for n in _OPTIONAL if getattr(self, n) is not None]
        return f"{self.rule} for {self.subject}" + (f" ({', '.join(checked)})" if checked else "")


class Case(_Frozen):
    name: str = Field(min_length=1)
    snapshots: tuple[dict[str, Any], ...] = Field(min_length=1)
    incidents: tuple[ExpectedIncident, ...] = ()


class RuleTestFile(_Frozen):
    """A test file: the pack under test, snapshot defaults, and the cases."""

    rules: str | None = Field(default=None, description="rule file or folder, relative to "
                              "this file (default: the pack the tests folder belongs to)")
    defaults: dict[str, Any] = Field(default_factory=dict, description="top-level snapshot "
                                     "keys every snapshot of the file starts from")
    tests: tuple[Case, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ActualIncident:
    rule: str
    subject_kind: str
    subject: str
    severity: str
    metric: str | None
    status: str
    title: str = ""
    title_zh: str = ""

    @classmethod
    def of(cls, incident: Incident) -> ActualIncident:
        return cls(incident.rule, incident.subject_kind, incident.subject, incident.severity,
                   incident.metric, incident.status.value, incident.title.get("en", ""),
                   incident.title.get("zh-CN", ""))

    def __str__(self) -> str:
        metric = f", metric {self.metric}" if self.metric else ""
        return (f"{self.rule} for {self.subject_kind} {self.subject} "
                f"(severity {self.severity}{metric}, status {self.status})")


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    line: int | None
    missing: tuple[ExpectedIncident, ...]
    unexpected: tuple[ActualIncident, ...]

    @property
    def passed(self) -> bool:
        return not self.missing and not self.unexpected

    def diff(self) -> list[str]:
        """``-`` expected but not opened, ``+`` opened but not expected, ``~`` both, differing."""
        lines: list[str] = []
        unexpected = list(self.unexpected)
        for expected in self.missing:
            near = next((a for a in unexpected
                         if (a.rule, a.subject) == (expected.rule, expected.subject)), None)
            if near is None:
                lines.append(f"- expected, not opened: {expected}")
                continue
            unexpected.remove(near)
            wrong = [f"{n} expected {getattr(expected, n)}, got {getattr(near, n)}"
                     for n in _OPTIONAL if getattr(expected, n) is not None
                     and str(getattr(expected, n)) != getattr(near, n)]
            lines.append(f"~ {expected.rule} for {expected.subject}: {'; '.join(wrong)}")
        lines.extend(f"+ opened, not expected: {actual}" for actual in unexpected)
        return lines


@dataclass(frozen=True, slots=True)
class FileResult:
    path: Path
    rules: Path
    cases: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if not c.passed)

    def report(self) -> list[str]:
        if self.passed:
            return [f"PASS {self.path} ({len(self.cases)} case(s), rules {self.rules})"]
        lines = [f"FAIL {self.path}: {len(self.failed)} of {len(self.cases)} case(s) failed "
                 f"(rules {self.rules})"]
        for case in self.failed:
            where = f" (line {case.line})" if case.line else ""
            lines.append(f"  case '{case.name}'{where}:")
            lines.extend(f"    {line}" for line in case.diff())
        return lines


def rule_test_files(path: Path) -> list[Path]:
    """The rule tests under ``path``: a file as given, or a folder's ``tests/`` and
    ``*.test.yaml`` files (the ones the rule loader skips)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError("no such file or folder", file=str(path))
    root = path.parent if path.name == "tests" else path
    return sorted(p for p in path.rglob("*")
                  if p.suffix in RULE_SUFFIXES and is_test_file(p, root))


def run_files(paths: Iterable[Path], platforms: Platforms | None = None) -> list[FileResult]:
    engines: dict[Path, RuleEngine] = {}
    return [run_file(path, engines, platforms) for path in paths]


def run_file(path: Path, engines: dict[Path, RuleEngine] | None = None,
             platforms: Platforms | None = None) -> FileResult:
    """Run one test file; a malformed file or snapshot raises ConfigError (file, line, key)."""
    data, lines = yamlfile.load(path)
    try:
        spec = RuleTestFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise yamlfile.config_error(exc, str(path), lines) from None
    rules = (path.parent / spec.rules) if spec.rules else default_rules(path)
    engines = {} if engines is None else engines
    if rules not in engines:
        engines[rules] = RuleEngine(load_pack(rules, platforms))
    engine = engines[rules]
    results = []
    for index, case in enumerate(spec.tests):
        snapshots = [_snapshot(path, lines, ("tests", index, "snapshots", number),
                               {**spec.defaults, **record}, engine.pack.metrics)
                     for number, record in enumerate(case.snapshots)]
        actual = [ActualIncident.of(i) for i in replay(engine, snapshots)]
        missing, unexpected = compare(case.incidents, actual)
        results.append(CaseResult(case.name, yamlfile.line_of(lines, ("tests", index)),
                                  missing, unexpected))
    return FileResult(path, rules, tuple(results))


def default_rules(test_file: Path) -> Path:
    """The pack a test file belongs to: its folder, or the folder its ``tests/`` is in."""
    folder = test_file.parent
    return folder.parent if folder.name == "tests" else folder


def compare(expected: Iterable[ExpectedIncident], actual: Iterable[ActualIncident],
            ) -> tuple[tuple[ExpectedIncident, ...], tuple[ActualIncident, ...]]:
    """(expected but not opened, opened but not expected); each incident meets one expectation."""
    left = list(actual)
    missing: list[ExpectedIncident] = []
    for item in expected:
        found = next((a for a in left if item.matches(a)), None)
        if found is None:
            missing.append(item)
        else:
            left.remove(found)
    return tuple(missing), tuple(left)


def _snapshot(path: Path, lines: yamlfile.Lines, where: tuple[str | int, ...],
              record: dict[str, Any], declared: Mapping[str, DeclaredMetric]) -> Snapshot:
    text = json.dumps(record, default=str)
    verdict = validate(RawRecord(".".join(map(str, where)), text, record), str(path),
                       declared)
    if isinstance(verdict, Rejection):
        field_path = tuple(verdict.field.split(".")) if verdict.field else ()
        raise ConfigError(f"not a valid snapshot: {verdict.error}", file=str(path),
                          key=".".join(map(str, (*where, *field_path))),
                          line=yamlfile.line_of(lines, (*where, *field_path)))
    return verdict


def replay(engine: RuleEngine, snapshots: Iterable[Snapshot], *,
           settings: Settings | None = None) -> list[Incident]:
    """Every incident the snapshots open, in its final state, in the order opened: the
    real pipeline, fed one snapshot at a time, on a scratch in-memory store."""
    return backtest.replay(engine, snapshots, settings or Settings(), one_by_one=True)
