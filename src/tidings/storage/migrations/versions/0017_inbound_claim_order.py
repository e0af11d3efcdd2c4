"""inbound_event: each lane claim walks an index in its own order and stops after n rows

The customer lane's fresh claim is `lane = 'customer' AND state = 'pending' AND attempts = 0
AND error IS NULL ORDER BY occurred_at, id LIMIT 50`, and it runs before every status slice
(ingest/worker.py). Through (lane, state, next_attempt_at) it read every pending customer row
and sorted them all by occurred_at; (lane, state, occurred_at, id) lets it stop after 50 rows.
The status and retry claims order by (next_attempt_at, id): 0016's (lane, state,
next_attempt_at) gave that on SQLite (every index ends with the rowid) but PostgreSQL sorted the
due rows for the id; (lane, state, next_attempt_at, id) replaces it (the lag gauge's "oldest due
pending event per lane" is its prefix), so the table keeps the same number of indexes to
maintain on the webhook's insert.

Revision ID: 0017_inbound_claim_order
Revises: 0001
Create Date: 2026-12-07 07:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_inbound_claim_order"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
# `lane` comes from 0016_inbound_lane, another branch from 0001: applied first, whatever order
# `migrate` takes the heads in.
depends_on: str | Sequence[str] | None = "0016_inbound_lane"


def upgrade() -> None:
    op.create_index(
        "ix_inbound_event_customer_order", "inbound_event", ["lane", "state", "occurred_at", "id"]
    )
    op.create_index(
        "ix_inbound_event_lane_due", "inbound_event", ["lane", "state", "next_attempt_at", "id"]
    )
    op.drop_index("ix_inbound_event_lane", table_name="inbound_event")


def downgrade() -> None:
    op.create_index("ix_inbound_event_lane", "inbound_event", ["lane", "state", "next_attempt_at"])
    op.drop_index("ix_inbound_event_lane_due", table_name="inbound_event")
    op.drop_index("ix_inbound_event_customer_order", table_name="inbound_event")
