"""Campaign and recipient states, skip reasons, and how a recipient follows its message: the
vocabulary the campaign planner (`campaigns/`) and the recipient writes
(`actions/campaign_recipients.py`) share."""

from __future__ import annotations

from enum import StrEnum

from tidings.domain.enums import MessageStatus


class CampaignState(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RecipientState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    OPTED_OUT = "opted_out"
    NO_CHANNEL = "no_reachable_channel"
    INVALID_NUMBER = "invalid_number"
    WINDOW_CLOSED = "window_closed_no_template"
    DUPLICATE = "duplicate_in_audience"
    CANCELLED = "campaign_cancelled"
    POLICY = "policy_refused"


# Recipients still moving: their state follows their message's status.
IN_FLIGHT = (RecipientState.QUEUED, RecipientState.SENT, RecipientState.DELIVERED)
FINAL = (RecipientState.READ, RecipientState.FAILED, RecipientState.SKIPPED)
_FOLLOWS = {
    MessageStatus.QUEUED: RecipientState.QUEUED,
    MessageStatus.SENT: RecipientState.SENT,
    MessageStatus.DELIVERED: RecipientState.DELIVERED,
    MessageStatus.READ: RecipientState.READ,
    MessageStatus.FAILED: RecipientState.FAILED,
}


def recipient_state_for(status: str) -> RecipientState | None:
    try:
        return _FOLLOWS.get(MessageStatus(status))
    except ValueError:
        return None
