"""inbound_event: a lane per event (customer | status) and an index for the lag gauge

The inbox shows how far behind the ingest worker is, per lane, as the age of
the oldest due pending event. `lane` is set at store time from the adapter's `split`
(delivery/read receipts are `status`, everything else `customer`); rows stored before this
migration are `customer`, the side that never hides a delay. (lane, state, next_attempt_at)
answers "oldest due pending event of a lane" with one index seek and lets the later lane
claims (item 1) walk a lane in due order.

Revision ID: 0016_inbound_lane
Revises: 0001
Create Date: 2026-12-07 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_inbound_lane"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lane", sa.String(length=16), nullable=False, server_default="customer")
        )
    op.create_index("ix_inbound_event_lane", "inbound_event", ["lane", "state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_event_lane", table_name="inbound_event")
    with op.batch_alter_table("inbound_event", schema=None) as batch_op:
        batch_op.drop_column("lane")
