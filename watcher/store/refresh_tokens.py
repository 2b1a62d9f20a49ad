"""The refresh token each poller holds now, where its platform rotates them (Shopee).

Shopee answers every refresh with a new refresh token and the old one stops
working, so the token in the configuration is spent after the first refresh: a
restarted daemon that went back to it could not poll again. The current token
is kept here, with the hash of the configured token that began its chain. When
an operator configures a different token (the shop authorised again), that one
wins and begins a new chain.

The table holds a live credential: protect the database as you protect the
configuration. Nothing here logs or returns a token.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from watcher.store.database import Database, utcnow
from watcher.store.schema import poller_tokens

log = structlog.get_logger(__name__)


class RefreshTokens(Protocol):
    def current(self, poller: str, configured: str) -> str:
        """The token to use now: the latest rotation of ``configured``, or ``configured``."""
        ...

    def rotated(self, poller: str, configured: str, token: str) -> None:
        """Keep ``token``, which the platform issued in place of the current one."""
        ...


def configured_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class MemoryRefreshTokens:
    """Held for the life of the process only (tests, and a poller without a store)."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, str]] = {}

    def current(self, poller: str, configured: str) -> str:
        token, seed = self._tokens.get(poller, (configured, configured_hash(configured)))
        return token if seed == configured_hash(configured) else configured

    def rotated(self, poller: str, configured: str, token: str) -> None:
        self._tokens[poller] = (token, configured_hash(configured))


class StoredRefreshTokens:
    """In the database, so that a rotation survives a restart."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def current(self, poller: str, configured: str) -> str:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(poller_tokens.c.refresh_token,
                                      poller_tokens.c.configured_hash)
                               .where(poller_tokens.c.poller == poller)).first()
        if row is None or row.configured_hash != configured_hash(configured):
            return configured
        return str(row.refresh_token)

    def rotated(self, poller: str, configured: str, token: str) -> None:
        """Kept, or logged as an error when the database refuses: the poller goes on
        with the token in memory and the next rotation tries again, but a restart
        before then would find the spent one."""
        values = {"poller": poller, "refresh_token": token,
                  "configured_hash": configured_hash(configured), "updated_at": utcnow()}
        insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        statement = insert(poller_tokens).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["poller"],
            set_={k: statement.excluded[k] for k in ("refresh_token", "configured_hash",
                                                     "updated_at")})
        try:
            with self.db.engine.begin() as conn:
                conn.execute(statement)
        except SQLAlchemyError as exc:
            log.error("refresh_token_not_saved", poller=poller, error=type(exc).__name__,
                      message="the rotated refresh token is held in memory only; a restart "
                              "before the next rotation needs a new token configured")
