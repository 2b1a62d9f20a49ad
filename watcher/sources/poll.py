"""Pollers: fetch a platform API on a schedule and feed the payload through the pipeline.

Off by default: a poller runs only when the config lists it under ``pollers:``.
Each poller is one thread: fetch (one module per platform, ``poll_*.py``),
convert with the same source adapter as an upload to ``POST /v1/sources/{name}``,
ingest on the engine thread. A failure is logged without secrets and retried
with backoff (30 s, 1 min, 2 min, ... never longer than the poller's interval);
it never reaches the daemon. Credentials are ``${ENV}`` references filled in
when the poller is built, through the same substitution (and secret masking) as
channel URLs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx
import structlog

from watcher.channels.base import substitute_env
from watcher.config import PollerSettings
from watcher.errors import ConfigError, WatcherError
from watcher.pipeline import IngestReport
from watcher.redact import redact_text
from watcher.sources import BUILTIN
from watcher.validation import RawRecord, Rejection

log = structlog.get_logger(__name__)

Ingest = Callable[[Iterable[RawRecord | Rejection], str], IngestReport]
# Sleeps up to the given seconds; True means the daemon is stopping (give up the fetch).
Wait = Callable[[float], bool]
RETRY_BASE_SECONDS = 30.0
TIMEOUT_SECONDS = 30.0


class FetchFailed(WatcherError):
    """A platform call failed; the message names the step and the platform's reason, and
    never the request URL (its query carries signatures and tokens)."""

    def __init__(self, source: str, step: str, reason: str) -> None:
        self.source = source
        self.step = step
        self.reason = redact_text(reason)
        super().__init__(f"{source} {step}: {self.reason}")


class Fetcher(Protocol):
    """One platform's fetch: the payload bytes, in the shape its source adapter reads."""

    def fetch(self) -> bytes: ...


@dataclass(frozen=True)
class Credentials:
    """Resolved credential values of one poller; ``repr`` shows only the key names."""

    values: Mapping[str, str] = field(repr=False)

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def get(self, key: str) -> str | None:
        return self.values.get(key)


class CredentialSpec:
    """What a fetcher class needs in ``credentials``: each of ``REQUIRED``, one of ``ANY_OF``."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    ANY_OF: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def resolve(cls, name: str, config: PollerSettings, env: Mapping[str, str],
                file: str | None) -> Credentials:
        """``${ENV}`` filled in and registered as secrets; a missing key or variable is a
        ConfigError naming ``pollers.<name>.credentials.<key>`` now, not a 401 at 3 a.m."""
        prefix = f"pollers.{name}.credentials"
        known = {*cls.REQUIRED, *cls.ANY_OF}
        for key in config.credentials:
            if key not in known:
                raise ConfigError(f"'{key}' is not a {config.source} credential (known: "
                                  f"{', '.join(sorted(known))})", file=file, key=f"{prefix}.{key}")
        for key in cls.REQUIRED:
            if key not in config.credentials:
                raise ConfigError(f"is required for a {config.source} poller", file=file,
                                  key=f"{prefix}.{key}")
        if cls.ANY_OF and not any(key in config.credentials for key in cls.ANY_OF):
            raise ConfigError(f"a {config.source} poller needs one of "
                              f"{', '.join(cls.ANY_OF)}", file=file, key=prefix)
        return Credentials({key: substitute_env(value, env, file=file, key=f"{prefix}.{key}")
                            for key, value in config.credentials.items()})


class Api:
    """JSON over HTTP for one source, with failures that name the step and not the URL."""

    def __init__(self, source: str, client: httpx.Client) -> None:
        self.source = source
        self.client = client

    def call(self, step: str, method: str, url: str, *, ok: tuple[int, ...] = (200,),
             **kwargs: Any) -> Any:
        response = self._send(step, method, url, **kwargs)
        if response.status_code not in ok:
            raise FetchFailed(self.source, step, f"HTTP {response.status_code}: "
                                                 f"{_platform_message(response)}")
        try:
            return response.json()
        except ValueError:
            raise FetchFailed(self.source, step, "the answer is not JSON") from None

    def download(self, step: str, url: str) -> bytes:
        """A pre-signed URL: no credentials go with it."""
        response = self._send(step, "GET", url)
        if response.status_code != 200:
            raise FetchFailed(self.source, step, f"HTTP {response.status_code}")
        return response.content

    def _send(self, step: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            # httpx puts the full URL (query included) in some messages: keep only the kind.
            raise FetchFailed(self.source, step, f"{type(exc).__name__}: "
                                                 f"{_without_urls(str(exc))}") from None


def _platform_message(response: httpx.Response) -> str:
    """The platform's own error text (Shopee ``error``/``message``, SP-API ``errors[]``)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
        parts = [str(body[key]) for key in ("error", "message", "error_description")
                 if body.get(key)]
        if parts:
            request = f" (request_id {body['request_id']})" if body.get("request_id") else ""
            return ": ".join(parts)[:300] + request
    return json.dumps(body)[:300]


def _without_urls(text: str) -> str:
    return " ".join("<url>" if "://" in word else word for word in text.split())


class Poller:
    """One configured poller: fetch, convert, ingest; on failure wait longer each time."""

    def __init__(self, name: str, config: PollerSettings, fetcher: Fetcher, ingest: Ingest, *,
                 retry_base: float = RETRY_BASE_SECONDS) -> None:
        self.name = name
        self.config = config
        self.fetcher = fetcher
        self.ingest = ingest
        self.retry_base = retry_base
        self.failures = 0

    def poll_once(self) -> IngestReport:
        """Raises FetchFailed; a payload the adapter refuses is stored as a rejection."""
        payload = self.fetcher.fetch()
        records = BUILTIN.records(self.config.source, payload, store=self.config.store,
                                  operator=self.config.operator)
        return self.ingest(records, f"poll:{self.name}")

    def tick(self) -> float:
        """One attempt, never raising; returns the seconds until the next one."""
        try:
            report = self.poll_once()
        except Exception as exc:
            self.failures += 1
            delay = min(float(self.config.every), self.retry_base * 2.0 ** (self.failures - 1))
            fields = {"poller": self.name, "source": self.config.source,
                      "attempt": self.failures, "retry_in_seconds": delay}
            if isinstance(exc, WatcherError):
                log.warning("poll_failed", error=redact_text(str(exc)), **fields)
            else:  # a bug, not a platform problem: keep the traceback (the log masks secrets)
                log.exception("poll_crashed", **fields)
            return delay
        self.failures = 0
        log.info("poll_done", poller=self.name, source=self.config.source,
                 accepted=report.accepted, rejected=len(report.rejected),
                 incidents_opened=report.opened, incidents_resolved=report.resolved)
        if report.rejected:
            log.warning("poll_rejected", poller=self.name,
                        errors=[r.as_dict() for r in report.rejected[:5]])
        return float(self.config.every)

    def run_forever(self, stop: threading.Event) -> None:
        """The first fetch is at start; then every ``every`` seconds, sooner after a failure."""
        delay = 0.0
        while not stop.wait(delay):
            delay = self.tick()
