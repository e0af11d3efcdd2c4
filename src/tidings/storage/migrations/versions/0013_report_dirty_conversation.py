"""reports: marks found by conversation, so one recompute consumes all of a conversation's marks

A campaign message marks its conversation several times within seconds (the conversation and
the message are created, the message is sent, delivered, read). The rollup job, taking marks in
id order, recomputed such a conversation once per batch its marks fell into; with this index it
takes every settled mark of the conversations in its batch at once.

Revision ID: 0013_report_dirty_conversation
Revises: 0008_reports
Create Date: 2026-11-27 13:55:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013_report_dirty_conversation"
down_revision: str | None = "0008_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_report_dirty_conversation", "report_dirty", ["conversation_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_report_dirty_conversation", table_name="report_dirty")
