"""contacts: claimed phones kept apart from verified ones; identity aliases (WhatsApp BSUID)

`contact.claimed_phone`: an E.164 number a sender only claimed (the API channel's
`from.phone`). It never joins another customer's contact; it is only offered as a merge
suggestion. `contact_identity.alias`: another stable id of the same account
(WhatsApp's BSUID beside the number), so a `user_changed_user_id` notice that names only the
old BSUID still finds the customer.

Revision ID: 0015_identity_claims_aliases
Revises: 0001
Create Date: 2026-12-07 01:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_identity_claims_aliases"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact") as batch:
        batch.add_column(sa.Column("claimed_phone", sa.String(20), nullable=True))
    op.create_index("ix_contact_claimed_phone", "contact", ["claimed_phone"])
    with op.batch_alter_table("contact_identity") as batch:
        batch.add_column(sa.Column("alias", sa.String(300), nullable=True))
    op.create_index(
        "ix_contact_identity_alias", "contact_identity", ["workspace_id", "channel_kind", "alias"]
    )


def downgrade() -> None:
    op.drop_index("ix_contact_identity_alias", table_name="contact_identity")
    with op.batch_alter_table("contact_identity") as batch:
        batch.drop_column("alias")
    op.drop_index("ix_contact_claimed_phone", table_name="contact")
    with op.batch_alter_table("contact") as batch:
        batch.drop_column("claimed_phone")
