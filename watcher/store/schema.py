"""Table definitions (SQLAlchemy Core). Alembic migrations are generated from these.

Core tables rather than ORM classes: the pipeline writes in batches with
``executemany`` and the pure core works on frozen pydantic models, so mapped
objects would only add a second model of the same rows.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

TS = DateTime(timezone=True)

snapshots = Table(
    "snapshots", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(700), nullable=False, unique=True),
    Column("store", String(200), nullable=False),
    Column("platform", String(200), nullable=False),
    Column("period", String(10), nullable=False),
    Column("period_kind", String(10), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("operator", String(200)),
    Column("observed_at", TS),
    Column("segment", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("targets", JSON, nullable=False),
    # The feed of a snapshot one feed states (the columns are its part), or, when several
    # feed it, {feed: part} in ``parts`` and the columns hold their merge (watcher/feeds.py).
    # Both NULL on rows stored before feeds: one part, of the feed its source names.
    Column("feed", String(200)),
    Column("parts", JSON(none_as_null=True)),
    Column("content_hash", String(32), nullable=False),
    Column("revision", Integer, nullable=False, server_default=text("1")),
    Column("source", String(300)),
    Column("raw", Text),
    Column("received_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_snapshots_store_period", "store", "period_start"),
    Index("ix_snapshots_operator_period", "operator", "period_start"),
    # each store's latest snapshot of a kind (the health board), and what changed since a
    # moment (the watermark of the kept board and team cards: repository.snapshots_mark)
    Index("ix_snapshots_store_kind_start", "platform", "store", "period_kind", "period_start"),
    Index("ix_snapshots_updated", "updated_at", "revision", "id"),
    # the snapshots of a period (the team's cards)
    Index("ix_snapshots_period_start", "period_start", "period_end"),
)

rejected_inputs = Table(
    "rejected_inputs", metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", TS, nullable=False, index=True),
    Column("source", String(500), nullable=False),
    Column("location", String(100), nullable=False),
    Column("field", String(300)),
    Column("error", Text, nullable=False),
    Column("raw", Text, nullable=False),
)

incidents = Table(
    "incidents", metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(700), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("rule_version", String(40), nullable=False),
    Column("subject_kind", String(20), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("store", String(200)),
    Column("platform", String(200)),
    Column("operator", String(200)),
    Column("status", String(20), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("audience", String(50), nullable=False),
    Column("metric", String(100)),
    Column("value", JSON),
    Column("threshold", JSON),
    Column("period", String(10)),
    Column("period_end", Date),
    Column("title", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", String(200)),
    Column("resolved_at", TS),
    Column("resolved_by", String(200)),
    # At most one incident per fingerprint that is not resolved: the database,
    # not luck, keeps a restatement or a second replica from opening a twin.
    Index("uq_incidents_live_fingerprint", "fingerprint", unique=True,
          sqlite_where=text("status != 'resolved'"),
          postgresql_where=text("status != 'resolved'")),
    Index("ix_incidents_status_opened", "status", "opened_at"),
    Index("ix_incidents_fingerprint", "fingerprint"),
    Index("ix_incidents_subject_status", "subject", "status"),
)

incident_events = Table(
    "incident_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("at", TS, nullable=False),
    Column("kind", String(30), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("note", Text),
    Column("data", JSON, nullable=False),
)

notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), index=True),
    Column("event_id", Integer, ForeignKey("incident_events.id", ondelete="SET NULL")),
    Column("channel", String(200), nullable=False),
    Column("alert", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TS, nullable=False),
    Column("claimed_until", TS),
    Column("claimed_by", String(100)),
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    Column("group_key", String(700)),
    # Higher goes first (the severity's rank): a critical alert never waits behind others.
    Column("priority", Integer, nullable=False, server_default=text("0")),
    # A notification folded into a digest (status "folded"): the digest's id.
    Column("carried_by", Integer),
    Index("ix_notifications_due", "status", "next_attempt_at"),
    Index("ix_notifications_group", "group_key", "status"),
    Index("ix_notifications_channel_sent", "channel", "sent_at"),
    Index("ix_notifications_carried_by", "carried_by"),
)

# The operator's monthly card, as the PIP streak counts it (watcher.assessment.verdict):
# recomputed whenever a snapshot of the operator's month changes.
monthly_cards = Table(
    "monthly_cards", metadata,
    Column("id", Integer, primary_key=True),
    Column("operator", String(200), nullable=False),
    Column("period", String(10), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("result", String(20), nullable=False),
    Column("score", Float),
    Column("grade", String(20)),
    Column("evidence", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("operator", "period", name="uq_monthly_cards_key"),
    Index("ix_monthly_cards_operator_start", "operator", "period_start"),
)

silences = Table(
    "silences", metadata,
    Column("id", Integer, primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("ix_silences_ends_at", "ends_at"),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("last_used_at", TS),
    Column("revoked_at", TS),
)

poller_tokens = Table(
    "poller_tokens", metadata,
    Column("poller", String(200), primary_key=True),
    Column("refresh_token", Text, nullable=False),
    Column("configured_hash", String(64), nullable=False),
    Column("updated_at", TS, nullable=False),
)

# A PIP incident's plan (watcher/assessment/pip.py): the plan itself as JSON, with the
# columns the timer loop and the monthly report query by.
pip_plans = Table(
    "pip_plans", metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"),
           primary_key=True),
    Column("operator", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
    Index("ix_pip_plans_status", "status"),
)

# One row per manager and month whose team report was sent: the primary key makes it
# once, across restarts and replicas.
report_deliveries = Table(
    "report_deliveries", metadata,
    Column("manager", String(200), primary_key=True),
    Column("period", String(10), primary_key=True),
    Column("sent_at", TS, nullable=False),
)

# Each route's weekly digest, once per week (watcher/weekly.py): the row is written in
# the transaction that enqueues the digest, so no replica or restart sends it twice.
# ``route_key`` is the route's identity (its match and channels), not its position.
digest_deliveries = Table(
    "digest_deliveries", metadata,
    Column("route_key", String(64), primary_key=True),
    Column("week", String(10), primary_key=True),
    Column("sent_at", TS, nullable=False),
)

# A firing whose rule has ``for:`` waits here until it has held long enough
# (watcher/holding.py); its subject lets a batch load the runs it may extend.
pending_firings = Table(
    "pending_firings", metadata,
    Column("fingerprint", String(700), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("subject", String(200), nullable=False, index=True),
    Column("since", TS, nullable=False),
    Column("periods", Integer, nullable=False),
    Column("last_period", String(10), nullable=False),
    Column("last_period_end", Date, nullable=False),
    Column("due_at", TS, index=True),
    Column("firing", JSON, nullable=False),
)
