"""API tokens and roles.

Tokens are random (256 bits), shown once at creation and stored only as a
SHA-256 hash: with that much entropy a slow password hash buys nothing, and a
fast one keeps every request cheap. Roles are cumulative:
viewer < responder < admin; ingest is its own narrow role for data feeds.

One exception keeps the quick start simple: a daemon bound only to loopback
with no token created yet runs open (and says so loudly at start). As soon as
a token exists, or it binds to any other address, every request needs one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select, update

from watcher.store import Database
from watcher.store.database import as_utc, utcnow
from watcher.store.schema import api_tokens

PREFIX = "kw_"


class Role(StrEnum):
    INGEST = "ingest"
    VIEWER = "viewer"
    RESPONDER = "responder"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        if self is Role.ADMIN or self is needed:
            return True
        ladder = [Role.VIEWER, Role.RESPONDER, Role.ADMIN]
        return self in ladder and needed in ladder and ladder.index(self) >= ladder.index(needed)


class Token(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, name: str, role: Role) -> tuple[Token, str]:
    """A new token; the clear text is returned once and never stored."""
    clear = PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    with db.engine.begin() as conn:
        token_id = conn.execute(insert(api_tokens).values(
            name=name, role=role.value, token_hash=hash_token(clear), created_at=now)
            .returning(api_tokens.c.id)).scalar_one()
    return Token(id=int(token_id), name=name, role=role, created_at=now), clear


def list_tokens(db: Database) -> list[Token]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(api_tokens).order_by(api_tokens.c.id)).mappings().all()
    return [Token(id=r["id"], name=r["name"], role=Role(r["role"]),
                  created_at=as_utc(r["created_at"]) or utcnow(),
                  last_used_at=as_utc(r["last_used_at"]), revoked_at=as_utc(r["revoked_at"]))
            for r in rows]


def revoke_token(db: Database, token_id: int) -> bool:
    with db.engine.begin() as conn:
        result = conn.execute(update(api_tokens).where(
            api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=utcnow()))
    return result.rowcount > 0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Checks a bearer token, and whether the loopback open mode still holds.

    Tokens are revoked, never deleted, so "a token exists" can only become true:
    once seen it is remembered for good, and until then every check asks the
    database (one indexed row at most, and only on a loopback daemon without
    tokens). So the first token closes the open mode at once, on every replica.
    """

    def __init__(self, db: Database, host: str) -> None:
        self.db = db
        self.loopback = is_loopback(host)
        self._tokens_exist = False

    def open_mode(self) -> bool:
        """True while the daemon is loopback-only and no token was ever created."""
        if not self.loopback or self._tokens_exist:
            return False
        with self.db.engine.connect() as conn:
            found = conn.execute(select(api_tokens.c.id).limit(1)).first()
        self._tokens_exist = found is not None
        return not self._tokens_exist

    def role_of(self, token: str) -> Role | None:
        with self.db.engine.begin() as conn:
            row = conn.execute(select(api_tokens.c.id, api_tokens.c.role).where(
                api_tokens.c.token_hash == hash_token(token),
                api_tokens.c.revoked_at.is_(None))).first()
            if row is None:
                return None
            conn.execute(update(api_tokens).where(api_tokens.c.id == row.id)
                         .values(last_used_at=utcnow()))
        return Role(row.role)


def bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None
