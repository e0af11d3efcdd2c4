"""The core model (docs/architecture.md#storage). Every row carries its workspace.

Queues are tables: `InboundEvent`, `Delivery` and `WebhookDelivery` rows are claimed by workers,
so a crash loses nothing and no broker is needed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

from tidings.domain.enums import (
    ConsentPurpose,
    ConsentStatus,
    ConversationStatus,
    DeliveryState,
    Direction,
    FallbackState,
    MessageStatus,
    Role,
)
from tidings.storage.types import BigId, EnumString, JSONDict, JSONList, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's table, typed as one (Core statements on hot paths: no ORM objects)."""
    return cast(Table, model.__table__)


def _id() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def _ws() -> Mapped[int]:
    return _owned("workspace", index=True)


def _owned(table: str, **kw: Any) -> MappedColumn[Any]:
    """A key to the row of `table` this row goes with (deleted with it: ON DELETE CASCADE)."""
    return mapped_column(ForeignKey(f"{table}.id", ondelete="CASCADE"), **kw)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow)


class Workspace(Base):
    __tablename__ = "workspace"
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()
    # ISO 3166 region national phone numbers ("0612345678") are read in; None falls back to
    # TIDINGS_DEFAULT_REGION.
    default_region: Mapped[str | None] = mapped_column(String(2))


class SmsPart(Base):
    """One part of a concatenated inbound SMS, kept until all `total` parts are in; the joined
    message is then stored once and the parts marked `joined_at`."""

    __tablename__ = "sms_part"
    # One pending row per part: a repeated part is a no-op. Joined rows stay a while (so a
    # late repeat of a joined part is recognised) and leave room for a reused reference.
    __table_args__ = (
        Index(
            "uq_sms_part_pending",
            "channel_id",
            "sender",
            "ref",
            "total",
            "seq",
            unique=True,
            postgresql_where=text("joined_at IS NULL"),
            sqlite_where=text("joined_at IS NULL"),
        ),
        Index("ix_sms_part_joined", "channel_id", "sender", "joined_at"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    channel_id: Mapped[int] = _owned("channel")
    sender: Mapped[str] = mapped_column(String(255))
    ref: Mapped[str] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    provider_message_id: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Agent(Base):
    __tablename__ = "agent"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(EnumString(Role), default=Role.AGENT)
    availability: Mapped[str] = mapped_column(String(16), default="online")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()
    # Part of every session cookie and reset link; bumped by logout, a password or role change
    # and deactivation, which ends every session issued before (api/auth.py).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Notification choices from the profile page (actions/agents_profile.py).
    preferences: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict, server_default="{}")


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    agent_id: Mapped[int] = _owned("agent", index=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Space-separated subset of `read reply admin` (api/auth.py says what each allows).
    scopes: Mapped[str] = mapped_column(
        String(64), default="read reply admin", server_default="read reply admin"
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Team(Base):
    __tablename__ = "team"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()


class TeamMember(Base):
    __tablename__ = "team_member"
    team_id: Mapped[int] = _owned("team", primary_key=True)
    agent_id: Mapped[int] = _owned("agent", primary_key=True, index=True)


class Inbox(Base):
    __tablename__ = "inbox"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created()


class InboxMember(Base):
    __tablename__ = "inbox_member"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    agent_id: Mapped[int] = _owned("agent", primary_key=True, index=True)


class Channel(Base):
    __tablename__ = "channel"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inbox.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    # The whole provider config, encrypted at rest with a key derived from TIDINGS_SECRET_KEY.
    config_encrypted: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Health, shown to admins.
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The latest thing the provider said about the channel itself (Messenger policy
    # enforcement, app roles): `actions.channel_events.do_channel_notice`.
    notice: Mapped[str | None] = mapped_column(Text)
    notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notice_severe: Mapped[bool | None] = mapped_column(Boolean)
    notice_topic: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = _created()


class Contact(Base):
    __tablename__ = "contact"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    # E.164, so that the WhatsApp and SMS identities of one person meet on one contact. Only a
    # number a provider vouches for (or staff entered) goes here; see `claimed_phone`.
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    # E.164 a sender only claimed (API channel `from.phone`): never joins another contact,
    # only offered as a merge suggestion (docs/architecture.md, "Contact resolution").
    claimed_phone: Mapped[str | None] = mapped_column(String(20), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # What staff keep about the customer (Contacts page); not matched by campaign segments.
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ContactIdentity(Base):
    __tablename__ = "contact_identity"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_kind", "address"),
        Index("ix_contact_identity_alias", "workspace_id", "channel_kind", "alias"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    contact_id: Mapped[int] = _owned("contact", index=True)
    channel_kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(300))
    # Another stable id the provider gives for the same account (WhatsApp's BSUID beside the
    # number): found like the address, so a notice naming only that id finds the customer.
    alias: Mapped[str | None] = mapped_column(String(300))
    display_name: Mapped[str | None] = mapped_column(String(300))
    # The provider's profile (name) for this identity, fetched in the background
    # (`tidings.workers.profiles`): queued while `profile_due_at` is set, at most once a day.
    profile_channel_id: Mapped[int | None] = mapped_column(Integer)
    profile_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    profile_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()


class Consent(Base):
    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("contact_id", "channel_kind", "purpose"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    contact_id: Mapped[int] = _owned("contact")
    channel_kind: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[ConsentPurpose] = mapped_column(EnumString(ConsentPurpose))
    status: Mapped[ConsentStatus] = mapped_column(EnumString(ConsentStatus))
    source: Mapped[str] = mapped_column(String(64))
    source_message_id: Mapped[int | None] = mapped_column(BigId)
    changed_at: Mapped[datetime] = _created()


class Label(Base):
    __tablename__ = "label"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(String(16), default="#6b7280")


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (
        # The inbox list: newest activity first, keyset-paged on (last_activity_at, id).
        Index("ix_conversation_ws_activity", "workspace_id", "last_activity_at", "id"),
        Index("ix_conversation_ws_status_activity", "workspace_id", "status", "last_activity_at"),
        Index("ix_conversation_contact_inbox", "contact_id", "inbox_id"),
        # 0010_assignment: the SLA sweep (running timers by due time) and the assignment queue
        # (an inbox's unassigned open conversations, oldest first).
        Index("ix_conversation_sla", "sla_state", "sla_due_at"),
        Index("ix_conversation_queue", "inbox_id", "assignee_id", "status", "created_at"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inbox.id"), index=True)
    contact_id: Mapped[int] = _owned("contact")
    status: Mapped[ConversationStatus] = mapped_column(
        EnumString(ConversationStatus), default=ConversationStatus.OPEN
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("agent.id", ondelete="SET NULL"), index=True
    )
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    priority: Mapped[str] = mapped_column(String(16), default="none")
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    last_activity_at: Mapped[datetime] = _created()
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    last_channel_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    # SLA (0010_assignment, tidings.actions.sla): the running target ("first_response" or
    # "next_response"), when it falls due, and "running" / "breached" (None: nothing due).
    sla_target: Mapped[str | None] = mapped_column(String(16))
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_state: Mapped[str | None] = mapped_column(String(16))
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConversationChannel(Base):
    """Per conversation and channel: when the customer last wrote (drives service windows)."""

    __tablename__ = "conversation_channel"
    conversation_id: Mapped[int] = _owned("conversation", primary_key=True)
    channel_id: Mapped[int] = _owned("channel", primary_key=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConversationLabel(Base):
    __tablename__ = "conversation_label"
    conversation_id: Mapped[int] = _owned("conversation", primary_key=True)
    label_id: Mapped[int] = _owned("label", primary_key=True, index=True)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # The database, not a cache, rejects a provider message seen twice.
        UniqueConstraint("channel_id", "provider_message_id"),
        Index("ix_message_conversation_order", "conversation_id", "sent_at", "id"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    conversation_id: Mapped[int] = _owned("conversation")
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id"))
    direction: Mapped[Direction] = mapped_column(EnumString(Direction, 4))
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(Text)
    sender_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    provider_message_id: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[MessageStatus] = mapped_column(EnumString(MessageStatus))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_reason: Mapped[str | None] = mapped_column(Text)
    # Provider time for inbound (orders the thread), our time for outbound.
    sent_at: Mapped[datetime] = _created()
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    reply_to_id: Mapped[int | None] = mapped_column(BigId)
    cost_estimate: Mapped[Decimal | None] = mapped_column(Numeric(12, 5))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)


class Attachment(Base):
    __tablename__ = "attachment"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    message_id: Mapped[int] = _owned("message", index=True)
    kind: Mapped[str] = mapped_column(String(16))
    mime_type: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(500))
    size: Mapped[int | None] = mapped_column(Integer)
    caption: Mapped[str | None] = mapped_column(Text)
    provider_media_id: Mapped[str | None] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str | None] = mapped_column(String(500))
    # Media storage (migration 0006_media): see tidings.media.limits for the states. Inbound
    # rows of channels that can fetch media start `pending` and are the media worker's queue;
    # `error` is shown to agents. NULL: not stored here (the provider's reference only).
    state: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)


class MediaUpload(Base):
    """A file an agent uploaded for a conversation, waiting for the reply that sends it."""

    __tablename__ = "media_upload"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    conversation_id: Mapped[int] = _owned("conversation", index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id", ondelete="SET NULL"))
    storage_key: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str | None] = mapped_column(String(500))
    mime_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    # Set when a reply took the file.
    message_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = _created()


class InboundEvent(Base):
    """A verified webhook event, stored raw before the provider gets its 200; replayable."""

    __tablename__ = "inbound_event"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_key"),
        Index("ix_inbound_event_queue", "state", "next_attempt_at", "occurred_at"),
        # The lane claims' orders and the lag gauge's "oldest due pending event per lane"
        # (migrations 0016_inbound_lane, 0017_inbound_claim_order).
        Index("ix_inbound_event_lane_due", "lane", "state", "next_attempt_at", "id"),
        Index("ix_inbound_event_customer_order", "lane", "state", "occurred_at", "id"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    channel_id: Mapped[int] = _owned("channel")
    event_key: Mapped[str] = mapped_column(String(300))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = _created()
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = _created()
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # customer | status (InboundLane): what a person waits for behind this event.
    lane: Mapped[str] = mapped_column(String(16), default="customer", server_default="customer")


class Delivery(Base):
    """The outbox: one row per outbound message, claimed by the delivery worker."""

    __tablename__ = "delivery"
    __table_args__ = (
        Index("ix_delivery_queue", "state", "next_attempt_at"),
        # The claim's walk: pending deliveries in id order (migration 0014).
        Index("ix_delivery_claim_order", "state", "id"),
        Index("ix_delivery_conversation", "conversation_id", "id"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    message_id: Mapped[int] = _owned("message", unique=True)
    channel_id: Mapped[int] = _owned("channel")
    conversation_id: Mapped[int] = mapped_column(BigId)
    # The recipient's address on this channel (wa_id, PSID, phone...), fixed at queue time.
    recipient: Mapped[str] = mapped_column(String(300))
    state: Mapped[DeliveryState] = mapped_column(
        EnumString(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = _created()
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    fallback: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Template(Base):
    __tablename__ = "template"
    __table_args__ = (UniqueConstraint("channel_id", "name", "language"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    channel_id: Mapped[int] = _owned("channel")
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    components: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    provider_template_id: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = _created()


class CannedReply(Base):
    __tablename__ = "canned_reply"
    __table_args__ = (UniqueConstraint("workspace_id", "short_code"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    short_code: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscription"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    url: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created()


class WebhookDelivery(Base):
    """An outgoing webhook POST: written in the same transaction as the change it announces."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_queue", "state", "next_attempt_at"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    subscription_id: Mapped[int] = _owned("webhook_subscription", index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = _created()
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    actor_agent_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(BigId)
    details: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


# --- campaigns, channel preference and fallback (migration 0004_campaigns) -----------------


class Campaign(Base):
    """A broadcast. Its audience is snapshotted into `CampaignRecipient` rows at launch; the
    fan-out claims those rows in small batches, so no progress lives in a worker's memory."""

    __tablename__ = "campaign"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(200))
    # draft → running ⇄ paused → completed, or cancelled; scheduled until `scheduled_at`.
    state: Mapped[str] = mapped_column(String(16), default="draft")
    purpose: Mapped[str] = mapped_column(String(16), default="marketing")
    # {"labels": [...], "filters": {attr: value}, "contact_ids": [...], "all_contacts": bool}
    audience: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # {"text": "...", "texts": {kind: "..."}, "template": {"name", "language", "params": [...]}}
    content: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # Channel ids in order of preference; empty: every active channel of the workspace.
    channel_ids: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    # {"to_channel_id", "after_seconds", "on_failed", "on_window_closed"}; {} = none.
    fallback: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    rate_per_second: Mapped[float | None] = mapped_column(Numeric(10, 3, asdecimal=False))
    # {"start": "21:00", "end": "08:00"} in each recipient's own time zone; {} = none.
    quiet_hours: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignRecipient(Base):
    """One recipient of one campaign and where it stands. The unique (campaign, contact) key
    and the `message_id` link, written in the same transaction as the message, are what make a
    crashed and restarted fan-out send exactly one message per recipient."""

    __tablename__ = "campaign_recipient"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_campaign_recipient_queue", "campaign_id", "state", "not_before"),
        Index("ix_campaign_recipient_pending_order", "campaign_id", "state", "id"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    campaign_id: Mapped[int] = _owned("campaign")
    # NULL for audience rows that name nobody we can reach (bad or duplicate CSV rows): they are
    # kept, skipped with a reason, so that nothing in an upload disappears silently.
    contact_id: Mapped[int | None] = _owned("contact")
    address: Mapped[str | None] = mapped_column(String(300))
    source_row: Mapped[int | None] = mapped_column(Integer)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # pending → queued → sent → delivered → read, or failed / skipped (with `reason`).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[int | None] = mapped_column(BigId)
    channel_reason: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    message_id: Mapped[int | None] = mapped_column(BigId, index=True)
    fallback_message_id: Mapped[int | None] = mapped_column(BigId, index=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class ContactPreference(Base):
    """A contact's explicitly preferred channel (set by an agent or by the customer's opt-in).
    Learned preferences are not stored: they are read from the messages themselves."""

    __tablename__ = "contact_preference"
    contact_id: Mapped[int] = _owned("contact", primary_key=True)
    workspace_id: Mapped[int] = _owned("workspace")
    channel_id: Mapped[int] = _owned("channel")
    source: Mapped[str] = mapped_column(String(32))
    set_by_agent_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime] = _created()


class InboxFallback(Base):
    """An inbox's fallback plan for replies, e.g. "if WhatsApp fails or is not delivered in
    10 minutes, send it by SMS"."""

    __tablename__ = "inbox_fallback"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    workspace_id: Mapped[int] = _owned("workspace")
    plan: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    updated_at: Mapped[datetime] = _created()


class FallbackTimer(Base):
    """One armed fallback per original message: a row, so it survives restarts; moving it out
    of `waiting` in the transaction that queues the follow-up makes it fire at most once."""

    __tablename__ = "fallback_timer"
    __table_args__ = (Index("ix_fallback_timer_queue", "state", "due_at"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    message_id: Mapped[int] = _owned("message", unique=True)
    to_channel_id: Mapped[int] = mapped_column(BigId)
    campaign_recipient_id: Mapped[int | None] = mapped_column(BigId)
    # None: only a failure fires it.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_failed: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[FallbackState] = mapped_column(
        EnumString(FallbackState), default=FallbackState.WAITING
    )
    outcome: Mapped[str | None] = mapped_column(Text)
    fallback_message_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


# --- automation rules, business hours and auto-replies (migration 0009_automation) ---------


class AutomationRule(Base):
    """A workspace rule: event → conditions → ordered actions (see `tidings.automation`)."""

    __tablename__ = "automation_rule"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _ws()
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    event: Mapped[str] = mapped_column(String(32))
    # {"minutes": N} for the timed events (window.closing, no_reply).
    event_params: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    match: Mapped[str] = mapped_column(String(8), default="all")
    conditions: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    actions: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class AutomationEvent(Base):
    """The automation outbox: written in the transaction of the change it reports (or of the
    timer that fired), claimed by the automation worker; at-least-once."""

    __tablename__ = "automation_event"
    __table_args__ = (Index("ix_automation_event_queue", "state", "next_attempt_at"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    event: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int] = mapped_column(BigId)
    message_id: Mapped[int | None] = mapped_column(BigId)
    # Set for a timer's event: only that rule is evaluated.
    rule_id: Mapped[int | None] = mapped_column(BigId)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = _created()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AutomationTimer(Base):
    """A durable timer for a timed rule on one conversation (a row, so it survives restarts);
    unique per (rule, conversation, anchor) so re-arming is idempotent."""

    __tablename__ = "automation_timer"
    __table_args__ = (
        UniqueConstraint("rule_id", "conversation_id", "anchor"),
        Index("ix_automation_timer_queue", "state", "due_at"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    rule_id: Mapped[int] = _owned("automation_rule")
    conversation_id: Mapped[int] = _owned("conversation", index=True)
    event: Mapped[str] = mapped_column(String(32))
    # What armed it (the inbound message id): a later message arms a new timer.
    anchor: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # waiting → fired | not_needed
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class RuleRun(Base):
    """One run of a rule (or of an auto-reply) on one conversation, with the outcome of each
    action. `dedupe_key` (rule+event, or auto-reply+period) makes runs idempotent."""

    __tablename__ = "rule_run"
    __table_args__ = (Index("ix_rule_run_conversation", "conversation_id", "id"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("automation_rule.id", ondelete="SET NULL"), index=True
    )
    rule_name: Mapped[str] = mapped_column(String(200))
    # rule | away | greeting
    kind: Mapped[str] = mapped_column(String(16), default="rule")
    conversation_id: Mapped[int] = _owned("conversation")
    event_id: Mapped[int | None] = mapped_column(BigId)
    event: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    # running → done | failed | skipped
    state: Mapped[str] = mapped_column(String(16), default="running")
    results: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboxBusinessHours(Base):
    """An inbox's opening hours and its auto-replies (away message, greeting)."""

    __tablename__ = "inbox_business_hours"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    workspace_id: Mapped[int] = _owned("workspace")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": [["09:00", "17:00"]], ...}; a day that is missing or empty is closed.
    weekly: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    holidays: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    away_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    away_message: Mapped[str | None] = mapped_column(Text)
    greeting_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    greeting_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _created()


# --- assignment, SLA and CSAT (migration 0010_assignment) ----------------------------------


class InboxAssignment(Base):
    """How an inbox hands out conversations: off, round_robin, least_busy or manual (agents
    take the oldest waiting one). `capacity`: open conversations per agent (None: no limit)."""

    __tablename__ = "inbox_assignment"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    workspace_id: Mapped[int] = _owned("workspace")
    mode: Mapped[str] = mapped_column(String(16), default="off")
    capacity: Mapped[int | None] = mapped_column(Integer)
    # The round-robin cursor: the agent who got the last conversation.
    last_agent_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime] = _created()


class AgentCapacity(Base):
    """One agent's own capacity in one inbox, overriding the inbox's."""

    __tablename__ = "agent_capacity"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    agent_id: Mapped[int] = _owned("agent", primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)


class InboxSla(Base):
    """SLA targets of an inbox in seconds; `by_priority` overrides them per conversation
    priority: {"urgent": {"first_response_seconds": 300, "next_response_seconds": 600}}."""

    __tablename__ = "inbox_sla"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    workspace_id: Mapped[int] = _owned("workspace")
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    next_response_seconds: Mapped[int | None] = mapped_column(Integer)
    by_priority: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    updated_at: Mapped[datetime] = _created()


class SlaBreach(Base):
    """A missed SLA target: one row per (conversation, target, due time). `responded_at` is set
    when an agent finally replied. Reports read this table."""

    __tablename__ = "sla_breach"
    __table_args__ = (
        UniqueConstraint("conversation_id", "target", "due_at"),
        Index("ix_sla_breach_ws_due", "workspace_id", "due_at"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    inbox_id: Mapped[int] = mapped_column(BigId)
    conversation_id: Mapped[int] = _owned("conversation")
    target: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    assignee_id: Mapped[int | None] = mapped_column(BigId)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detected_at: Mapped[datetime] = _created()
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboxCsat(Base):
    """CSAT settings of an inbox: the question (open window) and the template (closed)."""

    __tablename__ = "inbox_csat"
    inbox_id: Mapped[int] = _owned("inbox", primary_key=True)
    workspace_id: Mapped[int] = _owned("workspace")
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    question: Mapped[str | None] = mapped_column(Text)
    template_id: Mapped[int | None] = mapped_column(BigId)
    updated_at: Mapped[datetime] = _created()


class CsatResponse(Base):
    """The satisfaction survey of one resolved conversation: asked (or skipped, with the
    policy's reason), then answered with a 1-5 `rating`. Reports read answered rows."""

    __tablename__ = "csat_response"
    __table_args__ = (
        Index("ix_csat_response_ws_answered", "workspace_id", "answered_at"),
        Index("ix_csat_response_contact", "contact_id", "state"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    inbox_id: Mapped[int] = mapped_column(BigId)
    conversation_id: Mapped[int] = _owned("conversation", unique=True)
    contact_id: Mapped[int] = mapped_column(BigId)
    agent_id: Mapped[int | None] = mapped_column(BigId)
    channel_id: Mapped[int | None] = mapped_column(BigId)
    # asked → answered, or skipped (with `reason`: the policy refusal code).
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    question_message_id: Mapped[int | None] = mapped_column(BigId)
    rating: Mapped[int | None] = mapped_column(Integer)
    answer_message_id: Mapped[int | None] = mapped_column(BigId)
    asked_at: Mapped[datetime] = _created()
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """Something an agent should see (0018_notifications, actions/notifications.py): a mention
    in a note, a conversation assigned to them, a customer's reply in a conversation assigned
    to them. `read_at` None: unread. A message notifies an agent of one kind at most once."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("agent_id", "kind", "message_id"),
        Index("ix_notification_agent_unread", "agent_id", "read_at", "id"),
        Index("ix_notification_agent_conversation", "agent_id", "kind", "conversation_id"),
    )
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    agent_id: Mapped[int] = _owned("agent")
    kind: Mapped[str] = mapped_column(String(16))  # mention | assigned | reply
    conversation_id: Mapped[int] = _owned("conversation")
    message_id: Mapped[int | None] = mapped_column(BigId)
    actor_agent_id: Mapped[int | None] = mapped_column(BigId)
    body: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = _created()
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SavedView(Base):
    """An agent's saved list filter (0018_notifications): a name and the list's query."""

    __tablename__ = "saved_view"
    __table_args__ = (UniqueConstraint("agent_id", "name"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    agent_id: Mapped[int] = _owned("agent")
    name: Mapped[str] = mapped_column(String(80))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    created_at: Mapped[datetime] = _created()


class Macro(Base):
    """A named list of automation actions an agent runs on a conversation in one go
    (0018_notifications, actions/macros.py); the actions are validated as a rule's are."""

    __tablename__ = "macro"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _owned("workspace")
    name: Mapped[str] = mapped_column(String(80))
    actions: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    created_by: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = _created()
