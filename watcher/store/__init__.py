"""Persistence: snapshots, rejected inputs, incidents, their timeline and the outbox."""

from watcher.store.database import Database, open_database, open_existing

__all__ = ["Database", "open_database", "open_existing"]
