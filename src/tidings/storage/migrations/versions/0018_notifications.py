"""notification, saved_view, macro: the agent's bell, saved list filters and macros

`notification` rows are written in the same transaction as what they
tell about (actions/notifications.py reads the unit of work's events before commit); a
message notifies one agent of one kind at most once (unique agent, kind, message). Saved views
belong to one agent; macros to the workspace.

Revision ID: 0018_notifications
Revises: 0001
Create Date: 2026-12-07 07:50:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0018_notifications"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)
JSONDict = tidings.storage.types.JSONDict
JSONList = tidings.storage.types.JSONList


def _fk(table: str, column: str, target: str) -> Any:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("actor_agent_id", BigId, nullable=True),
        sa.Column("body", sa.String(300), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("read_at", UTC, nullable=True),
        _fk("notification", "workspace_id", "workspace"),
        _fk("notification", "agent_id", "agent"),
        _fk("notification", "conversation_id", "conversation"),
        sa.PrimaryKeyConstraint("id", name="pk_notification"),
        sa.UniqueConstraint(
            "agent_id", "kind", "message_id", name="uq_notification_agent_id_kind_message_id"
        ),
    )
    op.create_index("ix_notification_agent_unread", "notification", ["agent_id", "read_at", "id"])
    op.create_index(
        "ix_notification_agent_conversation",
        "notification",
        ["agent_id", "kind", "conversation_id"],
    )
    op.create_table(
        "saved_view",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("filters", JSONDict(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        _fk("saved_view", "workspace_id", "workspace"),
        _fk("saved_view", "agent_id", "agent"),
        sa.PrimaryKeyConstraint("id", name="pk_saved_view"),
        sa.UniqueConstraint("agent_id", "name", name="uq_saved_view_agent_id_name"),
    )
    op.create_table(
        "macro",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("actions", JSONList(), nullable=False),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        _fk("macro", "workspace_id", "workspace"),
        sa.PrimaryKeyConstraint("id", name="pk_macro"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_macro_workspace_id_name"),
    )


def downgrade() -> None:
    op.drop_table("macro")
    op.drop_table("saved_view")
    op.drop_index("ix_notification_agent_conversation", table_name="notification")
    op.drop_index("ix_notification_agent_unread", table_name="notification")
    op.drop_table("notification")
