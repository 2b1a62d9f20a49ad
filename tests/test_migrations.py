"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watcher.store import Database
from watcher.store.schema import metadata


class TestMigrations:
    def test_upgrading_to_head_leaves_nothing_for_autogenerate_to_add(self, db: Database):
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
