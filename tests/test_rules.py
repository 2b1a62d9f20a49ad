"""Rule files: validated once at load (errors name file and line), compiled onto durable-rules."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import pytest

from watcher.errors import ConfigError
from watcher.rules.engine import QuietHost, RuleEngine
from watcher.rules.expression import ExpressionError, holds, parse
from watcher.rules.loader import load_pack
from watcher.snapshot import Snapshot

RULE = """
rules:
  - id: margin-low
    description: Net margin by stage
    condition: net_margin < 0.20
    variants:
      - when: {stage: novice}
        condition: net_margin < 0.15
      - when: {stage: mature}
        condition: net_margin < 0.25
      - when: {stage: mature, category: apparel}
        condition: net_margin < 0.30
    severity: medium
    audience: ops
    message: {en: "margin {value}", zh-CN: "利润率 {value}"}
"""


def write(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def fired(engine: RuleEngine, **record: object) -> list[str]:
    base: dict[str, object] = {"store": "s", "platform": "amazon", "period": "2026-10"}
    base.update(record)
    return [f.key for f in engine.evaluate(Snapshot.model_validate(base)).fired]


class TestExpression:
    def test_and_binds_tighter_than_or(self):
        condition = parse("a > 1 or b > 1 and c > 1")
        assert holds(condition, {"a": 2, "b": 0, "c": 0}, {})
        assert not holds(condition, {"a": 0, "b": 2, "c": 0}, {})

    def test_percent_literals_and_targets(self):
        assert str(parse("dispute_rate > 3%")) == "dispute_rate > 0.03"
        assert holds(parse("gmv < target"), {"gmv": 1}, {"gmv": 2})
        assert not holds(parse("gmv < target"), {"gmv": 1}, {})

    @pytest.mark.parametrize("text", ["gmv <", "gmv ~ 3", "(gmv < 1", "3 < gmv", "gmv < x1"])
    def test_malformed_conditions_are_refused(self, text: str):
        with pytest.raises(ExpressionError):
            parse(text)


class TestLoader:
    def test_the_default_pack_loads_and_compiles(self):
        pack = load_pack(Path(__file__).parent.parent / "rules")
        assert {"account-health-low", "penalty-received", "dispute-rate-high",
                "pip-recommended"} <= {r.id for r in pack.rules}
        RuleEngine(pack)

    def test_a_bad_condition_names_file_line_and_key(self, tmp_path: Path):
        path = write(tmp_path, RULE.replace("net_margin < 0.15", "net_margin << 0.15"))
        with pytest.raises(ConfigError) as caught:
            load_pack(path)
        error = caught.value
        assert error.file == str(path) and error.line == 8
        assert error.key == "rules.0.variants.0.condition"

    def test_a_missing_message_language_is_refused(self, tmp_path: Path):
        path = write(tmp_path, RULE.replace(', zh-CN: "利润率 {value}"', ""))
        with pytest.raises(ConfigError, match="zh-CN"):
            load_pack(path)

    def test_broken_yaml_names_the_line(self, tmp_path: Path):
        path = write(tmp_path, "rules:\n  - id: x\n    description: [unclosed\n")
        with pytest.raises(ConfigError) as caught:
            load_pack(path)
        assert caught.value.line is not None and caught.value.file == str(path)

    def test_duplicate_ids_across_files_are_refused(self, tmp_path: Path):
        write(tmp_path, RULE, "a.yaml")
        write(tmp_path, RULE, "b.yaml")
        with pytest.raises(ConfigError, match="already defined"):
            load_pack(tmp_path)

    def test_same_content_gives_the_same_version(self, tmp_path: Path):
        assert load_pack(write(tmp_path, RULE)).version == load_pack(write(
            tmp_path, RULE, "copy.yml")).version


class TestVariants:
    @pytest.fixture(scope="class")
    @classmethod
    def engine(cls, tmp_path_factory: pytest.TempPathFactory) -> RuleEngine:
        return RuleEngine(load_pack(write(tmp_path_factory.mktemp("r"), RULE)))

    @pytest.mark.parametrize(("segment", "margin", "expected"), [
        ({"stage": "novice"}, 0.149, ["margin-low@1"]),
        ({"stage": "novice"}, 0.15, []),
        ({"stage": "mature"}, 0.249, ["margin-low@2"]),
        ({"stage": "mature"}, 0.25, []),
        ({"stage": "mature", "category": "apparel"}, 0.29, ["margin-low@3"]),
        ({"stage": "mature", "category": "apparel"}, 0.30, []),
        ({}, 0.19, ["margin-low@0"]),
        ({"stage": "growth"}, 0.20, []),
    ])
    def test_the_most_specific_matching_variant_wins(self, engine: RuleEngine,
                                                       segment: dict[str, str], margin: float,
                                                       expected: list[str]):
        assert fired(engine, segment=segment, metrics={"net_margin": margin}) == expected


class TestRuleEngine:
    def test_firings_match_durable_rules_own_host_api(self):
        """The engine drives the C extension itself; durable-rules' Host agrees on every fact."""
        from durable import engine as durable_engine

        from bench.generate import snapshots
        from watcher.rules.compiler import compile_pack
        from watcher.rules.facts import to_fact

        pack = load_pack(Path(__file__).resolve().parent.parent / "rules" / "default")
        engine = RuleEngine(pack)
        host_fired: list[str] = []

        def recorder(key: str):
            return lambda _closure: host_fired.append(key)

        definition = compile_pack(pack)
        for key, rule in definition.items():
            rule["run"] = recorder(key)
        host = QuietHost()
        host.register_rulesets({"reference": definition})
        keys = frozenset(k for r in pack.rules for v in r.variants for k in v.when)
        compared = firing = platform = 0
        comparators = ("<", "<=", ">", ">=", "==")
        for i, raw in enumerate(snapshots(3000, seed=11)):
            if i % 3 == 0:  # a platform states targets on either side of the values
                for n, metric in enumerate(list(raw["metrics"])[:3]):
                    raw["targets"][metric] = {"value": raw["metrics"][metric] * (0.9 + n * 0.1),
                                              "comparator": comparators[(i + n) % 5]}
            snapshot = Snapshot.model_validate(raw)
            host_fired.clear()
            fact = to_fact(snapshot, f"ref-{i}", keys)
            for call in (host.assert_fact, host.retract_fact):
                with suppress(durable_engine.MessageNotHandledException):
                    call("reference", fact)
            ours = [form.key for form in engine.evaluate(snapshot).fired]
            assert ours == list(dict.fromkeys(host_fired)), raw
            compared += 1
            firing += bool(ours)
            platform += any("@target:" in key for key in ours)
        assert compared == 3000
        assert firing > 300 and platform > 200
