"""Every live event type with the payload it carries, in one place.

A publisher writes `tx.emit(live_events.SETTINGS_UPDATED({"what": "csat"}), workspace_id, None)`:
the constant names the type (`LiveEventType`) and types the payload, so a missing or misspelt
key is a mypy error. The payload goes on the wire as it is (the browser's handlers and the
outgoing webhooks read these keys). Events that carry a row as the API shows it (a message, a
conversation, a campaign...) take `Row`: their keys are the serializer's (`serialize.py`), which
is the one place that builds them. Who may receive each type is `access.EVENT_AUDIENCE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from tidings.domain.enums import LiveEventType

P = TypeVar("P")
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class LivePayload:
    """A typed event ready for `Tx.emit`."""

    type: LiveEventType
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kind(Generic[P]):
    type: LiveEventType

    def __call__(self, data: P) -> LivePayload:
        return LivePayload(self.type, data)  # type: ignore[arg-type]  # a TypedDict is a dict


class SettingsUpdated(TypedDict):
    what: str  # which settings changed ("csat", "automation_rules", ...): refresh them


class MessagesUpdated(TypedDict):
    conversation_id: int
    messages: list[Row]


class ConsentUpdated(TypedDict):
    contact_id: int
    channel_kind: str
    status: str
    purposes: list[str]
    source: str
    source_message_id: int | None
    changed_at: str


class Presence(TypedDict):
    conversation_id: int
    agent_id: int
    agent_name: str
    state: str
    at: str
    ttl: int


class ContactUpdated(TypedDict):
    id: int
    conversation_ids: list[int]


class TemplateUpdated(TypedDict):
    channel_id: int
    name: str
    language: str | None
    status: str
    reason: str | None


class ChannelNotice(TypedDict):
    channel_id: int
    topic: str
    notice: str | None
    notice_at: str
    severe: bool


class AgentAvailability(TypedDict):
    agent_id: int
    availability: str


CONVERSATION_CREATED: Kind[Row] = Kind(LiveEventType.CONVERSATION_CREATED)
CONVERSATION_UPDATED: Kind[Row] = Kind(LiveEventType.CONVERSATION_UPDATED)
MESSAGE_CREATED: Kind[Row] = Kind(LiveEventType.MESSAGE_CREATED)
MESSAGE_UPDATED: Kind[Row] = Kind(LiveEventType.MESSAGE_UPDATED)
MESSAGES_UPDATED: Kind[MessagesUpdated] = Kind(LiveEventType.MESSAGES_UPDATED)
CONSENT_UPDATED: Kind[ConsentUpdated] = Kind(LiveEventType.CONSENT_UPDATED)
PRESENCE: Kind[Presence] = Kind(LiveEventType.PRESENCE)
CSAT_ANSWERED: Kind[Row] = Kind(LiveEventType.CSAT_ANSWERED)  # `csat.response_dict`
# `{merge_id, ...the merge's details}`, or `{merge_id, undone: true}`.
CONTACT_MERGED: Kind[Row] = Kind(LiveEventType.CONTACT_MERGED)
CONTACT_PREFERENCE: Kind[Row] = Kind(LiveEventType.CONTACT_PREFERENCE)  # `{contact_id, ...pref}`
CONTACT_UPDATED: Kind[ContactUpdated] = Kind(LiveEventType.CONTACT_UPDATED)
TEMPLATE_UPDATED: Kind[TemplateUpdated] = Kind(LiveEventType.TEMPLATE_UPDATED)
TEMPLATES_SYNCED: Kind[Row] = Kind(LiveEventType.TEMPLATES_SYNCED)  # the sync's summary
CHANNEL_NOTICE: Kind[ChannelNotice] = Kind(LiveEventType.CHANNEL_NOTICE)
CAMPAIGN_UPDATED: Kind[Row] = Kind(LiveEventType.CAMPAIGN_UPDATED)  # the campaign, or its counts
SETTINGS_UPDATED: Kind[SettingsUpdated] = Kind(LiveEventType.SETTINGS_UPDATED)
WORKSPACE_UPDATED: Kind[Row] = Kind(LiveEventType.WORKSPACE_UPDATED)  # the workspace's settings
AGENT_AVAILABILITY: Kind[AgentAvailability] = Kind(LiveEventType.AGENT_AVAILABILITY)
NOTIFICATION_CREATED: Kind[Row] = Kind(LiveEventType.NOTIFICATION_CREATED)

KINDS: tuple[Kind[Any], ...] = tuple(v for v in tuple(globals().values()) if isinstance(v, Kind))
