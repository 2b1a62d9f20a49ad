"""The durable-rules engine, owned by one thread.

What we rely on (verified against durable-rules 2.0.28; see docs/durable-rules.md):

* A snapshot is asserted as a *fact* and retracted right after: an event would
  be consumed by the first matching rule, a fact is seen by every rule.
* ``Host()`` starts timer threads that call into the C engine, which is not
  thread-safe; ``QuietHost`` starts none, so every engine call is ours and all
  of them go through ``_ENGINE_LOCK`` (the daemon also funnels them through one
  worker thread).
* A fact that matches no rule is "not handled" (the C engine's code 1, the
  ``Host``'s ``MessageNotHandledException``); that is the ordinary "nothing
  fired" outcome here. Each fact carries a fresh ``id`` so an identical
  pending message is never "observed" (code 2).
* A registered ruleset can never be replaced or removed: each rule pack
  version is its own ruleset ``kpiwatch_<version>``, registered once per
  process and reused when the same version is loaded again.
* A pack is compiled here only once ``watcher.rules.trial`` compiled it in a
  child process with a time limit: durable-rules never returns on some shapes.
* Evaluation drives the C extension directly (``drive``) with the fact encoded
  once by orjson, instead of ``Host.assert_fact``/``retract_fact``, which
  encode it twice with ``json.dumps`` and build a ``Closure`` per firing: half
  the time of a snapshot in the engine. The protocol is the one
  ``Ruleset.do_actions`` follows (start the state's actions, hand the state
  back unchanged, complete and take the next), and a test holds the two paths
  to the same firings. The Python actions registered with the ruleset are
  never called.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import durable_rules_engine as c_engine
import orjson
from durable import engine as durable_engine

from watcher.errors import RecordRefused
from watcher.limits import ENGINE_MAX_FACT_ATTRIBUTES
from watcher.rules import trial
from watcher.rules.compiler import Form, compile_pack, pack_forms, segment_keys
from watcher.rules.facts import segment_value, to_fact
from watcher.rules.model import Rule, RulePack, Variant
from watcher.snapshot import Snapshot


class QuietHost(durable_engine.Host):  # type: ignore[misc]
    """A host without the background dispatch threads (we use no timers)."""

    def _run(self) -> None:
        return None


_ENGINE_LOCK = threading.Lock()
_HOST: QuietHost | None = None
_RULESETS: dict[str, _Ruleset] = {}


@dataclass
class _Ruleset:
    name: str
    forms: dict[str, Form]
    segment_keys: frozenset[str]
    handle: int = 0


def _unused_action(_closure: Any) -> None:
    """durable-rules wants a callable per rule; ``drive`` records firings without it."""


_NOT_HANDLED, _OBSERVED, _DEFERRED = 1, 2, 3


def drive(handle: int, call: Callable[[int, str], tuple[int, int]], fact: str,
           fired: list[str]) -> None:
    """Assert or retract one encoded fact and record the rule of every action it starts.

    The actions only record their rule, so the state is handed back as the
    engine gave it; ``MessageNotHandled`` (code 1) is the ordinary "nothing fired".
    """
    code, state_handle = call(handle, fact)
    if code == _OBSERVED:
        raise durable_engine.MessageObservedException(fact)
    if code == _NOT_HANDLED:
        return
    if code == _DEFERRED:  # as ``Ruleset._handle_result``: no state of its own
        state_handle = 0
    started = c_engine.start_action_for_state(handle, state_handle)
    if not started:
        return
    state, message = started[0], started[1]
    while message:
        fired.append(next(iter(orjson.loads(message))))
        c_engine.update_state(handle, state)
        message = c_engine.complete_and_start_action(handle, state_handle)


# durable-rules' JSON reader takes an exponent only after a fraction ("1.0e+16", not
# "1e+16", which orjson writes for 10**16 and for tiny rates such as 1e-07): such numbers
# are rewritten, strings left alone.
_MAY_HAVE_BARE_EXPONENT = re.compile(rb"[0-9][eE]")
_STRING_OR_BARE_EXPONENT = re.compile(rb'"(?:[^"\\]|\\.)*"|(?<![0-9.])(-?[0-9]+)([eE][+-]?[0-9]+)')


def encode_fact(fact: dict[str, Any]) -> str:
    """The fact as JSON that the C engine reads back as sent."""
    body = orjson.dumps(fact)
    if _MAY_HAVE_BARE_EXPONENT.search(body):
        body = _STRING_OR_BARE_EXPONENT.sub(
            lambda m: m[0] if m[1] is None else m[1] + b".0" + m[2], body)
    return body.decode()


def _ruleset_for(pack: RulePack) -> _Ruleset:
    global _HOST
    name = f"kpiwatch_{pack.version}"
    if name not in _RULESETS:
        trial.check(pack)  # in a child process: a pack that would not compile never gets here
    with _ENGINE_LOCK:
        if name in _RULESETS:
            return _RULESETS[name]
        if _HOST is None:
            _HOST = QuietHost()
        ruleset = _Ruleset(name, {f.key: f for f in pack_forms(pack)}, segment_keys(pack))
        definition = compile_pack(pack)
        for rule in definition.values():
            rule["run"] = _unused_action
        if definition:
            _HOST.register_rulesets({name: definition})
            ruleset.handle = _HOST.get_ruleset(name)._handle
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
        attributes = to_fact(snapshot, f"{id(self)}-{next(self._ids)}", ruleset.segment_keys)
        if len(attributes) > ENGINE_MAX_FACT_ATTRIBUTES:
            raise RecordRefused(
                f"needs {len(attributes)} rule-engine attributes (one per metric and segment "
                f"key, two to five per target); durable-rules holds "
                f"ENGINE_MAX_FACT_ATTRIBUTES = {ENGINE_MAX_FACT_ATTRIBUTES}", field="metrics")
        fact = encode_fact(attributes)
        keys: list[str] = []
        refusal: Exception | None = None
        with _ENGINE_LOCK:
            try:
                drive(ruleset.handle, c_engine.assert_fact, fact, keys)
            except c_engine.error as exc:
                refusal = exc
            finally:  # whatever happened, the engine holds no fact afterwards
                try:
                    drive(ruleset.handle, c_engine.retract_fact, fact, keys)
                except c_engine.error as exc:
                    refusal = refusal or exc
        if refusal is not None:  # this snapshot only: the engine holds nothing of it
            raise RecordRefused(f"the rule engine refused it: {refusal}")
        # An ``$or`` fires once per matching branch: keep each form once.
        return Verdict(snapshot, tuple(ruleset.forms[key] for key in dict.fromkeys(keys)))


def normalise_segment(segment: dict[str, str | bool | float]) -> dict[str, str]:
    return {k: segment_value(v) for k, v in segment.items()}


def applicable_variant(rule: Rule, normalised: dict[str, str]) -> Variant | None:
    """The form of ``rule`` that applies to a normalised segment (mirrors the compiled guards)."""
    best: Variant | None = None
    for variant in rule.variants:
        if variant.matches(normalised) and (best is None or len(variant.when) > len(best.when)):
            best = variant
    return best
