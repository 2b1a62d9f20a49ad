"""Coverage-guided fuzzing (atheris) of the rule-file loader and of compiling what it loads.

The contract, checked on every input: a rule file loads into a rule pack, or is refused
with a ``ConfigError`` that names the file (and, where there is one, the line). A pack
that loaded and passed the branch check (``watcher.rules.trial.check_branches``) is then
compiled by durable-rules in this process: it returns or fails with an engine error (the
trial compile turns that into a refusal), and never hangs. Anything else (another
exception, a hang past ``-timeout``) is a finding.

Half of the inputs are raw bytes; the other half (first byte odd) are turned by a
``FuzzedDataProvider`` into the shapes of issue 14: long ``or``/``and`` chains, deep
parentheses, YAML aliases nested like the "billion laughs", metric ids with typos, many
rules sharing or not sharing a leading comparison, and ``metrics:`` declarations.

    python fuzz/fuzz_rules.py -max_total_time=600 -timeout=10 fuzz/corpus/rules
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["watcher"]):
    import durable_rules_engine as c_engine

    from watcher.errors import ConfigError
    from watcher.rules import trial
    from watcher.rules.loader import load_pack
    from watcher.rules.model import RulePack

FILE = Path(tempfile.mkdtemp(prefix="fuzz-rules-")) / "rules.yaml"
METRICS = ["penalty_count", "dispute_rate", "gmv", "penalti_count", "gmv_", "widgets", "x"]
OPS = ["<", "<=", ">", ">=", "==", "!="]


def condition(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> str:
    """A condition of random shape: chains up to 600 comparisons, nesting up to 40."""
    shape = fdp.ConsumeIntInRange(0, 4)
    if shape == 0 or depth > 40:
        value = "target" if fdp.ConsumeBool() else str(fdp.ConsumeIntInRange(-5, 600))
        return f"{fdp.PickValueInList(METRICS)} {fdp.PickValueInList(OPS)} {value}"
    if shape == 1:
        return "(" * (count := fdp.ConsumeIntInRange(1, 6000)) + condition(fdp, depth + 1) + (
            ")" * count)
    if shape == 2:
        joiner = f" {fdp.PickValueInList(['and', 'or'])} "
        metric = fdp.PickValueInList(METRICS)
        return joiner.join(f"{metric} > {i}" for i in range(fdp.ConsumeIntInRange(1, 600)))
    return (f"{condition(fdp, depth + 1)} {fdp.PickValueInList(['and', 'or'])} "
            f"({condition(fdp, depth + 1)})")


def laughs(fdp: atheris.FuzzedDataProvider) -> str:
    """Anchors and aliases, each level repeating the one before."""
    width, levels = fdp.ConsumeIntInRange(1, 12), fdp.ConsumeIntInRange(1, 12)
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * width)}]" for n in range(1, levels)]
    return "description:\n  " + "\n  ".join(lines) + "\n"


def rule_file(fdp: atheris.FuzzedDataProvider) -> str:
    text = laughs(fdp) if fdp.ConsumeBool() else ""
    if fdp.ConsumeBool():
        text += "metrics:\n  widgets: {unit: count, direction: lower, range: [0, null]}\n"
    text += "rules:\n"
    shared = fdp.ConsumeIntInRange(0, 7) == 0  # up to 700 rules after one node: the cliff
    for index in range(fdp.ConsumeIntInRange(0, 700 if shared else 12)):
        cond = f"penalty_count > {index}" if shared else condition(fdp)
        text += (f"  - id: r{index}\n    description: x\n    condition: {json.dumps(cond)}\n"
                 "    severity: high\n    audience: ops\n    message: {en: x, zh-CN: x}\n")
        if fdp.remaining_bytes() == 0:
            break
    return text


def test_one_input(data: bytes) -> None:
    if data[:1] and data[0] & 1:
        FILE.write_text(rule_file(atheris.FuzzedDataProvider(data[1:])), encoding="utf-8")
    else:
        FILE.write_bytes(data)
    try:
        pack = load_pack(FILE)
        forms = trial.definitions(pack)
        trial.check_branches(pack, forms)
    except ConfigError as exc:
        assert exc.file == str(FILE), exc
        return
    assert isinstance(pack, RulePack)
    compile_here(forms)


def compile_here(forms: dict[str, dict[str, object]]) -> None:
    """What the trial child does, in this process, so that a hang is a libFuzzer timeout."""
    if not forms:
        return
    try:
        handle = c_engine.create_ruleset(
            "fuzz", json.dumps({k: v for group in forms.values() for k, v in group.items()}))
    except c_engine.error:
        return  # an engine error code: the trial compile refuses it, naming the rule
    c_engine.delete_ruleset(handle)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
