"""The durable-rules engine, owned by one thread.

What we rely on (verified against durable-rules 2.0.28; see docs/durable-rules.md):

* A snapshot is asserted as a *fact* and retracted right after: an event would
  be consumed by the first matching rule, a fact is seen by every rule.
* ``Host()`` starts timer threads that call into the C engine, which is not
  thread-safe; ``_QuietHost`` starts none, so every engine call is ours and all
  of them go through ``_ENGINE_LOCK`` (the daemon also funnels them through one
  worker thread).
* Actions take one parameter: two would make durable-rules treat them as
  asynchronous and wait for a completion that never comes.
* A fact that matches no rule raises ``MessageNotHandledException``; that is
  the ordinary "nothing fired" outcome here. Each fact carries a fresh ``id``
  so an identical pending message never raises ``MessageObservedException``.
* A registered ruleset can never be replaced or removed: each rule pack
  version is its own ruleset ``kpiwatch_<version>``, registered once per
  process and reused when the same version is loaded again.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from durable import engine as durable_engine

from watcher.rules.compiler import Form, compile_pack, pack_forms, segment_keys
from watcher.rules.facts import segment_value, to_fact
from watcher.rules.model import Rule, RulePack, Variant
from watcher.snapshot import Snapshot


class _QuietHost(durable_engine.Host):  # type: ignore[misc]
    """A host without the background dispatch threads (we use no timers)."""

    def _run(self) -> None:
        return None


_ENGINE_LOCK = threading.Lock()
_HOST: _QuietHost | None = None
_RULESETS: dict[str, _Ruleset] = {}


@dataclass
class _Ruleset:
    name: str
    forms: dict[str, Form]
    segment_keys: frozenset[str]
    fired: list[str] = field(default_factory=list)

    def action(self, key: str) -> Callable[[Any], None]:
        def run(_closure: Any) -> None:
            self.fired.append(key)
        return run


def _ruleset_for(pack: RulePack) -> _Ruleset:
    global _HOST
    name = f"kpiwatch_{pack.version}"
    with _ENGINE_LOCK:
        if name in _RULESETS:
            return _RULESETS[name]
        if _HOST is None:
            _HOST = _QuietHost()
        ruleset = _Ruleset(name, {f.key: f for f in pack_forms(pack)}, segment_keys(pack))
        definition = compile_pack(pack)
        for key, rule in definition.items():
            rule["run"] = ruleset.action(key)
        if definition:
            _HOST.register_rulesets({name: definition})
        _RULESETS[name] = ruleset
        return ruleset


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the engine said of one snapshot: the forms that fired."""

    snapshot: Snapshot
    fired: tuple[Form, ...]


class RuleEngine:
    """Evaluates snapshots against one rule pack version."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        self.version = pack.version
        self._ruleset = _ruleset_for(pack)
        self._ids = itertools.count(1)

    @classmethod
    def empty(cls) -> RuleEngine:
        """An engine with no rules, for commands that only read the store."""
        return cls(RulePack(rules=()))

    def evaluate(self, snapshot: Snapshot) -> Verdict:
        ruleset = self._ruleset
        if not ruleset.forms:
            return Verdict(snapshot, ())
        fact = to_fact(snapshot, f"{id(self)}-{next(self._ids)}", ruleset.segment_keys)
        host = _HOST
        assert host is not None
        with _ENGINE_LOCK:
            ruleset.fired.clear()
            # "No rule matched" is the ordinary outcome, not an error.
            with suppress(durable_engine.MessageNotHandledException):
                host.assert_fact(ruleset.name, fact)
            with suppress(durable_engine.MessageNotHandledException):
                host.retract_fact(ruleset.name, fact)
            # An ``$or`` fires once per matching branch: keep each form once.
            fired = tuple(ruleset.forms[key] for key in dict.fromkeys(ruleset.fired))
        return Verdict(snapshot, fired)


def normalise_segment(segment: dict[str, str | bool | float]) -> dict[str, str]:
    return {k: segment_value(v) for k, v in segment.items()}


def applicable_variant(rule: Rule, normalised: dict[str, str]) -> Variant | None:
    """The form of ``rule`` that applies to a normalised segment (mirrors the compiled guards)."""
    best: Variant | None = None
    for variant in rule.variants:
        if variant.matches(normalised) and (best is None or len(variant.when) > len(best.when)):
            best = variant
    return best
