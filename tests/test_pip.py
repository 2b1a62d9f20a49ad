"""PIP: three consecutive monthly assessments below target, for the operator's manager."""

from __future__ import annotations

from tests.conftest import jsonl, snapshot
from tests.test_pipeline import events, incidents
from watcher.pipeline import Pipeline
from watcher.validation import read_records


def month(period: str, gmv: float, *, store: str = "amz-us-01",
          operator: str = "li.wei") -> dict[str, object]:
    return snapshot(store=store, period=period, operator=operator, gmv=gmv,
                    targets={"gmv": 150000})


def feed(pipeline: Pipeline, *records: dict[str, object]) -> None:
    for record in records:  # one request per snapshot, as they arrive in practice
        pipeline.ingest(read_records(jsonl(record)), "test")


def pips(pipeline: Pipeline) -> list:  # type: ignore[type-arg]
    return [i for i in incidents(pipeline) if i.rule == "pip-recommended"]


class TestPipRecommendation:
    def test_three_missed_months_open_one_pip_with_evidence(self, pipeline: Pipeline):
        feed(pipeline, month("2026-07", 130000), month("2026-08", 128000),
             month("2026-09", 120000))
        [pip] = pips(pipeline)
        assert (pip.subject_kind, pip.subject, pip.audience) == ("operator", "li.wei", "manager")
        assert [e["period"] for e in pip.evidence] == ["2026-07", "2026-08", "2026-09"]
        assert pip.evidence[0]["metric"] == "gmv" and pip.evidence[0]["target"] == 150000
        assert "2026-07, 2026-08, 2026-09" in pip.title["en"]

    def test_two_missed_months_are_not_a_pip(self, pipeline: Pipeline):
        feed(pipeline, month("2026-08", 1), month("2026-09", 1))
        assert pips(pipeline) == []

    def test_months_arriving_out_of_order_still_make_the_streak(self, pipeline: Pipeline):
        feed(pipeline, month("2026-09", 1), month("2026-07", 1), month("2026-08", 1))
        assert len(pips(pipeline)) == 1

    def test_a_missing_month_breaks_the_streak(self, pipeline: Pipeline):
        feed(pipeline, month("2026-06", 1), month("2026-07", 1), month("2026-09", 1))
        assert pips(pipeline) == []

    def test_a_fourth_month_extends_the_same_pip(self, pipeline: Pipeline):
        feed(pipeline, month("2026-07", 1), month("2026-08", 1), month("2026-09", 1),
             month("2026-10", 1))
        [pip] = pips(pipeline)
        assert len(pip.evidence) == 4
        assert events(pipeline, pip.id) == ["opened", "firing"]

    def test_a_restatement_lifting_a_month_withdraws_the_pip(self, pipeline: Pipeline):
        feed(pipeline, month("2026-07", 1), month("2026-08", 1), month("2026-09", 1))
        feed(pipeline, month("2026-08", 160000))
        [pip] = pips(pipeline)
        assert pip.status.value == "resolved"
        assert events(pipeline, pip.id) == ["opened", "resolved"]

    def test_a_passed_month_after_the_streak_leaves_the_recommendation_for_a_manager(
            self, pipeline: Pipeline):
        feed(pipeline, month("2026-01", 1), month("2026-02", 1), month("2026-03", 1),
             month("2026-04", 200000))
        [pip] = pips(pipeline)
        assert pip.status.value == "open"  # a recommendation waits for a manager
        assert events(pipeline, pip.id) == ["opened"]

    def test_a_new_streak_while_the_recommendation_is_open_updates_its_evidence(
            self, pipeline: Pipeline):
        feed(pipeline, month("2026-01", 1), month("2026-02", 1), month("2026-03", 1),
             month("2026-04", 200000),
             month("2026-05", 1), month("2026-06", 1), month("2026-07", 1))
        [pip] = pips(pipeline)
        assert pip.status.value == "open"
        assert [e["period"] for e in pip.evidence] == ["2026-05", "2026-06", "2026-07"]

    def test_any_store_of_the_operator_missing_its_target_misses_the_month(
            self, pipeline: Pipeline):
        feed(pipeline, month("2026-07", 1, store="a"), month("2026-08", 200000, store="a"),
             month("2026-08", 1, store="b"), month("2026-09", 1, store="a"))
        assert len(pips(pipeline)) == 1

    def test_a_lower_is_better_target_is_missed_when_above(self, pipeline: Pipeline):
        feed(*[pipeline], *[snapshot(period=p, stockout_rate=0.09,
                                     targets={"stockout_rate": 0.05})
                            for p in ("2026-07", "2026-08", "2026-09")])
        assert len(pips(pipeline)) == 1


class TestMajorViolation:
    """A major penalty fails the month's card whatever its score; a minor one does not."""

    def test_a_major_penalty_month_counts_as_failed_towards_a_pip(self, pipeline: Pipeline):
        penalty = snapshot(store="amz-us-01", period="2026-08", operator="li.wei",
                           gmv=200000, major_penalty_count=1, penalty_count=1,
                           targets={"gmv": 150000})
        feed(pipeline, month("2026-07", 1), penalty, month("2026-09", 1))
        [pip] = pips(pipeline)
        august = [e for e in pip.evidence if e["period"] == "2026-08"]
        assert august == [{"period": "2026-08", "store": "amz-us-01",
                           "metric": "major_penalty_count", "value": 1.0, "target": 0,
                           "comparator": "<=", "rule": "major-penalty-received",
                           "major_violation": True, "result": "fail", "score": 1.0,
                           "grade": "A"}]

    def test_a_major_penalty_in_a_month_without_targets_still_fails_it(
            self, pipeline: Pipeline):
        penalty = snapshot(store="amz-us-01", period="2026-08", operator="li.wei",
                           major_penalty_count=2)
        feed(pipeline, month("2026-07", 1), penalty, month("2026-09", 1))
        assert len(pips(pipeline)) == 1

    def test_a_minor_penalty_does_not_fail_a_month_that_meets_its_targets(
            self, pipeline: Pipeline):
        warned = snapshot(store="amz-us-01", period="2026-08", operator="li.wei",
                          gmv=200000, penalty_count=1, targets={"gmv": 150000})
        feed(pipeline, month("2026-07", 1), warned, month("2026-09", 1))
        assert pips(pipeline) == []
        assert "penalty-received" in [i.rule for i in incidents(pipeline)]
