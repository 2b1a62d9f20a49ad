"""Targets per segment: the conversion target differs by product type (kpi-reference §1,
indicator 3: standard 标品 / non_standard 非标品), set once in the targets file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Clock, jsonl, snapshot
from tests.test_pipeline import incidents
from watcher.assessment.scorecard import build_card
from watcher.assessment.targets import TargetBook, load_targets
from watcher.assessment.weights import ScorecardSettings
from watcher.config import Settings
from watcher.errors import ConfigError
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.rules.engine import RuleEngine
from watcher.rules.loader import load_pack
from watcher.snapshot import Snapshot
from watcher.store import Database
from watcher.validation import read_records

OCT = Period.parse("2026-10")
BY_TYPE = """targets:
  - {operator: li.wei, conversion_rate: "2%"}
  - {operator: li.wei, segment: {product_type: standard}, conversion_rate: "3%"}
  - {operator: li.wei, segment: {product_type: non_standard}, conversion_rate: "1.5%"}
"""
STANDARD = {"product_type": "standard"}
NON_STANDARD = {"product_type": "non_standard"}


def book(tmp_path: Path, text: str) -> TargetBook:
    path = tmp_path / "targets.yaml"
    path.write_text(text, encoding="utf-8")
    return load_targets(path)


def conversion(targets: TargetBook, segment: dict[str, str] | None, store: str = "s",
               operator: str | None = "li.wei", period: Period = OCT) -> float | None:
    found = targets.lookup(store, operator, period, segment=segment).get("conversion_rate")
    return found.value if found else None


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        book(tmp_path, text)
    return caught.value


class TestTargetsBySegment:
    def test_each_product_type_gets_its_own_conversion_target(self, tmp_path: Path):
        targets = book(tmp_path, BY_TYPE)
        assert conversion(targets, STANDARD) == 0.03
        assert conversion(targets, NON_STANDARD) == 0.015
        assert conversion(targets, {}) == 0.02  # a store that does not say: the general one
        assert conversion(targets, None) == 0.02

    def test_segments_are_compared_as_snapshots_spell_them(self, tmp_path: Path):
        targets = book(tmp_path, BY_TYPE.replace("product_type: standard",
                                                 "product_type: Standard"))
        assert conversion(targets, {"product_type": "standard"}) == 0.03

    def test_a_segment_entry_beats_a_more_exact_period_of_the_same_subject(
            self, tmp_path: Path):
        targets = book(tmp_path, BY_TYPE + '  - {operator: li.wei, period: 2026-10, '
                                           'conversion_rate: "4%"}\n')
        assert conversion(targets, STANDARD) == 0.03
        assert conversion(targets, {}) == 0.04

    def test_the_narrower_subject_still_wins(self, tmp_path: Path):
        targets = book(tmp_path, BY_TYPE + '  - {store: s, conversion_rate: "5%"}\n')
        assert conversion(targets, STANDARD) == 0.05
        assert conversion(targets, STANDARD, store="other") == 0.03

    def test_a_segment_alone_sets_the_target_of_every_store_in_it(self, tmp_path: Path):
        targets = book(tmp_path, """targets:
  - {segment: {product_type: standard}, conversion_rate: "3%"}
  - {segment: {product_type: non_standard}, conversion_rate: "1.5%"}
  - {operator: chen.jing, segment: {product_type: standard}, conversion_rate: "3.5%"}
""")
        assert conversion(targets, STANDARD, operator="anyone") == 0.03
        assert conversion(targets, NON_STANDARD, operator=None) == 0.015
        assert conversion(targets, STANDARD, operator="chen.jing") == 0.035
        assert conversion(targets, {}, operator="anyone") is None

    def test_the_same_target_twice_in_one_segment_is_refused_but_two_segments_are_fine(
            self, tmp_path: Path):
        error = refused(tmp_path, BY_TYPE + "  - {operator: li.wei, segment: {product_type: "
                                            "standard}, conversion_rate: 0.01}\n")
        assert error.line == 5 and "segment product_type=standard" in error.reason
        assert "on line 3" in error.reason

    def test_a_product_type_the_reference_does_not_name_is_refused_with_a_hint(
            self, tmp_path: Path):
        error = refused(tmp_path, "targets:\n  - {operator: o, segment: {product_type: "
                                  "non-standard}, conversion_rate: 0.01}\n")
        assert error.key == "targets.0.segment" and error.line == 2
        assert "did you mean 'non_standard'" in error.reason

    @pytest.mark.parametrize(("entry", "says"), [
        ("{operator: o, segment: standard, conversion_rate: 0.01}", "a mapping"),
        ("{operator: o, segment: {}, conversion_rate: 0.01}", "a mapping"),
        ("{operator: o, segment: {Product Type: x}, conversion_rate: 0.01}", "segment key"),
        ("{operator: o, segment: {region: ''}, conversion_rate: 0.01}", "needs a value"),
        ("{conversion_rate: 0.01}", "exactly one"),
    ])
    def test_a_bad_segment_names_the_entry(self, tmp_path: Path, entry: str, says: str):
        error = refused(tmp_path, f"targets:\n  - {entry}\n")
        assert says in error.reason and error.line == 2

    def test_the_scorecard_judges_with_the_same_target_as_the_alert(
            self, tmp_path: Path, default_pack_path: Path):
        targets = book(tmp_path, BY_TYPE)
        pack = load_pack(default_pack_path)
        for segment, rate, status in ((STANDARD, 0.025, "fail"), (NON_STANDARD, 0.025, "pass")):
            snap = Snapshot.model_validate(snapshot(segment=segment, conversion_rate=rate))
            card = build_card("li.wei", OCT, [snap], pack, targets, ScorecardSettings())
            [item] = [i for i in card.items if i.indicator == "conversion_rate"]
            assert item.status.value == status, (segment, item)
            assert item.threshold == (0.03 if segment is STANDARD else 0.015)


class TestPipelineWithTargetsBySegment:
    def test_conversion_below_its_product_types_target_alerts(
            self, db: Database, settings: Settings, clock: Clock, default_pack_path: Path,
            tmp_path: Path):
        path = tmp_path / "targets.yaml"
        path.write_text(BY_TYPE, encoding="utf-8")
        pipeline = Pipeline(db, RuleEngine(load_pack(default_pack_path)),
                            settings.model_copy(update={"targets": path}), clock=clock)
        pipeline.ingest(read_records(jsonl(
            snapshot("std-01", segment=STANDARD, conversion_rate=0.025),
            snapshot("nstd-01", segment=NON_STANDARD, conversion_rate=0.025),
            snapshot("nstd-02", segment=NON_STANDARD, conversion_rate=0.012))), "test")
        found = {(i.subject, i.threshold) for i in incidents(pipeline,
                                                              rule="conversion-below-target")}
        assert found == {("std-01", 0.03), ("nstd-02", 0.015)}
