"""Enumerations shared by every layer. Values are stored in the database and used in the API."""

from enum import StrEnum


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    AGENT = "agent"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class MessageKind(StrEnum):
    TEXT = "text"
    MEDIA = "media"
    LOCATION = "location"
    CONTACT_CARD = "contact_card"
    TEMPLATE = "template"
    INTERACTIVE = "interactive"
    REACTION = "reaction"
    SYSTEM = "system"
    NOTE = "note"
    UNSUPPORTED = "unsupported"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# Status callbacks only ever move a message forward: a late "delivered" never overwrites "read".
STATUS_RANK: dict[MessageStatus, int] = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}


def status_moves_forward(current: MessageStatus, new: MessageStatus) -> bool:
    """True when `new` may replace `current` for an outbound message.

    `failed` may replace queued/sent (the provider gave up), but never delivered/read: a message
    the customer already saw stays seen even if a stray failure callback arrives late.
    """
    if current == new:
        return False
    if new == MessageStatus.FAILED:
        return current in (MessageStatus.QUEUED, MessageStatus.SENT)
    if current == MessageStatus.FAILED:
        # A delivery/read receipt after a failure means the failure was not final.
        return new in (MessageStatus.DELIVERED, MessageStatus.READ)
    if current not in STATUS_RANK or new not in STATUS_RANK:
        return False
    return STATUS_RANK[new] > STATUS_RANK[current]


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class InboundState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class InboundLane(StrEnum):
    """What a person waits for behind an inbound event. `customer` is everything a
    customer did (messages, edits, reactions, opt-outs, postbacks...) and the default, so an
    event nobody classified never waits behind receipts; `status` is delivery/read receipts."""

    CUSTOMER = "customer"
    STATUS = "status"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"
    # A paused campaign's message that has not reached the provider: never claimed until the
    # campaign resumes (docs/architecture.md, Campaigns).
    HELD = "held"


class ConsentStatus(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class ConsentPurpose(StrEnum):
    MARKETING = "marketing"
    SERVICE = "service"


class FallbackState(StrEnum):
    """`fallback_timer.state`: a timer leaves `waiting` once, in the transaction that acts."""

    WAITING = "waiting"
    FIRED = "fired"
    NOT_NEEDED = "not_needed"
    REFUSED = "refused"


class Queue(StrEnum):
    """The work queues a worker can be woken for (`Tx.wake_after_commit`, `Runtime.wake`)."""

    INGEST = "ingest"
    DELIVERY = "delivery"
    WEBHOOKS = "webhooks"
    MEDIA = "media"
    AUTOMATION = "automation"
    ASSIGNMENT = "assignment"
    PROFILES = "profiles"


class LiveEventType(StrEnum):
    """Every live event type the bus carries (the SSE stream's `event:` and, for messages and
    conversations, the outgoing webhooks' `X-Tidings-Event`). Who may receive each one is
    `access.EVENT_AUDIENCE`."""

    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    MESSAGE_CREATED = "message.created"
    MESSAGE_UPDATED = "message.updated"
    MESSAGES_UPDATED = "messages.updated"
    CONSENT_UPDATED = "consent.updated"
    PRESENCE = "presence"
    CSAT_ANSWERED = "csat.answered"
    CONTACT_MERGED = "contact.merged"
    CONTACT_PREFERENCE = "contact.preference"
    CONTACT_UPDATED = "contact.updated"
    TEMPLATE_UPDATED = "template.updated"
    TEMPLATES_SYNCED = "templates.synced"
    CHANNEL_NOTICE = "channel.notice"
    CAMPAIGN_UPDATED = "campaign.updated"
    SETTINGS_UPDATED = "settings.updated"
    WORKSPACE_UPDATED = "workspace.updated"
    AGENT_AVAILABILITY = "agent.availability"
    NOTIFICATION_CREATED = "notification.created"
