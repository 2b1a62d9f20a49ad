"""Pollers against a local fake of Shopee v2 and Amazon SP-API (a real loopback server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.daemon_harness import Webhook, alerting_config, running, store_of
from tests.sources.fake_platforms import (
    CLIENT_ID,
    CLIENT_SECRET,
    LWA_REFRESH,
    PARTNER_ID,
    PARTNER_KEY,
    SHOP_ID,
    SHOPEE_PATHS,
    FakePlatforms,
)
from tests.test_pipeline import incidents
from watcher import logs
from watcher.config import PollerSettings, Settings, load_settings
from watcher.errors import ConfigError
from watcher.pipeline import IngestReport, Pipeline
from watcher.redact import MASK, redact_text
from watcher.sources.poll import Api, Credentials, FetchFailed, Poller
from watcher.sources.poll_amazon import AmazonFetcher
from watcher.sources.poll_shopee import ShopeeFetcher, sign
from watcher.sources.pollers import build_pollers
from watcher.store import Database
from watcher.store.refresh_tokens import MemoryRefreshTokens, RefreshTokens, StoredRefreshTokens
from watcher.validation import RawRecord, Rejection

ENV = {"SHOPEE_PARTNER_ID": str(PARTNER_ID), "SHOPEE_PARTNER_KEY": PARTNER_KEY,
       "SHOPEE_ACCESS_TOKEN": "shopee-access-token-0001",
       "SHOPEE_REFRESH_TOKEN": "shopee-refresh-token-0001",
       "LWA_CLIENT_ID": CLIENT_ID, "LWA_CLIENT_SECRET": CLIENT_SECRET,
       "SPAPI_REFRESH_TOKEN": LWA_REFRESH}
SHOPEE_CREDENTIALS = {"partner_id": "${SHOPEE_PARTNER_ID}", "partner_key": "${SHOPEE_PARTNER_KEY}",
                      "shop_id": str(SHOP_ID), "access_token": "${SHOPEE_ACCESS_TOKEN}"}
AMAZON_CREDENTIALS = {"client_id": "${LWA_CLIENT_ID}", "client_secret": "${LWA_CLIENT_SECRET}",
                      "refresh_token": "${SPAPI_REFRESH_TOKEN}"}
US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"


@pytest.fixture
def fake() -> Iterator[FakePlatforms]:
    server = FakePlatforms().start()
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def shopee_config(fake: FakePlatforms, **credentials: str) -> PollerSettings:
    return PollerSettings(source="shopee", store="shopee-my-02", operator="chen.jing",
                          base_url=fake.url, every=3600,
                          credentials={**SHOPEE_CREDENTIALS, **credentials})


def amazon_config(fake: FakePlatforms, *marketplaces: str, **extra: Any) -> PollerSettings:
    return PollerSettings(source="amazon-spapi", store="amz-us-01", base_url=fake.url,
                          token_url=f"{fake.url}/auth/o2/token",
                          marketplaces=marketplaces or (US,), credentials=AMAZON_CREDENTIALS,
                          **extra)


def shopee(fake: FakePlatforms, http: httpx.Client, env: dict[str, str] | None = None,
           clock: Any = None, **credentials: str) -> ShopeeFetcher:
    config = shopee_config(fake, **credentials)
    resolved = ShopeeFetcher.resolve("shop", config, env or ENV, None)
    extra = {"clock": clock} if clock else {}
    return ShopeeFetcher(config, resolved, Api("shopee", http), **extra)


def amazon(fake: FakePlatforms, http: httpx.Client, *marketplaces: str,
           waits: list[float] | None = None, **extra: Any) -> AmazonFetcher:
    config = amazon_config(fake, *marketplaces, **extra)
    resolved = AmazonFetcher.resolve("amz", config, ENV, None)
    pauses = waits if waits is not None else []
    return AmazonFetcher(config, resolved, Api("amazon-spapi", http),
                         wait=lambda seconds: pauses.append(seconds) or False)


def config_file(tmp_path: Path, pollers: dict[str, Any]) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text(json.dumps({"rules": str(ROOT / "rules"), "pollers": pollers}),
                    encoding="utf-8")
    return path


def no_ingest(records: Iterable[RawRecord | Rejection], source: str) -> IngestReport:
    return IngestReport()


class FakeTime:
    """A clock moved by hand; ``wait`` records each pause and lets it pass at once."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


class TestShopeeFetcher:
    def test_the_signature_is_hmac_sha256_over_the_documented_base_string(self):
        # Shopee's own example: partner_id, api path, timestamp, access_token, shop_id.
        base = ("2001887/api/v2/shop/get_shop_info1655714431"
                "59777174636562737266615546704c6d14701711")
        expected = hmac.new(b"key", base.encode(), hashlib.sha256).hexdigest()
        assert sign("key", 2001887, "/api/v2/shop/get_shop_info", 1655714431,
                    "59777174636562737266615546704c6d", 14701711) == expected

    def test_both_answers_are_fetched_signed_and_returned_as_one_array(
            self, fake: FakePlatforms, http: httpx.Client):
        payload = json.loads(shopee(fake, http).fetch())
        assert [sorted(answer["response"]) for answer in payload] == [
            ["metric_list", "overall_performance"], ["ongoing_punishment", "penalty_points"]]
        for request, path in zip(fake.requests, SHOPEE_PATHS, strict=True):
            assert (request.method, request.path) == ("GET", path)
            assert set(request.query) == {"partner_id", "timestamp", "access_token",
                                          "shop_id", "sign"}

    def test_a_refresh_token_buys_an_access_token_and_a_new_one_before_expiry(
            self, fake: FakePlatforms, http: httpx.Client):
        clock = FakeTime(time.time())
        credentials = {**SHOPEE_CREDENTIALS, "refresh_token": "${SHOPEE_REFRESH_TOKEN}"}
        del credentials["access_token"]
        config = shopee_config(fake)
        config = config.model_copy(update={"credentials": credentials})
        fetcher = ShopeeFetcher(config, ShopeeFetcher.resolve("s", config, ENV, None),
                                Api("shopee", http), clock=clock.clock)
        fetcher.fetch()
        fetcher.fetch()
        assert len(fake.calls("/api/v2/auth")) == 1  # reused while valid
        [refresh] = fake.calls("/api/v2/auth")
        assert refresh.method == "POST"
        assert refresh.json() == {"refresh_token": "shopee-refresh-token-0001",
                                  "partner_id": PARTNER_ID, "shop_id": SHOP_ID}
        clock.now += 4 * 3600 - 200  # within the refresh margin of the 4 h lifetime
        fake.clock_offset += 4 * 3600 - 200
        fetcher.fetch()
        second = fake.calls("/api/v2/auth")[1]
        assert second.json()["refresh_token"] == "shopee-refresh-token-0002"  # rotated
        assert fake.calls(SHOPEE_PATHS[0])[-1].query["access_token"] == (
            "shopee-access-token-0003")

    def test_a_restarted_poller_refreshes_with_the_token_shopee_rotated_to(
            self, fake: FakePlatforms, http: httpx.Client, db: Database):
        """Shopee retires a refresh token once it has issued the next one, so the
        configured token is spent after the first refresh; a restart must not go back
        to it."""
        clock = FakeTime(time.time())
        credentials = {**SHOPEE_CREDENTIALS, "refresh_token": "${SHOPEE_REFRESH_TOKEN}"}
        del credentials["access_token"]
        config = shopee_config(fake).model_copy(update={"credentials": credentials})

        def start(tokens: RefreshTokens) -> ShopeeFetcher:
            return ShopeeFetcher(config, ShopeeFetcher.resolve("s", config, ENV, None),
                                 Api("shopee", http), clock=clock.clock, name="s",
                                 tokens=tokens)

        start(StoredRefreshTokens(db)).fetch()  # refreshes with 0001; Shopee rotates to 0002
        start(StoredRefreshTokens(db)).fetch()  # the restart: its first fetch refreshes
        assert [c.json()["refresh_token"] for c in fake.calls("/api/v2/auth")] == [
            "shopee-refresh-token-0001", "shopee-refresh-token-0002"]
        with pytest.raises(FetchFailed, match="Invalid refresh_token"):
            start(MemoryRefreshTokens()).fetch()  # what a restart without the store did

    def test_a_wrong_partner_key_fails_with_shopees_error_and_no_secret(
            self, fake: FakePlatforms, http: httpx.Client):
        fetcher = shopee(fake, http, env={**ENV, "SHOPEE_PARTNER_KEY": "not-the-partner-key"})
        with pytest.raises(FetchFailed) as caught:
            fetcher.fetch()
        message = str(caught.value)
        assert message == (f"shopee {SHOPEE_PATHS[0]}: HTTP 403: error_sign: Wrong sign. "
                           "(request_id fake-request-1)")
        assert fake.requests[0].query["sign"] not in message

    def test_an_error_inside_a_200_answer_fails_the_fetch(
            self, fake: FakePlatforms, http: httpx.Client, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(fake, "answer", lambda _request: (200, {
            "request_id": "q1", "error": "error_server", "message": "busy", "response": None}))
        with pytest.raises(FetchFailed, match=r"error_server: busy \(request_id q1\)"):
            shopee(fake, http).fetch()

    def test_ids_must_be_numbers(self, fake: FakePlatforms, http: httpx.Client):
        with pytest.raises(ConfigError) as caught:
            shopee(fake, http, shop_id="my-shop")
        assert caught.value.key == "pollers.shopee.credentials.shop_id"


class TestAmazonFetcher:
    def test_the_documented_report_flow_with_lwa_and_the_access_token_header(
            self, fake: FakePlatforms, http: httpx.Client):
        waits: list[float] = []
        report = json.loads(amazon(fake, http, waits=waits).fetch())
        assert [s["marketplaceId"] for s in report["accountStatuses"]] == [US]
        [token] = fake.calls("/auth/o2/token")
        assert token.form() == {"grant_type": "refresh_token", "refresh_token": LWA_REFRESH,
                                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        sp_calls = fake.calls("/reports/")
        assert [(r.method, r.path) for r in sp_calls] == [
            ("POST", "/reports/2021-06-30/reports"), ("GET", "/reports/2021-06-30/reports/R1"),
            ("GET", "/reports/2021-06-30/reports/R1"), ("GET", "/reports/2021-06-30/documents/DR1")]
        assert {r.headers["x-amz-access-token"] for r in sp_calls} == {"Atza|access-1"}
        assert sp_calls[0].json() == {"reportType": "GET_V2_SELLER_PERFORMANCE_REPORT",
                                      "marketplaceIds": [US]}
        assert waits == [5.0]  # checked back once while IN_PROGRESS
        [download] = fake.calls("/s3/")
        assert "x-amz-access-token" not in download.headers  # pre-signed: no credentials

    def test_one_report_per_marketplace_merged_and_the_token_reused(
            self, fake: FakePlatforms, http: httpx.Client):
        report = json.loads(amazon(fake, http, US, CA).fetch())
        assert [e["marketplaceId"] for e in report["performanceMetrics"]] == [US, CA]
        assert len(fake.calls("/auth/o2/token")) == 1
        assert len(fake.reports) == 2

    @pytest.mark.parametrize(("status", "reason"), [
        ("CANCELLED", "Amazon had no data"), ("FATAL", "Amazon failed")])
    def test_a_cancelled_or_fatal_report_fails_the_fetch(
            self, fake: FakePlatforms, http: httpx.Client, status: str, reason: str):
        fake.report_status = status
        with pytest.raises(FetchFailed, match=f"report R1 {status}: {reason}"):
            amazon(fake, http).fetch()

    def test_a_report_still_in_progress_at_the_deadline_fails_the_fetch(
            self, fake: FakePlatforms, http: httpx.Client):
        fake.report_polls_in_progress = 100
        fake_time = FakeTime()
        fetcher = amazon(fake, http, report_timeout=30)
        fetcher.clock, fetcher.wait = fake_time.clock, fake_time.wait
        with pytest.raises(FetchFailed, match="still IN_PROGRESS after 30 s"):
            fetcher.fetch()
        assert fake_time.waits == [5.0, 10.0]  # 5 + 10 + 20 would pass the 30 s limit

    def test_a_wrong_client_secret_names_lwas_error_and_not_the_secret(
            self, fake: FakePlatforms, http: httpx.Client):
        config = amazon_config(fake)
        resolved = Credentials({**AmazonFetcher.resolve("a", config, ENV, None).values,
                                "client_secret": "wrong-secret-value"})
        fetcher = AmazonFetcher(config, resolved, Api("amazon-spapi", http),
                                wait=lambda _s: False)
        with pytest.raises(FetchFailed) as caught:
            fetcher.fetch()
        assert str(caught.value) == ("amazon-spapi LWA token: HTTP 401: invalid_client: "
                                     "Client authentication failed")

    def test_a_refused_token_is_dropped_so_the_next_attempt_gets_a_new_one(
            self, fake: FakePlatforms, http: httpx.Client):
        fetcher = amazon(fake, http)
        fetcher.fetch()
        fake.amazon_tokens.clear()  # Amazon revoked it
        with pytest.raises(FetchFailed, match="Unauthorized"):
            fetcher.fetch()
        fetcher.fetch()
        assert len(fake.calls("/auth/o2/token")) == 2

    def test_marketplaces_are_required(self, fake: FakePlatforms, http: httpx.Client):
        config = amazon_config(fake).model_copy(update={"marketplaces": ()})
        with pytest.raises(ConfigError) as caught:
            AmazonFetcher(config, Credentials({}), Api("amazon-spapi", http),
                          wait=lambda _s: False, name="amz")
        assert caught.value.key == "pollers.amz.marketplaces"


class TestPoller:
    def test_a_fetched_shopee_payload_becomes_a_snapshot_and_its_punishment_an_incident(
            self, fake: FakePlatforms, http: httpx.Client, pipeline: Pipeline):
        poller = Poller("shop", shopee_config(fake), shopee(fake, http), pipeline.ingest)
        assert poller.tick() == 3600
        opened = {(i.rule, i.store) for i in incidents(pipeline, status="open")}
        assert ("penalty-received", "shopee-my-02") in opened  # one ongoing punishment
        assert ("platform-target/late_shipment_rate", "shopee-my-02") in opened
        [incident] = [i for i in incidents(pipeline) if i.rule == "penalty-received"]
        assert incident.operator == "chen.jing"

    def test_a_fetched_amazon_report_becomes_one_snapshot_per_marketplace(
            self, fake: FakePlatforms, http: httpx.Client, pipeline: Pipeline):
        poller = Poller("amz", amazon_config(fake, US, CA), amazon(fake, http, US, CA),
                        pipeline.ingest)
        report = poller.poll_once()
        assert (report.accepted, report.rejected) == (2, [])
        opened = {(i.rule, i.store) for i in incidents(pipeline, status="open")}
        assert ("platform-target/order_defect_rate_mfn", "amz-us-01-us") in opened
        assert not any(store == "amz-us-01-ca" for _, store in opened)

    def test_failures_back_off_then_a_success_resets_the_delay(
            self, fake: FakePlatforms, http: httpx.Client, pipeline: Pipeline):
        config = shopee_config(fake).model_copy(update={"every": 100.0})
        poller = Poller("shop", config, shopee(fake, http), pipeline.ingest)
        fake.fail_next = 3
        assert [poller.tick() for _ in range(3)] == [30.0, 60.0, 100.0]  # capped at `every`
        assert poller.tick() == 100.0 and poller.failures == 0
        assert incidents(pipeline)  # the fourth attempt went through

    def test_a_failure_is_logged_without_any_secret_and_never_raised(
            self, fake: FakePlatforms, http: httpx.Client, pipeline: Pipeline,
            capsys: pytest.CaptureFixture[str]):
        logs.configure("info", json=True)
        fake.shopee_access_token = "a-token-the-platform-no-longer-accepts"
        fetcher = shopee(fake, http)  # resolving registers the secrets for masking
        assert Poller("shop", shopee_config(fake), fetcher, pipeline.ingest).tick() == 30.0
        [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()
                  if "poll_failed" in line]
        assert line["error"] == (f"shopee {SHOPEE_PATHS[0]}: HTTP 403: invalid_acceess_token: "
                                 "Invalid access_token. (request_id fake-request-1)")
        text = json.dumps(line)
        for secret in (PARTNER_KEY, ENV["SHOPEE_ACCESS_TOKEN"], fake.requests[0].query["sign"]):
            assert secret not in text

    def test_a_bug_in_a_fetcher_is_logged_with_its_traceback_and_retried(
            self, pipeline: Pipeline, capsys: pytest.CaptureFixture[str]):
        logs.configure("info", json=True)

        class Broken:
            def fetch(self) -> bytes:
                raise KeyError("surprise")

        config = PollerSettings(source="shopee", store="s", credentials={})
        assert Poller("broken", config, Broken(), pipeline.ingest).tick() == 30.0
        assert "poll_crashed" in capsys.readouterr().err

    def test_run_forever_fetches_at_start_and_stops_when_told(
            self, fake: FakePlatforms, http: httpx.Client, pipeline: Pipeline):
        stop = threading.Event()
        poller = Poller("shop", shopee_config(fake), shopee(fake, http), pipeline.ingest)
        thread = threading.Thread(target=poller.run_forever, args=(stop,))
        thread.start()
        for _ in range(100):
            if len(fake.requests) >= 2:
                break
            stop.wait(0.05)
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive() and len(fake.requests) == 2


class TestBuildPollers:
    def test_no_pollers_section_means_no_pollers(self, settings: Settings):
        assert build_pollers(settings, no_ingest, stop=threading.Event()) == []

    def test_env_references_are_filled_in_masked_and_never_kept_in_settings(
            self, tmp_path: Path, fake: FakePlatforms):
        path = config_file(tmp_path, {"shop": {"source": "shopee", "store": "s",
                                               "base_url": fake.url,
                                               "credentials": SHOPEE_CREDENTIALS},
                                      "off": {"source": "shopee", "store": "t",
                                              "enabled": False, "credentials": {}}})
        settings = load_settings(path, env={})
        assert "${SHOPEE_PARTNER_KEY}" in settings.model_dump_json()  # the reference only
        fresh_key = f"partner-key-{uuid.uuid4().hex}"
        [poller] = build_pollers(settings, no_ingest, stop=threading.Event(),
                                 env={**ENV, "SHOPEE_PARTNER_KEY": fresh_key})
        assert poller.name == "shop"
        assert redact_text(f"partner key {fresh_key} leaked") == f"partner key {MASK} leaked"
        assert fresh_key not in repr(Credentials({"partner_key": fresh_key}))

    def test_a_missing_variable_names_the_credential_key(self, tmp_path: Path):
        path = config_file(tmp_path, {"shop": {"source": "shopee", "store": "s",
                                               "credentials": SHOPEE_CREDENTIALS}})
        with pytest.raises(ConfigError) as caught:
            build_pollers(load_settings(path, env={}), no_ingest, stop=threading.Event(),
                          env={})
        assert caught.value.key == "pollers.shop.credentials.partner_id"
        assert "environment variable SHOPEE_PARTNER_ID is not set" in str(caught.value)

    @pytest.mark.parametrize(("credentials", "key", "message"), [
        ({**AMAZON_CREDENTIALS, "clientid": "x"}, "pollers.amz.credentials.clientid",
         "not a amazon-spapi credential"),
        ({"client_id": "a", "client_secret": "b"}, "pollers.amz.credentials.refresh_token",
         "is required"),
    ])
    def test_unknown_and_missing_credential_keys_are_refused(
            self, tmp_path: Path, credentials: dict[str, str], key: str, message: str):
        path = config_file(tmp_path, {"amz": {"source": "amazon-spapi", "store": "s",
                                              "marketplaces": [US],
                                              "credentials": credentials}})
        with pytest.raises(ConfigError) as caught:
            build_pollers(load_settings(path, env={}), no_ingest, stop=threading.Event(),
                          env=ENV)
        assert caught.value.key == key and message in str(caught.value)

    def test_shopee_needs_an_access_or_a_refresh_token(self, tmp_path: Path):
        credentials = {k: v for k, v in SHOPEE_CREDENTIALS.items() if k != "access_token"}
        path = config_file(tmp_path, {"shop": {"source": "shopee", "store": "s",
                                               "credentials": credentials}})
        with pytest.raises(ConfigError, match="one of access_token, refresh_token"):
            build_pollers(load_settings(path, env={}), no_ingest, stop=threading.Event(),
                          env=ENV)

    def test_an_unknown_source_in_the_config_names_its_line(self, tmp_path: Path):
        path = tmp_path / "watcher.yaml"
        path.write_text("pollers:\n  shop:\n    store: s\n    source: ebay\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_settings(path, env={})
        assert (caught.value.line, caught.value.key) == (4, "pollers.shop.source")


class TestDaemonPollers:
    def test_the_daemon_polls_on_start_alerts_and_keeps_secrets_out_of_its_log(
            self, tmp_path: Path, fake: FakePlatforms):
        fake.report_polls_in_progress = 0
        hook = Webhook()
        config = {**alerting_config(hook), "pollers": {
            "shopee-my-02": {"source": "shopee", "store": "shopee-my-02",
                             "base_url": fake.url, "credentials": SHOPEE_CREDENTIALS},
            "amz-us-01": {"source": "amazon-spapi", "store": "amz-us-01", "base_url": fake.url,
                          "token_url": f"{fake.url}/auth/o2/token", "marketplaces": [US],
                          "credentials": AMAZON_CREDENTIALS},
            "down": {"source": "amazon-spapi", "store": "amz-down", "marketplaces": [US],
                     "base_url": "http://127.0.0.1:9", "token_url": "http://127.0.0.1:9/t",
                     "credentials": AMAZON_CREDENTIALS}}}
        try:
            with running(tmp_path, config, env=ENV) as daemon:
                deadline = time.monotonic() + 30
                stores: set[str] = set()
                while time.monotonic() < deadline and not {"shopee-my-02", "amz-us-01"} <= stores:
                    stores = {store_of(n) for n in hook.wait_for(len(hook.received) + 1, 1)}
                assert {"shopee-my-02", "amz-us-01"} <= stores
                assert httpx.get(f"{daemon.url}/healthz").status_code == 200  # still up
                assert daemon.terminate() == 0
                output = daemon.output()
        finally:
            hook.stop()
        assert '"poll_failed"' in output and "amz-down" not in stores
        for secret in (PARTNER_KEY, CLIENT_SECRET, LWA_REFRESH, "shopee-access-token-0001",
                       "Atza|access-1"):
            assert secret not in output

