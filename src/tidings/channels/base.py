"""The channel adapter protocol and the types that cross it.

Every provider lives in its own package under `tidings.channels` and exposes one object that
satisfies `ChannelAdapter`; `registry.py` is the only place that lists them. Nothing outside a
provider package branches on the channel kind.

The inbound side is pure (no I/O): `verify` checks the signature on the raw bytes, `split`
cheaply cuts a verified payload into per-event pieces with a dedupe key each (this runs on the
webhook hot path before the 200), and `parse` turns one stored piece into canonical events
(this runs in the ingest worker, and again on replay after a fix).

The outbound side is one coroutine, `send`, over an injected `httpx.AsyncClient`, returning an
explicit outcome with a sentence an agent understands.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import httpx
import orjson
from pydantic import BaseModel

from tidings.channels.config_fields import ConfigT, config_as
from tidings.domain.enums import InboundLane, MessageKind
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import CanonicalEvent

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A provider's webhook call, as received. `url` is rebuilt on TIDINGS_PUBLIC_URL so that
    URL-signing providers (Twilio) can be checked behind a proxy."""

    method: str
    url: str
    headers: Mapping[str, str]  # lower-cased names
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One event cut out of a webhook payload, stored as-is before the provider gets its 200.

    `key` is unique per channel and identical across provider retries of the same event (e.g.
    WhatsApp message id, or status id + status), so the database rejects duplicates.
    """

    key: str
    payload: bytes
    occurred_at: datetime | None = None
    # "customer" or "status" (InboundLane): set by `split` for delivery/read receipts, which
    # may wait; everything else, and anything split does not classify, is a customer's.
    lane: str = InboundLane.CUSTOMER


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """What to answer the provider once the events are durably stored."""

    status: int = 200
    body: bytes = b""
    media_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class OutboundAttachment:
    kind: str
    url: str | None = None
    provider_media_id: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    caption: str | None = None
    # Reads a file stored by Tidings (an agent's upload), for adapters that upload it to the
    # provider before sending (WhatsApp `POST /{phone-number-id}/media`).
    load: Callable[[], Awaitable[bytes]] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What the delivery worker hands an adapter. `to` is the recipient's channel address."""

    message_id: int
    conversation_id: int
    to: str
    kind: MessageKind
    text: str | None = None
    attachments: tuple[OutboundAttachment, ...] = ()
    reply_to_provider_id: str | None = None
    template: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # This channel's webhook URL, for providers that take a per-message callback URL (Twilio's
    # StatusCallback), so that statuses flow back to the right channel.
    webhook_url: str | None = None
    # For adapters that are `ReplyContextUser`s (`channels/optional.py`): the `extra` of
    # the customer's latest message in this conversation on this channel, if it arrived within
    # the adapter's `reply_context_seconds` (LINE's reply token); empty otherwise.
    reply_context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sent:
    provider_message_id: str


@dataclass(frozen=True, slots=True)
class Retriable:
    """Try again later (rate limits, provider outages, timeouts)."""

    reason: str
    retry_after: float | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Permanent:
    """Do not try again; `reason` is shown to the agent as is."""

    reason: str
    code: str | None = None
    # The provider refused because the recipient opted out (Twilio 21610): the consent registry
    # records it, so the next send is refused before it is queued.
    recipient_opted_out: bool = False


SendOutcome = Sent | Retriable | Permanent


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel allows; read by the policy layer and the composer."""

    text_max_length: int
    # Hours after the customer's last message during which free-form replies are allowed;
    # None means the channel has no service window.
    service_window_hours: int | None = None
    supports_templates: bool = False
    receipts: tuple[str, ...] = ("sent",)
    media_types: Mapping[str, int] = field(default_factory=dict)  # MIME prefix -> max bytes
    # Sends per second per channel account (held as a sliding one-second window).
    rate_per_second: float = 10.0
    # Largest webhook body accepted; larger ones get 413 without being read.
    max_webhook_bytes: int = 1_000_000
    # An SMS channel: segment/encoding policy and STOP/START/HELP keywords apply.
    sms: bool = False
    # Text limit in UTF-8 bytes where the provider counts bytes (Instagram: 1000).
    text_max_bytes: int | None = None
    # A person's reply may go this many hours after the customer's last message with a
    # HUMAN_AGENT message tag, where the channel enables it (Messenger, Instagram: 7 days).
    human_agent_hours: int | None = None
    # Token bucket per (channel, recipient) where the provider limits pairs (WhatsApp: one
    # message per 6 s with bursts of 45); None means no per-recipient limit.
    recipient_rate_per_second: float | None = None
    recipient_burst: int = 1
    # The customer's address on this channel is their phone number (WhatsApp's wa_id is its
    # digits), so a contact known only by number can be reached here. SMS kinds are by nature.
    phone_addressed: bool = False
    # A campaign may send its free text here (False: template only, or not a customer channel).
    campaign_text: bool = True
    # The icon the UI shows for this kind: a name from the pinned icon package
    # (package.json `lucide-static`), built into web/static/icons.svg by `scripts/icons`.
    icon: str = "message-circle"
    # The kind's colour in the UI (icons, report series): distinct for every kind.
    color: str = "#64748b"


def json_of(data: bytes, refusal: str) -> Any:
    """`data` (a webhook body, a stored event) parsed as JSON; `PayloadError(refusal)` when it is
    not JSON, with `{exc}` in `refusal` replaced by the decoder's own words."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(refusal.replace("{exc}", str(exc))) from None


def nonempty_str(value: Any) -> str | None:
    """`value` if it is a non-empty string, else None (payloads are untrusted)."""
    return value if isinstance(value, str) and value else None


class ChannelAdapter(Protocol):
    """One provider. Implementations are stateless; per-channel state lives in `config`."""

    kind: ClassVar[str]
    label: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # The pydantic model that validates this kind's config; fields listed in `secret_fields`
    # are never returned by the API.
    config_model: ClassVar[type[BaseModel]]
    secret_fields: ClassVar[frozenset[str]]

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        """Answer a GET verification handshake (Meta hub.challenge, WeChat echostr...).

        Raises SignatureError when the token does not match."""
        ...

    def verify(self, config: Any, request: WebhookRequest) -> None:
        """Check the signature on the raw body; raise SignatureError if it does not hold."""
        ...

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        """Cut a verified payload into events with dedupe keys. Cheap; raise PayloadError when
        the body cannot be understood at all (it is then stored as one failed event)."""
        ...

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        """Turn one stored event into canonical events. Pure. Unknown types become
        `InboundMessage(kind=UNSUPPORTED)`, never an exception."""
        ...

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        """The reply once the events are stored (usually 200 with an empty body)."""
        ...

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        """Hand one message to the provider. Never raises for provider errors: maps them to
        Retriable/Permanent with a sentence the agent understands."""
        ...


class Adapter(Generic[ConfigT]):
    """What most adapters share rather than write out: reading the stored config into the
    kind's model (`cfg`), refusing a GET handshake where the provider has none, `split`, `parse`
    and `send` by the package's pure functions, and the empty 200 most providers want once the
    events are stored."""

    config_model: ClassVar[type[BaseModel]]
    # Set (as static methods) by adapters whose `split` and `parse` need nothing but the body or
    # the stored piece, and whose `send` is the package's client function over the config model.
    split_body: Callable[[bytes], list[RawEvent]]
    parse_payload: Callable[[bytes], list[CanonicalEvent]]
    send_with: Callable[[ConfigT, OutboundMessage, httpx.AsyncClient], Awaitable[SendOutcome]]
    # The refusal of a GET handshake, for providers that have none: how their webhook is set.
    handshake_refusal: ClassVar[str] = "This channel has no GET verification handshake."

    def cfg(self, config: Any) -> ConfigT:
        """`config` (the stored dict, or the model already) as this kind's `config_model`."""
        return cast(ConfigT, config_as(self.config_model, config))

    def handshake(self, config: Any, request: WebhookRequest) -> WebhookReply:
        raise SignatureError(self.handshake_refusal)

    def split(self, config: Any, request: WebhookRequest) -> list[RawEvent]:
        return self.split_body(request.body)

    def parse(self, config: Any, payload: bytes) -> list[CanonicalEvent]:
        return self.parse_payload(payload)

    async def send(
        self, config: Any, message: OutboundMessage, http: httpx.AsyncClient
    ) -> SendOutcome:
        return await self.send_with(self.cfg(config), message, http)

    def ack(self, config: Any, request: WebhookRequest) -> WebhookReply:
        return WebhookReply(status=200, body=b"")


def json_or_none(content: bytes) -> Any:
    """A provider's answer body parsed as JSON, or None when it is not JSON (an HTML error page
    from a proxy, say): callers then decide on the HTTP status alone."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def check_secret(given: str | None, expected: str, missing: str, mismatch: str) -> None:
    """A webhook's signature or shared-secret header (`given`) against the value it must have,
    compared in constant time as bytes (compare_digest refuses non-ASCII str, and the header is
    attacker-supplied); SignatureError(`missing`) when it is absent or empty."""
    if not given:
        raise SignatureError(missing)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError(mismatch)


async def attempt(label: str, call: Awaitable[T]) -> T | Retriable:
    """`call`'s answer, or Retriable when `label` (the provider) did not answer in time or could
    not be reached: the same sentences on every channel that uses it."""
    try:
        return await call
    except httpx.TimeoutException:
        return Retriable(f"{label} did not answer in time; retrying.")
    except httpx.HTTPError as exc:
        return Retriable(f"Could not reach {label} ({type(exc).__name__}); retrying.")
