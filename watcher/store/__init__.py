"""Persistence: snapshots, rejected inputs, incidents, their timeline and the outbox."""

from watcher.store.database import Database, open_database

__all__ = ["Database", "open_database"]
