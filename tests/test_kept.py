"""Kept views: the board and the team cards kept between batches say what a board and cards
built afresh from the store say, after any batch, on any replica, on both databases."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Clock, snapshot
from tests.test_auth import client_for
from watcher.assessment import kept as kept_module
from watcher.assessment.board import Board, build_board
from watcher.assessment.kept import BoardCache, TeamCache
from watcher.assessment.roster import Person, Roster
from watcher.assessment.scorecard import team_cards
from watcher.assessment.targets import TargetBook
from watcher.config import Settings
from watcher.daemon.runner import refresh_kept_forever
from watcher.indicators import Dimension
from watcher.limits import SNAPSHOTS_SETTLE_SECONDS
from watcher.period import Period
from watcher.pipeline import Pipeline
from watcher.runtime import Runtime
from watcher.snapshot import Snapshot
from watcher.store import repository as repo
from watcher.store.schema import monthly_cards

OCTOBER = Period.parse("2026-10")


def send(pipeline: Pipeline, *records: dict[str, Any]) -> None:
    pipeline.ingest_snapshots([Snapshot.model_validate(r) for r in records], "test")


def fleet(pipeline: Pipeline) -> None:
    send(pipeline,
         snapshot("amz-us-01", gmv=118000, targets={"gmv": 150000}, account_health_score=88),
         snapshot("amz-us-01", "2026-09", gmv=160000, targets={"gmv": 150000}),
         snapshot("shopee-my-02", platform="shopee", operator="chen.jing", gmv=64000,
                  targets={"gmv": 60000}, dispute_rate=0.045),
         snapshot("shopee-th-05", platform="shopee", operator="zhao.min", gmv=90000,
                  targets={"gmv": 60000}, dispute_rate=0.01),
         snapshot("shopee-th-06", platform="shopee", operator="zhao.min", gmv=50000,
                  targets={"gmv": 60000}))


def afresh(pipeline: Pipeline, **filters: Any) -> Board:
    with pipeline.db.engine.connect() as conn:
        latest = repo.latest_snapshots(conn)
    return build_board(latest, pipeline.engine.pack, pipeline.targets, roster=pipeline.roster,
                       **filters)


def kept_board(cache: BoardCache, pipeline: Pipeline, **filters: Any) -> Board:
    with pipeline.db.engine.connect() as conn:
        return cache.board(conn, pipeline.engine.pack, pipeline.targets, pipeline.roster,
                           **filters).page()


FILTERS: list[dict[str, Any]] = [{}, {"platform": "shopee"}, {"operator": "zhao.min"},
                                 {"dimension": Dimension.CUSTOMER}, {"team": "east"}]


def same_boards(cache: BoardCache, pipeline: Pipeline) -> None:
    for filters in FILTERS:
        assert kept_board(cache, pipeline, **filters) == afresh(pipeline, **filters), filters


class TestKeptBoard:
    def test_after_restatements_new_stores_and_new_indicators_it_is_the_board_afresh(
            self, pipeline: Pipeline):
        pipeline.use_roster(Roster(people=(Person(operator="zhao.min", team="east"),)))
        fleet(pipeline)
        cache = BoardCache()
        same_boards(cache, pipeline)
        send(pipeline,  # restated: the health recovered; a new store; a new indicator
             snapshot("amz-us-01", gmv=118000, targets={"gmv": 150000},
                      account_health_score=100),
             snapshot("new-01", operator="zhao.min", gmv=1, targets={"gmv": 2}),
             snapshot("shopee-th-06", platform="shopee", operator="zhao.min", gmv=50000,
                      positive_review_rate=0.5))
        same_boards(cache, pipeline)
        rows = {r.store: r for r in kept_board(cache, pipeline).rows}
        assert rows["amz-us-01"].cells["account_health_score"].status == "ok"
        assert rows["shopee-th-06"].cells["positive_review_rate"].status == "breaching"
        assert "new-01" in rows
        send(pipeline, snapshot("shopee-th-06", platform="shopee", operator="zhao.min",
                                gmv=50000))  # nobody sends that indicator any more
        same_boards(cache, pipeline)
        assert "positive_review_rate" not in {c.indicator
                                              for c in kept_board(cache, pipeline).columns}

    @pytest.mark.parametrize("later", [0, 30, 120], ids=["same-time", "within", "after"])
    def test_a_batch_rebuilds_the_rows_of_the_stores_it_touched_only(
            self, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, clock: Clock,
            later: int):
        """Whether the batch is stamped at the same time as the last one, within its
        settling window or after it (then it restates a row of that window)."""
        fleet(pipeline)
        cache = BoardCache()
        kept_board(cache, pipeline)
        built: list[str] = []
        real = kept_module.store_row
        monkeypatch.setattr(kept_module, "store_row",
                            lambda entry, *rest: built.append(entry.store) or real(entry, *rest))
        kept_board(cache, pipeline)
        assert built == []  # nothing changed: nothing built
        clock.advance(seconds=later)
        send(pipeline, snapshot("shopee-th-05", platform="shopee", operator="zhao.min",
                                gmv=10000, targets={"gmv": 60000}, dispute_rate=0.01))
        kept_board(cache, pipeline)
        assert built == ["shopee-th-05"]

    def test_a_replica_that_did_not_ingest_shows_the_batch(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        fleet(pipeline)
        cache = BoardCache()  # this replica's
        kept_board(cache, pipeline)
        other = Pipeline(pipeline.db, pipeline.engine, settings, clock=clock)  # another's
        clock.advance(minutes=5)
        send(other, snapshot("shopee-th-05", platform="shopee", operator="zhao.min",
                             gmv=90000, targets={"gmv": 60000}, dispute_rate=0.2))
        rows = {r.store: r for r in kept_board(cache, pipeline).rows}
        assert rows["shopee-th-05"].cells["dispute_rate"].status == "breaching"

    def test_a_batch_that_commits_after_a_later_one_is_found(
            self, pipeline: Pipeline, settings: Settings, clock: Clock):
        """A replica whose clock was read first (or runs behind) commits last: its rows
        are stamped before the newest change the board has seen."""
        fleet(pipeline)
        clock.advance(minutes=10)
        send(pipeline, snapshot("new-01", gmv=1, targets={"gmv": 2}))
        cache = BoardCache()
        kept_board(cache, pipeline)
        behind = Clock(clock.now - timedelta(seconds=SNAPSHOTS_SETTLE_SECONDS // 2))
        late = Pipeline(pipeline.db, pipeline.engine, settings, clock=behind)
        send(late, snapshot("late-01", gmv=1, targets={"gmv": 2}),
             snapshot("shopee-th-05", platform="shopee", operator="zhao.min", gmv=90000,
                      targets={"gmv": 60000}, dispute_rate=0.2))
        same_boards(cache, pipeline)
        assert "late-01" in {r.store for r in kept_board(cache, pipeline).rows}

    def test_a_refresh_cut_short_starts_afresh_next_time(
            self, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch):
        fleet(pipeline)
        cache = BoardCache()
        kept_board(cache, pipeline)
        send(pipeline, snapshot("new-01", gmv=1, targets={"gmv": 2}))
        with monkeypatch.context() as broken:
            def gone(*_args: Any) -> None:
                raise ConnectionError("the database went away")
            broken.setattr(kept_module.repo, "latest_snapshots", gone)
            with pytest.raises(ConnectionError):
                kept_board(cache, pipeline)
        same_boards(cache, pipeline)

    def test_new_targets_or_a_new_roster_rebuild_it(self, pipeline: Pipeline):
        fleet(pipeline)
        cache = BoardCache()
        kept_board(cache, pipeline)
        pipeline.use_roster(Roster(people=(Person(operator="li.wei", team="east"),)))
        pipeline.use_targets(TargetBook())
        same_boards(cache, pipeline)
        assert cache.facets()["team"] == ["east"]


class TestKeptTeamCards:
    def cards(self, cache: TeamCache, pipeline: Pipeline, settings: Settings,
              period: Period = OCTOBER, team: str | None = None) -> list[dict[str, Any]]:
        with pipeline.db.engine.connect() as conn:
            kept = cache.cards(conn, period, pipeline.engine.pack, pipeline.targets,
                               settings.scorecard, pipeline.roster, team)
            fresh = team_cards(conn, period, pipeline.engine.pack, pipeline.targets,
                               settings.scorecard, pipeline.roster, team)
        assert [c.model_dump() for c in kept] == [c.model_dump() for c in fresh]
        return [c.model_dump() for c in kept]

    def test_after_each_batch_they_are_the_cards_built_afresh(
            self, pipeline: Pipeline, settings: Settings):
        fleet(pipeline)
        cache = TeamCache()
        before = {c["operator"]: c for c in self.cards(cache, pipeline, settings)}
        assert set(before) == {"li.wei", "chen.jing", "zhao.min"}
        send(pipeline,  # zhao.min's store restated; chen.jing's only store moves to li.wei
             snapshot("shopee-th-06", platform="shopee", operator="zhao.min", gmv=90000,
                      targets={"gmv": 60000}),
             snapshot("shopee-my-02", platform="shopee", operator="li.wei", gmv=64000,
                      targets={"gmv": 60000}, dispute_rate=0.045))
        after = {c["operator"]: c for c in self.cards(cache, pipeline, settings)}
        assert set(after) == {"li.wei", "zhao.min"}
        assert "shopee-my-02" in after["li.wei"]["stores"]
        assert after["zhao.min"]["items"] != before["zhao.min"]["items"]  # gmv rose
        self.cards(cache, pipeline, settings, Period.parse("2026-Q4"))
        self.cards(cache, pipeline, settings, Period.parse("2026-09"))

    def test_a_team_and_a_new_roster(self, pipeline: Pipeline, settings: Settings):
        fleet(pipeline)
        cache = TeamCache()
        self.cards(cache, pipeline, settings)
        pipeline.use_roster(Roster(people=(Person(operator="zhao.min", team="east"),)))
        assert [c["operator"] for c in self.cards(cache, pipeline, settings,
                                                  team="east")] == ["zhao.min"]

    def test_the_kept_card_states_the_stored_monthly_verdict(
            self, pipeline: Pipeline, settings: Settings):
        fleet(pipeline)
        cache = TeamCache()
        self.cards(cache, pipeline, settings)
        send(pipeline, snapshot("shopee-th-05", platform="shopee", operator="zhao.min",
                                gmv=1000, targets={"gmv": 60000}, dispute_rate=0.2))
        shown = {c["operator"]: (c["result"], c["score"], c["grade"])
                 for c in self.cards(cache, pipeline, settings)}
        with pipeline.db.engine.connect() as conn:
            stored = {r.operator: (r.result, r.score, r.grade) for r in conn.execute(
                select(monthly_cards).where(monthly_cards.c.period == OCTOBER.text))}
        assert stored == shown
        assert shown["zhao.min"][0] == "fail"


def test_the_daemon_refreshes_them_after_a_batch_before_anyone_asks(
        pipeline: Pipeline, settings: Settings):
    runtime = Runtime(settings, pipeline.db, pipeline)
    stop, due = threading.Event(), threading.Event()
    pipeline.on_commit.append(due.set)
    worker = threading.Thread(target=refresh_kept_forever, args=(runtime, stop, due, 60))
    worker.start()
    try:
        fleet(pipeline)  # told by the batch, not by the 60 s poll
        for _ in range(200):
            with pipeline.db.engine.connect() as conn:
                if runtime.kept.board.mark == runtime.kept.teams.mark == repo.snapshots_mark(
                        conn):
                    break
            stop.wait(0.05)
        with pipeline.db.engine.connect() as conn:
            assert runtime.kept.board.mark == runtime.kept.teams.mark == repo.snapshots_mark(
                conn)
        assert runtime.kept.board.mark is not None and runtime.kept.board.mark.last_id == 5
    finally:
        stop.set()
        due.set()
        worker.join()


def test_the_api_serves_the_board_afresh_page_by_page(pipeline: Pipeline,
                                                      settings: Settings):
    fleet(pipeline)
    with client_for(pipeline, settings, "127.0.0.1") as client:
        for params in ({}, {"limit": 2, "offset": 1}, {"platform": "shopee"}):
            served = client.get("/v1/board", params=params)
            assert served.headers["content-type"] == "application/json"
            limit, offset = params.pop("limit", 1000), params.pop("offset", 0)
            whole = afresh(pipeline, **params)
            expected = whole.page(offset, limit).model_dump(mode="json")
            assert served.json() == expected
        send(pipeline, snapshot("new-01", gmv=1, targets={"gmv": 2}))
        assert client.get("/v1/board").json() == afresh(pipeline).model_dump(mode="json")


def test_a_snapshot_is_read_back_as_sent(pipeline: Pipeline):
    """The board reads its stores back by (platform, store): a store name on two platforms
    is two stores."""
    send(pipeline, snapshot("twin", gmv=1), snapshot("twin", platform="shopee", gmv=2))
    with pipeline.db.engine.connect() as conn:
        found = repo.latest_snapshots(conn, [("shopee", "twin")])
    assert [(s.platform, s.metrics["gmv"]) for s in found] == [("shopee", 2)]
    assert isinstance(found[0], Snapshot)
