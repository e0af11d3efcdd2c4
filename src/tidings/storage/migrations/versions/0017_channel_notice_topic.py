"""channel.notice_topic: what the channel's latest provider notice is about

A severe notice (Messenger blocked the channel's messaging) must stay on the
channel's health until the provider says something newer on the same topic (the block is
lifted); an unrelated, harmless notice (the apps' roles changed) no longer hides it. Rows
noticed before this migration have no topic; any newer notice replaces those.

Revision ID: 0017_channel_notice_topic
Revises: 0001
Create Date: 2026-12-07 07:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_channel_notice_topic"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_topic", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel", schema=None) as batch_op:
        batch_op.drop_column("notice_topic")
