"""Canonical inbound events: what every channel adapter's `parse` turns provider payloads into.

Core code never sees provider dicts, only these. They are plain frozen dataclasses so that they
stay cheap to build on the hot path and easy to compare in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings.domain.enums import ConsentStatus, MessageKind, MessageStatus


@dataclass(frozen=True, slots=True)
class Sender:
    """Who wrote an inbound message, as the channel names them.

    `address` is the channel-scoped identity (E.164 phone for WhatsApp/SMS, PSID, OpenID, chat
    id...). `phone` is an E.164 number when the channel reveals one, so that identities of one
    person on different channels can meet on the same contact.

    `phone_verified` says whether the provider vouches that the number is the sender's (the
    network delivered an SMS from it, WhatsApp's own `wa_id`, a Telegram contact whose
    `user_id` is the sender's). Only a verified phone joins an existing contact on its own; a
    claimed one (a number typed into a website form and passed on by the API channel) is kept
    as a claim and only ever offered as a merge suggestion (docs/architecture.md, "Contact
    resolution"). It defaults to False so that an adapter has to say so.
    """

    address: str
    name: str | None = None
    phone: str | None = None
    phone_verified: bool = False
    # Other stable ids the provider gives for the same person (e.g. WhatsApp BSUID `user_id`).
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    kind: str  # image | audio | video | document | sticker | file
    mime_type: str | None = None
    provider_media_id: str | None = None
    url: str | None = None
    filename: str | None = None
    caption: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message written by a customer (or, with `echo=True`, by the business elsewhere)."""

    provider_message_id: str
    sender: Sender
    occurred_at: datetime
    kind: MessageKind
    text: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    reply_to_provider_id: str | None = None
    # For reactions: the message reacted to (emoji in `text`, empty text = reaction removed).
    target_provider_id: str | None = None
    # Provider-specific details kept for display (location, contact card, interactive reply...).
    extra: dict[str, Any] = field(default_factory=dict)
    echo: bool = False
    # The customer stopped (opted_out) or resumed (opted_in) messages on this channel by a
    # provider event rather than a keyword: WeChat unsubscribe/subscribe, RBM UNSUBSCRIBE.
    consent: ConsentStatus | None = None
    # A provider notice that this customer now goes by `sender.address` instead of these ids
    # (WhatsApp `user_changed_number` / `user_changed_user_id`). Shown as a system line in their
    # thread; the identity moves to the new id. Not something the customer wrote.
    moved_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A delivery receipt for a message we sent."""

    provider_message_id: str
    status: MessageStatus
    occurred_at: datetime
    recipient: str | None = None
    error_code: str | None = None
    # The provider's reason in plain words, shown to the agent.
    error_reason: str | None = None
    # Our own message id when the provider echoes it back (e.g. WhatsApp biz_opaque_callback_data).
    our_message_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event that was understood and deliberately has no effect (with why, for the log)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReceiptWatermark:
    """Every message we sent to `recipient` on this channel up to `watermark` reached `status`
    (Messenger delivery/read receipts carry a watermark, not a list of ids)."""

    recipient: str
    status: MessageStatus
    watermark: datetime


@dataclass(frozen=True, slots=True)
class MessageEdited:
    """The author changed a message already stored (Messenger `message_edit`, WhatsApp `edit`)."""

    provider_message_id: str
    occurred_at: datetime
    text: str | None


@dataclass(frozen=True, slots=True)
class MessageDeleted:
    """The author withdrew a message (Instagram `is_deleted`, WhatsApp `revoke`)."""

    provider_message_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class TemplateStatus:
    """A provider template changed status (WhatsApp `message_template_status_update`)."""

    name: str
    language: str | None
    status: str
    provider_template_id: str | None = None
    category: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelNotice:
    """Something the provider says about the channel itself, not about a customer (Messenger
    `policy_enforcement`, `app_roles`): kept on the channel's health for admins to see."""

    topic: str  # e.g. "policy_enforcement"
    text: str  # what an admin reads
    occurred_at: datetime
    # True when the channel cannot work as it should until someone acts (a block).
    severe: bool = False


CanonicalEvent = (
    InboundMessage
    | StatusUpdate
    | Ignored
    | ReceiptWatermark
    | MessageEdited
    | MessageDeleted
    | TemplateStatus
    | ChannelNotice
)
