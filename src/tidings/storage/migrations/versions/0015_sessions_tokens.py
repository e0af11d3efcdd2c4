"""auth: revocable sessions, API token scopes and expiry

`agent.session_version` is part of every session cookie and of every password-reset link; it
goes up on logout, on a password or role change and on deactivation, so every cookie (and
link) issued before stops working. `api_token.scopes` is a space-separated subset of
`read reply admin`; `api_token.expires_at` is optional. Existing tokens get every scope
(`read reply admin`) and no expiry: they keep doing what they did before the upgrade.

Revision ID: 0015_sessions_tokens
Revises: 0001
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.storage.types

revision: str = "0015_sessions_tokens"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = tidings.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    # Plain ADD COLUMNs with server defaults: no table rebuild on SQLite (many tables refer to
    # agent), and existing rows are filled in place on both stores.
    op.add_column(
        "agent",
        sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "api_token",
        sa.Column("scopes", sa.String(64), nullable=False, server_default="read reply admin"),
    )
    op.add_column("api_token", sa.Column("expires_at", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("scopes")
    with op.batch_alter_table("agent") as batch:
        batch.drop_column("session_version")
