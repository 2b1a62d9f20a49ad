"""The NATS server under test: reachability, a private stream per test, publishing.

Tests use ``WATCHER_TEST_NATS_URL`` (default: the local server). Without a
reachable server they skip with the reason, unless ``WATCHER_REQUIRE_NATS=1``
(set by CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import nats
from nats.js.api import ConsumerInfo

from tests.conftest import unavailable
from watcher.config import NatsSettings

NATS_URL = os.environ.get("WATCHER_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_problem() -> str | None:
    parsed = urlparse(NATS_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222),
                                      timeout=3):
            return None
    except OSError as exc:
        return f"NATS not reachable at {NATS_URL}: {exc}"


_PROBLEM = _nats_problem()


def require_nats() -> None:
    if _PROBLEM:
        unavailable(_PROBLEM, "WATCHER_REQUIRE_NATS")


@dataclass(frozen=True)
class Bus:
    """A stream, subject prefix and durable of this test alone."""

    settings: NatsSettings

    @property
    def prefix(self) -> str:
        return self.settings.subject.removesuffix(".>")

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The ``nats:`` section of a daemon config file."""
        return {**self.settings.model_dump(), **overrides}

    def publish(self, *messages: tuple[str, bytes] | tuple[str, bytes, dict[str, str]]) -> None:
        """Publish ``(subject suffix, body[, headers])`` messages, each confirmed stored."""
        async def send() -> None:
            nc = await nats.connect(NATS_URL)
            try:
                js = nc.jetstream()
                await _ensure_stream(js, self.settings)
                for message in messages:
                    headers = message[2] if len(message) == 3 else None
                    await js.publish(f"{self.prefix}.{message[0]}", message[1],
                                     headers=headers)
            finally:
                await nc.close()
        asyncio.run(send())

    def consumer(self) -> ConsumerInfo:
        async def info() -> ConsumerInfo:
            nc = await nats.connect(NATS_URL)
            try:
                return await nc.jetstream().consumer_info(self.settings.stream,
                                                          self.settings.durable)
            finally:
                await nc.close()
        return asyncio.run(info())

    def wait_drained(self, timeout: float = 30) -> ConsumerInfo:
        """Until every message was delivered and acknowledged (or terminated)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = self.consumer()
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return info
            except nats.js.errors.NotFoundError:
                info = None
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer not drained after {timeout} s: {info}")
            time.sleep(0.1)

    def delete(self) -> None:
        async def drop() -> None:
            nc = await nats.connect(NATS_URL)
            try:
                await nc.jetstream().delete_stream(self.settings.stream)
            except nats.js.errors.NotFoundError:
                pass
            finally:
                await nc.close()
        asyncio.run(drop())


async def _ensure_stream(js: nats.js.JetStreamContext, settings: NatsSettings) -> None:
    try:
        await js.stream_info(settings.stream)
    except nats.js.errors.NotFoundError:
        await js.add_stream(name=settings.stream, subjects=[settings.subject])


def private_bus() -> Iterator[Bus]:
    """For a fixture: skips (or fails, in CI) without a server; deletes the stream after."""
    require_nats()
    tag = uuid.uuid4().hex[:10]
    made = Bus(NatsSettings(url=NATS_URL, stream=f"T_{tag}", subject=f"t{tag}.kpi.snapshots.>",
                            durable=f"d{tag}", ack_wait=2, retry_delay=0.3, batch=20))
    try:
        yield made
    finally:
        made.delete()
