"""A rule pack is proven compilable before any process of ours compiles it.

durable-rules compiles a ruleset in C while holding the GIL; on some shapes it never
returns (a node of the rule network followed by more than 512 distinct comparisons:
its ``findAlpha`` probes a full 512-slot table forever, docs/durable-rules.md). Two
checks stand between a rule file and the engine:

* ``check_branches``: the network durable-rules would build is simulated in Python
  (nodes are shared by equal comparisons under equal parents, exactly as ``findAlpha``
  does) and a pack that would put more than ``RULE_ENGINE_MAX_BRANCHES`` comparisons
  after one node is refused, naming the rule (file and line) that crosses the line.
* ``trial_compile``: the pack is compiled by a child process with a time limit
  (``RULE_COMPILE_TIMEOUT_SECONDS``), killed if it does not finish; an error of the
  engine is traced to the rule that causes it, and a pack that took longer than
  ``RULE_COMPILE_MAX_SECONDS`` is refused (the daemon pauses while it compiles, as
  durable-rules holds the GIL). Only a pack that compiled there is compiled in the
  daemon, so no shape we did not foresee can freeze it.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from collections import defaultdict
from typing import Any

from watcher.errors import ConfigError
from watcher.limits import (
    RULE_COMPILE_MAX_SECONDS,
    RULE_COMPILE_TIMEOUT_SECONDS,
    RULE_ENGINE_MAX_BRANCHES,
)
from watcher.rules.compiler import form_json, pack_forms
from watcher.rules.model import RulePack

# What durable-rules' ``create_ruleset`` error codes mean (src/rules/rules.h).
ENGINE_ERRORS = {
    106: "too many different comparisons follow one condition",
    107: "too many alternatives ('or') follow one condition",
    108: "too many rules share exactly the same condition",
    113: "too many 'and'/'or' groups and comparisons against a target in one rule",
}

# The child imports only the C extension: it starts in a few tens of milliseconds.
_CHILD = r"""
import json, signal, sys, time
signal.alarm(int(sys.argv[1]))  # ends this process even if the daemon that waits is gone
import durable_rules_engine as engine
groups = json.load(sys.stdin)
rules = list(groups)
names = iter(range(1 << 30))

def compiles(count):
    forms = {k: v for rule in rules[:count] for k, v in groups[rule].items()}
    try:
        engine.create_ruleset(f"trial{next(names)}", json.dumps(forms))
    except Exception as exc:
        return str(exc)
    return None

started = time.process_time()  # CPU time: what the daemon would pause for
error = compiles(len(rules))
if error is None:
    print(json.dumps({"seconds": time.process_time() - started}))
else:  # the shortest failing prefix of the pack ends with the rule to blame
    good, bad = 0, len(rules)
    while bad - good > 1:
        middle = (good + bad) // 2
        if compiles(middle) is None:
            good = middle
        else:
            bad = middle
    print(json.dumps({"error": error, "rule": rules[bad - 1]}))
"""

_PASSED: set[str] = set()  # pack versions this process has proven (a cache, never shrinks)


def check(pack: RulePack) -> None:
    """Refuse (``ConfigError``) a pack durable-rules cannot compile quickly; cached per version."""
    version = pack.version
    if version in _PASSED:
        return
    forms = definitions(pack)
    if forms:
        check_branches(pack, forms)
        trial_compile(pack, forms)
    _PASSED.add(version)


def definitions(pack: RulePack) -> dict[str, dict[str, Any]]:
    """``{rule id: {form key: durable rule}}`` in pack order."""
    groups: dict[str, dict[str, Any]] = {}
    for form in pack_forms(pack):
        groups.setdefault(form.rule.id, {})[form.key] = {"all": [{"m": form_json(form)}]}
    return groups


def check_branches(pack: RulePack, definitions: dict[str, dict[str, Any]]) -> None:
    """Simulate the C engine's alpha network; refuse a node with too many comparisons after it.

    Mirrors ``createAlpha``/``findAlpha`` (src/rules/rete.c): an ``$and`` chains its parts,
    each after the previous; each part of an ``$or`` follows the node before the ``$or``
    and all of them meet in a node of their own; any other condition is a comparison that
    follows its parent and is shared with an equal comparison after the same parent.
    """
    root = 0
    ids = itertools.count(1)
    shared: dict[tuple[int, str], int] = {}
    fan_out: dict[int, int] = defaultdict(int)

    def follow(parent: int, condition: dict[str, Any], rule: str) -> int:
        if "$and" in condition:
            node = parent
            for part in condition["$and"]:
                node = follow(node, part, rule)
            return node
        if "$or" in condition:
            for part in condition["$or"]:
                follow(parent, part, rule)
            return next(ids)
        key = (parent, json.dumps(condition, sort_keys=True))
        if key in shared:
            return shared[key]
        node = shared[key] = next(ids)
        fan_out[parent] += 1
        if fan_out[parent] > RULE_ENGINE_MAX_BRANCHES:
            file, line = pack.origin(rule)
            raise ConfigError(
                f"rule '{rule}' makes more than {RULE_ENGINE_MAX_BRANCHES} different "
                "comparisons follow one condition of the pack (limit "
                "RULE_ENGINE_MAX_BRANCHES: durable-rules never finishes compiling such a "
                "pack); share a leading condition or merge rules", file=file, line=line)
        return node

    for rule, forms in definitions.items():
        for definition in forms.values():
            follow(root, definition["all"][0]["m"], rule)


def trial_compile(pack: RulePack, definitions: dict[str, dict[str, Any]]) -> float:
    """Compile in a child process; the seconds it took, or ``ConfigError``."""
    alarm = str(math.ceil(RULE_COMPILE_TIMEOUT_SECONDS) + 1)
    try:
        done = subprocess.run([sys.executable, "-P", "-c", _CHILD, alarm],
                              input=json.dumps(definitions), capture_output=True, text=True,
                              timeout=RULE_COMPILE_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise _too_slow(pack, definitions, f"did not finish compiling the pack in "
                        f"{RULE_COMPILE_TIMEOUT_SECONDS:g} s (limit "
                        "RULE_COMPILE_TIMEOUT_SECONDS)") from None
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise ConfigError(f"the trial compile failed (exit code {done.returncode}): "
                          f"{done.stderr.strip()[-300:]}") from None
    if "error" in result:
        raise _engine_error(pack, result["error"], result.get("rule"))
    seconds = float(result["seconds"])
    if seconds > RULE_COMPILE_MAX_SECONDS:
        raise _too_slow(pack, definitions, f"took {seconds:.2f} s of CPU to compile the pack; "
                        f"the limit is {RULE_COMPILE_MAX_SECONDS:g} s (RULE_COMPILE_MAX_SECONDS: "
                        "the daemon pauses while it compiles)")
    return seconds


def _too_slow(pack: RulePack, definitions: dict[str, dict[str, Any]],
              what: str) -> ConfigError:
    """Slowness belongs to the whole pack; the error points at its largest rule."""
    largest = max(definitions, key=lambda rule: len(json.dumps(definitions[rule])))
    file, line = pack.origin(largest)
    return ConfigError(f"durable-rules {what}; the largest rule is '{largest}': make "
                       "conditions smaller or share leading conditions", file=file, line=line)


def _engine_error(pack: RulePack, error: str, rule: str | None) -> ConfigError:
    code = error.rsplit(":", 1)[-1].strip()
    meaning = ENGINE_ERRORS.get(int(code) if code.isdigit() else -1)
    reason = f"durable-rules cannot compile {f'rule {rule!r}' if rule else 'the pack'}: " + (
        f"{meaning} ({error})" if meaning else error)
    file, line = pack.origin(rule) if rule else (None, None)
    if file is None and pack.sources:
        file = pack.sources[0]
    return ConfigError(reason, file=file, line=line)
