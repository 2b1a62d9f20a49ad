"""Compile time of rule packs at each limit of watcher/limits.py's "rule files" section.

    .venv/bin/python -m bench.rule_limits

Each pack goes through the same trial compile the daemon runs (a child process,
``watcher.rules.trial``); the figure is durable-rules' own compile time in that child.
docs/limits.md quotes the result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from watcher.errors import ConfigError
from watcher.limits import (
    RULE_CONDITION_MAX_DEPTH,
    RULE_CONDITION_MAX_TERMS,
    RULE_ENGINE_MAX_BRANCHES,
    RULE_MAX_VARIANTS,
    RULE_PACK_MAX_RULES,
)
from watcher.rules import trial
from watcher.rules.loader import load_pack
from watcher.rules.model import Rule, RulePack


def rule(index: int, condition: str, variants: list[dict[str, object]] | None = None) -> Rule:
    return Rule.model_validate({
        "id": f"r{index}", "description": "at a limit", "condition": condition,
        "severity": "high", "audience": "ops", "message": {"en": "x", "zh-CN": "x"},
        "variants": variants or []})


def any_of(count: int, offset: int = 0) -> str:
    return " or ".join(f"m{i} > {offset + i}" for i in range(count))


def nested(depth: int) -> str:
    condition = "penalty_count > 0"
    for level in range(depth):
        condition = f"m{level} > {level} {'and' if level % 2 else 'or'} ({condition})"
    return condition


def _guarded(count: int) -> list[Rule]:
    """``count`` rules, each behind a leading guard shared by at most 512 of them."""
    width = RULE_ENGINE_MAX_BRANCHES
    return [rule(i, f"dispute_rate > {i // width} and penalty_count > {i % width}")
            for i in range(count)]


def _default_pack() -> list[Rule]:
    return list(load_pack(Path(__file__).resolve().parent.parent / "rules" / "default").rules)


LIMIT_PACKS: dict[str, Callable[[], list[Rule]]] = {
    "the default pack (rules/default, for comparison)": _default_pack,
    f"one 'or' of {RULE_CONDITION_MAX_TERMS} comparisons (RULE_CONDITION_MAX_TERMS)":
        lambda: [rule(0, any_of(RULE_CONDITION_MAX_TERMS))],
    f"one 'and' of {RULE_CONDITION_MAX_TERMS} comparisons":
        lambda: [rule(0, any_of(RULE_CONDITION_MAX_TERMS).replace(" or ", " and "))],
    f"parentheses {RULE_CONDITION_MAX_DEPTH} deep (RULE_CONDITION_MAX_DEPTH)":
        lambda: [rule(0, nested(RULE_CONDITION_MAX_DEPTH))],
    f"{RULE_MAX_VARIANTS} variants of a {RULE_CONDITION_MAX_TERMS}-term 'or' "
    "(RULE_MAX_VARIANTS)":
        lambda: [rule(0, any_of(RULE_CONDITION_MAX_TERMS), [
            {"when": {"site": f"s{v}"}, "condition": any_of(RULE_CONDITION_MAX_TERMS, v * 100)}
            for v in range(RULE_MAX_VARIANTS)])],
    f"{RULE_ENGINE_MAX_BRANCHES} rules with different leading comparisons "
    "(RULE_ENGINE_MAX_BRANCHES)":
        lambda: [rule(i, f"penalty_count > {i}") for i in range(RULE_ENGINE_MAX_BRANCHES)],
    f"{RULE_PACK_MAX_RULES} rules (RULE_PACK_MAX_RULES)":
        lambda: _guarded(RULE_PACK_MAX_RULES),
}


def measure() -> dict[str, str]:
    results: dict[str, str] = {}
    for name, build in LIMIT_PACKS.items():
        pack = RulePack(rules=tuple(build()))
        definitions = trial.definitions(pack)
        started = time.perf_counter()
        try:
            trial.check_branches(pack, definitions)
            seconds = trial.trial_compile(pack, definitions)
        except ConfigError as exc:
            results[name] = f"refused: {exc}"
            continue
        total = time.perf_counter() - started
        results[name] = f"compile {seconds * 1000:.1f} ms (trial with child start {total:.2f} s)"
    return results


def main() -> int:
    for name, result in measure().items():
        print(f"{name:<70} {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
