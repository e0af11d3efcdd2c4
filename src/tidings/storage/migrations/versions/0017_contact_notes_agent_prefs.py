"""contact.notes and agent.preferences (the Contacts page, the profile)

Notes about a customer are free text staff keep on the contact; they are not attributes (which
campaign segments match on). An agent's preferences hold their notification choices.

Revision ID: 0017_contact_notes_agent_prefs
Revises: 0001
Create Date: 2026-12-07 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_contact_notes_agent_prefs"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("preferences", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("agent", schema=None) as batch_op:
        batch_op.drop_column("preferences")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_column("notes")
