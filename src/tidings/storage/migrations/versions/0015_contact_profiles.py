"""contact profiles fetched from providers, and provider notices about a channel

`contact_identity.profile_*`: the name a provider's profile API gives for an identity
(Messenger User Profile API, Instagram user profile, WeChat user/info) is fetched in the
background by the `profiles` worker: `profile_due_at` queues the identity (NULL: nothing due),
`profile_channel_id` names the channel whose credentials can ask (ids are scoped per Page /
account), `profile_fetched_at` is when the answer came, so it is asked at most once a day.

`channel.notice` / `notice_at` / `notice_severe`: the latest page-level event the provider sent
about the channel itself (Messenger policy enforcement, app roles), shown in its health.

Revision ID: 0015_contact_profiles
Revises: 0001
Create Date: 2026-12-07 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0015_contact_profiles"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = tidings.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    # Plain nullable ADD COLUMNs: no table rebuild on SQLite.
    op.add_column("contact_identity", sa.Column("profile_channel_id", sa.Integer(), nullable=True))
    op.add_column("contact_identity", sa.Column("profile_due_at", UTC, nullable=True))
    op.add_column("contact_identity", sa.Column("profile_fetched_at", UTC, nullable=True))
    op.create_index("ix_contact_identity_profile_due_at", "contact_identity", ["profile_due_at"])
    op.add_column("channel", sa.Column("notice", sa.Text(), nullable=True))
    op.add_column("channel", sa.Column("notice_at", UTC, nullable=True))
    op.add_column("channel", sa.Column("notice_severe", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("channel", "notice_severe")
    op.drop_column("channel", "notice_at")
    op.drop_column("channel", "notice")
    op.drop_index("ix_contact_identity_profile_due_at", table_name="contact_identity")
    op.drop_column("contact_identity", "profile_fetched_at")
    op.drop_column("contact_identity", "profile_due_at")
    op.drop_column("contact_identity", "profile_channel_id")
