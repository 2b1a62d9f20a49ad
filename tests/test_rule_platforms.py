"""``platforms:``: a platform's own line judges that platform's stores only (issue #17).

Shopee's 70 % chat response, Amazon's 1 % order defect rate and 4 % late shipments are
lines of one platform; a TikTok store is not held to them. The key limits a rule of any
kind but ``streak`` (an operator's card holds every platform's stores), in the engine by a
guard on the fact's lower-case platform and everywhere else by ``Rule.applies_to``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import ROOT
from tests.test_cli import env, watcher  # noqa: F401  (fixture)
from watcher.assessment.scorecard import snapshot_view, view_criterion
from watcher.assessment.targets import TargetBook
from watcher.config import Settings
from watcher.errors import ConfigError
from watcher.evaluation import outcome
from watcher.period import PeriodKind
from watcher.rules.compiler import compile_pack
from watcher.rules.engine import RuleEngine
from watcher.rules.facts import to_fact
from watcher.rules.loader import load_pack
from watcher.rules.model import Rule, RulePack
from watcher.snapshot import Snapshot
from watcher.sources import builtin_platforms, platforms_for
from watcher.web.views import rule_scope

MESSAGE = {"en": "{value}", "zh-CN": "{value}"}


def rule(**keys: Any) -> Rule:
    return Rule.model_validate({"id": "r", "description": "d", "severity": "high",
                                "audience": "ops", "message": MESSAGE, **keys})


def snap(platform: str, store: str = "s1", period: str = "2026-11-05", **fields: Any
         ) -> Snapshot:
    return Snapshot.model_validate({"store": store, "platform": platform, "period": period,
                                    **fields})


def fired(pack: RulePack, snapshot: Snapshot) -> list[str]:
    engine = RuleEngine(pack)
    return sorted({f.rule for f in outcome(pack, pack.version,
                                           engine.evaluate(snapshot)).firings})


CHAT = rule(id="chat-low", condition="chat_response_rate < 0.7", platforms=["Shopee"])


class TestTheKey:
    def test_names_are_kept_in_lower_case(self):
        assert CHAT.platforms == ("shopee",)

    @pytest.mark.parametrize(("value", "error"), [
        ("shopee", "a list of platform names"), ([], "at least one platform"),
        (None, "is a list of platform names"), ({"amazon": 1}, "is a list of platform names"),
        (["shopee", "Shopee"], "names a platform twice"), (["shop ee"], "not a platform name"),
        ([3], "not a platform name")])
    def test_a_malformed_list_is_refused_with_the_reason(self, value: Any, error: str):
        with pytest.raises(ValidationError, match=error) as caught:
            rule(condition="gmv < 1", platforms=value)
        assert caught.value.errors()[0]["loc"][0] == "platforms"

    def test_a_streak_rule_takes_none(self):
        with pytest.raises(ValidationError, match="streak rule takes no 'platforms'"):
            rule(kind="streak", subject="operator", platforms=["amazon"])

    def test_it_is_part_of_the_packs_version_where_written(self):
        # where it is not written the version is the one the pack always had
        # (tests/test_history_rules.py::TestPack)
        assert (RulePack(rules=(rule(condition="gmv < 1"),)).version
                != RulePack(rules=(rule(condition="gmv < 1", platforms=["amazon"]),)).version)


class TestInTheEngine:
    def test_the_guard_is_compiled_before_the_condition(self):
        [form] = compile_pack(RulePack(rules=(CHAT,))).values()
        assert form["all"][0]["m"]["$and"][0] == {"pf": "shopee"}

    def test_the_fact_carries_the_platform_in_lower_case(self):
        assert to_fact(snap("Shopee", metrics={"gmv": 1}), "x", frozenset())["pf"] == "shopee"

    def test_a_threshold_rule_fires_on_its_platform_only(self):
        pack = RulePack(rules=(CHAT,))
        low = {"chat_response_rate": 0.5}
        assert fired(pack, snap("shopee", metrics=low)) == ["chat-low"]
        assert fired(pack, snap("SHOPEE", metrics=low)) == ["chat-low"]
        assert fired(pack, snap("tiktok", metrics=low)) == []

    def test_with_variants_and_periods_each_guard_holds(self):
        variants = rule(id="v", condition="net_margin < 0.1", periods=["day"],
                        platforms=["amazon", "shopee"],
                        variants=[{"when": {"stage": "mature"}, "condition": "net_margin < 0.3"}])
        pack = RulePack(rules=(variants,))
        mature = {"metrics": {"net_margin": 0.2}, "segment": {"stage": "mature"}}
        assert fired(pack, snap("shopee", **mature)) == ["v"]
        assert fired(pack, snap("tiktok", **mature)) == []
        assert fired(pack, snap("amazon", period="2026-11", **mature)) == []  # not a day

    def test_a_platform_target_rule_judges_the_named_platforms_targets(self):
        targets = rule(id="pt", kind="platform_target", platforms=["amazon"])
        pack = RulePack(rules=(targets,))
        missed = {"metrics": {"order_defect_rate": 0.02},
                  "targets": {"order_defect_rate": {"value": 0.01, "comparator": "<"}}}
        assert fired(pack, snap("amazon", **missed)) == ["pt/order_defect_rate"]
        assert fired(pack, snap("shopee", **missed)) == []

    def test_another_platforms_snapshot_neither_fires_nor_resolves(self):
        pack = RulePack(rules=(CHAT,))
        engine = RuleEngine(pack)
        good = {"chat_response_rate": 0.9}
        on_shopee = outcome(pack, pack.version, engine.evaluate(snap("shopee", metrics=good)))
        on_tiktok = outcome(pack, pack.version, engine.evaluate(snap("tiktok", metrics=good)))
        assert on_shopee.recovery("chat-low", "store", "s1") is not None
        assert on_tiktok.recovery("chat-low", "store", "s1") is None


class TestOutsideTheEngine:
    def test_a_history_rule_judges_its_platform_only(self):
        from watcher.rules.history import judge

        trend = rule(id="odr", kind="trend", crosses="order_defect_rate >= 0.01", within="7d",
                     periods=["day"], platforms=["amazon"])
        pack = RulePack(rules=(trend,))
        for platform, expected in (("amazon", ["odr"]), ("tiktok", [])):
            series = [snap(platform, period=f"2026-11-0{d}",
                           metrics={"order_defect_rate": 0.004 + 0.0005 * d})
                      for d in range(1, 10)]
            engine = RuleEngine(pack)
            verdict = judge(outcome(pack, pack.version, engine.evaluate(series[-1])),
                            pack.version, series)
            assert [f.rule for f in verdict.firings] == expected, platform

    def test_a_card_does_not_take_its_threshold_from_another_platforms_line(self):
        pack = RulePack(rules=(rule(id="chat-low", condition="chat_response_rate < 0.7",
                                    platforms=["shopee"],
                                    labels={"indicator": "chat_response_rate"}),))
        for platform, expected in (("shopee", "chat-low"), ("tiktok", None)):
            view = snapshot_view(snap(platform, period="2026-11",
                                      metrics={"chat_response_rate": 0.5}), TargetBook())
            criterion = view_criterion("chat_response_rate", view, pack, PeriodKind.MONTH)
            assert (criterion.rule if criterion else None) == expected, platform


class TestBacktest:
    def test_the_replay_holds_to_the_key(self, env: Path):  # noqa: F811
        records = [{"store": s, "platform": p, "period": "2026-11-05",
                    "metrics": {"chat_response_rate": 0.5}}
                   for s, p in (("sp1", "shopee"), ("tt1", "tiktok"))]
        data = env / "chat.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
        assert watcher("ingest", str(data))[0] == 0
        rules = env / "rules"
        shutil.copytree(ROOT / "rules", rules)
        daily = rules / "default" / "daily.yaml"
        # the pack as it was before the key: the Shopee line judged every store
        daily.write_text(daily.read_text(encoding="utf-8").replace(
            "    platforms: [shopee]\n", ""), encoding="utf-8")
        code, out = watcher("rules", "backtest", "--from", "2026-11-01", "--to", "2026-11-30",
                            "--rules", str(rules), "--format", "json")
        assert code == 0, out
        report = json.loads(out)
        chat = next(r for r in report["rules"] if r["rule"] == "shopee-chat-response-low")
        assert (chat["recorded"], chat["would_fire"]) == (1, 2)
        assert {"rule": "shopee-chat-response-low", "subject": "tt1"} in report[
            "would_open_not_recorded"]


def pack_file(folder: Path, platforms: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "chat.yaml").write_text(
        "rules:\n"
        "  - id: chat-low\n"
        "    description: chat response below the line\n"
        "    condition: chat_response_rate < 0.7\n"
        "    severity: high\n"
        "    audience: ops\n"
        f"    platforms: {platforms}\n"
        "    message: {en: '{value}', zh-CN: '{value}'}\n", encoding="utf-8")
    return folder


class TestPlatformNames:
    """A rule naming a platform no source produces would never fire: it is refused at load,
    naming the file, line and key, the platform meant and the known ones (issue: the
    source's name ``tiktokshop`` written for the platform ``tiktok`` passed the check)."""

    def test_the_known_names_are_the_sources_and_mappings_platforms(self):
        known = builtin_platforms()
        assert {"amazon", "shopee", "tiktok"} <= known.names  # the platform adapters
        assert "lazada" in known.names  # only the dianxiaomi mapping's values produce it
        assert "tiktokshop" not in known.names and "amazon-spapi" not in known.names

    def test_a_source_name_written_for_its_platform_is_refused_with_the_platform(
            self, tmp_path: Path):
        with pytest.raises(ConfigError) as caught:
            load_pack(pack_file(tmp_path / "p", "[amazon, tiktokshop]"))
        error = caught.value
        assert error.key == "rules.0.platforms" and error.line == 7
        assert error.file is not None and error.file.endswith("chat.yaml")
        assert "'tiktokshop' is not a platform: did you mean 'tiktok'?" in error.reason
        assert "known: amazon, lazada, shopee, tiktok" in error.reason

    @pytest.mark.parametrize(("name", "hint"), [
        ("amazom", "is not a platform: did you mean 'amazon'?"),
        ("nope", "is not a platform (known:")])
    def test_a_misspelt_or_unknown_platform_is_refused(self, tmp_path: Path, name: str,
                                                       hint: str):
        with pytest.raises(ConfigError, match=re.escape(f"'{name}' {hint}")):
            load_pack(pack_file(tmp_path / "p", f"[{name}]"))

    def test_a_platform_of_ones_own_is_declared_in_the_config(self, tmp_path: Path):
        folder = pack_file(tmp_path / "p", "[walmart]")
        with pytest.raises(ConfigError, match="'walmart' is not a platform"):
            load_pack(folder)
        settings = Settings(rules=folder, platforms=("walmart",))
        pack = load_pack(folder, platforms_for(settings))
        assert pack.rules[0].platforms == ("walmart",)
        with pytest.raises(ValidationError, match="platforms"):
            Settings(platforms=("Wal Mart",))

    def test_rules_check_refuses_it_and_accepts_the_declared_one(
            self, env: Path):  # noqa: F811
        folder = pack_file(env / "p", "[tiktokshop]")
        code, out = watcher("rules", "check", str(folder))
        assert code != 0 and "did you mean 'tiktok'?" in out
        pack_file(folder, "[walmart]")
        assert watcher("rules", "check", str(folder))[0] != 0
        config = env / "own.yaml"
        config.write_text(f"rules: {folder}\nplatforms: [walmart]\n", encoding="utf-8")
        code, out = watcher("rules", "check", "--config", str(config))
        assert code == 0 and "1 rule(s) OK" in out, out

    def test_the_hint_is_never_taken_for_the_name(self):
        known = builtin_platforms()
        assert known.problem("tiktok") is None
        assert "did you mean 'shopee'?" in (known.problem("SHOPEE") or "")
        assert known.problem("Walmart", seen={"Walmart"}) is None  # stored, so filterable

    def test_the_incident_page_names_the_platforms_by_their_brand(self):
        both = rule(condition="gmv < 1", platforms=["amazon", "tiktok"])
        assert rule_scope(both, "en") == "(Amazon, TikTok Shop only)"
        assert rule_scope(both, "zh-CN") == "（仅 Amazon、TikTok Shop）"
        assert rule_scope(rule(condition="gmv < 1", platforms=["walmart"]), "en") == \
            "(walmart only)"  # a name of one's own, as written
        assert rule_scope(rule(condition="gmv < 1"), "en") is None
