"""A real HTTP server on loopback that speaks Shopee v2 and Amazon SP-API as documented.

It checks what the real platforms check (Shopee's signature and timestamp
window, the LWA form and client credentials, ``x-amz-access-token``) and
refuses the way they refuse (Shopee's ``error``/``message`` envelope, SP-API's
``errors[]``, LWA's ``error``/``error_description``), so a poller that passes
here signs and authenticates the documented way. Every request is recorded.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.daemon_harness import free_port
from tests.sources import fixture

PARTNER_ID, SHOP_ID, PARTNER_KEY = 2001887, 14701711, "shopee-partner-key-0123456789abcdef"
CLIENT_ID, CLIENT_SECRET = "amzn1.application-oa2-client.abc", "lwa-client-secret-9876"
LWA_REFRESH = "Atzr|lwa-refresh-token-0001"
SHOPEE_PATHS = ("/api/v2/account_health/get_shop_performance",
                "/api/v2/account_health/shop_penalty")
SHOPEE_FIXTURES = {SHOPEE_PATHS[0]: "shopee-get-shop-performance.json",
                   SHOPEE_PATHS[1]: "shopee-shop-penalty.json"}
REFRESH_PATH = "/api/v2/auth/access_token/get"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class FakePlatforms:
    """State a test can set: valid tokens, how many times a report stays in progress, ..."""

    shopee_access_token: str = "shopee-access-token-0001"
    shopee_refresh_token: str = "shopee-refresh-token-0001"
    shopee_issued: int = 0
    amazon_tokens: set[str] = field(default_factory=set)
    report_status: str = "DONE"
    report_polls_in_progress: int = 1
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: int = 0
    clock_offset: float = 0.0  # Shopee's clock, as far ahead of ours as a test moved time
    requests: list[Request] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakePlatforms:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                request = Request(self.command, parts.path,
                                  {k: v[0] for k, v in parse_qs(parts.query).items()},
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(request)
                status, payload = fake.answer(request)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *_args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def calls(self, path_prefix: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    # -- routing ---------------------------------------------------------------------------

    def answer(self, request: Request) -> tuple[int, Any]:
        if self.fail_next:
            self.fail_next -= 1
            return 500, {"message": "internal error"}
        if request.path in SHOPEE_PATHS:
            return self._shopee_shop_call(request)
        if request.path == REFRESH_PATH:
            return self._shopee_refresh(request)
        if request.path == "/auth/o2/token":
            return self._lwa(request)
        if request.path.startswith("/reports/2021-06-30/"):
            return self._reports(request)
        if request.path.startswith("/s3/"):
            return 200, self.reports[request.path.removeprefix("/s3/")]["document"]
        return 404, {"message": "no such path"}

    # -- Shopee v2 -------------------------------------------------------------------------

    def _shopee_error(self, status: int, error: str, message: str) -> tuple[int, Any]:
        return status, {"request_id": "fake-request-1", "error": error, "message": message}

    def _signed(self, request: Request, *parts: Any) -> bool:
        base = "".join(str(p) for p in parts)
        expected = hmac.new(PARTNER_KEY.encode(), base.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, request.query.get("sign", ""))

    def _timestamp_ok(self, request: Request) -> bool:
        stamp = request.query.get("timestamp", "")
        return stamp.isdigit() and abs(int(stamp) - time.time() - self.clock_offset) <= 300

    def _shopee_shop_call(self, request: Request) -> tuple[int, Any]:
        q = request.query
        if q.get("partner_id") != str(PARTNER_ID) or q.get("shop_id") != str(SHOP_ID):
            return self._shopee_error(403, "error_param", "partner_id or shop_id is wrong")
        if not self._timestamp_ok(request):
            return self._shopee_error(403, "error_param", "Invalid timestamp")
        if not self._signed(request, PARTNER_ID, request.path, q["timestamp"],
                            q.get("access_token", ""), SHOP_ID):
            return self._shopee_error(403, "error_sign", "Wrong sign.")
        if q.get("access_token") != self.shopee_access_token:
            return self._shopee_error(403, "invalid_acceess_token", "Invalid access_token.")
        return 200, json.loads(fixture(SHOPEE_FIXTURES[request.path]))

    def _shopee_refresh(self, request: Request) -> tuple[int, Any]:
        if not self._timestamp_ok(request) or not self._signed(
                request, PARTNER_ID, request.path, request.query.get("timestamp", "")):
            return self._shopee_error(403, "error_sign", "Wrong sign.")
        body = request.json()
        if (body.get("partner_id"), body.get("shop_id")) != (PARTNER_ID, SHOP_ID):
            return self._shopee_error(400, "error_param", "partner_id and shop_id are numbers")
        if body.get("refresh_token") != self.shopee_refresh_token:
            return self._shopee_error(403, "error_auth", "Invalid refresh_token.")
        self.shopee_issued += 1
        self.shopee_access_token = f"shopee-access-token-{self.shopee_issued + 1:04d}"
        self.shopee_refresh_token = f"shopee-refresh-token-{self.shopee_issued + 1:04d}"
        return 200, {"request_id": "r", "error": "", "message": "", "partner_id": PARTNER_ID,
                     "shop_id": SHOP_ID, "access_token": self.shopee_access_token,
                     "refresh_token": self.shopee_refresh_token, "expire_in": 14400}

    # -- Amazon: Login with Amazon and the Reports API 2021-06-30 --------------------------

    def _lwa(self, request: Request) -> tuple[int, Any]:
        form = request.form()
        if request.headers.get("content-type", "").split(";")[0] != (
                "application/x-www-form-urlencoded"):
            return 400, {"error": "invalid_request", "error_description": "form expected"}
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client",
                         "error_description": "Client authentication failed"}
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != LWA_REFRESH:
            return 400, {"error": "invalid_grant",
                         "error_description": "The request has an invalid grant parameter"}
        token = f"Atza|access-{len(self.amazon_tokens) + 1}"
        self.amazon_tokens.add(token)
        return 200, {"access_token": token, "refresh_token": LWA_REFRESH,
                     "token_type": "bearer", "expires_in": 3600}

    def _reports(self, request: Request) -> tuple[int, Any]:
        if request.headers.get("x-amz-access-token") not in self.amazon_tokens:
            return 403, {"errors": [{"code": "Unauthorized", "message": "Access to requested "
                                     "resource is denied.", "details": ""}]}
        rest = request.path.removeprefix("/reports/2021-06-30/")
        if request.method == "POST" and rest == "reports":
            body = request.json()
            if body.get("reportType") != "GET_V2_SELLER_PERFORMANCE_REPORT":
                return 400, {"errors": [{"code": "InvalidInput", "message": "reportType"}]}
            report_id = f"R{len(self.reports) + 1}"
            self.reports[report_id] = {"marketplaces": body["marketplaceIds"], "polls": 0,
                                       "document": self._report_document(body)}
            return 202, {"reportId": report_id}
        if request.method == "GET" and rest.startswith("reports/"):
            report_id = rest.removeprefix("reports/")
            report = self.reports[report_id]
            report["polls"] += 1
            status = ("IN_PROGRESS" if report["polls"] <= self.report_polls_in_progress
                      else self.report_status)
            answer = {"reportId": report_id, "reportType": "GET_V2_SELLER_PERFORMANCE_REPORT",
                      "processingStatus": status, "marketplaceIds": report["marketplaces"],
                      "createdTime": "2026-10-28T23:00:00Z"}
            if status == "DONE":
                answer["reportDocumentId"] = f"D{report_id}"
            return 200, answer
        if request.method == "GET" and rest.startswith("documents/"):
            report_id = rest.removeprefix("documents/D")
            return 200, {"reportDocumentId": f"D{report_id}", "compressionAlgorithm": "GZIP",
                         "url": f"{self.url}/s3/{report_id}?X-Amz-Signature=presigned"}
        return 404, {"errors": [{"code": "NotFound", "message": rest}]}

    @staticmethod
    def _report_document(body: dict[str, Any]) -> bytes:
        """The published fixture, cut down to the marketplace asked for, gzipped."""
        report = json.loads(fixture("amazon-spapi-seller-performance.json"))
        wanted = set(body["marketplaceIds"])
        cut = {key: [e for e in report[key] if e["marketplaceId"] in wanted]
               for key in ("accountStatuses", "performanceMetrics")}
        return gzip.compress(json.dumps(cut).encode())
