"""media storage: attachment download state (the inbound media queue) and agent uploads

`attachment` gains `state` (pending / stored / too_large / not_allowed / failed), `error` (the
sentence agents see), and `attempts` + `next_attempt_at`, which make pending rows the durable
queue of the media worker. `media_upload` holds files an agent uploaded for a conversation
until a reply takes them.

Revision ID: 0006_media
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0006_media"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("attachment") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", UTC, nullable=True))
    op.create_index("ix_attachment_queue", "attachment", ["state", "next_attempt_at"])
    op.create_table(
        "media_upload",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("agent_id", BigId, nullable=True),
        sa.Column("storage_key", sa.String(500), nullable=False),
        sa.Column("filename", sa.String(500), nullable=True),
        sa.Column("mime_type", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("message_id", BigId, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name="fk_media_upload_workspace_id_workspace",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name="fk_media_upload_conversation_id_conversation",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agent.id"], name="fk_media_upload_agent_id_agent", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_media_upload"),
    )
    op.create_index("ix_media_upload_conversation_id", "media_upload", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_media_upload_conversation_id", table_name="media_upload")
    op.drop_table("media_upload")
    op.drop_index("ix_attachment_queue", table_name="attachment")
    with op.batch_alter_table("attachment") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
        batch.drop_column("error")
        batch.drop_column("state")
