"""delivery: the claim walks pending deliveries in id order through an index

The delivery claim is `state = 'pending' AND next_attempt_at <= now AND NOT EXISTS (an earlier
pending or sending delivery of the same conversation) ORDER BY id LIMIT n`. Through
(state, next_attempt_at) it ran the NOT EXISTS for every pending row and sorted them all:
10 ms per claim at 20,000 pending on SQLite, growing with the queue (a campaign queued ahead,
a backlog after a provider outage). (state, id) lets it stop after n: 0.24 ms.

Revision ID: 0014_delivery_claim_order
Revises: 0001
Create Date: 2026-11-27 17:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_delivery_claim_order"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_delivery_claim_order", "delivery", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_claim_order", table_name="delivery")
