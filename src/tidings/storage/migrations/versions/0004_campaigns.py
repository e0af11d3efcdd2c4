"""campaigns, channel preference and fallback timers

Revision ID: 0004_campaigns
Revises: 0001
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0004_campaigns"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)


def _id() -> Any:
    return sa.Column("id", BigId, autoincrement=True, nullable=False)


def _ws(table: str) -> list[Any]:
    return [
        sa.Column("workspace_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=f"fk_{table}_workspace_id_workspace",
            ondelete="CASCADE",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "campaign",
        _id(),
        *_ws("campaign"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("audience", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("content", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("channel_ids", tidings.storage.types.JSONList(), nullable=False),
        sa.Column("fallback", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("rate_per_second", sa.Numeric(10, 3, asdecimal=False), nullable=True),
        sa.Column("quiet_hours", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("scheduled_at", UTC, nullable=True),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("launched_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_campaign"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_campaign_workspace_id_name"),
    )
    op.create_index("ix_campaign_workspace_id", "campaign", ["workspace_id"])

    op.create_table(
        "campaign_recipient",
        _id(),
        *_ws("campaign_recipient"),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("contact_id", BigId, nullable=True),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("source_row", sa.Integer(), nullable=True),
        sa.Column("variables", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("channel_id", BigId, nullable=True),
        sa.Column("channel_reason", sa.String(64), nullable=True),
        sa.Column("conversation_id", BigId, nullable=True),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("fallback_message_id", BigId, nullable=True),
        sa.Column("not_before", UTC, nullable=True),
        sa.Column("queued_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
            name="fk_campaign_recipient_campaign_id_campaign",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name="fk_campaign_recipient_contact_id_contact",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_recipient"),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", name="uq_campaign_recipient_campaign_id_contact_id"
        ),
    )
    op.create_index(
        "ix_campaign_recipient_queue",
        "campaign_recipient",
        ["campaign_id", "state", "not_before"],
    )
    op.create_index("ix_campaign_recipient_message_id", "campaign_recipient", ["message_id"])
    op.create_index(
        "ix_campaign_recipient_fallback_message_id",
        "campaign_recipient",
        ["fallback_message_id"],
    )

    op.create_table(
        "contact_preference",
        sa.Column("contact_id", BigId, nullable=False),
        *_ws("contact_preference"),
        sa.Column("channel_id", BigId, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("set_by_agent_id", BigId, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name="fk_contact_preference_contact_id_contact",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channel.id"],
            name="fk_contact_preference_channel_id_channel",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", name="pk_contact_preference"),
    )

    op.create_table(
        "inbox_fallback",
        sa.Column("inbox_id", BigId, nullable=False),
        *_ws("inbox_fallback"),
        sa.Column("plan", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inbox.id"], name="fk_inbox_fallback_inbox_id_inbox", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("inbox_id", name="pk_inbox_fallback"),
    )

    op.create_table(
        "fallback_timer",
        _id(),
        *_ws("fallback_timer"),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("to_channel_id", BigId, nullable=False),
        sa.Column("campaign_recipient_id", BigId, nullable=True),
        sa.Column("due_at", UTC, nullable=True),
        sa.Column("on_failed", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("fallback_message_id", BigId, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name="fk_fallback_timer_message_id_message",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fallback_timer"),
        sa.UniqueConstraint("message_id", name="uq_fallback_timer_message_id"),
    )
    op.create_index("ix_fallback_timer_queue", "fallback_timer", ["state", "due_at"])


def downgrade() -> None:
    op.drop_table("fallback_timer")
    op.drop_table("inbox_fallback")
    op.drop_table("contact_preference")
    op.drop_table("campaign_recipient")
    op.drop_table("campaign")
