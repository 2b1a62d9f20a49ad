"""The condition language of rule files: ``dispute_rate > 0.03``, ``gmv < target``.

Grammar (``and`` binds tighter than ``or``; parentheses group)::

    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "(" expr ")" | METRIC OP (NUMBER | "target")

A condition is measured against the limits of ``watcher/limits.py`` (length,
comparisons, nesting) before it is parsed, so no condition can make the parser
recurse deeply or hand durable-rules a network it cannot build.

A condition is parsed once at load into a tree of frozen nodes, which the
compiler turns into durable-rules JSON and which ``holds`` evaluates in Python
to describe a firing (value versus threshold) after the engine decided it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from watcher.limits import (
    RULE_CONDITION_MAX_CHARS,
    RULE_CONDITION_MAX_DEPTH,
    RULE_CONDITION_MAX_TERMS,
)

Op = Literal["<", "<=", ">", ">=", "==", "!="]
_TOKEN = re.compile(r"\s*(?:(\()|(\))|(<=|>=|==|!=|<|>)|([A-Za-z_][A-Za-z0-9_]*)|"
                    r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?%?)|(\S))")
_UNREADABLE = 6  # the group of any other character
METRIC_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    op: Op
    value: float | None  # None: compare against the snapshot's target for the metric

    @property
    def against_target(self) -> bool:
        return self.value is None

    def holds(self, metrics: dict[str, float], targets: dict[str, float]) -> bool:
        left = metrics.get(self.metric)
        right = targets.get(self.metric) if self.value is None else self.value
        if left is None or right is None:
            return False
        return _compare(left, self.op, right)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {'target' if self.value is None else f'{self.value:g}'}"


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: Literal["and", "or"]
    parts: tuple[Condition, ...]

    def __str__(self) -> str:
        return f" {self.op} ".join(
            f"({p})" if isinstance(p, BoolOp) else str(p) for p in self.parts)


Condition = Comparison | BoolOp


@functools.lru_cache(maxsize=4096)
def comparisons(condition: Condition) -> tuple[Comparison, ...]:
    if isinstance(condition, Comparison):
        return (condition,)
    return tuple(c for part in condition.parts for c in comparisons(part))


@functools.lru_cache(maxsize=4096)
def requirements(condition: Condition) -> tuple[frozenset[str], frozenset[str]]:
    """(metrics, targets) a snapshot must carry for ``condition`` to be decidable."""
    parts = comparisons(condition)
    return (frozenset(c.metric for c in parts),
            frozenset(c.metric for c in parts if c.value is None))


def holds(condition: Condition, metrics: dict[str, float], targets: dict[str, float]) -> bool:
    if isinstance(condition, Comparison):
        return condition.holds(metrics, targets)
    results = (holds(p, metrics, targets) for p in condition.parts)
    return all(results) if condition.op == "and" else any(results)


def _compare(left: float, op: Op, right: float) -> bool:
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "==":
        return left == right
    return left != right


_COMPARATORS = frozenset({"<", "<=", ">", ">=", "==", "!="})


class ExpressionError(ValueError):
    pass


@functools.lru_cache(maxsize=4096)  # a rule's condition is read by two validators
def parse(text: str) -> Condition:
    if len(text) > RULE_CONDITION_MAX_CHARS:
        raise ExpressionError(f"the condition is {len(text)} characters long; the limit is "
                              f"{RULE_CONDITION_MAX_CHARS} (RULE_CONDITION_MAX_CHARS)")
    tokens = _tokenize(text)
    _check_size(tokens)
    parser = _Parser(tokens, text)
    condition = parser.expr()
    if parser.pos != len(tokens):
        raise ExpressionError(f"unexpected '{tokens[parser.pos]}' in condition '{text}'")
    return condition


def _check_size(tokens: list[str]) -> None:
    terms = sum(1 for t in tokens if t in _COMPARATORS)
    if terms > RULE_CONDITION_MAX_TERMS:
        raise ExpressionError(f"the condition has {terms} comparisons; the limit is "
                              f"{RULE_CONDITION_MAX_TERMS} (RULE_CONDITION_MAX_TERMS)")
    depth = deepest = 0
    for token in tokens:
        depth += (token == "(") - (token == ")")
        deepest = max(deepest, depth)
    if deepest > RULE_CONDITION_MAX_DEPTH:
        raise ExpressionError(f"the condition nests parentheses {deepest} deep; the limit is "
                              f"{RULE_CONDITION_MAX_DEPTH} (RULE_CONDITION_MAX_DEPTH)")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):  # every non-space character is in some match
        if match.lastindex == _UNREADABLE:
            raise ExpressionError(
                f"cannot read condition '{text}' at '{text[match.start(_UNREADABLE):].strip()}'")
        tokens.append(match.group(match.lastindex or 0))
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens, self.text, self.pos = tokens, text, 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ExpressionError(f"condition '{self.text}' ends too early")
        self.pos += 1
        return token

    def expr(self) -> Condition:
        parts = [self.term()]
        while self._peek() == "or":
            self._take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def term(self) -> Condition:
        parts = [self.factor()]
        while self._peek() == "and":
            self._take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def factor(self) -> Condition:
        token = self._take()
        if token == "(":
            inner = self.expr()
            if self._take() != ")":
                raise ExpressionError(f"missing ')' in condition '{self.text}'")
            return inner
        if not METRIC_ID.match(token) or token in ("and", "or", "target"):
            raise ExpressionError(f"expected a metric id, got '{token}' in '{self.text}'")
        op = self._take()
        if op not in _COMPARATORS:
            raise ExpressionError(f"expected a comparison after '{token}', got '{op}'")
        right = self._take()
        if right == "target":
            return Comparison(token, op, None)  # type: ignore[arg-type]
        try:
            value = float(right[:-1]) / 100 if right.endswith("%") else float(right)
        except ValueError:
            raise ExpressionError(
                f"expected a number or 'target' after '{token} {op}', got '{right}'") from None
        return Comparison(token, op, value)  # type: ignore[arg-type]
