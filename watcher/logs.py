"""structlog setup: JSON lines when not on a terminal, readable when on one; never secrets.

Logs go to stderr so that the console channel's alerts (stdout) stay readable.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from watcher.redact import redact_value


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Mask apprise URLs, tokens and registered secrets in every value."""
    return {key: redact_value(value) for key, value in event_dict.items()}


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure(level: str = "info", json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)),
        # Resolve stderr at each use: tests and embedders swap sys.stderr.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
