"""Rules are loaded with bounds: every oversized or pathological rule file is refused
before anything is compiled, naming file, line and the limit, and nothing a rule file
says can freeze the process that compiles it (issue 14, item 1)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.rule_limits import LIMIT_PACKS
from watcher import limits
from watcher.errors import ConfigError
from watcher.rules import trial
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.rules.model import RulePack

LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def rule_yaml(rule_id: str, condition: str) -> str:
    return (f"  - id: {rule_id}\n    description: x\n    condition: {condition}\n"
            "    severity: high\n    audience: compliance\n"
            "    message: {en: x, zh-CN: x}\n")


def rules_file(folder: Path, *conditions: str, name: str = "pack.yaml") -> Path:
    path = folder / name
    path.write_text("rules:\n" + "".join(
        rule_yaml(f"r{i}", c) for i, c in enumerate(conditions)), encoding="utf-8")
    return path


def refusal(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        RuleEngine(load_pack(path))
    return caught.value


def any_of(count: int, metric: str = "penalty_count") -> str:
    return " or ".join(f"{metric} > {i}" for i in range(count))


def check_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher.cli", "rules", "check", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)


class TestConditionLimits:
    def test_the_issues_513_term_or_is_refused_by_rules_check_in_seconds(self, tmp_path: Path):
        path = rules_file(tmp_path, any_of(513))
        started = time.monotonic()
        done = check_cli(path)
        assert time.monotonic() - started < 30  # it used to spin for ever
        assert done.returncode != 0
        assert f"{path}, line 4, key 'rules.0.condition'" in done.stderr + done.stdout
        assert "RULE_CONDITION_MAX_CHARS" in done.stderr + done.stdout

    def test_more_comparisons_than_the_limit_are_refused(self, tmp_path: Path):
        terms = limits.RULE_CONDITION_MAX_TERMS + 1
        error = refusal(rules_file(tmp_path, any_of(terms, "a")))
        assert (error.file, error.line, error.key) == (str(tmp_path / "pack.yaml"), 4,
                                                       "rules.0.condition")
        assert f"{terms} comparisons" in error.reason
        assert "RULE_CONDITION_MAX_TERMS" in error.reason

    def test_the_issues_5000_parentheses_are_refused_with_file_and_line(self, tmp_path: Path):
        done = check_cli(rules_file(tmp_path, "(" * 5000 + "penalty_count > 0" + ")" * 5000))
        assert "Traceback" not in done.stderr
        assert "line 4" in done.stderr + done.stdout

    def test_nesting_deeper_than_the_limit_is_refused_without_recursing(self, tmp_path: Path):
        depth = 1500  # within the length limit; the parser used to raise RecursionError
        error = refusal(rules_file(tmp_path, "(" * depth + "penalty_count > 0" + ")" * depth))
        assert f"parentheses {depth} deep" in error.reason
        assert "RULE_CONDITION_MAX_DEPTH" in error.reason and error.line == 4

    def test_a_condition_at_every_limit_still_loads(self, tmp_path: Path):
        depth = limits.RULE_CONDITION_MAX_DEPTH
        pack = load_pack(rules_file(
            tmp_path, any_of(limits.RULE_CONDITION_MAX_TERMS),
            "(" * depth + "penalty_count > 0" + ")" * depth))
        assert len(pack.rules) == 2


class TestPackLimits:
    def test_a_file_over_the_size_limit_is_refused_unread(self, tmp_path: Path):
        path = tmp_path / "big.yaml"
        path.write_text("# " + "x" * limits.RULE_FILE_MAX_BYTES + "\nrules: []\n")
        error = refusal(path)
        assert error.file == str(path) and "RULE_FILE_MAX_BYTES" in error.reason

    def test_more_rules_than_the_limit_are_refused_at_the_first_rule_too_many(
            self, tmp_path: Path):
        count = limits.RULE_PACK_MAX_RULES
        rules_file(tmp_path, *["penalty_count > 0"] * (count // 2), name="a.yaml")
        path = rules_file(tmp_path, *["dispute_rate > 0.1"] * (count // 2 + 1), name="b.yaml")
        error = refusal(tmp_path)
        assert error.file == str(path)
        assert error.line == 2 + 6 * (count // 2)  # the first rule beyond the limit
        assert "RULE_PACK_MAX_RULES" in error.reason

    def test_more_variants_than_the_limit_are_refused(self, tmp_path: Path):
        variants = "".join(f"      - when: {{site: s{v}}}\n        condition: penalty_count > {v}\n"
                           for v in range(limits.RULE_MAX_VARIANTS + 1))
        path = tmp_path / "v.yaml"
        path.write_text("rules:\n" + rule_yaml("v", "penalty_count > 0")
                        + "    variants:\n" + variants)
        error = refusal(path)
        assert error.line == 2 and "RULE_MAX_VARIANTS" in error.reason


class TestYamlLimits:
    def test_the_billion_laughs_is_refused_before_it_expands(self, tmp_path: Path):
        path = tmp_path / "laughs.yaml"
        path.write_text(LAUGHS)
        error = refusal(path)
        assert error.file == str(path) and error.line == 5
        assert "YAML_MAX_ALIAS_NODES" in error.reason

    def test_a_few_aliases_are_still_fine(self, tmp_path: Path):
        path = tmp_path / "anchors.yaml"
        path.write_text("rules:\n  - &base\n    id: a\n    description: x\n"
                        "    condition: penalty_count > 0\n    severity: high\n"
                        "    audience: compliance\n    message: &msg {en: x, zh-CN: x}\n"
                        "  - id: b\n    description: x\n    condition: dispute_rate > 0.1\n"
                        "    severity: high\n    audience: compliance\n    message: *msg\n")
        assert [r.id for r in load_pack(path).rules] == ["a", "b"]

    def test_an_alias_inside_its_own_anchor_is_refused(self, tmp_path: Path):
        path = tmp_path / "cycle.yaml"
        path.write_text("rules: &x [1, *x]\n")
        assert "refers to the node that holds it" in refusal(path).reason

    def test_deep_nesting_is_refused_with_its_line(self, tmp_path: Path):
        path = tmp_path / "deep.yaml"
        path.write_text("rules:\n  - " + "[" * 500 + "]" * 500 + "\n")
        error = refusal(path)
        assert error.line == 2 and "YAML_MAX_DEPTH" in error.reason
        path.write_text("rules:\n  - " + "[" * 5000 + "]" * 5000 + "\n")
        assert refusal(path).line == 2  # libyaml's own limit (1,000) may come first


class TestTheEngineCliff:
    """durable-rules spins for ever when a node of its network gets a 513th comparison."""

    def test_512_rules_with_different_leading_comparisons_compile(self, tmp_path: Path):
        path = rules_file(tmp_path, *(f"penalty_count > {i}" for i in range(512)))
        assert len(RuleEngine(load_pack(path)).pack.rules) == 512

    def test_the_513th_is_refused_naming_its_rule_file_and_line(self, tmp_path: Path):
        path = rules_file(tmp_path, *(f"penalty_count > {i}" for i in range(513)))
        error = refusal(path)
        assert (error.file, error.line) == (str(path), 2 + 6 * 512)
        assert "'r512'" in error.reason and "RULE_ENGINE_MAX_BRANCHES" in error.reason

    def test_alternatives_after_a_shared_guard_count_together(self, tmp_path: Path):
        conditions = [
            "penalty_count > 0 and (" + " or ".join(f"dispute_rate > {100 * j + i}"
                                                    for i in range(40)) + ")"
            for j in range(13)]  # 13 x 40 = 520 comparisons after the shared guard
        error = refusal(rules_file(tmp_path, *conditions))
        assert "'r12'" in error.reason and "RULE_ENGINE_MAX_BRANCHES" in error.reason

    def test_a_compile_that_never_ends_is_killed_at_the_time_limit(
            self, monkeypatch: pytest.MonkeyPatch):
        """The spin itself, handed to the trial compile without the branch check."""
        monkeypatch.setattr(trial, "RULE_COMPILE_TIMEOUT_SECONDS", 2.0)
        spinning = {f"r{i}": {f"r{i}@0": {"all": [{"m": {"$gt": {"m_x": i}}}]}}
                    for i in range(513)}
        started = time.monotonic()
        with pytest.raises(ConfigError) as caught:
            trial.trial_compile(RulePack(rules=()), spinning)
        assert time.monotonic() - started < 10
        assert "RULE_COMPILE_TIMEOUT_SECONDS" in caught.value.reason

    def test_a_spinning_trial_child_ends_itself_if_nobody_waits_for_it(self):
        """The child's own alarm: a daemon stopped mid-trial leaves no process spinning."""
        spinning = {f"r{i}": {f"r{i}@0": {"all": [{"m": {"$gt": {"m_x": i}}}]}}
                    for i in range(513)}
        child = subprocess.Popen([sys.executable, "-P", "-c", trial._CHILD, "1"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert child.stdin is not None
        child.stdin.write(json.dumps(spinning).encode())
        child.stdin.close()
        assert child.wait(timeout=30) == -signal.SIGALRM

    def test_an_engine_error_is_traced_to_the_rule_that_causes_it(self, tmp_path: Path):
        path = rules_file(tmp_path, *["penalty_count > 1"] * 300)  # 256 rules share a node
        error = refusal(path)
        assert (error.file, error.line) == (str(path), 2 + 6 * 256)
        assert "'r256'" in error.reason and "error code: 108" in error.reason

    def test_a_pack_slower_to_compile_than_the_limit_is_refused(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(trial, "RULE_COMPILE_MAX_SECONDS", 0.0)
        error = refusal(rules_file(tmp_path, "penalty_count > 7"))
        assert "RULE_COMPILE_MAX_SECONDS" in error.reason and error.file

    @pytest.mark.parametrize("name", list(LIMIT_PACKS))
    def test_a_pack_at_each_limit_passes_the_trial(self, name: str):
        """Within the limits durable-rules compiles in milliseconds (bench.rule_limits prints
        the figures); the trial includes the RULE_COMPILE_MAX_SECONDS check."""
        pack = RulePack(rules=tuple(LIMIT_PACKS[name]()))
        forms = trial.definitions(pack)
        trial.check_branches(pack, forms)
        assert trial.trial_compile(pack, forms) <= limits.RULE_COMPILE_MAX_SECONDS


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def heavy_pack() -> str:
    """About the heaviest pack the static limits let through (999 rules of 64 comparisons,
    0.9 MB): its compile takes 0.2-0.7 s of CPU, around RULE_COMPILE_MAX_SECONDS."""
    terms = " or ".join(f"m{j} > {j}" for j in range(62))
    return "metrics:\n" + "".join(
        f"  m{j}: {{unit: count, direction: lower, range: [0, null]}}\n" for j in range(62)
    ) + "rules:\n" + "".join(
        rule_yaml(f"h{i}", f"dispute_rate > {i // 400} and penalty_count > {i % 400} and "
                           f"({terms})") for i in range(999))  # + good.yaml: 1000


class TestReloadInARunningDaemon:
    def test_pathological_rule_files_are_refused_while_healthz_keeps_answering(
            self, tmp_path: Path):
        from tests.daemon_harness import running
        rules = tmp_path / "rules"
        rules.mkdir()
        good = rules_file(rules, "penalty_count > 0", name="good.yaml")
        with running(tmp_path, {"rules": str(rules), "rules_poll_seconds": 0.2}) as daemon:
            version = httpx_get(daemon.url + "/v1/rules")["version"]
            cases = [
                ("laughs.yaml", LAUGHS, 5, "YAML_MAX_ALIAS_NODES"),
                ("wide.yaml", "rules:\n" + "".join(  # with good.yaml's: 513 at the root
                    rule_yaml(f"w{i}", f"dispute_rate > {i}") for i in range(512)),
                 2 + 6 * 511, "RULE_ENGINE_MAX_BRANCHES"),
            ]
            for refused, (name, text, line, limit) in enumerate(cases, start=1):
                path = drop(tmp_path, rules / name, text)
                worst = watch_health(daemon.url, lambda: all_reloads(daemon.url), refused)
                assert worst < 1.0, f"{name}: /healthz took {worst:.2f} s"
                body = httpx_get(daemon.url + "/v1/rules")
                assert body["version"] == version  # the old pack stays in force
                last = body["last_reload"]
                assert (last["accepted"], last["file"], last["line"]) == (False, str(path),
                                                                          line), name
                assert limit in last["error"], last["error"]
                path.unlink()
            # The heaviest pack within the limits: refused as too slow to compile, or taken;
            # either way the daemon answers throughout.
            heavy = drop(tmp_path, rules / "heavy.yaml", heavy_pack())
            worst = watch_health(daemon.url, lambda: all_reloads(daemon.url), 3)
            assert worst < 1.0, f"heavy.yaml: /healthz took {worst:.2f} s"
            last = httpx_get(daemon.url + "/v1/rules")["last_reload"]
            assert last["accepted"] or "RULE_COMPILE_" in last["error"], last
            heavy.unlink()
            good.write_text(good.read_text().replace("> 0", "> 1"))
            watch_health(daemon.url, lambda: all_reloads(daemon.url), 4)
            body = httpx_get(daemon.url + "/v1/rules")
            assert body["last_reload"]["accepted"] and body["version"] != version
            assert (f'watcher_rule_pack_info{{version="{body["version"]}"}} 1.0'
                    in httpx_text(daemon.url + "/metrics"))
        assert '"rules_reload_refused"' in daemon.output()


def httpx_get(url: str) -> Any:
    import httpx
    return httpx.get(url, timeout=10).json()


def httpx_text(url: str) -> str:
    import httpx
    return httpx.get(url, timeout=10).text


def drop(scratch: Path, path: Path, text: str) -> Path:
    """Write ``path`` whole: the reloader never sees half a file."""
    (scratch / path.name).write_text(text, encoding="utf-8")
    (scratch / path.name).rename(path)
    return path


def all_reloads(url: str) -> float:
    metrics = httpx_text(url + "/metrics")
    return sum(metric_value(metrics, f'watcher_rule_reloads_total{{result="{result}"}}')
               for result in ("accepted", "refused"))


def watch_health(url: str, count: Any, target: float, timeout: float = 60) -> float:
    """Poll /healthz until ``count()`` reaches ``target``; the slowest answer, in seconds."""
    import httpx
    worst = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - started)
        if count() >= target:
            return worst
        time.sleep(0.05)
    raise AssertionError(f"no reload within {timeout} s")


def test_the_limits_are_documented() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "limits.md").read_text()
    names = [n for n in vars(limits) if n.startswith(("RULE_", "YAML_"))]
    assert names and all(n in docs for n in names), [n for n in names if n not in docs]
