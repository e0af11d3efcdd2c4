"""reports: per-conversation stats, per-day rollups, and the triggers that keep them exact

Changes to messages, conversations and fallback timers mark their conversation in
`report_dirty` from a trigger, in the same transaction as the change, whichever code path made
it. The rollup job (tidings.reports.rollup) recomputes each marked conversation from its raw
rows and applies the difference to `report_daily`, so a replayed or retried change can never be
counted twice. Opt-outs and status changes are history the raw tables overwrite, so triggers
append them to `report_optout` and `report_status_log` as they happen.

Revision ID: 0008_reports
Revises: 0004_campaigns (the triggers read `fallback_timer`)
Create Date: 2026-11-27 08:00:00
"""

# ruff: noqa: S608  (the trigger SQL is assembled from this file's constants only)

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0008_reports"
down_revision: str | None = "0004_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)
MONEY = sa.Numeric(14, 5)

# The measures both the per-conversation-day contributions and the daily rollup carry.
MEASURES = (
    "messages_in",
    "messages_out",
    "delivered",
    "read",
    "failed",
    "fallbacks_failed",
    "fallbacks_timeout",
    "fallbacks_refused",
    "conversations_new",
    "conversations_resolved",
    "customer_replies",
    "customer_reply_seconds",
)


def _measures() -> list[Any]:
    cols: list[Any] = [
        sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in MEASURES
    ]
    cols.append(sa.Column("cost", MONEY, nullable=False, server_default="0"))
    return cols


def upgrade() -> None:
    op.create_table(
        "report_dirty",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_report_dirty"),
    )
    op.create_table(
        "report_conversation",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("inbox_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("assignee_id", sa.BigInteger(), nullable=True),
        sa.Column("team_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("channels", sa.String(200), nullable=False, server_default=""),
        sa.Column("channel_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("created_day", sa.Date(), nullable=False),
        sa.Column("first_inbound_at", UTC, nullable=True),
        sa.Column("first_response_at", UTC, nullable=True),
        sa.Column("first_response_seconds", sa.Integer(), nullable=True),
        sa.Column("first_response_bh_seconds", sa.Integer(), nullable=True),
        sa.Column("reply_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("reply_seconds", sa.Integer(), nullable=True),
        sa.Column("reply_bh_seconds", sa.Integer(), nullable=True),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.Column("resolved_day", sa.Date(), nullable=True),
        sa.Column("resolution_seconds", sa.Integer(), nullable=True),
        sa.Column("resolution_bh_seconds", sa.Integer(), nullable=True),
        sa.Column("messages_in", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("messages_out", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("fallbacks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cost", MONEY, nullable=False, server_default="0"),
        sa.Column("waiting_since", UTC, nullable=True),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_report_conversation"),
    )
    # Covering (PostgreSQL INCLUDE): medians over a 90-day range read only the index
    # (an index-only scan), not the wide rows.
    dims = ["inbox_id", "channel_id", "assignee_id", "team_id"]
    op.create_index(
        "ix_report_conversation_created",
        "report_conversation",
        ["workspace_id", "created_day", "conversation_id"],
        postgresql_include=[
            "first_response_seconds",
            "first_response_bh_seconds",
            "reply_seconds",
            "reply_bh_seconds",
            *dims,
        ],
    )
    op.create_index(
        "ix_report_conversation_resolved",
        "report_conversation",
        ["workspace_id", "resolved_day"],
        postgresql_include=["resolution_seconds", "resolution_bh_seconds", *dims],
    )
    # Conversations that used more than one channel (the channel preference report).
    op.create_index(
        "ix_report_conversation_multi",
        "report_conversation",
        ["workspace_id", "created_day"],
        postgresql_where=sa.text("channel_count > 1"),
        sqlite_where=sa.text("channel_count > 1"),
    )
    op.create_index(
        "ix_report_conversation_waiting", "report_conversation", ["workspace_id", "waiting_since"]
    )
    op.create_index(
        "ix_report_conversation_load",
        "report_conversation",
        ["workspace_id", "status", "assignee_id", "team_id"],
    )
    op.create_table(
        "report_conversation_day",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("inbox_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "conversation_id", "day", "channel_id", name="pk_report_conversation_day"
        ),
    )
    op.create_index(
        "ix_report_conversation_day_day",
        "report_conversation_day",
        ["workspace_id", "day", "contact_id"],
    )
    op.create_table(
        "report_daily",
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("inbox_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "day",
            "inbox_id",
            "channel_id",
            "agent_id",
            "team_id",
            name="pk_report_daily",
        ),
    )
    op.create_table(
        "report_optout",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_kind", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_report_optout"),
    )
    op.create_index("ix_report_optout_at", "report_optout", ["workspace_id", "at"])
    op.create_table(
        "report_status_log",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_report_status_log"),
    )
    op.create_index(
        "ix_report_status_log_conversation", "report_status_log", ["conversation_id", "id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgres_triggers()
    else:
        _sqlite_triggers()
    # Existing data: every conversation is marked, so the rollup job fills the tables (or run
    # `tidings reports rebuild`, faster for a large database); opt-outs on record are seeded.
    op.execute("INSERT INTO report_dirty (conversation_id) SELECT id FROM conversation")
    op.execute(
        "INSERT INTO report_optout (workspace_id, contact_id, channel_kind, purpose, at) "
        "SELECT workspace_id, contact_id, channel_kind, purpose, changed_at FROM consent "
        "WHERE status = 'opted_out'"
    )


MESSAGE_COLUMNS = (
    "status, channel_id, conversation_id, sender_agent_id, cost_estimate, sent_at, kind"
)
CONVERSATION_COLUMNS = "status, assignee_id, team_id, inbox_id, contact_id"


def _postgres_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION report_mark_message() RETURNS trigger AS $$
        BEGIN
          IF TG_OP <> 'DELETE' THEN
            INSERT INTO report_dirty (conversation_id) VALUES (NEW.conversation_id);
          END IF;
          IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.conversation_id <> NEW.conversation_id) THEN
            INSERT INTO report_dirty (conversation_id) VALUES (OLD.conversation_id);
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        f"CREATE TRIGGER report_mark_message AFTER INSERT OR DELETE OR UPDATE OF {MESSAGE_COLUMNS} "
        "ON message FOR EACH ROW EXECUTE FUNCTION report_mark_message()"
    )
    op.execute(
        """
        CREATE FUNCTION report_mark_conversation() RETURNS trigger AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            INSERT INTO report_dirty (conversation_id) VALUES (OLD.id);
            RETURN NULL;
          END IF;
          INSERT INTO report_dirty (conversation_id) VALUES (NEW.id);
          IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
            INSERT INTO report_status_log (conversation_id, status, at)
            VALUES (NEW.id, NEW.status, coalesce(NEW.updated_at, now()));
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        f"CREATE TRIGGER report_mark_conversation AFTER INSERT OR DELETE OR UPDATE OF "
        f"{CONVERSATION_COLUMNS} ON conversation FOR EACH ROW "
        "EXECUTE FUNCTION report_mark_conversation()"
    )
    op.execute(
        """
        CREATE FUNCTION report_mark_fallback() RETURNS trigger AS $$
        BEGIN
          INSERT INTO report_dirty (conversation_id)
          SELECT conversation_id FROM message WHERE id = NEW.message_id;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER report_mark_fallback AFTER INSERT OR UPDATE OF state ON fallback_timer "
        "FOR EACH ROW EXECUTE FUNCTION report_mark_fallback()"
    )
    op.execute(
        """
        CREATE FUNCTION report_log_optout() RETURNS trigger AS $$
        BEGIN
          IF NEW.status = 'opted_out' AND (TG_OP = 'INSERT' OR OLD.status <> 'opted_out') THEN
            INSERT INTO report_optout (workspace_id, contact_id, channel_kind, purpose, at)
            VALUES (NEW.workspace_id, NEW.contact_id, NEW.channel_kind, NEW.purpose,
                    coalesce(NEW.changed_at, now()));
          END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER report_log_optout AFTER INSERT OR UPDATE OF status ON consent "
        "FOR EACH ROW EXECUTE FUNCTION report_log_optout()"
    )


def _sqlite_triggers() -> None:
    # SQLite stores our UTC datetimes as naive text (storage.types.UTCDateTime), so the rows'
    # own timestamps are copied as they are; strftime is the fallback in the same format.
    now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    for sql in (
        "CREATE TRIGGER report_mark_message_insert AFTER INSERT ON message BEGIN "
        "INSERT INTO report_dirty (conversation_id) VALUES (NEW.conversation_id); END",
        f"CREATE TRIGGER report_mark_message_update AFTER UPDATE OF {MESSAGE_COLUMNS} ON message "
        "BEGIN INSERT INTO report_dirty (conversation_id) VALUES (NEW.conversation_id); "
        "INSERT INTO report_dirty (conversation_id) SELECT OLD.conversation_id "
        "WHERE OLD.conversation_id <> NEW.conversation_id; END",
        "CREATE TRIGGER report_mark_message_delete AFTER DELETE ON message BEGIN "
        "INSERT INTO report_dirty (conversation_id) VALUES (OLD.conversation_id); END",
        "CREATE TRIGGER report_mark_conversation_insert AFTER INSERT ON conversation BEGIN "
        "INSERT INTO report_dirty (conversation_id) VALUES (NEW.id); "
        "INSERT INTO report_status_log (conversation_id, status, at) "
        f"VALUES (NEW.id, NEW.status, coalesce(NEW.updated_at, {now})); END",
        f"CREATE TRIGGER report_mark_conversation_update AFTER UPDATE OF {CONVERSATION_COLUMNS} "
        "ON conversation BEGIN INSERT INTO report_dirty (conversation_id) VALUES (NEW.id); "
        "INSERT INTO report_status_log (conversation_id, status, at) "
        f"SELECT NEW.id, NEW.status, coalesce(NEW.updated_at, {now}) "
        "WHERE OLD.status IS NOT NEW.status; END",
        "CREATE TRIGGER report_mark_conversation_delete AFTER DELETE ON conversation BEGIN "
        "INSERT INTO report_dirty (conversation_id) VALUES (OLD.id); END",
        "CREATE TRIGGER report_mark_fallback_insert AFTER INSERT ON fallback_timer BEGIN "
        "INSERT INTO report_dirty (conversation_id) "
        "SELECT conversation_id FROM message WHERE id = NEW.message_id; END",
        "CREATE TRIGGER report_mark_fallback_update AFTER UPDATE OF state ON fallback_timer BEGIN "
        "INSERT INTO report_dirty (conversation_id) "
        "SELECT conversation_id FROM message WHERE id = NEW.message_id; END",
        "CREATE TRIGGER report_log_optout_insert AFTER INSERT ON consent "
        "WHEN NEW.status = 'opted_out' BEGIN "
        "INSERT INTO report_optout (workspace_id, contact_id, channel_kind, purpose, at) VALUES "
        f"(NEW.workspace_id, NEW.contact_id, NEW.channel_kind, NEW.purpose, "
        f"coalesce(NEW.changed_at, {now})); END",
        "CREATE TRIGGER report_log_optout_update AFTER UPDATE OF status ON consent "
        "WHEN NEW.status = 'opted_out' AND OLD.status <> 'opted_out' BEGIN "
        "INSERT INTO report_optout (workspace_id, contact_id, channel_kind, purpose, at) VALUES "
        f"(NEW.workspace_id, NEW.contact_id, NEW.channel_kind, NEW.purpose, "
        f"coalesce(NEW.changed_at, {now})); END",
    ):
        op.execute(sql)


SQLITE_TRIGGERS = (
    "report_mark_message_insert",
    "report_mark_message_update",
    "report_mark_message_delete",
    "report_mark_conversation_insert",
    "report_mark_conversation_update",
    "report_mark_conversation_delete",
    "report_mark_fallback_insert",
    "report_mark_fallback_update",
    "report_log_optout_insert",
    "report_log_optout_update",
)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in (
            ("report_mark_message", "message"),
            ("report_mark_conversation", "conversation"),
            ("report_mark_fallback", "fallback_timer"),
            ("report_log_optout", "consent"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {trigger}()")
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in (
        "report_status_log",
        "report_optout",
        "report_daily",
        "report_conversation_day",
        "report_conversation",
        "report_dirty",
    ):
        op.drop_table(table)
