"""Opening the database: SQLite (embedded default, WAL) or PostgreSQL (production).

The embedded default upgrades its own schema at open so the quick start needs
no extra step; PostgreSQL is upgraded explicitly with ``watcher db upgrade`` so
that several daemons never race a migration, and opening an outdated one fails
with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

from watcher.errors import ConfigError, MissingDatabase

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


def claim_once(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert ``values`` unless a row with the same unique key exists; True when this call
    inserted it. A claim committed with the messages it sends: a second replica or a
    restarted daemon finds it and sends nothing, a rolled-back send leaves no claim."""
    statement = (postgresql_insert(table) if conn.dialect.name == "postgresql"
                 else sqlite_insert(table)).values(**values)
    key = next(iter(table.primary_key.columns))
    return conn.execute(statement.on_conflict_do_nothing().returning(key)).first() is not None


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class Database:
    engine: Engine
    url: str

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(_alembic_config(self)).get_current_head()

    def upgrade(self) -> None:
        cfg = _alembic_config(self)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def _alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def open_database(url: str, *, auto_upgrade: bool | None = None) -> Database:
    """Open (and for SQLite by default, create or upgrade) the database at ``url``."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"not a database URL: {exc}", key="database_url") from None
    # orjson: the JSON columns (metrics, targets, segment) are serialised for every
    # stored snapshot, and the standard library's encoder was a tenth of a batch.
    kwargs: dict[str, Any] = {"future": True, "json_serializer": _json_dumps,
                              "json_deserializer": _json_loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    db = Database(engine, url)
    if auto_upgrade is None:
        auto_upgrade = db.is_sqlite
    if auto_upgrade:
        db.upgrade()
    else:
        current, head = db.current_revision(), db.head_revision()
        if current != head:
            raise ConfigError(
                f"database schema is at revision {current or 'none'}, this version needs "
                f"{head}: run 'watcher db upgrade'", key="database_url")
    return db


def open_existing(url: str) -> Database:
    """Open a database that must already exist: reading an SQLite file that is not
    there is an error naming its path, never a new empty file."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"not a database URL: {exc}", key="database_url") from None
    if (parsed.get_backend_name() == "sqlite" and parsed.database
            and parsed.database != ":memory:" and not Path(parsed.database).is_file()):
        raise MissingDatabase(str(Path(parsed.database).resolve()))
    return open_database(url)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(value: Any) -> Any:
    # SQLite hands back a JSON number as a number (SQLAlchemy expects a TypeError there).
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
