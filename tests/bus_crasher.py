"""A NATS consumer that kills itself with SIGKILL at a chosen point of its first batch.

``python -m tests.bus_crasher CONFIG before-commit|after-commit``: the real
``NatsSource`` and pipeline from the config file, except that the process dies
(kill -9, no cleanup, no acknowledgement) just before or just after the
pipeline commits. Deterministic, unlike killing a daemon at a lucky moment.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable

from watcher.bus.nats import NatsSource
from watcher.config import load_settings
from watcher.pipeline import IngestReport
from watcher.runtime import Runtime
from watcher.validation import RawRecord, Rejection


def main(config: str, point: str) -> None:
    settings = load_settings(config, env={})
    runtime = Runtime.open(settings)
    assert settings.nats is not None

    def ingest(records: Iterable[RawRecord | Rejection], source: str) -> IngestReport:
        if point == "before-commit":
            os.kill(os.getpid(), signal.SIGKILL)
        report = runtime.pipeline.ingest(records, source)
        if point == "after-commit":
            os.kill(os.getpid(), signal.SIGKILL)
        return report

    NatsSource(settings.nats, ingest, max_bytes=settings.max_body_bytes).run_forever(
        threading.Event())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
