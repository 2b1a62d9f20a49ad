"""Shopee Open Platform v2 poller: shop performance and shop penalty, signed per request.

A shop-level call carries ``partner_id``, ``timestamp``, ``access_token``,
``shop_id`` and ``sign`` in the query, where ``sign`` is the lower-case hex
HMAC-SHA256, keyed with the partner key, of ``partner_id + api path + timestamp
+ access_token + shop_id`` (public calls, such as the token refresh, sign
``partner_id + api path + timestamp``). The timestamp must be within five
minutes of Shopee's clock.

An access token lives four hours. With a ``refresh_token`` the poller gets its
own from ``/api/v2/auth/access_token/get`` and refreshes it before it expires.
Shopee answers each refresh with a new refresh token and retires the old one, so
the poller keeps the new one where a restart finds it (``RefreshTokens``: the
daemon's database). Both answers go to the ``shopee`` adapter together, as one
JSON array, so they make one snapshot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import structlog

from watcher.config import PollerSettings
from watcher.errors import ConfigError
from watcher.sources.base import is_missing
from watcher.sources.poll import Api, Credentials, CredentialSpec, FetchFailed
from watcher.store.refresh_tokens import MemoryRefreshTokens, RefreshTokens

log = structlog.get_logger(__name__)

HOST: Final = "https://partner.shopeemobile.com"
PERFORMANCE: Final = "/api/v2/account_health/get_shop_performance"
PENALTY: Final = "/api/v2/account_health/shop_penalty"
REFRESH: Final = "/api/v2/auth/access_token/get"
REFRESH_MARGIN_SECONDS: Final = 300


def sign(partner_key: str, *parts: str | int) -> str:
    """Shopee's signature: hex HMAC-SHA256 of the concatenated parts, keyed by the partner key."""
    base = "".join(str(part) for part in parts)
    return hmac.new(partner_key.encode(), base.encode(), hashlib.sha256).hexdigest()


class ShopeeFetcher(CredentialSpec):
    REQUIRED = ("partner_id", "partner_key", "shop_id")
    ANY_OF = ("access_token", "refresh_token")

    def __init__(self, config: PollerSettings, credentials: Credentials, api: Api, *,
                 clock: Callable[[], float] = time.time, file: str | None = None,
                 name: str = "shopee", tokens: RefreshTokens | None = None) -> None:
        for key in ("partner_id", "shop_id"):
            if not credentials[key].strip().isdigit():
                raise ConfigError("is a number (Shopee's id)", file=file,
                                  key=f"pollers.{name}.credentials.{key}")
        self.host = (config.base_url or HOST).rstrip("/")
        self.partner_id = int(credentials["partner_id"])
        self.shop_id = int(credentials["shop_id"])
        self.partner_key = credentials["partner_key"]
        self.api = api
        self.clock = clock
        self.name = name
        self.tokens = tokens or MemoryRefreshTokens()
        self.access_token = credentials.get("access_token")
        self.configured_refresh = credentials.get("refresh_token")
        self.refresh_token = (self.tokens.current(name, self.configured_refresh)
                              if self.configured_refresh else None)
        # A configured access token has no known expiry; a refreshed one does.
        self.expires_at = float("inf") if self.access_token else 0.0

    def fetch(self) -> bytes:
        token = self._token()
        answers = [self._shop_call(path, token) for path in (PERFORMANCE, PENALTY)]
        return json.dumps(answers).encode()

    def _shop_call(self, path: str, token: str) -> Any:
        timestamp = int(self.clock())
        params = {"partner_id": self.partner_id, "timestamp": timestamp,
                  "access_token": token, "shop_id": self.shop_id,
                  "sign": sign(self.partner_key, self.partner_id, path, timestamp, token,
                               self.shop_id)}
        try:
            answer = self.api.call(path, "GET", self.host + path, params=params)
            _refuse_error(answer, path)
        except FetchFailed:
            if self.refresh_token:  # the token may be what failed: the retry gets a fresh one
                self.expires_at = 0.0
            raise
        return answer

    def _token(self) -> str:
        if self.access_token and self.clock() < self.expires_at - REFRESH_MARGIN_SECONDS:
            return self.access_token
        if not self.refresh_token:
            assert self.access_token is not None  # CredentialSpec requires one of the two
            return self.access_token
        timestamp = int(self.clock())
        params = {"partner_id": self.partner_id, "timestamp": timestamp,
                  "sign": sign(self.partner_key, self.partner_id, REFRESH, timestamp)}
        body = {"refresh_token": self.refresh_token, "partner_id": self.partner_id,
                "shop_id": self.shop_id}
        answer = self.api.call(REFRESH, "POST", self.host + REFRESH, params=params, json=body)
        _refuse_error(answer, REFRESH)
        token, refresh, expire_in = (answer.get("access_token"), answer.get("refresh_token"),
                                     answer.get("expire_in"))
        if not isinstance(token, str) or not token:
            raise FetchFailed("shopee", REFRESH, "the answer has no access_token")
        self.access_token = token
        if isinstance(refresh, str) and refresh and refresh != self.refresh_token:
            self.refresh_token = refresh
            assert self.configured_refresh is not None
            self.tokens.rotated(self.name, self.configured_refresh, refresh)
        lifetime = expire_in if isinstance(expire_in, int | float) else 4 * 3600
        self.expires_at = self.clock() + float(lifetime)
        log.info("shopee_token_refreshed", shop_id=self.shop_id, expires_in_seconds=lifetime)
        return token


def _refuse_error(answer: Any, step: str) -> None:
    """Shopee reports errors inside a 200 answer; a refused call is a failed fetch."""
    if not isinstance(answer, Mapping):
        raise FetchFailed("shopee", step, "the answer is not a JSON object")
    if not is_missing(answer.get("error")):
        request = answer.get("request_id")
        raise FetchFailed("shopee", step, f"{answer.get('error')}: "
                          f"{answer.get('message') or 'no message'}"
                          + (f" (request_id {request})" if request else ""))
