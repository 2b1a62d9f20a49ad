"""The one error hierarchy of kpi-watch.

Every error carries its data as attributes so that callers (CLI, HTTP API,
rejected log) can show or store the parts separately, and its message says what
the user can do about it.
"""

from __future__ import annotations


class WatcherError(Exception):
    """Base of every error kpi-watch raises on purpose."""


class ConfigError(WatcherError):
    """A configuration, rule or channel file is wrong; names the file and key or line."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.reason = message
        where = ", ".join(
            part for part in (
                file,
                f"line {line}" if line is not None else None,
                f"key '{key}'" if key else None,
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class InputError(WatcherError):
    """A record (snapshot) is malformed; names where it was and which field is wrong."""

    def __init__(self, message: str, *, location: str | None = None,
                 field: str | None = None) -> None:
        self.location = location
        self.field = field
        self.reason = message
        prefix = " ".join(p for p in (location, f"field '{field}'" if field else None) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InputTooLarge(InputError):
    """A body or file exceeds the configured size limit."""


class RecordRefused(InputError):
    """The rule engine could not take a valid record (too wide a fact, an engine error);
    that record alone is rejected."""


class DeliveryFailed(WatcherError):
    """A channel could not deliver a notification; retried by the dispatcher."""

    def __init__(self, channel: str, reason: str, *, retryable: bool = True) -> None:
        self.channel = channel
        self.reason = reason
        self.retryable = retryable
        super().__init__(f"channel '{channel}': {reason}")


class NotFound(WatcherError):
    """The incident, silence or token asked for does not exist."""


class MissingDatabase(WatcherError):
    """A read command was pointed at an SQLite file that does not exist (it would
    otherwise create an empty one and report nothing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"no database at {path}: nothing has been stored there. Point at the daemon's "
            f"database with --config FILE (the daemon's config), WATCHER_CONFIG or "
            f"WATCHER_DATABASE_URL; 'watcher run' logs the database it uses at start.")


class AlreadyExists(WatcherError):
    """``watcher init`` would overwrite a file the user may have edited."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} already exists: nothing was written (--force overwrites)")


class PortInUse(WatcherError):
    """``watcher run`` cannot listen: another process (often another daemon) has the port."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(
            f"port {port} on {host} is already in use (another 'watcher run'?): stop that "
            f"process, or choose another port with --port {port + 1 if port < 65535 else 8081}"
            f" (or 'port:' in the config)")


class InvalidTransition(WatcherError):
    """An incident cannot move to the asked state from the one it is in."""
