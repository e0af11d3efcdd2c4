"""Request and response bodies of the REST API (they also make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tidings.serialize import ts


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def answer(model: type[BaseModel], row: object, **given: Any) -> dict[str, Any]:
    """The answer `model` describes, read off `row` (a database row or any object with those
    attributes): each field is `given[name]`, else `row.<name>`; instants as `serialize.ts`
    writes them. The routes' one row-to-answer conversion, instead of a dict literal each."""
    values = {k: given[k] if k in given else getattr(row, k) for k in model.model_fields}
    return {k: ts(v) if isinstance(v, datetime) else v for k, v in values.items()}


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
    # The provider's latest notice about the channel itself (e.g. a Messenger policy block).
    notice: str | None = None
    notice_at: str | None = None
    notice_severe: bool = False


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
    team_id: int | None = Field(default=None, description="Team id; null clears the team")
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

    template: TemplateIn | None = Field(
        default=None, description="Send an approved provider template (no text then)"
    )
    interactive: InteractiveIn | None = Field(
        default=None, description="Buttons, a list or quick replies (the text is its body)"
    )
    reaction: ReactionIn | None = Field(
        default=None, description="React to one of the conversation's messages"
    )

    @model_validator(mode="after")
    def _text_or_file(self) -> ReplyIn:
        rich = [x for x in (self.template, self.interactive, self.reaction) if x is not None]
        if rich:
            if len(rich) > 1 or self.text is not None or self.attachment_ids:
                raise ValueError(
                    "template, interactive and reaction each go alone (no text or attachments)"
                )
            return self
        if self.text is None and not self.attachment_ids:
            raise ValueError("give text, attachment_ids, or both")
        return self


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
    # The one naming rule (`serialize.display_name`): name, phone, handle, "Customer #id".
    display_name: str
    email: str | None
    phone: str | None = Field(description="E.164 a provider vouches for, or staff entered")
    claimed_phone: str | None = Field(
        default=None,
        description="E.164 the customer only typed (API channel): never links contacts",
    )
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


class SubscriptionPatch(Strict):
    active: bool | None = Field(default=None, description="false pauses deliveries")
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = None


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


class LaneLagOut(BaseModel):
    seconds: float
    pending: int


class InboundLagOut(BaseModel):
    """How far behind inbound processing is. `status` only for admins."""

    customer: LaneLagOut
    status: LaneLagOut | None = None
    warn_seconds: float


class ReplayIn(Strict):
    ids: list[int] | None = None
    channel_id: int | None = None


class Count(BaseModel):
    count: int


class TokenCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[Literal["read", "reply", "admin"]] | None = Field(
        default=None,
        description="read: GET; reply: any change; admin: owner/admin routes. Default: the "
        "caller's own scopes; never more than them",
    )
    expires_at: datetime | None = Field(
        default=None, description="When the token stops working (default: never)"
    )


class TokenOut(BaseModel):
    token: str
    id: int
    scopes: list[str]
    expires_at: str | None


class PasswordChange(Strict):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


class NewAgent(Strict):
    """What an admin gives for a new agent (created with a password, or invited)."""

    email: str = Field(min_length=3, max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(default="agent", description="owner | admin | agent")


class AgentOut(BaseModel):
    """An agent as others see them (`actions.agents.agent_public`)."""

    id: int
    name: str
    email: str
    role: str
    active: bool
    availability: str


class MeOut(BaseModel):
    agent_id: int
    workspace_id: int
    role: str
    inbox_ids: list[int]


# --- templates, interactive messages, reactions, sender signals (Meta channels) -------------


class TemplateHeaderMediaIn(Strict):
    type: Literal["image", "video", "document"]
    link: str | None = Field(default=None, max_length=2048, description="Public https URL")
    media_id: str | None = Field(default=None, max_length=200, description="Provider media id")
    filename: str | None = Field(default=None, max_length=240, description="Documents only")

    @model_validator(mode="after")
    def _one_source(self) -> TemplateHeaderMediaIn:
        if (self.link is None) == (self.media_id is None):
            raise ValueError("give exactly one of link or media_id")
        if self.link is not None and not self.link.startswith(("https://", "http://")):
            raise ValueError("link must be an http(s) URL")
        return self


class TemplateButtonIn(Strict):
    index: int = Field(ge=0, le=9, description="Position of the button in the template")
    payload: str | None = Field(
        default=None, max_length=1000, description="quick_reply: sent back when tapped"
    )
    text: str | None = Field(
        default=None, max_length=2000, description="url: the value of the URL's {{1}}"
    )
    coupon_code: str | None = Field(default=None, max_length=20, description="copy_code")


Params = (
    list[Annotated[str, Field(max_length=1024)]] | dict[str, Annotated[str, Field(max_length=1024)]]
)


class TemplateIn(Strict):
    """An approved provider template (WhatsApp). Values are checked against the template's
    components before anything is queued."""

    template_id: int | None = Field(
        default=None, description="Tidings template id, or name+language"
    )
    name: str | None = Field(default=None, max_length=512)
    language: str | None = Field(
        default=None, max_length=16, description="e.g. en_US; needed when several exist"
    )
    parameters: Params = Field(
        default_factory=list,
        description="Body values: a list for {{1}} {{2}}..., an object for {{first_name}}...",
    )
    header_parameters: Params = Field(
        default_factory=list, description="Values of a text header's variable"
    )
    header_media: TemplateHeaderMediaIn | None = Field(
        default=None, description="The image/video/document of a media header"
    )
    buttons: list[TemplateButtonIn] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _which(self) -> TemplateIn:
        if (self.template_id is None) == (self.name is None):
            raise ValueError("give template_id or name (with language), not both")
        return self


class ChoiceIn(Strict):
    id: str = Field(min_length=1, max_length=256, description="Sent back when chosen")
    title: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=100, description="List rows only")
    url: str | None = Field(default=None, max_length=2048, description="Messenger URL buttons")


class SectionIn(Strict):
    title: str | None = Field(default=None, max_length=100)
    rows: list[ChoiceIn] = Field(min_length=1, max_length=10)


class InteractiveIn(Strict):
    """Choices for the customer. `buttons`: reply buttons (WhatsApp, ≤3, titles ≤20) or a
    Messenger button template (≤3); `list`: a WhatsApp list (≤10 rows, titles ≤24);
    `quick_replies`: Messenger/Instagram quick replies (≤13, titles ≤20). Each channel's own
    limits are checked before queueing."""

    type: Literal["buttons", "list", "quick_replies"]
    body: str = Field(min_length=1, max_length=4096)
    header: str | None = Field(default=None, max_length=100)
    footer: str | None = Field(default=None, max_length=100)
    buttons: list[ChoiceIn] = Field(default_factory=list, max_length=13)
    button: str | None = Field(default=None, max_length=100, description="List: the menu label")
    sections: list[SectionIn] = Field(default_factory=list, max_length=10)


class ReactionIn(Strict):
    message_id: int = Field(description="The message (of this conversation) reacted to")
    emoji: str = Field(max_length=32, description="An emoji; empty removes the reaction")


class SignalIn(Strict):
    action: Literal["mark_read", "typing_on", "typing_off"]
    channel_id: int | None = Field(default=None, description="Default: the customer's last")


class SignalOut(BaseModel):
    ok: bool
    action: str
    channel_id: int


class TemplateNeedsOut(BaseModel):
    parameter_format: str
    header: str | None
    header_parameters: list[str]
    body_parameters: list[str]
    buttons: list[dict[str, Any]]


class TemplateOut(BaseModel):
    id: int
    channel_id: int
    name: str
    language: str
    category: str
    status: str
    body: str
    components: list[dict[str, Any]]
    needs: TemplateNeedsOut
    updated_at: str | None


class TemplateSyncOut(BaseModel):
    channel_id: int
    total: int
    created: int
    updated: int
    unchanged: int
    removed: int
