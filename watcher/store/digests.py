"""Weekly digest deliveries: which route's digest of which week went out.

A claim is a row inserted in the transaction that enqueues the digest's
notifications: a second replica's or a restarted daemon's insert finds it and
sends nothing (``ON CONFLICT DO NOTHING``), and a rolled-back enqueue leaves no
claim behind, so the digest is neither sent twice nor lost.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from watcher.store.database import claim_once
from watcher.store.schema import digest_deliveries


def digested(conn: Connection, week: str) -> set[str]:
    """The route keys whose digest for ``week`` went out."""
    rows = conn.execute(select(digest_deliveries.c.route_key).where(
        digest_deliveries.c.week == week))
    return {str(r[0]) for r in rows}


def claim_digest(conn: Connection, route_key: str, week: str, now: datetime) -> bool:
    """Record that the route's digest for ``week`` goes out; False when it already did
    (here or in another replica). Commit it with the notifications it sends."""
    return claim_once(conn, digest_deliveries,
                      {"route_key": route_key, "week": week, "sent_at": now})
