"""automation rules, their outbox, durable timers and run log; business hours per inbox

Revision ID: 0009_automation
Revises: 0001
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0009_automation"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)
JSONDict = tidings.storage.types.JSONDict
JSONList = tidings.storage.types.JSONList


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
        "automation_rule",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        *_ws("automation_rule"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("event_params", JSONDict(), nullable=False),
        sa.Column("match", sa.String(8), nullable=False),
        sa.Column("conditions", JSONList(), nullable=False),
        sa.Column("actions", JSONList(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_automation_rule"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_automation_rule_workspace_id_name"),
    )
    op.create_index("ix_automation_rule_workspace_id", "automation_rule", ["workspace_id"])

    op.create_table(
        "automation_event",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        *_ws("automation_event"),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("rule_id", BigId, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("processed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_automation_event"),
    )
    op.create_index("ix_automation_event_queue", "automation_event", ["state", "next_attempt_at"])

    op.create_table(
        "automation_timer",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        *_ws("automation_timer"),
        sa.Column("rule_id", BigId, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("anchor", sa.String(64), nullable=False),
        sa.Column("due_at", UTC, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["automation_rule.id"],
            name="fk_automation_timer_rule_id_automation_rule",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_automation_timer_conversation_id_conversation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_automation_timer"),
        sa.UniqueConstraint(
            "rule_id",
            "conversation_id",
            "anchor",
            name="uq_automation_timer_rule_id_conversation_id_anchor",
        ),
    )
    op.create_index("ix_automation_timer_queue", "automation_timer", ["state", "due_at"])
    op.create_index("ix_automation_timer_conversation_id", "automation_timer", ["conversation_id"])

    op.create_table(
        "rule_run",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        *_ws("rule_run"),
        sa.Column("rule_id", BigId, nullable=True),
        sa.Column("rule_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("event_id", BigId, nullable=True),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("results", JSONList(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["automation_rule.id"],
            name="fk_rule_run_rule_id_automation_rule",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_rule_run_conversation_id_conversation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_rule_run"),
        sa.UniqueConstraint("dedupe_key", name="uq_rule_run_dedupe_key"),
    )
    op.create_index("ix_rule_run_conversation", "rule_run", ["conversation_id", "id"])
    op.create_index("ix_rule_run_rule_id", "rule_run", ["rule_id"])

    op.create_table(
        "inbox_business_hours",
        sa.Column("inbox_id", BigId, nullable=False),
        *_ws("inbox_business_hours"),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("weekly", JSONDict(), nullable=False),
        sa.Column("holidays", JSONList(), nullable=False),
        sa.Column("away_enabled", sa.Boolean(), nullable=False),
        sa.Column("away_message", sa.Text(), nullable=True),
        sa.Column("greeting_enabled", sa.Boolean(), nullable=False),
        sa.Column("greeting_message", sa.Text(), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inbox.id"],
            name="fk_inbox_business_hours_inbox_id_inbox",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("inbox_id", name="pk_inbox_business_hours"),
    )


def downgrade() -> None:
    op.drop_table("inbox_business_hours")
    op.drop_table("rule_run")
    op.drop_table("automation_timer")
    op.drop_table("automation_event")
    op.drop_table("automation_rule")
