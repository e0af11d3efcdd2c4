"""assignment, SLA timers and CSAT

Per-inbox assignment settings and per-agent capacities; SLA targets, the running SLA timer on
each conversation and the breaches; CSAT settings and responses.

Revision ID: 0010_assignment
Revises: 0001
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0010_assignment"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)


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


def _inbox_pk(table: str) -> list[Any]:
    return [
        sa.Column("inbox_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inbox.id"], name=f"fk_{table}_inbox_id_inbox", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("inbox_id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("sla_target", sa.String(16), nullable=True))
        batch.add_column(sa.Column("sla_due_at", UTC, nullable=True))
        batch.add_column(sa.Column("sla_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("first_response_at", UTC, nullable=True))
    op.create_index("ix_conversation_sla", "conversation", ["sla_state", "sla_due_at"])
    op.create_index(
        "ix_conversation_queue", "conversation", ["inbox_id", "assignee_id", "status", "created_at"]
    )

    op.create_table(
        "inbox_assignment",
        *_inbox_pk("inbox_assignment"),
        *_ws("inbox_assignment"),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("last_agent_id", BigId, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_table(
        "agent_capacity",
        sa.Column("inbox_id", BigId, nullable=False),
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inbox.id"], name="fk_agent_capacity_inbox_id_inbox", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name="fk_agent_capacity_agent_id_agent", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("inbox_id", "agent_id", name="pk_agent_capacity"),
    )
    op.create_table(
        "inbox_sla",
        *_inbox_pk("inbox_sla"),
        *_ws("inbox_sla"),
        sa.Column("first_response_seconds", sa.Integer(), nullable=True),
        sa.Column("next_response_seconds", sa.Integer(), nullable=True),
        sa.Column("by_priority", tidings.storage.types.JSONDict(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_table(
        "sla_breach",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        *_ws("sla_breach"),
        sa.Column("inbox_id", BigId, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("assignee_id", BigId, nullable=True),
        sa.Column("due_at", UTC, nullable=False),
        sa.Column("detected_at", UTC, nullable=False),
        sa.Column("responded_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_sla_breach_conversation_id_conversation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sla_breach"),
        sa.UniqueConstraint(
            "conversation_id",
            "target",
            "due_at",
            name="uq_sla_breach_conversation_id_target_due_at",
        ),
    )
    op.create_index("ix_sla_breach_ws_due", "sla_breach", ["workspace_id", "due_at"])
    op.create_table(
        "inbox_csat",
        *_inbox_pk("inbox_csat"),
        *_ws("inbox_csat"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("template_id", BigId, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_table(
        "csat_response",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        *_ws("csat_response"),
        sa.Column("inbox_id", BigId, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("contact_id", BigId, nullable=False),
        sa.Column("agent_id", BigId, nullable=True),
        sa.Column("channel_id", BigId, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("question_message_id", BigId, nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("answer_message_id", BigId, nullable=True),
        sa.Column("asked_at", UTC, nullable=False),
        sa.Column("answered_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_csat_response_conversation_id_conversation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_csat_response"),
        sa.UniqueConstraint("conversation_id", name="uq_csat_response_conversation_id"),
    )
    op.create_index(
        "ix_csat_response_ws_answered", "csat_response", ["workspace_id", "answered_at"]
    )
    op.create_index("ix_csat_response_contact", "csat_response", ["contact_id", "state"])


def downgrade() -> None:
    op.drop_table("csat_response")
    op.drop_table("inbox_csat")
    op.drop_table("sla_breach")
    op.drop_table("inbox_sla")
    op.drop_table("agent_capacity")
    op.drop_table("inbox_assignment")
    op.drop_index("ix_conversation_queue", table_name="conversation")
    op.drop_index("ix_conversation_sla", table_name="conversation")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_column("first_response_at")
        batch.drop_column("sla_state")
        batch.drop_column("sla_due_at")
        batch.drop_column("sla_target")
