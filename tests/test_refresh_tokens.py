"""Refresh tokens a platform rotates (Shopee) are kept where a restart finds them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from watcher.store import Database
from watcher.store.refresh_tokens import (
    MemoryRefreshTokens,
    RefreshTokens,
    StoredRefreshTokens,
)
from watcher.store.schema import poller_tokens

CONFIGURED = "refresh-0001"


@pytest.fixture(params=["memory", "stored"])
def tokens(request: pytest.FixtureRequest, db: Database) -> RefreshTokens:
    return MemoryRefreshTokens() if request.param == "memory" else StoredRefreshTokens(db)


class TestRefreshTokens:
    """What both keepers promise within one process."""

    def test_before_any_rotation_the_configured_token_is_used(self, tokens: RefreshTokens):
        assert tokens.current("shop-a", CONFIGURED) == CONFIGURED

    def test_the_latest_rotation_is_used(self, tokens: RefreshTokens):
        tokens.rotated("shop-a", CONFIGURED, "refresh-0002")
        tokens.rotated("shop-a", CONFIGURED, "refresh-0003")
        assert tokens.current("shop-a", CONFIGURED) == "refresh-0003"
        assert tokens.current("shop-b", "other-0001") == "other-0001"

    def test_a_newly_configured_token_begins_a_new_chain(self, tokens: RefreshTokens):
        """The shop was authorised again and its new token put in the configuration."""
        tokens.rotated("shop-a", CONFIGURED, "refresh-0002")
        assert tokens.current("shop-a", "reauthorised-0001") == "reauthorised-0001"
        tokens.rotated("shop-a", "reauthorised-0001", "reauthorised-0002")
        assert tokens.current("shop-a", "reauthorised-0001") == "reauthorised-0002"


class TestStoredRefreshTokens:
    def test_a_rotation_survives_a_restart(self, db: Database):
        StoredRefreshTokens(db).rotated("shop-a", CONFIGURED, "refresh-0002")
        assert StoredRefreshTokens(db).current("shop-a", CONFIGURED) == "refresh-0002"

    def test_one_row_per_poller_holding_no_configured_token_in_clear(self, db: Database):
        StoredRefreshTokens(db).rotated("shop-a", CONFIGURED, "refresh-0002")
        StoredRefreshTokens(db).rotated("shop-a", CONFIGURED, "refresh-0003")
        with db.engine.connect() as conn:
            rows = conn.execute(select(poller_tokens)).all()
        assert [(r.poller, r.refresh_token) for r in rows] == [("shop-a", "refresh-0003")]
        assert CONFIGURED not in rows[0].configured_hash

    def test_a_refused_write_is_logged_as_an_error_without_the_token(self, db: Database):
        poller_tokens.drop(db.engine)  # the database refuses every write from now on
        with capture_logs() as logs:
            StoredRefreshTokens(db).rotated("shop-a", CONFIGURED, "refresh-0002")
        [entry] = [e for e in logs if e["event"] == "refresh_token_not_saved"]
        assert entry["log_level"] == "error" and entry["poller"] == "shop-a"
        assert "refresh-0002" not in repr(logs) and CONFIGURED not in repr(logs)
