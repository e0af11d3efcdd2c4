"""The JSON shapes of our objects, shared by the REST API, live events and outgoing webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from tidings.domain.phones import readable
from tidings.storage.models import (
    Attachment,
    Channel,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
)


def ts(value: datetime | None) -> str | None:
    """One format for every instant the API shows: ISO 8601 with microseconds and the offset,
    also when the microseconds are zero (`isoformat()` drops them then, and a client that
    compares the strings misorders a whole second against its own fractions)."""
    return value.isoformat(timespec="microseconds") if value is not None else None


def message_dict(
    m: Message | Row[Any], attachments: list[Attachment] | None = None
) -> dict[str, Any]:
    """A message as the API shows it, from its ORM object or a row of all its columns."""
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "channel_id": m.channel_id,
        "direction": m.direction,
        "kind": m.kind,
        "body": m.body,
        "status": m.status,
        "error_code": m.error_code,
        "error_reason": m.error_reason,
        "provider_message_id": m.provider_message_id,
        "sender_agent_id": m.sender_agent_id,
        "reply_to_id": m.reply_to_id,
        "sent_at": ts(m.sent_at),
        "created_at": ts(m.created_at),
        "updated_at": ts(m.updated_at),
        "extra": m.extra or {},
        "attachments": [
            {
                "id": a.id,
                "kind": a.kind,
                "mime_type": a.mime_type,
                "filename": a.filename,
                "size": a.size,
                "caption": a.caption,
                # Media storage: pending / stored / too_large / not_allowed / failed (None: not
                # stored here); `error` says why in words; `download_url` serves it to agents.
                "state": a.state,
                "error": a.error,
                "download_url": f"/api/v1/attachments/{a.id}" if a.state == "stored" else None,
            }
            for a in attachments or []
        ],
    }


def display_name(
    contact_id: int, name: str | None, phone: str | None, handle: str | None = None
) -> str:
    """The one rule for naming a customer wherever they are shown (conversation list, thread,
    contact panel, search, merge suggestions): their name, else their phone number written
    for reading, else a handle a provider gave (an Instagram @username), else "Customer #id".
    The browser shows this field as it is and never computes a name itself."""
    if name and name.strip():
        return name.strip()
    if phone:
        return readable(phone)
    if handle and handle.strip():
        return handle.strip()
    return f"Customer #{contact_id}"


def handle_of(identities: list[ContactIdentity] | None) -> str | None:
    """The first provider-given name of a contact's identities (oldest identity first)."""
    for identity in sorted(identities or [], key=lambda i: i.id):
        if identity.display_name:
            return identity.display_name
    return None


def conversation_dict(
    c: Conversation | Row[Any], labels: list[str] | None = None
) -> dict[str, Any]:
    """A conversation as the API shows it, from its ORM object or a row of all its columns."""
    return {
        "id": c.id,
        "inbox_id": c.inbox_id,
        "contact_id": c.contact_id,
        "status": c.status,
        "assignee_id": c.assignee_id,
        "team_id": c.team_id,
        "priority": c.priority,
        "snoozed_until": ts(c.snoozed_until),
        "unread_count": c.unread_count,
        "last_activity_at": ts(c.last_activity_at),
        "last_inbound_at": ts(c.last_inbound_at),
        "last_message_preview": c.last_message_preview,
        "last_channel_id": c.last_channel_id,
        "labels": sorted(labels or []),
        "created_at": ts(c.created_at),
        # The running SLA timer (tidings.actions.sla).
        "sla_target": c.sla_target,
        "sla_due_at": ts(c.sla_due_at),
        "sla_state": c.sla_state,
        "first_response_at": ts(c.first_response_at),
    }


def contact_dict(c: Contact, identities: list[ContactIdentity] | None = None) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "display_name": display_name(c.id, c.name, c.phone_e164, handle_of(identities)),
        "email": c.email,
        "phone": c.phone_e164,
        # A number the customer only typed (e.g. on the website): not verified, never linking.
        "claimed_phone": c.claimed_phone,
        "attributes": c.attributes or {},
        "identities": [
            {
                "id": i.id,
                "channel_kind": i.channel_kind,
                "address": i.address,
                "display_name": i.display_name,
            }
            for i in identities or []
        ],
        "created_at": ts(c.created_at),
    }


def channel_dict(c: Channel, public_config: dict[str, Any], webhook_url: str) -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind,
        "name": c.name,
        "inbox_id": c.inbox_id,
        "active": c.active,
        "config": public_config,
        "webhook_url": webhook_url,
        "health": {
            "last_inbound_at": ts(c.last_inbound_at),
            "last_error": c.last_error,
            "last_error_at": ts(c.last_error_at),
            "token_expires_at": ts(c.token_expires_at),
            "notice": c.notice,
            "notice_at": ts(c.notice_at),
            "notice_severe": bool(c.notice_severe),
        },
        "created_at": ts(c.created_at),
    }
