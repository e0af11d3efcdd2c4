"""channels: concatenated SMS parts and the workspace's default phone region

`sms_part` holds the parts of a concatenated inbound SMS (SMPP UDH/SAR, Vonage `concat-*`)
until all of them are in; the joined message is then stored once. `workspace.default_region`
is the ISO 3166 region national phone numbers are read in (TIDINGS_DEFAULT_REGION remains the
fallback).

Revision ID: 0011_channels_more
Revises: 0001
Create Date: 2026-11-27 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0011_channels_more"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = tidings.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    # A plain ADD COLUMN (nullable): no table rebuild on SQLite, where many tables refer to it.
    op.add_column("workspace", sa.Column("default_region", sa.String(2), nullable=True))
    op.create_table(
        "sms_part",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("workspace_id", BigId, nullable=False),
        sa.Column("channel_id", BigId, nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=False),
        sa.Column("occurred_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("joined_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name="fk_sms_part_workspace_id_workspace",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channel.id"],
            name="fk_sms_part_channel_id_channel",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sms_part"),
    )
    # One pending row per part (a repeated part is a no-op); joined rows leave the index, so a
    # reused 8-bit reference starts a new message.
    op.create_index(
        "uq_sms_part_pending",
        "sms_part",
        ["channel_id", "sender", "ref", "total", "seq"],
        unique=True,
        postgresql_where=sa.text("joined_at IS NULL"),
        sqlite_where=sa.text("joined_at IS NULL"),
    )
    op.create_index("ix_sms_part_joined", "sms_part", ["channel_id", "sender", "joined_at"])


def downgrade() -> None:
    op.drop_table("sms_part")
    with op.batch_alter_table("workspace") as batch:
        batch.drop_column("default_region")
