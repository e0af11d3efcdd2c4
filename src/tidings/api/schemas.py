"""Request and response bodies of the REST API (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelCreate(Strict):
    kind: str = Field(description="Channel kind, e.g. 'api' or 'whatsapp'")
    name: str = Field(min_length=1, max_length=200)
    config: dict[str, Any] = Field(description="Provider settings; secrets are encrypted at rest")
    inbox_id: int | None = Field(
        default=None, description="Inbox to attach to (default: the first)"
    )


class ChannelHealth(BaseModel):
    last_inbound_at: str | None
    last_error: str | None
    last_error_at: str | None
    token_expires_at: str | None


class ChannelOut(BaseModel):
    id: int
    kind: str
    name: str
    inbox_id: int
    active: bool
    config: dict[str, Any]
    webhook_url: str
    health: ChannelHealth
    created_at: str | None


class AttachmentOut(BaseModel):
    id: int
    kind: str
    mime_type: str | None
    filename: str | None
    size: int | None
    caption: str | None
    state: str | None = Field(
        default=None,
        description="pending | stored | too_large | not_allowed | failed (null: not stored here)",
    )
    error: str | None = Field(default=None, description="Why the file is not available")
    download_url: str | None = Field(
        default=None, description="Agent-only URL of the stored file (bearer or session auth)"
    )


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    channel_id: int | None
    direction: str
    kind: str
    body: str | None
    status: str
    error_code: str | None
    error_reason: str | None
    provider_message_id: str | None
    sender_agent_id: int | None
    reply_to_id: int | None
    sent_at: str | None
    created_at: str | None
    updated_at: str | None
    extra: dict[str, Any]
    attachments: list[AttachmentOut]


class ConversationOut(BaseModel):
    id: int
    inbox_id: int
    contact_id: int
    status: str
    assignee_id: int | None
    team_id: int | None
    priority: str
    snoozed_until: str | None
    unread_count: int
    last_activity_at: str | None
    last_inbound_at: str | None
    last_message_preview: str | None
    last_channel_id: int | None
    labels: list[str]
    created_at: str | None
    sla_target: str | None = None
    sla_due_at: str | None = None
    sla_state: str | None = None
    first_response_at: str | None = None


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    next_cursor: str | None


class ConversationPatch(Strict):
    status: str | None = Field(default=None, description="open | pending | snoozed | resolved")
    assignee_id: int | None = Field(default=None, description="Agent id; null unassigns")
    labels: list[str] | None = Field(default=None, description="Replaces the label set")


class ReplyIn(Strict):
    text: str | None = Field(
        default=None, min_length=1, max_length=65536, description="Text, or the file's caption"
    )
    channel_id: int | None = Field(
        default=None, description="Send over this channel; default: the customer's last"
    )
    attachment_ids: list[int] = Field(
        default_factory=list,
        max_length=1,
        description="An upload (POST /conversations/{id}/attachments) to send with the reply",
    )

    @model_validator(mode="after")
    def _text_or_file(self) -> ReplyIn:
        if self.text is None and not self.attachment_ids:
            raise ValueError("give text, attachment_ids, or both")
        return self


class UploadOut(BaseModel):
    id: int
    conversation_id: int
    filename: str | None
    mime_type: str
    size: int


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


class IdentityOut(BaseModel):
    id: int
    channel_kind: str
    address: str
    display_name: str | None


class ContactOut(BaseModel):
    id: int
    name: str | None
    email: str | None
    phone: str | None
    attributes: dict[str, Any]
    identities: list[IdentityOut]
    created_at: str | None


class ContactPage(BaseModel):
    data: list[ContactOut]


class SubscriptionCreate(Strict):
    url: str
    events: list[str]
    secret: str | None = Field(
        default=None, min_length=16, description="HMAC key; generated when omitted"
    )


class SubscriptionOut(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    secret: str | None = Field(default=None, description="Shown once, at creation")


class WebhookDeliveryOut(BaseModel):
    id: int
    event_type: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: str | None
    delivered_at: str | None


class InboundEventOut(BaseModel):
    id: int
    channel_id: int
    event_key: str
    state: str
    attempts: int
    error: str | None
    received_at: str | None
    processed_at: str | None


class ReplayIn(Strict):
    ids: list[int] | None = None
    channel_id: int | None = None


class Count(BaseModel):
    count: int


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    token: str


class MeOut(BaseModel):
    agent_id: int
    workspace_id: int
    role: str
    inbox_ids: list[int]
