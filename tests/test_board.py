"""The store health board: each store's latest value of each indicator against the threshold
its scorecard uses, on the page and in the API, on both databases."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import JSONL, ROOT, jsonl, snapshot
from tests.test_api_endpoints import with_token
from tests.test_auth import client_for
from watcher.assessment.board import CellStatus, board_facets, build_board, cell_status
from watcher.assessment.roster import Person, Roster
from watcher.assessment.scorecard import Criterion
from watcher.assessment.targets import TargetBook
from watcher.auth import Role
from watcher.config import Settings
from watcher.indicators import Dimension
from watcher.pipeline import Pipeline
from watcher.rules.loader import load_pack
from watcher.snapshot import Comparator, Snapshot
from watcher.store import Database
from watcher.web.boardview import BoardFilter

AT_LEAST_90 = Criterion(Comparator.GE, 90.0, "rule", "account-health-low")
AT_MOST_3PCT = Criterion(Comparator.LE, 0.03, "rule", "dispute-rate-high")
NONE_AT_ALL = Criterion(Comparator.LE, 0.0, "rule", "penalty-received")


class TestCellStatus:
    def test_breaching_near_ok_and_no_data(self):
        assert cell_status(88, AT_LEAST_90) is CellStatus.BREACHING
        assert cell_status(90, AT_LEAST_90) is CellStatus.NEAR  # on the line passes, just
        assert cell_status(98.9, AT_LEAST_90) is CellStatus.NEAR
        assert cell_status(99, AT_LEAST_90) is CellStatus.OK
        assert cell_status(0.028, AT_MOST_3PCT) is CellStatus.NEAR
        assert cell_status(0.026, AT_MOST_3PCT) is CellStatus.OK
        assert cell_status(0.031, AT_MOST_3PCT) is CellStatus.BREACHING
        assert cell_status(None, AT_LEAST_90) is CellStatus.NO_DATA

    def test_a_zero_threshold_has_no_near_side(self):
        assert cell_status(0, NONE_AT_ALL) is CellStatus.OK
        assert cell_status(1, NONE_AT_ALL) is CellStatus.BREACHING

    def test_nothing_to_judge_by_or_nothing_at_all_is_no_cell(self):
        assert cell_status(5, None) is None and cell_status(None, None) is None


def snap(store: str, period: str = "2026-10", **kwargs: object) -> Snapshot:
    return Snapshot.model_validate(snapshot(store, period, **kwargs))  # type: ignore[arg-type]


class TestBuildBoard:
    PACK = load_pack(ROOT / "rules")

    def test_the_latest_value_of_any_period_kind_judged_as_the_card_judges(self):
        board = build_board([
            snap("a", "2026-10", gmv=155000, targets={"gmv": 150000}, account_health_score=95),
            snap("a", "2026-11-02", account_health_score=86),      # a later day: the latest
            snap("b", "2026-10", operator="chen.jing", gmv=200000, targets={"gmv": 150000},
                 net_margin=0.26, segment={"stage": "mature"}),
        ], self.PACK, TargetBook())
        a, b = board.rows  # worst first
        assert (a.store, b.store) == ("a", "b")
        health = a.cells["account_health_score"]
        assert (health.status, health.value, health.period) == (
            CellStatus.BREACHING, 86, "2026-11-02")
        assert (health.threshold, health.comparator, health.rule) == (
            90, Comparator.GE, "account-health-low")
        gmv = a.cells["gmv"]
        assert (gmv.status, gmv.threshold, gmv.basis) == (CellStatus.NEAR, 150000, "target")
        assert b.cells["gmv"].status is CellStatus.OK
        assert b.cells["account_health_score"].status is CellStatus.NO_DATA
        assert b.cells["net_margin"].status is CellStatus.NEAR  # mature: 25 %, within 10 %
        assert "net_margin" not in a.cells or a.cells["net_margin"].status is CellStatus.NO_DATA
        assert [c.indicator for c in board.columns] == [
            "gmv", "net_margin", "account_health_score"]  # only what some store sent
        assert board.counts[CellStatus.BREACHING] == 1

    def test_a_segment_variant_moves_the_threshold(self):
        novice = snap("n", net_margin=0.16, segment={"stage": "novice"})
        mature = snap("m", net_margin=0.16, segment={"stage": "mature"})
        board = build_board([novice, mature], self.PACK, TargetBook())
        cells = {r.store: r.cells["net_margin"] for r in board.rows}
        assert cells["m"].status is CellStatus.BREACHING
        assert cells["n"].status is not CellStatus.BREACHING
        assert cells["n"].threshold != cells["m"].threshold

    def test_filters_by_platform_operator_and_dimension(self):
        latest = [snap("a", gmv=1, dispute_rate=0.05),
                  snap("s", platform="shopee", operator="chen.jing", gmv=1, dispute_rate=0.01)]
        book = TargetBook()
        assert [r.store for r in build_board(latest, self.PACK, book,
                                             platform="shopee").rows] == ["s"]
        assert [r.store for r in build_board(latest, self.PACK, book,
                                             operator="li.wei").rows] == ["a"]
        roster = Roster(people=(Person(operator="chen.jing", team="east"),
                                Person(operator="li.wei", team="west")))
        east = build_board(latest, self.PACK, book, team="east", roster=roster)
        assert [(r.store, r.team) for r in east.rows] == [("s", "east")]
        assert board_facets(latest, roster)["team"] == ["east", "west"]
        customer = build_board(latest, self.PACK, book, dimension=Dimension.CUSTOMER)
        assert [c.indicator for c in customer.columns] == ["dispute_rate"]


@pytest.fixture
def client(pipeline: Pipeline, settings: Settings) -> Iterator[TestClient]:
    with client_for(pipeline, settings, "127.0.0.1") as found:
        yield found


def fleet(client: TestClient) -> None:
    client.post("/v1/snapshots", headers=JSONL, content=jsonl(
        snapshot("amz-us-01", gmv=118000, targets={"gmv": 150000}, account_health_score=88),
        snapshot("shopee-my-02", platform="shopee", operator="chen.jing", gmv=64000,
                 targets={"gmv": 60000}, dispute_rate=0.045),
        snapshot("shopee-th-05", platform="shopee", operator="zhao.min", gmv=90000,
                 targets={"gmv": 60000}, dispute_rate=0.01)))


class TestBoardApiAndPage:
    def test_the_api_and_the_page_state_the_same_cells(self, client: TestClient):
        fleet(client)
        board = client.get("/v1/board").json()
        rows = {r["store"]: r for r in board["rows"]}
        assert rows["amz-us-01"]["cells"]["account_health_score"]["status"] == "breaching"
        assert rows["shopee-my-02"]["cells"]["dispute_rate"]["status"] == "breaching"
        assert rows["shopee-my-02"]["cells"]["gmv"]["status"] == "near"
        assert rows["shopee-th-05"]["cells"]["gmv"]["status"] == "ok"
        assert [r["store"] for r in board["rows"]][-1] == "shopee-th-05"  # the healthy last

        html = client.get("/board").text
        for store, row in rows.items():
            for metric, cell in row["cells"].items():
                found = re.search(rf'<tr class="board-row" data-store="{store}".*?</tr>', html,
                                  re.S)
                assert found is not None
                assert (f'data-indicator="{metric}" data-status="{cell["status"]}"'
                        in found.group(0))
        assert 'href="/?store=amz-us-01"' in html  # a cell leads to the store's incidents

    def test_filters_on_the_api_and_the_page(self, client: TestClient):
        fleet(client)
        shopee = client.get("/v1/board", params={"platform": "shopee",
                                                 "dimension": "customer"}).json()
        assert sorted(r["store"] for r in shopee["rows"]) == ["shopee-my-02", "shopee-th-05"]
        assert [c["indicator"] for c in shopee["columns"]] == ["dispute_rate"]
        html = client.get("/board", params={"operator": "zhao.min"}).text
        assert html.count('<tr class="board-row"') == 1 and "shopee-th-05" in html
        bad = client.get("/board", params={"dimension": "vibes"})
        assert bad.status_code == 400 and "dimension" in bad.text
        assert client.get("/v1/board", params={"dimension": "vibes"}).status_code == 422

    @pytest.mark.parametrize(("platform", "meant"), [
        ("nope", None), ("SHOPEE", "shopee"), ("tiktokshop", "tiktok")])
    def test_a_platform_nobody_knows_is_refused_not_an_empty_board(
            self, client: TestClient, platform: str, meant: str | None):
        fleet(client)
        said = (f"'{platform}' is not a platform"
                + (f": did you mean '{meant}'?" if meant else "")
                + " (known: amazon, lazada, shopee, tiktok;")
        api = client.get("/v1/board", params={"platform": platform})
        assert api.status_code == 422
        [error] = api.json()["detail"]
        assert error["loc"] == ["query", "platform"] and said in error["msg"]
        listed = client.get("/v1/snapshots", params={"platform": platform})
        assert listed.status_code == 422 and said in listed.json()["detail"][0]["msg"]
        for lang, words in (("en", f"'{platform}' is not a platform (known: amazon, lazada, "
                                   f"shopee, tiktok)"
                                   + (f"; did you mean '{meant}'?" if meant else "")),
                            ("zh-CN", f"“{platform}”不是已知平台（已知平台：amazon、lazada、"
                                      f"shopee、tiktok）"
                                      + (f"；是否要找“{meant}”？" if meant else ""))):
            page = client.get("/board", params={"platform": platform, "lang": lang})
            assert page.status_code == 400 and words in html.unescape(page.text)
            assert page.text.count('<tr class="board-row"') == 3  # the whole board instead

    def test_a_known_platform_without_stores_and_a_stored_one_are_filters(
            self, client: TestClient):
        fleet(client)
        lazada = client.get("/v1/board", params={"platform": "lazada"})  # a mapping's
        assert lazada.status_code == 200 and lazada.json()["rows"] == []
        client.post("/v1/snapshots", json=snapshot("wm-01", platform="walmart", gmv=1))
        walmart = client.get("/v1/board", params={"platform": "walmart"}).json()
        assert [r["store"] for r in walmart["rows"]] == ["wm-01"]
        assert 'data-store="wm-01"' in client.get("/board", params={"platform": "walmart"}).text
        listed = client.get("/v1/snapshots", params={"platform": "walmart"}).json()
        assert [s["store"] for s in listed] == ["wm-01"]

    def test_a_platform_declared_in_the_config_is_a_filter_before_any_store(
            self, pipeline: Pipeline, settings: Settings):
        own = settings.model_copy(update={"platforms": ("walmart",)})
        with client_for(pipeline, own, "127.0.0.1") as client:
            found = client.get("/v1/board", params={"platform": "walmart"})
            assert found.status_code == 200 and found.json()["rows"] == []
            assert client.get("/v1/snapshots", params={"platform": "walmart"}).json() == []
        with client_for(pipeline, settings, "127.0.0.1") as client:
            assert client.get("/v1/board", params={"platform": "walmart"}).status_code == 422

    def test_a_daily_feed_naming_nobody_leaves_the_store_with_its_operator(
            self, client: TestClient):
        fleet(client)  # the monthly export names li.wei for amz-us-01
        client.post("/v1/snapshots", json=snapshot("amz-us-01", "2026-11-05", operator=None,
                                                   visitors=420))
        rows = {r["store"]: r for r in client.get("/v1/board").json()["rows"]}
        assert rows["amz-us-01"]["operator"] == "li.wei"
        mine = client.get("/v1/board", params={"operator": "li.wei"}).json()
        assert [r["store"] for r in mine["rows"]] == ["amz-us-01"]

    def test_filters_that_match_no_store_say_so_in_the_pages_language(
            self, client: TestClient):
        fleet(client)
        html = client.get("/board", params={"operator": "nobody"}).text
        assert "No store matches these filters." in html and 'href="/board"' in html
        zh = client.get("/board", params={"operator": "nobody", "lang": "zh-CN"}).text
        assert "没有店铺符合这些筛选条件。" in zh

    def test_viewers_read_the_board_ingest_tokens_do_not(self, client: TestClient,
                                                         db: Database):
        viewer = with_token(client, db, Role.VIEWER)
        ingest = with_token(client, db, Role.INGEST)
        assert client.get("/v1/board", headers=viewer).status_code == 200
        assert client.get("/v1/board", headers=ingest).status_code == 403
        assert client.get("/v1/board").status_code == 401

    def test_the_api_pages_the_worst_first_and_counts_them_all(self, client: TestClient):
        fleet(client)
        whole = client.get("/v1/board").json()
        second = client.get("/v1/board", params={"limit": 1, "offset": 1}).json()
        assert (second["total"], whole["total"]) == (3, 3)
        assert [r["store"] for r in second["rows"]] == [whole["rows"][1]["store"]]
        assert second["counts"] == whole["counts"]
        assert client.get("/v1/board", params={"limit": 0}).status_code == 422

    def test_a_new_or_restated_snapshot_shows_at_once(self, client: TestClient):
        fleet(client)
        for path in ("/v1/board", "/board"):
            client.get(path)  # built and kept
        client.post("/v1/snapshots", json=snapshot(  # restated: the health recovered
            "amz-us-01", gmv=118000, targets={"gmv": 150000}, account_health_score=100))
        rows = {r["store"]: r for r in client.get("/v1/board").json()["rows"]}
        assert rows["amz-us-01"]["cells"]["account_health_score"]["status"] == "ok"
        client.post("/v1/snapshots", json=snapshot("new-01", gmv=1, targets={"gmv": 2}))
        assert "new-01" in {r["store"] for r in client.get("/v1/board").json()["rows"]}
        html = client.get("/board").text
        assert 'data-store="new-01"' in html
        assert ('data-indicator="account_health_score" data-status="ok"'
                in html.split('data-store="amz-us-01"')[1].split("</tr>")[0])

    def test_the_filter_names_a_bad_field(self):
        with pytest.raises(Exception, match="dimension"):
            BoardFilter.parse({"dimension": "x"})
        assert BoardFilter.parse({"platform": " shopee ", "operator": ""}) == BoardFilter(
            "shopee", None, None)
        with pytest.raises(Exception, match="page"):
            BoardFilter.parse({"page": "0"})
        chosen = BoardFilter.parse({"dimension": "customer", "team": "east", "page": "3"})
        assert chosen.offset == 200
        assert chosen.url(4) == "/board?team=east&dimension=customer&page=4"
        assert chosen.url(1) == "/board?team=east&dimension=customer"
