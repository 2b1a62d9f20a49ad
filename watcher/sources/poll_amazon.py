"""Amazon SP-API poller: the seller performance report through the Reports API (2021-06-30).

The flow Amazon documents: exchange the refresh token for an access token at
Login with Amazon (``grant_type=refresh_token``, form-encoded, the token lives
an hour); ``createReport`` for ``GET_V2_SELLER_PERFORMANCE_REPORT``;
``getReport`` until ``processingStatus`` is ``DONE`` (``CANCELLED`` means Amazon
had no data, ``FATAL`` that it failed); ``getReportDocument`` for a pre-signed
URL, valid five minutes; download it (gunzip when ``compressionAlgorithm`` is
``GZIP``). Every SP-API call carries the token in ``x-amz-access-token``; the
pre-signed download carries nothing.

The report describes one marketplace, so the poller requests one per
configured marketplace and hands the merged document to the ``amazon-spapi``
adapter: one marketplace keeps the store id, several become
``<store>-<country>``, exactly as an uploaded report with those marketplaces.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any, Final

from watcher.config import PollerSettings
from watcher.errors import ConfigError
from watcher.sources.poll import Api, Credentials, CredentialSpec, FetchFailed, Wait

HOST: Final = "https://sellingpartnerapi-na.amazon.com"
TOKEN_URL: Final = "https://api.amazon.com/auth/o2/token"
REPORTS: Final = "/reports/2021-06-30"
REPORT_TYPE: Final = "GET_V2_SELLER_PERFORMANCE_REPORT"
TOKEN_MARGIN_SECONDS: Final = 120
FIRST_CHECK_SECONDS: Final = 5.0
MAX_CHECK_SECONDS: Final = 60.0


class AmazonFetcher(CredentialSpec):
    REQUIRED = ("client_id", "client_secret", "refresh_token")

    def __init__(self, config: PollerSettings, credentials: Credentials, api: Api, *,
                 wait: Wait, clock: Callable[[], float] = time.monotonic,
                 file: str | None = None, name: str = "amazon-spapi") -> None:
        if not config.marketplaces:
            raise ConfigError("an amazon-spapi poller needs at least one marketplace id "
                              "(e.g. ATVPDKIKX0DER)", file=file,
                              key=f"pollers.{name}.marketplaces")
        self.host = (config.base_url or HOST).rstrip("/")
        self.token_url = config.token_url or TOKEN_URL
        self.marketplaces = config.marketplaces
        self.timeout = float(config.report_timeout)
        self.credentials = credentials
        self.api = api
        self.wait = wait
        self.clock = clock
        self.access_token: str | None = None
        self.expires_at = 0.0

    def fetch(self) -> bytes:
        merged: dict[str, list[Any]] = {"accountStatuses": [], "performanceMetrics": []}
        for marketplace in self.marketplaces:
            report = json.loads(self._report(marketplace))
            if not isinstance(report, dict):
                raise FetchFailed("amazon-spapi", "report", "the report is not a JSON object")
            for key, entries in merged.items():
                found = report.get(key)
                entries.extend(found if isinstance(found, list) else [])
        return json.dumps(merged).encode()

    def _report(self, marketplace: str) -> bytes:
        created = self._sp_call("createReport", "POST", "/reports", ok=(202,),
                                json={"reportType": REPORT_TYPE,
                                      "marketplaceIds": [marketplace]})
        report_id = _text(created, "reportId", "createReport")
        document_id = self._wait_for(report_id)
        document = self._sp_call("getReportDocument", "GET", f"/documents/{document_id}")
        content = self.api.download("download report", _text(document, "url",
                                                              "getReportDocument"))
        if document.get("compressionAlgorithm") == "GZIP":
            try:
                return gzip.decompress(content)
            except OSError as exc:
                raise FetchFailed("amazon-spapi", "download report", f"not gzip: {exc}") from None
        return content

    def _wait_for(self, report_id: str) -> str:
        """The document id once the report is DONE; checks back 5 s, 10 s, ... up to 60 s apart."""
        deadline = self.clock() + self.timeout
        pause = FIRST_CHECK_SECONDS
        while True:
            report = self._sp_call("getReport", "GET", f"/reports/{report_id}")
            status = report.get("processingStatus")
            if status == "DONE":
                return _text(report, "reportDocumentId", "getReport")
            if status in ("CANCELLED", "FATAL"):
                reason = ("Amazon had no data for the report" if status == "CANCELLED"
                          else "Amazon failed to produce the report")
                raise FetchFailed("amazon-spapi", "getReport", f"report {report_id} {status}: "
                                                               f"{reason}")
            if self.clock() + pause > deadline:
                raise FetchFailed("amazon-spapi", "getReport", f"report {report_id} still "
                                  f"{status} after {self.timeout:g} s (report_timeout)")
            if self.wait(pause):
                raise FetchFailed("amazon-spapi", "getReport", "the daemon is stopping")
            pause = min(pause * 2, MAX_CHECK_SECONDS)

    def _sp_call(self, step: str, method: str, path: str, *, ok: tuple[int, ...] = (200,),
                 **kwargs: Any) -> dict[str, Any]:
        headers = {"x-amz-access-token": self._token(), "accept": "application/json"}
        try:
            answer = self.api.call(step, method, self.host + REPORTS + path, ok=ok,
                                   headers=headers, **kwargs)
        except FetchFailed:
            self.access_token = None  # if the token was refused, the retry gets a new one
            raise
        if not isinstance(answer, dict):
            raise FetchFailed("amazon-spapi", step, "the answer is not a JSON object")
        return answer

    def _token(self) -> str:
        """Login with Amazon: a refresh token buys an access token for ``expires_in`` seconds."""
        if self.access_token and self.clock() < self.expires_at - TOKEN_MARGIN_SECONDS:
            return self.access_token
        answer = self.api.call("LWA token", "POST", self.token_url, data={
            "grant_type": "refresh_token", "refresh_token": self.credentials["refresh_token"],
            "client_id": self.credentials["client_id"],
            "client_secret": self.credentials["client_secret"]})
        token = _text(answer, "access_token", "LWA token")
        lifetime = answer.get("expires_in")
        self.access_token = token
        self.expires_at = self.clock() + (float(lifetime) if isinstance(lifetime, int | float)
                                          else 3600.0)
        return token


def _text(answer: Any, key: str, step: str) -> str:
    value = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise FetchFailed("amazon-spapi", step, f"the answer has no {key}")
    return value
