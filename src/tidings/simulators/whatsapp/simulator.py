"""A WhatsApp Cloud API simulator that speaks the real Graph protocol.

It plays both of Meta's roles towards Tidings: the Graph endpoint Tidings sends to
(`POST /{version}/{phone_number_id}/messages`, validated, rate-limited and window-checked like
the real one, with real success and error shapes), and the webhook sender that calls Tidings
(signed with the app secret, at-least-once with retries, duplicates on demand). A JSON control
API under `/_sim/` plays the customer and sets the knobs. Facts:
docs/channels/whatsapp.md#protocol-facts and docs/providers/graph-api.md.

Sandbox mode mounts `WhatsAppSimulator().app` under `/sandbox/whatsapp`; tests run it in
process (httpx.ASGITransport) or standalone under uvicorn. Mounted sub-apps get no lifespan
events, so whoever creates the simulator calls `await sim.aclose()` on shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    ControlError,
    DemoChannel,
    Handler,
    PhoneFile,
    PhoneLocation,
    SandboxEntry,
    TaskSet,
    TokenBucket,
    UrlBinding,
)
from tidings.simulators.meta import base
from tidings.simulators.meta.base import (
    GraphError,
    MetaAccount,
    MetaSimulator,
    bearer,
    control,
    fbtrace_id,
    form_view,
    has_token,
    read_body,
    read_form,
    unknown_object,
)
from tidings.simulators.meta.webhooks import DeliveryKnobs, WebhookDelivery
from tidings.simulators.whatsapp.media import (
    INBOUND_MAX,
    UPLOAD_LIMITS,
    MediaStore,
    sample_bytes,
)
from tidings.simulators.whatsapp.templates import (
    StatusChangeIn,
    TemplateIn,
    TemplateSendError,
    TemplateStore,
)

logger = logging.getLogger(__name__)

StatusName = Literal["sent", "delivered", "read", "played", "failed"]

# BSUID: ISO country code, a dot, up to 128 alphanumerics (parent ids add `ENT.`;
# docs/channels/whatsapp.md#inbound-payloads).
_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9.]{1,140}$")
_PHONE_PUNCTUATION = str.maketrans("", "", " -()+")
_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
_SEND_TYPES = frozenset(
    (*_MEDIA_TYPES, "text", "location", "contacts", "interactive", "template", "reaction")
)
_DEFAULT_MIME = {
    "image": "image/jpeg",
    "audio": "audio/ogg; codecs=opus",
    "video": "video/mp4",
    "document": "application/pdf",
    "sticker": "image/webp",
}
_INTERACTIVE_TYPES = frozenset(
    (
        "button",
        "list",
        "cta_url",
        "location_request_message",
        "flow",
        "product",
        "product_list",
        "contact_request",
        "voice_call",
        "call_permission_request",
    )
)
# Error titles as Graph words them (`message` is "(#<code>) <title>" since v16,
# docs/providers/graph-api.md#graph-errors).
_TITLES = {
    2: "Service temporarily unavailable",
    4: "Application request limit reached",
    100: "Invalid parameter",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving "
    "marketing messages on WhatsApp from your business.",
    131051: "Unsupported message type",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    132001: "Template name does not exist in the translation",
    132015: "Template is Paused",
    132016: "Template is Disabled",
}
_DETAILS = {
    131026: "Message Undeliverable.",
    131047: "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number.",
    130429: "Cloud API message throughput has been reached.",
    131056: "Message failed to send because there were too many messages sent from this phone "
    "number to the same phone number in a short period of time.",
}
_ERROR_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"
# Third-party copies of Meta's table; Meta itself says not to rely on HTTP status
# (docs/channels/whatsapp.md#error-codes).
_HTTP_FOR_CODE = {0: 401, 190: 401, 10: 403, 368: 403, 130497: 403, 1: 500, 2: 503, 3: 500}


# --------------------------------------------------------------------------------------------
# Knobs and control-API bodies


class TemplateSpec(BaseModel):
    """A template the simulated WABA knows; only checked when the `templates` knob is set."""

    model_config = ConfigDict(extra="forbid")
    languages: list[str] = ["en_US"]
    status: str = "APPROVED"
    category: Literal["marketing", "utility", "authentication"] = "utility"


class Knobs(DeliveryKnobs):
    """Everything the real platform does that a test may want to change. Defaults follow
    production where docs/channels/whatsapp.md#protocol-facts documents it, otherwise they are
    our best reading and say so there. The webhook sender's knobs (retries, duplicates,
    timeout, escaping, history, `webhook_concurrency`) are `DeliveryKnobs`'."""

    model_config = ConfigDict(extra="forbid")

    enforce_window: bool = True
    # Whether 131047 comes back on the send (sync) or as a `failed` status webhook after a 200
    # (async); production usually does the latter (docs/channels/whatsapp.md#error-codes).
    window_mode: Literal["sync", "async"] = "async"
    window_hours: float = Field(24.0, gt=0)
    auto_statuses: list[Literal["sent", "delivered", "read", "played"]] = [
        "sent",
        "delivered",
        "read",
    ]
    status_delay: float = Field(0.05, ge=0)
    # Per business number, all message types (docs/channels/whatsapp.md#throughput-and-pair-limits).
    throughput_per_second: float = Field(80.0, gt=0)
    # Pair limit: 1 message per 6 s to one user, with bursts of up to 45 "borrowed"
    # (docs/channels/whatsapp.md#throughput-and-pair-limits): a token bucket of 45 refilled every 6
    # s.
    pair_rate_limit: bool = True
    pair_burst: int = Field(45, ge=1)
    pair_interval_seconds: float = Field(6.0, gt=0)
    templates: dict[str, TemplateSpec] | None = None
    # Messages whose statuses are still to be posted, plus status webhooks being retried.
    # When the receiver falls this far behind, accepting a send waits for room: backpressure
    # on the sender, so memory stays bounded whatever the receiver does (an admitted status
    # whose POST fails still goes into retry, so the count may pass the limit by those).
    status_backlog_limit: int = Field(10_000, ge=1)
    # Several statuses in one POST's `value.statuses[]` as Meta may send them
    # (docs/channels/whatsapp.md, "Batched webhooks"): at most `status_batch` per POST, a
    # batch waiting up to `status_batch_ms` to fill. 1 (the default) = one status per POST.
    status_batch: int = Field(1, ge=1, le=1000)
    status_batch_ms: float = Field(0.0, ge=0, le=10_000)


class AccountIn(base.AccountIn):
    display_phone_number: str | None = None
    waba_id: str | None = None


class InboundSpec(BaseModel):
    """One message the customer sends. The type object may be passed under its type's name
    (`{"type": "location", "location": {...}}`); text and media get real-looking defaults."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    phone_number_id: str | None = None
    from_: str | None = Field(None, alias="from", pattern=r"^\d{5,20}$")
    name: str | None = None
    user_id: str | None = None
    text: str | None = None
    type: str = "text"
    id: str | None = None
    timestamp: int | None = None
    context_id: str | None = None


class StatusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    status: StatusName
    recipient_id: str | None = None
    timestamp: int | None = None
    errors: list[dict[str, Any]] | None = None
    biz_opaque_callback_data: str | None = None


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number_id: str
    messages: list[InboundSpec] = []
    statuses: list[StatusSpec] = []
    split_entries: bool = False


class UserChangeIn(BaseModel):
    """A known customer's ids change (docs/channels/whatsapp.md, "Identity changes"): with
    `new_wa_id` a `user_changed_number`, else a `user_changed_user_id` (no `from`, no
    contacts[]). The new BSUID is made up when not given."""

    model_config = ConfigDict(extra="forbid")
    phone_number_id: str
    user: str = Field(description="the customer's current wa_id or BSUID")
    new_user_id: str | None = Field(None, pattern=r"^[A-Z]{2}\.[A-Za-z0-9.]{1,140}$")
    new_wa_id: str | None = Field(None, pattern=r"^\d{5,20}$")


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone_number_id: str
    message_id: str
    status: StatusName
    error_code: int | None = None


class FailIn(base.FailIn):
    """With a code: a Graph error (sync) or a `failed` status after a 200 (async)."""

    mode: Literal["sync", "async"] = "sync"
    details: str | None = None


# --------------------------------------------------------------------------------------------
# State


@dataclass
class Account(MetaAccount):
    display_phone_number: str
    waba_id: str

    @property
    def phone_number_id(self) -> str:
        return self.account_id

    def public(self) -> dict[str, Any]:
        return {
            "phone_number_id": self.phone_number_id,
            "display_phone_number": self.display_phone_number,
            "waba_id": self.waba_id,
            "webhook_url": self.webhook_url,
        }


@dataclass
class Customer:
    """A WhatsApp user as seen from one business number."""

    key: str  # wa_id when known, else the BSUID
    wa_id: str | None = None
    user_id: str | None = None
    name: str | None = None
    last_inbound: float | None = None
    typing_until: float | None = None
    # The pair rate limit's bucket (`_check_pair_rate` sets its rate and burst from the knobs).
    pair: TokenBucket = field(default_factory=lambda: TokenBucket(0.0, 0.0))


@dataclass
class SimMessage:
    id: str
    direction: Literal["in", "out"]
    phone_number_id: str
    user: str
    type: str
    content: Any
    text: str | None
    timestamp: int
    # out: accepted -> sent -> delivered -> read | failed; in: sent -> delivered -> read
    # (the ticks the customer sees on their own message).
    status: str
    statuses: list[dict[str, Any]] = field(default_factory=list)
    biz_opaque_callback_data: str | None = None
    context_id: str | None = None
    seq: int = 0

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "direction": self.direction,
            "type": self.type,
            "text": self.text,
            "content": self.content,
            "timestamp": self.timestamp,
            "status": self.status,
            "statuses": self.statuses,
            "context_id": self.context_id,
            "biz_opaque_callback_data": self.biz_opaque_callback_data,
        }


@dataclass
class _QueuedStatus:
    """A status element waiting for its webhook POST; `sent` resolves after the first attempt."""

    account: Account
    element: dict[str, Any]
    sent: asyncio.Future[None]


class _GraphError(GraphError):
    def __init__(
        self,
        code: int,
        details: str | None = None,
        *,
        http_status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code, http_status or _HTTP_FOR_CODE.get(code, 400), headers)
        self.details = details

    def body(self) -> dict[str, Any]:
        return graph_error_body(self.code, self.details)


def graph_error_body(code: int, details: str | None = None) -> dict[str, Any]:
    """The Graph error envelope (docs/providers/graph-api.md#graph-errors): `message` is
    `(#code) title`, the explanation is in `error_data.details`, no `error_subcode` since v16."""
    title = _TITLES.get(code, "Error")
    if code == 190:
        # Token errors are plain Graph OAuth errors without WhatsApp's error_data.
        return {
            "error": {
                "message": "Error validating access token: The session is invalid.",
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": fbtrace_id(),
            }
        }
    return {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": details or _DETAILS.get(code, title),
            },
            "fbtrace_id": fbtrace_id(),
        }
    }


def _status_error(code: int, details: str | None = None) -> dict[str, Any]:
    title = _TITLES.get(code, "Error")
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details or _DETAILS.get(code, title)},
        "href": _ERROR_HREF,
    }


def _headers(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() != "authorization"}


def _new_wamid(user: str) -> str:
    # Real ids are "wamid." + base64 of a small protobuf-like blob holding the user's number
    # (hence the common "HBgL" prefix); tests only need them unique and real-looking.
    raw = (
        b"\x1c\x18"
        + bytes([len(user) % 256])
        + user.encode()
        + b"\x15\x02\x00\x12\x18\x14"
        + secrets.token_hex(10).upper().encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def _text_of(mtype: str, obj: Any) -> str | None:
    """What a phone would show as the message's text."""
    if not isinstance(obj, dict):
        if mtype == "contacts" and isinstance(obj, list) and obj:
            return ", ".join(
                str(c.get("name", {}).get("formatted_name", "")) for c in obj if isinstance(c, dict)
            )
        return None
    if mtype == "text":
        body = obj.get("body")
        return body if isinstance(body, str) else None
    if mtype in _MEDIA_TYPES:
        caption = obj.get("caption")
        return caption if isinstance(caption, str) else None
    if mtype == "reaction":
        emoji = obj.get("emoji")
        return emoji if isinstance(emoji, str) else ""
    if mtype == "template":
        return f"[template {obj.get('name')}]"
    if mtype == "interactive":
        body = obj.get("body")
        for key in ("button_reply", "list_reply"):
            if isinstance(obj.get(key), dict):
                return str(obj[key].get("title"))
        return str(body.get("text")) if isinstance(body, dict) else None
    if mtype == "location":
        return str(obj.get("name") or obj.get("address") or "")
    if mtype == "button":
        return str(obj.get("text"))
    return None


# --------------------------------------------------------------------------------------------
# The simulator


class WhatsAppSimulator(MetaSimulator[Knobs, Account]):
    """In-memory WhatsApp Cloud API. `.app` is the ASGI app; the public coroutines are what the
    `/_sim/` control routes call, and may be called directly by in-process tests."""

    account_param: ClassVar[str] = "phone_number_id"
    account_type = Account
    account_model: ClassVar[type[base.AccountIn]] = AccountIn
    fail_model: ClassVar[type[base.FailIn]] = FailIn
    # Delivery counts' `pending` also counts status pipelines that have not yet produced all
    # their webhooks.
    pending_tasks: ClassVar[str] = "wa-status-"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        knobs: Knobs | None = None,
    ) -> None:
        super().__init__(
            "wa",
            knobs or Knobs(),
            http=http,
            clock=clock,
            spawn=self._spawn_retry,
            on_delivered=self._delivered,
        )
        self.messages: dict[str, SimMessage] = {}
        self._customers: dict[tuple[str, str], Customer] = {}
        # (phone_number_id, BSUID) -> customer key, so a BSUID-addressed send finds the phone.
        self._aliases: dict[tuple[str, str], str] = {}
        # Message templates per WABA: listed by GET /{waba_id}/message_templates and, once a
        # WABA has any, the registry template sends are checked against.
        self.template_store = TemplateStore()
        self._seq = itertools.count(1)
        self.media = MediaStore(clock)
        # Status webhooks: pipelines queue their elements, one batcher groups them into POSTs
        # (`status_batch`), `webhook_concurrency` workers post them. Everything pending is
        # bounded by `status_backlog_limit` (see `_wait_for_status_room`).
        self._status_queue: asyncio.Queue[_QueuedStatus] = asyncio.Queue()
        self._status_batches: asyncio.Queue[list[_QueuedStatus]] | None = None
        # Not in `tasks`: workers never finish, and `flush` waits for those.
        self._workers = TaskSet()
        self._status_backlog = 0
        self._status_room = asyncio.Event()
        self.app = self._build_app(self._routes())

    @property
    def deliveries(self) -> list[WebhookDelivery]:
        return self.webhooks.log

    # ---------------------------------------------------------------- lifecycle

    async def _stop(self) -> None:
        await self.tasks.aclose()
        await self._stop_workers()

    async def reset(self, *, accounts: bool = False) -> None:
        """Forget messages, customers, requests, deliveries and injected failures."""
        await super().reset(accounts=accounts)
        self.messages.clear()
        self._customers.clear()
        self._aliases.clear()
        self.media.items.clear()
        if accounts:
            self.template_store.clear()

    # ---------------------------------------------------------------- control: set-up

    def _account_extra(self, phone_number_id: str, spec: AccountIn) -> dict[str, Any]:
        """A business number keeps its display number and WABA unless the body names them."""
        previous = self.accounts.get(phone_number_id)
        return {
            "display_phone_number": spec.display_phone_number
            or (previous.display_phone_number if previous else "15550783881"),
            "waba_id": spec.waba_id or (previous.waba_id if previous else "102290129340398"),
        }

    def _window_view(self, customer: Customer) -> dict[str, Any]:
        return {"user": customer.key, "window_open": self._window_open(customer)}

    # ---------------------------------------------------------------- control: the customer

    async def inbound(self, spec: InboundSpec) -> dict[str, Any]:
        """The customer sends one message: build the real envelope, deliver it (first attempt
        awaited, retries in the background) and open the 24 h window."""
        if spec.phone_number_id is None:
            raise ControlError(422, "phone_number_id is required")
        account = self._account(spec.phone_number_id)
        message, contact = self._inbound_element(account, spec)
        payload = self._envelope(account, contacts=[contact], messages=[message])
        delivered = await self._post(account, payload, "message", [message["id"]])
        return {"id": message["id"], **delivered}

    async def change_user(self, spec: UserChangeIn) -> dict[str, Any]:
        """Meta's system message when the customer's number or BSUID changes."""
        account = self._account(spec.phone_number_id)
        pnid = account.phone_number_id
        customer = self._find_customer(pnid, spec.user)
        if customer is None:
            raise ControlError(404, f"no customer {spec.user!r} on {pnid}")
        country = (customer.user_id or "US.").split(".", 1)[0]
        new_user = spec.new_user_id or f"{country}.{secrets.randbelow(10**20):020d}"
        name = customer.name or "WhatsApp user"
        system: dict[str, Any]
        message: dict[str, Any] = {}
        if spec.new_wa_id:
            system = {
                "body": f"User {name} changed from {customer.wa_id} to {spec.new_wa_id}",
                "wa_id": spec.new_wa_id,
                "type": "user_changed_number",
            }
            if customer.wa_id:
                message["from"] = customer.wa_id
        else:
            system = {
                "body": f"User {name} changed from {customer.user_id} to {new_user}",
                "type": "user_changed_user_id",
            }
        system["user_id"] = new_user
        if customer.user_id:
            system["previous_user_id"] = customer.user_id
        wamid = _new_wamid(spec.new_wa_id or new_user)
        message.update(id=wamid, timestamp=str(int(self._clock())), type="system", system=system)
        # The simulated user goes by the new ids from now on (the old number is let go).
        if spec.new_wa_id and customer.wa_id:
            self._aliases.pop((pnid, customer.wa_id), None)
        if spec.new_wa_id:
            customer.wa_id = spec.new_wa_id
            self._aliases[(pnid, spec.new_wa_id)] = customer.key
        customer.user_id = new_user
        self._aliases[(pnid, new_user)] = customer.key
        payload = self._envelope(account, messages=[message])  # no contacts[] with system messages
        delivery = await self._deliver(account, payload, "message", [wamid])
        return {"id": wamid, "user_id": new_user, "status": delivery.first_status}

    async def batch(self, spec: BatchIn) -> dict[str, Any]:
        """Many messages and statuses in ONE webhook POST
        (docs/providers/graph-api.md#batching-retries-and-order), in one change or,
        with `split_entries`, one change per item spread over entries of two changes."""
        account = self._account(spec.phone_number_id)
        messages: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for item in spec.messages:
            messages.append(self._inbound_element(account, item))
        statuses = [self._status_from_spec(account, s) for s in spec.statuses]
        if spec.split_entries:
            changes = [self._change(account, contacts=[c], messages=[m]) for m, c in messages]
            changes += [self._change(account, statuses=[status]) for status in statuses]
            entries = [
                {"id": account.waba_id, "changes": changes[i : i + 2]}
                for i in range(0, len(changes), 2)
            ]
            payload = {"object": "whatsapp_business_account", "entry": entries}
        else:
            contacts: list[dict[str, Any]] = []
            for _, contact in messages:
                if contact not in contacts:
                    contacts.append(contact)
            items: dict[str, Any] = {}
            if messages:
                items.update(contacts=contacts, messages=[m for m, _ in messages])
            if statuses:
                items["statuses"] = statuses
            payload = self._envelope(account, **items)
        refs = [m["id"] for m, _ in messages] + [s["id"] for s in statuses]
        delivered = await self._post(account, payload, "batch", refs)
        return {"ids": [m["id"] for m, _ in messages], **delivered}

    async def send_status(
        self, phone_number_id: str, message_id: str, status: StatusName, error_code: int | None
    ) -> dict[str, Any]:
        """One status webhook for a message the simulator accepted."""
        account = self._account(phone_number_id)
        message = self.messages.get(message_id)
        if message is None or message.direction != "out":
            raise ControlError(404, f"no outbound message {message_id!r}")
        errors = None
        if status == "failed":
            errors = [_status_error(error_code or 131026)]
        element = self._record_status(message, status, errors)
        payload = self._envelope(account, statuses=[element])
        return await self._post(account, payload, "status", [message_id])

    # ---------------------------------------------------------------- control: reading state

    def sent(self, phone_number_id: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if phone_number_id is None or r["phone_number_id"] == phone_number_id
        ]

    def conversations(self, phone_number_id: str, user: str | None = None) -> list[dict[str, Any]]:
        """Both directions as the customer's phone shows them, oldest first: what the customer
        sent (`direction: "in"`, status = the ticks they see) and what the business sent
        (`direction: "out"`, with its status history). `user` is a wa_id or BSUID."""
        keys = None
        if user is not None:
            customer = self._find_customer(phone_number_id, user)
            keys = {customer.key} if customer is not None else set()
        thread = sorted(
            (
                m
                for m in self.messages.values()
                if m.phone_number_id == phone_number_id and (keys is None or m.user in keys)
            ),
            key=lambda m: (m.timestamp, m.seq),
        )
        return [m.view() for m in thread]

    def customer_list(self, phone_number_id: str) -> list[dict[str, Any]]:
        """The simulated WhatsApp users of one number, with their service-window state."""
        now = self._clock()
        out = []
        for (pnid, key), customer in self._customers.items():
            if pnid != phone_number_id:
                continue
            expires = (
                customer.last_inbound + self.knobs.window_hours * 3600
                if customer.last_inbound is not None
                else None
            )
            out.append(
                {
                    "user": key,
                    "wa_id": customer.wa_id,
                    "user_id": customer.user_id,
                    "name": customer.name,
                    "window_open": self._window_open(customer),
                    "window_expires_at": expires,
                    "typing": customer.typing_until is not None and customer.typing_until > now,
                }
            )
        return out

    def delivery_log(self) -> list[dict[str, Any]]:
        return self.webhooks.view()

    # ---------------------------------------------------------------- helpers: state

    def _customer(self, pnid: str, wa_id: str | None, user_id: str | None) -> Customer:
        """The customer known by either id, created on first sight. Once seen with both, the
        phone and the BSUID lead to the same customer whichever arrives first."""
        key = (
            (wa_id and self._aliases.get((pnid, wa_id)))
            or (user_id and self._aliases.get((pnid, user_id)))
            or wa_id
            or user_id
        )
        assert key is not None  # callers pass at least one id
        customer = self._customers.get((pnid, key))
        if customer is None:
            customer = Customer(key, pair=TokenBucket(0.0, 0.0, float(self.knobs.pair_burst)))
            self._customers[(pnid, key)] = customer
        if wa_id:
            customer.wa_id = wa_id
            self._aliases[(pnid, wa_id)] = key
        if user_id:
            customer.user_id = user_id
            self._aliases[(pnid, user_id)] = key
        return customer

    def _find_customer(self, pnid: str, user: str) -> Customer | None:
        key = self._aliases.get((pnid, user))
        return self._customers.get((pnid, key)) if key is not None else None

    def _window_open(self, customer: Customer) -> bool:
        if customer.last_inbound is None:
            return False
        return self._clock() - customer.last_inbound < self.knobs.window_hours * 3600

    @staticmethod
    def _change(account: Account, **items: Any) -> dict[str, Any]:
        """One `messages` change of a business number: its metadata, then `items` (contacts,
        messages, statuses)."""
        metadata = {
            "display_phone_number": account.display_phone_number,
            "phone_number_id": account.phone_number_id,
        }
        value = {"messaging_product": "whatsapp", "metadata": metadata, **items}
        return {"field": "messages", "value": value}

    def _envelope(self, account: Account, **items: Any) -> dict[str, Any]:
        """A webhook of one `messages` change (`_change`)."""
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": account.waba_id, "changes": [self._change(account, **items)]}],
        }

    def _inbound_element(
        self, account: Account, spec: InboundSpec
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The `messages[]` element and `contacts[]` entry for one customer message
        (docs/channels/whatsapp.md#inbound-payloads)."""
        wa_id = spec.from_
        if wa_id is None and spec.user_id is None:
            raise ControlError(422, "an inbound message needs `from` (digits) or `user_id`")
        if spec.user_id is not None and not _BSUID.match(spec.user_id):
            raise ControlError(422, "user_id must look like a BSUID, e.g. US.13491208655302741918")
        pnid = account.phone_number_id
        customer = self._customer(pnid, wa_id, spec.user_id)
        if spec.name:
            customer.name = spec.name
        now = self._clock()
        ts = spec.timestamp if spec.timestamp is not None else int(now)
        mtype = spec.type
        extra = spec.model_extra or {}
        obj = extra.get(mtype)
        if obj is None:
            obj = self._default_type_object(mtype, spec, pnid)
        wamid = spec.id or _new_wamid(wa_id or spec.user_id or "")
        message: dict[str, Any] = {}
        if wa_id:
            message["from"] = wa_id
        if spec.user_id:
            message["from_user_id"] = spec.user_id
        message.update(id=wamid, timestamp=str(ts))
        if spec.context_id:
            message["context"] = {"from": account.display_phone_number, "id": spec.context_id}
        message["type"] = mtype
        message[mtype] = obj
        if mtype == "unsupported":
            message["errors"] = extra.get("errors") or [_status_error(131051)]
        if "referral" in extra:
            message["referral"] = extra["referral"]
        contact: dict[str, Any] = {}
        if customer.name:
            contact["profile"] = {"name": customer.name}
        if wa_id:
            contact["wa_id"] = wa_id
        if spec.user_id:
            contact["user_id"] = spec.user_id
        # Each user message opens or renews the 24 h customer service window
        # (docs/channels/whatsapp.md#templates-and-the-service-window). A duplicate id (re-sent on
        # purpose) does not create a second message on the phone.
        customer.last_inbound = max(customer.last_inbound or 0.0, float(ts))
        if wamid not in self.messages:
            self.messages[wamid] = SimMessage(
                id=wamid,
                direction="in",
                phone_number_id=pnid,
                user=customer.key,
                type=mtype,
                content=obj,
                text=_text_of(mtype, obj),
                timestamp=ts,
                status="sent",
                context_id=spec.context_id,
                seq=next(self._seq),
            )
        return message, contact

    def _default_type_object(self, mtype: str, spec: InboundSpec, pnid: str) -> Any:
        if mtype == "text":
            return {"body": spec.text or ""}
        if mtype in _MEDIA_TYPES:
            # The customer's file goes into the media store, so that the webhook's media id
            # resolves through GET /{media-id} and downloads with the token
            # (docs/channels/whatsapp.md#media-limits-and-downloads). Control fields: `mime_type`,
            # `filename`, and the bytes as `media_b64` or a synthetic file of `media_size` bytes.
            extra = spec.model_extra or {}
            mime = str(extra.get("mime_type") or _DEFAULT_MIME[mtype])
            if isinstance(extra.get("media_b64"), str):
                data = base64.b64decode(extra["media_b64"], validate=True)
            else:
                size = extra.get("media_size")
                data = sample_bytes(mime, size if isinstance(size, int) else None)
            if len(data) > INBOUND_MAX:
                raise ControlError(422, "inbound media above 100 MB arrives as error 131052")
            filename = extra.get("filename") if isinstance(extra.get("filename"), str) else None
            item = self.media.add(pnid, mime, data, filename=filename, origin="customer")
            media_id = item.id
            obj: dict[str, Any] = {
                "id": media_id,
                "mime_type": mime,
                "sha256": item.sha256,
                "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
                f"?mid={media_id}&ext={int(time.time())}&hash=ATsim",
            }
            if spec.text and mtype in ("image", "video", "document"):
                obj["caption"] = spec.text
            if mtype == "document" and filename:
                obj["filename"] = filename
            if mtype == "audio":
                obj["voice"] = True
            return obj
        if mtype == "unsupported":
            return {"type": "poll"}
        raise ControlError(422, f"type {mtype!r} needs its object under the key {mtype!r}")

    def _status_from_spec(self, account: Account, spec: StatusSpec) -> dict[str, Any]:
        message = self.messages.get(spec.id)
        if message is not None and message.direction == "out":
            element = self._record_status(message, spec.status, spec.errors, spec.timestamp)
            if spec.biz_opaque_callback_data is not None:
                element["biz_opaque_callback_data"] = spec.biz_opaque_callback_data
            if spec.recipient_id is not None:
                element["recipient_id"] = spec.recipient_id
            return element
        element = {
            "id": spec.id,
            "status": spec.status,
            "timestamp": str(spec.timestamp if spec.timestamp is not None else int(self._clock())),
            "recipient_id": spec.recipient_id or "16505551234",
        }
        if spec.biz_opaque_callback_data is not None:
            element["biz_opaque_callback_data"] = spec.biz_opaque_callback_data
        if spec.errors:
            element["errors"] = spec.errors
        elif spec.status == "failed":
            element["errors"] = [_status_error(131026)]
        return element

    def _record_status(
        self,
        message: SimMessage,
        status: str,
        errors: list[dict[str, Any]] | None,
        timestamp: int | None = None,
    ) -> dict[str, Any]:
        """Advance an outbound message and build its `statuses[]` element
        (docs/channels/whatsapp.md#status-webhooks)."""
        ts = timestamp if timestamp is not None else int(self._clock())
        customer = self._customers.get((message.phone_number_id, message.user))
        element: dict[str, Any] = {"id": message.id, "status": status, "timestamp": str(ts)}
        if customer is not None and customer.wa_id:
            element["recipient_id"] = customer.wa_id
        if customer is not None and customer.user_id:
            element["recipient_user_id"] = customer.user_id
        if message.biz_opaque_callback_data is not None:
            element["biz_opaque_callback_data"] = message.biz_opaque_callback_data
        priced = [s for s in message.statuses if "pricing" in s]
        # Pricing rides on `sent` and on one of delivered/read, never both
        # (docs/channels/whatsapp.md#status-webhooks).
        if status == "sent" or (status in ("delivered", "read") and len(priced) == 1):
            element["pricing"] = self._pricing(message)
        if status == "failed":
            element["errors"] = errors or [_status_error(131026)]
        message.status = status
        message.statuses.append(element)
        return element

    def _pricing(self, message: SimMessage) -> dict[str, Any]:
        # Per-message pricing since 2025-07-01: only templates are charged, and utility
        # templates are free inside an open service window
        # (docs/channels/whatsapp.md#status-webhooks).
        if message.type != "template":
            return {
                "billable": False,
                "pricing_model": "PMP",
                "type": "free_customer_service",
                "category": "service",
            }
        category = "utility"
        templates = self.knobs.templates
        name = message.content.get("name") if isinstance(message.content, dict) else None
        if templates is not None and isinstance(name, str) and name in templates:
            category = templates[name].category
        customer = self._customers.get((message.phone_number_id, message.user))
        free = category == "utility" and customer is not None and self._window_open(customer)
        return {
            "billable": not free,
            "pricing_model": "PMP",
            "type": "free_customer_service" if free else "regular",
            "category": category,
        }

    # ---------------------------------------------------------------- webhook delivery

    def _spawn_retry(self, coro: Coroutine[Any, Any, None], name: str, kind: str) -> None:
        # A status being retried still counts against `status_backlog_limit`.
        if kind == "status":
            self._spawn_status(coro, name)
        else:
            self.tasks.spawn(coro, name)

    def _delivered(self, delivery: WebhookDelivery) -> None:
        """The customer's own messages show as delivered once Tidings has them."""
        if delivery.kind in ("message", "batch"):
            for ref in delivery.refs:
                message = self.messages.get(ref)
                if message is not None and message.direction == "in" and message.status == "sent":
                    message.status = "delivered"

    async def _status_pipeline(
        self,
        account: Account,
        message: SimMessage,
        statuses: list[str],
        errors: list[dict[str, Any]] | None,
    ) -> None:
        for status in statuses:
            await asyncio.sleep(self.knobs.status_delay)
            if message.status == "failed":
                return
            element = self._record_status(message, status, errors if status == "failed" else None)
            # First attempt awaited so that a healthy receiver sees sent, delivered, read in
            # order; a failed attempt is retried in the background and may then arrive out of
            # order, which Meta does not rule out either
            # (docs/providers/graph-api.md#batching-retries-and-order).
            sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._status_queue.put_nowait(_QueuedStatus(account, element, sent))
            self._start_workers()
            await sent

    # ---------------------------------------------------------------- status webhook flow

    async def _wait_for_status_room(self) -> None:
        """Backpressure: a send whose statuses would exceed `status_backlog_limit` waits until
        the receiver has caught up enough."""
        while self._status_backlog >= self.knobs.status_backlog_limit:
            self._status_room.clear()
            await self._status_room.wait()

    def _spawn_status(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A task that counts against `status_backlog_limit` from now until it is done
        (counted here, not when it starts, so that a burst of sends sees it at once)."""
        self._status_backlog += 1
        self.tasks.spawn(coro, name).add_done_callback(self._status_settled)

    def _status_settled(self, task: asyncio.Task[None]) -> None:
        self._status_backlog -= 1
        self._status_room.set()

    def _start_workers(self) -> None:
        """The batcher and one worker per `webhook_concurrency` slot (topped up when the knob
        grows; surplus workers after it shrinks just wait for a slot)."""
        if self._status_batches is None:
            self._status_batches = asyncio.Queue(maxsize=self.knobs.webhook_concurrency)
            self._workers.spawn(self._status_batcher(), "wa-status-batcher")
        for i in range(len(self._workers) - 1, self.knobs.webhook_concurrency):
            self._workers.spawn(self._status_worker(), f"wa-status-worker-{i}")

    async def _stop_workers(self) -> None:
        await self._workers.aclose()
        while not self._status_queue.empty():
            item = self._status_queue.get_nowait()
            if not item.sent.done():
                item.sent.cancel()
        self._status_batches = None

    async def _status_batcher(self) -> None:
        """Group queued statuses into POSTs: up to `status_batch` each, waiting at most
        `status_batch_ms` for a batch to fill. Under load the queue fills while the workers
        are busy, so batches come out full without waiting."""
        queue, batches = self._status_queue, self._status_batches
        assert batches is not None
        while True:
            batch = [await queue.get()]
            limit = self.knobs.status_batch
            if limit > 1:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + self.knobs.status_batch_ms / 1000
                while len(batch) < limit:
                    if not queue.empty():
                        batch.append(queue.get_nowait())
                        continue
                    if loop.time() >= deadline:
                        break
                    try:
                        async with asyncio.timeout_at(deadline):
                            # An item stays queued if the timeout wins (Queue.get pops after
                            # waking), so nothing is lost here.
                            batch.append(await queue.get())
                    except TimeoutError:
                        break
            await batches.put(batch)

    async def _status_worker(self) -> None:
        batches = self._status_batches
        assert batches is not None
        while True:
            batch = await batches.get()
            groups: dict[str, list[_QueuedStatus]] = {}
            for item in batch:
                groups.setdefault(item.account.phone_number_id, []).append(item)
            for items in groups.values():
                account = items[0].account
                payload = self._envelope(account, statuses=[item.element for item in items])
                refs = [item.element["id"] for item in items]
                try:
                    await self._deliver(account, payload, "status", refs)
                except Exception:  # one bad batch must not stop the worker
                    logger.exception("whatsapp simulator could not deliver statuses %s", refs)
                finally:
                    for item in items:
                        if not item.sent.done():
                            item.sent.set_result(None)

    # ---------------------------------------------------------------- Graph: send

    def _bad_path(self, message: str) -> GraphError:
        return _GraphError(100, message)

    def _failure_error(self, failure: FailIn, code: int) -> GraphError | None:
        if failure.mode == "async":
            return None  # a `failed` status after the 200
        return _GraphError(code, failure.details, http_status=failure.http_status)

    def _log_fields(self, request: Request, node: str) -> dict[str, Any]:
        version = request.path_params["version"]
        return {"phone_number_id": node, "version": version, "headers": _headers(request)}

    def _check_auth(self, pnid: str, request: Request) -> Account:
        account = self.accounts.get(pnid)
        if account is None:
            raise _GraphError(100, unknown_object("post", pnid))
        if not has_token(bearer(request), account):
            raise _GraphError(190)
        return account

    async def _send(self, pnid: str, request: Request, body: Any) -> dict[str, Any]:
        account = self._check_auth(pnid, request)
        if not isinstance(body, dict):
            raise _GraphError(100, "The request body must be a JSON object.")
        if body.get("messaging_product") != "whatsapp":
            raise _GraphError(
                100, "The parameter messaging_product is required and must be 'whatsapp'."
            )
        if "status" in body:
            return self._mark_read(account, body)

        failure = await self._next_failure()

        self._check_throughput(pnid)
        mtype, obj, to_key = self._validate(body)
        if mtype == "template" and self.template_store.knows(account.waba_id):
            try:
                self.template_store.check_send(account.waba_id, obj)
            except TemplateSendError as err:
                raise _GraphError(err.code, err.details) from None
        customer = self._target_customer(pnid, body, to_key)
        self._check_pair_rate(customer)

        async_error: list[dict[str, Any]] | None = None
        if failure is not None and failure.mode == "async" and failure.code is not None:
            async_error = [_status_error(failure.code, failure.details)]
        elif mtype != "template" and self.knobs.enforce_window and not self._window_open(customer):
            # 131047: only templates may open a conversation outside the 24 h window
            # (docs/channels/whatsapp.md#templates-and-the-service-window).
            if self.knobs.window_mode == "sync":
                raise _GraphError(131047)
            async_error = [_status_error(131047)]
        elif mtype == "reaction" and obj.get("message_id") not in self.messages:
            # Reacting to an unknown message is accepted, then fails asynchronously
            # (docs/channels/whatsapp.md#sending).
            async_error = [_status_error(131009, "Reaction target message not found.")]

        wamid = _new_wamid(customer.wa_id or customer.key)
        opaque = body.get("biz_opaque_callback_data")
        context = body.get("context")
        message = SimMessage(
            id=wamid,
            direction="out",
            phone_number_id=pnid,
            user=customer.key,
            type=mtype,
            content=obj,
            text=(self.template_store.render(account.waba_id, obj) if mtype == "template" else None)
            or _text_of(mtype, obj),
            timestamp=int(self._clock()),
            status="accepted",
            biz_opaque_callback_data=opaque if isinstance(opaque, str) else None,
            context_id=context.get("message_id") if isinstance(context, dict) else None,
            seq=next(self._seq),
        )
        self.messages[wamid] = message
        # A typing indicator shows "until the reply or 25 s" (docs/channels/whatsapp.md#sending):
        # the reply ends it.
        customer.typing_until = None
        if async_error is not None:
            pipeline = ["failed"]
        elif mtype == "reaction":
            # Reactions only ever get `sent` (docs/channels/whatsapp.md#status-webhooks).
            pipeline = ["sent"] if "sent" in self.knobs.auto_statuses else []
        else:
            pipeline = list(self.knobs.auto_statuses)
        if pipeline:
            await self._wait_for_status_room()
            job = self._status_pipeline(account, message, pipeline, async_error)
            self._spawn_status(job, f"wa-status-{wamid}")

        contact: dict[str, Any] = {"input": body.get("to") or body.get("recipient")}
        if customer.wa_id:
            contact["wa_id"] = customer.wa_id
        if customer.user_id and "recipient" in body:
            contact["user_id"] = customer.user_id
        sent: dict[str, Any] = {"id": wamid}
        if mtype == "template":
            # Only seen on (possibly paced) template sends; the value is our reading
            # (docs/channels/whatsapp.md#sending).
            sent["message_status"] = "accepted"
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [sent]}

    def _mark_read(self, account: Account, body: dict[str, Any]) -> dict[str, Any]:
        """`{"status": "read", "message_id": ...}` (+ optional typing_indicator;
        docs/channels/whatsapp.md#protocol-facts)."""
        if body.get("status") != "read":
            raise _GraphError(100, "Param status must be 'read'.")
        message_id = body.get("message_id")
        message = self.messages.get(message_id) if isinstance(message_id, str) else None
        if (
            message is None
            or message.direction != "in"
            or message.phone_number_id != account.phone_number_id
        ):
            raise _GraphError(100, "Invalid parameter message_id.")
        # Marking one message read marks the earlier ones read too.
        for other in self.messages.values():
            if (
                other.direction == "in"
                and other.phone_number_id == message.phone_number_id
                and other.user == message.user
                and (other.timestamp, other.seq) <= (message.timestamp, message.seq)
            ):
                other.status = "read"
        if isinstance(body.get("typing_indicator"), dict):
            customer = self._customers.get((message.phone_number_id, message.user))
            if customer is not None:
                # Shown until the reply or for 25 s.
                customer.typing_until = self._clock() + 25
        return {"success": True}

    def _check_throughput(self, pnid: str) -> None:
        if self._over_rate(pnid, self.knobs.throughput_per_second):
            raise _GraphError(130429)

    def _check_pair_rate(self, customer: Customer) -> None:
        if not self.knobs.pair_rate_limit:
            return
        bucket = customer.pair
        bucket.rate = 1 / self.knobs.pair_interval_seconds
        bucket.burst = float(self.knobs.pair_burst)
        if bucket.take():
            raise _GraphError(131056)

    def _target_customer(self, pnid: str, body: dict[str, Any], to_key: str) -> Customer:
        known = self._find_customer(pnid, to_key)
        if known is not None:
            return known
        if "to" in body:
            return self._customer(pnid, to_key, None)
        return self._customer(pnid, None, to_key)

    # ---------------------------------------------------------------- Graph: templates

    async def _graph_templates(self, request: Request) -> Response:
        """`GET /{version}/{waba_id}/message_templates` with Graph's cursor paging (`limit`,
        `after`, `fields`, and the `status` / `name` filters)."""
        waba_id = request.path_params["waba_id"]
        q = request.query_params

        async def call() -> dict[str, Any]:
            accounts = [a for a in self.accounts.values() if a.waba_id == waba_id]
            if not accounts:
                raise _GraphError(100, unknown_object("get", waba_id))
            token = bearer(request)
            if not any(has_token(token, a) for a in accounts):
                raise _GraphError(190)
            raw_limit = q.get("limit", "25")
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
                raise _GraphError(100, "Param limit must be a number between 1 and 1000.")
            fields = [f.strip() for f in q["fields"].split(",")] if q.get("fields") else None
            url = str(request.url.replace(query=""))
            try:
                return self.template_store.page(
                    waba_id,
                    url=url,
                    limit=int(raw_limit),
                    after=q.get("after"),
                    fields=fields,
                    status=q.get("status"),
                    name=q.get("name"),
                )
            except TemplateSendError as err:
                raise _GraphError(err.code, err.details) from None

        # Management calls belong to the WABA, not to one number.
        log = {"phone_number_id": None, "waba_id": waba_id, "method": "GET"}
        return await self._graph_answer(request, call, "Unknown path components.", log)

    async def change_template_status(self, spec: StatusChangeIn) -> dict[str, Any]:
        """Meta's review (or quality system) moves a template: the store changes and every
        business number of the WABA gets the `message_template_status_update` webhook."""
        changed = self.template_store.set_status(spec)
        if not changed:
            raise ControlError(404, f"no template {spec.name!r} on WABA {spec.waba_id}")
        statuses = []
        for account in [a for a in self.accounts.values() if a.waba_id == spec.waba_id]:
            for template in changed:
                payload = TemplateStore.status_webhook(spec.waba_id, template, spec.reason)
                delivery = await self._deliver(account, payload, "template", [template["id"]])
                statuses.append(delivery.first_status)
        return {"templates": changed, "webhook_statuses": statuses}

    # ---------------------------------------------------------------- Graph: validation

    def _validate(self, body: dict[str, Any]) -> tuple[str, Any, str]:
        """Check a send like Graph does; returns (type, type object, customer key)."""
        to, recipient = body.get("to"), body.get("recipient")
        if to is None and recipient is None:
            raise _GraphError(131008, "The parameter to is required.")
        if to is not None:
            if not isinstance(to, str):
                raise _GraphError(100, "Param to must be a string.")
            digits = to.translate(_PHONE_PUNCTUATION)
            if not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
                raise _GraphError(
                    131009, f"The phone number {to!r} is not a valid WhatsApp number."
                )
            key = digits
        else:
            if not isinstance(recipient, str) or not _BSUID.match(recipient):
                raise _GraphError(131009, "Param recipient must be a business-scoped user id.")
            key = recipient
        if body.get("recipient_type", "individual") not in ("individual", "group"):
            raise _GraphError(100, "Param recipient_type must be one of {INDIVIDUAL, GROUP}.")
        mtype = body.get("type", "text")  # Graph defaults a missing type to text
        if mtype not in _SEND_TYPES:
            raise _GraphError(
                100, f"Param type must be one of {{{', '.join(sorted(_SEND_TYPES)).upper()}}}."
            )
        obj = body.get(mtype)
        if mtype == "contacts":
            if not isinstance(obj, list) or not obj:
                raise _GraphError(131008, "The parameter contacts is required.")
            for card in obj:
                name = card.get("name") if isinstance(card, dict) else None
                if not isinstance(name, dict) or not name.get("formatted_name"):
                    raise _GraphError(
                        131008, "The parameter contacts['name']['formatted_name'] is required."
                    )
            return mtype, obj, key
        if not isinstance(obj, dict):
            raise _GraphError(131008, f"The parameter {mtype} is required.")
        context = body.get("context")
        if context is not None and not (
            isinstance(context, dict) and isinstance(context.get("message_id"), str)
        ):
            raise _GraphError(100, "Param context['message_id'] must be a message id.")
        opaque = body.get("biz_opaque_callback_data")
        if opaque is not None and (not isinstance(opaque, str) or len(opaque) > 512):
            raise _GraphError(
                100, "Param biz_opaque_callback_data must be a string of at most 512 characters."
            )
        if mtype == "text":
            self._check_text(obj)
        elif mtype in _MEDIA_TYPES:
            self._check_media(mtype, obj)
        elif mtype == "location":
            self._check_location(obj)
        elif mtype == "reaction":
            self._check_reaction(obj)
        elif mtype == "template":
            self._check_template(obj)
        elif mtype == "interactive":
            self._check_interactive(obj)
        return mtype, obj, key

    @staticmethod
    def _check_text(obj: dict[str, Any]) -> None:
        text = obj.get("body")
        if not isinstance(text, str) or not text:
            raise _GraphError(131008, "The parameter text['body'] is required.")
        if len(text) > 4096:
            raise _GraphError(100, "Param text['body'] must be at most 4096 characters long.")
        if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
            raise _GraphError(100, "Param text['preview_url'] must be a boolean.")

    @staticmethod
    def _check_media(mtype: str, obj: dict[str, Any]) -> None:
        has_id, link = isinstance(obj.get("id"), str), obj.get("link")
        if not has_id and link is None:
            raise _GraphError(
                131008, f"The parameter {mtype}['id'] or {mtype}['link'] is required."
            )
        if has_id and link is not None:
            raise _GraphError(100, f"Param {mtype} must have either id or link, not both.")
        if link is not None and not (
            isinstance(link, str) and link.startswith(("http://", "https://"))
        ):
            raise _GraphError(131009, f"Param {mtype}['link'] must be an http(s) URL.")
        caption = obj.get("caption")
        if caption is not None and (not isinstance(caption, str) or len(caption) > 1024):
            raise _GraphError(
                100, f"Param {mtype}['caption'] must be at most 1024 characters long."
            )

    @staticmethod
    def _check_location(obj: dict[str, Any]) -> None:
        for key in ("latitude", "longitude"):
            if not isinstance(obj.get(key), int | float | str):
                raise _GraphError(131008, f"The parameter location['{key}'] is required.")

    @staticmethod
    def _check_reaction(obj: dict[str, Any]) -> None:
        if not isinstance(obj.get("message_id"), str):
            raise _GraphError(131008, "The parameter reaction['message_id'] is required.")
        if not isinstance(obj.get("emoji", ""), str):
            raise _GraphError(100, "Param reaction['emoji'] must be a string.")

    def _check_template(self, obj: dict[str, Any]) -> None:
        name = obj.get("name")
        language = obj.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(name, str) or not name:
            raise _GraphError(131008, "The parameter template['name'] is required.")
        if not isinstance(code, str) or not code:
            raise _GraphError(131008, "The parameter template['language']['code'] is required.")
        if "components" in obj and not isinstance(obj["components"], list):
            raise _GraphError(100, "Param template['components'] must be an array.")
        templates = self.knobs.templates
        if templates is None:
            return
        spec = templates.get(name)
        if spec is None or code not in spec.languages:
            raise _GraphError(132001, f"template name ({name}) does not exist in {code}")
        if spec.status == "PAUSED":
            raise _GraphError(132015)
        if spec.status == "DISABLED":
            raise _GraphError(132016)
        if spec.status != "APPROVED":
            raise _GraphError(132001, f"template name ({name}) is not approved in {code}")

    @staticmethod
    def _check_interactive(obj: dict[str, Any]) -> None:
        """The limits from the interactive message pages
        (docs/channels/whatsapp.md#interactive-limits)."""
        itype = obj.get("type")
        if itype not in _INTERACTIVE_TYPES:
            raise _GraphError(100, "Param interactive['type'] is not a supported interactive type.")
        if itype not in ("button", "list"):
            return
        body = obj.get("body")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            raise _GraphError(131008, "The parameter interactive['body']['text'] is required.")
        footer = obj.get("footer")
        if isinstance(footer, dict) and len(str(footer.get("text", ""))) > 60:
            raise _GraphError(131009, "Footer text must be at most 60 characters.")
        action = obj.get("action")
        if not isinstance(action, dict):
            raise _GraphError(131008, "The parameter interactive['action'] is required.")
        if itype == "button":
            if len(text) > 1024:
                raise _GraphError(131009, "Body text must be at most 1024 characters.")
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                raise _GraphError(131009, "Reply buttons must number between 1 and 3.")
            titles = []
            for button in buttons:
                reply = button.get("reply") if isinstance(button, dict) else None
                if not isinstance(reply, dict):
                    raise _GraphError(131008, "Each button needs a reply object.")
                bid, title = str(reply.get("id", "")), str(reply.get("title", ""))
                if not bid or len(bid) > 256 or not title or len(title) > 20:
                    raise _GraphError(131009, "Button ids are 1-256 and titles 1-20 characters.")
                titles.append(title)
            if len(set(titles)) != len(titles):
                raise _GraphError(131009, "Button titles must be unique.")
            return
        if len(text) > 4096:
            raise _GraphError(131009, "Body text must be at most 4096 characters.")
        label = action.get("button")
        if not isinstance(label, str) or not label or len(label) > 20:
            raise _GraphError(131009, "The list button label must be 1-20 characters.")
        sections = action.get("sections")
        if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
            raise _GraphError(131009, "A list needs between 1 and 10 sections.")
        rows_total = 0
        for section in sections:
            rows = section.get("rows") if isinstance(section, dict) else None
            if not isinstance(rows, list) or not rows:
                raise _GraphError(131008, "Each section needs rows.")
            if len(str(section.get("title", ""))) > 24:
                raise _GraphError(131009, "Section titles must be at most 24 characters.")
            for row in rows:
                if not isinstance(row, dict):
                    raise _GraphError(131009, "Rows must be objects.")
                rid, title = str(row.get("id", "")), str(row.get("title", ""))
                if not rid or len(rid) > 200 or not title or len(title) > 24:
                    raise _GraphError(131009, "Row ids are 1-200 and titles 1-24 characters.")
                if len(str(row.get("description", ""))) > 72:
                    raise _GraphError(131009, "Row descriptions must be at most 72 characters.")
            rows_total += len(rows)
        if rows_total > 10:
            raise _GraphError(131009, "A list may have at most 10 rows in total.")

    # ---------------------------------------------------------------- Graph: media
    # (docs/channels/whatsapp.md#media-limits-and-downloads)

    async def _graph_upload(self, request: Request) -> Response:
        pnid = request.path_params["phone_number_id"]
        form = await read_form(request)

        async def call() -> dict[str, Any]:
            self._check_auth(pnid, request)
            if form is None:
                raise _GraphError(100, "The request must be multipart/form-data.")
            if form.get("messaging_product") != "whatsapp":
                raise _GraphError(
                    100, "The parameter messaging_product is required and must be 'whatsapp'."
                )
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise _GraphError(131008, "The parameter file is required.")
            declared = form.get("type")
            file_type = (upload.content_type or "").split(";")[0].strip().lower()
            mime = (declared if isinstance(declared, str) else file_type).split(";")[0].strip()
            if file_type and mime and file_type != mime.lower():
                raise _GraphError(131053, "The file's type does not match the type parameter.")
            limit = UPLOAD_LIMITS.get(mime.lower())
            if limit is None:
                raise _GraphError(131053, f"Unsupported file type {mime!r}.")
            data = upload.file.read(limit + 1)
            if len(data) > limit:
                raise _GraphError(131053, f"The file is larger than {limit} bytes for {mime}.")
            if not data:
                raise _GraphError(131053, "The file is empty.")
            item = self.media.add(pnid, mime.lower(), data, filename=upload.filename)
            return {"id": item.id}

        log = {
            "phone_number_id": pnid,
            "version": request.path_params["version"],
            "headers": _headers(request),
            "query": {},
            "body": form_view(form),
        }
        bad_path = f"Unknown path components: {request.url.path}"
        return await self._graph_answer(request, call, bad_path, log)

    def _media_account(self, request: Request, media_id: str) -> Any:
        item = self.media.get(media_id)
        if item is None:
            raise _GraphError(100, unknown_object("get", media_id))
        account = self.accounts.get(item.phone_number_id)
        if not has_token(bearer(request), account):
            raise _GraphError(190)
        return item

    async def _graph_media(self, request: Request) -> Response:
        media_id = request.path_params["media_id"]

        async def call() -> dict[str, Any]:
            item = self._media_account(request, media_id)
            if request.method == "DELETE":
                self.media.items.pop(media_id, None)
                return {"success": True}
            # The download URL points back at this simulator (Meta's: lookaside.fbsbx.com).
            base = str(request.url).split("?", 1)[0]
            base = base[: -len(request.url.path)] + request.scope.get("root_path", "")
            return {
                "messaging_product": "whatsapp",
                "url": self.media.url(base.rstrip("/"), item.id),
                "mime_type": item.mime_type,
                "sha256": item.sha256,
                "file_size": str(len(item.data)),
                "id": item.id,
            }

        bad_path = f"Unknown path components: {request.url.path}"
        return await self._graph_answer(request, call, bad_path)

    async def _media_download(self, request: Request) -> Response:
        q = request.query_params
        item = self.media.check_url(q.get("mid", ""), q.get("ext", ""), q.get("hash", ""))
        account = self.accounts.get(item.phone_number_id) if item else None
        # The bearer token is required; an expired URL or a wrong token fails with 404
        # (docs/channels/whatsapp.md#media-limits-and-downloads).
        if item is None or not has_token(bearer(request), account):
            return Response(b"", status_code=404)
        return Response(item.data, media_type=item.mime_type)

    @control
    async def _r_media(self, request: Request) -> Any:
        return [m.view() for m in self.media.items.values()]

    # ---------------------------------------------------------------- control routes

    def _routes(self) -> list[BaseRoute]:
        own: dict[str, tuple[Handler, Sequence[str]]] = {
            "inbound": (self._calls(InboundSpec, self.inbound), ["POST"]),
            "batch": (self._calls(BatchIn, self.batch), ["POST"]),
            "change_user": (self._calls(UserChangeIn, self.change_user), ["POST"]),
            "status": (self._r_status, ["POST"]),
            "stats": (self._r_stats, ["GET", "DELETE"]),
            "templates": (self._r_templates, ["GET", "POST"]),
            "templates/status": (
                self._calls(StatusChangeIn, self.change_template_status),
                ["POST"],
            ),
            "media": (self._r_media, ["GET"]),
        }
        return [
            *self._control_routes(own),
            Route("/{version}/{node}/messages", self._graph_messages, methods=["POST"]),
            Route("/{version}/{waba_id}/message_templates", self._graph_templates, methods=["GET"]),
            Route("/whatsapp_business/attachments/", self._media_download, methods=["GET", "HEAD"]),
            Route("/{version}/{phone_number_id}/media", self._graph_upload, methods=["POST"]),
            Route("/{version}/{media_id}", self._graph_media, methods=["GET", "DELETE"]),
        ]

    @control
    async def _r_status(self, request: Request) -> Any:
        spec = StatusIn.model_validate(await read_body(request))
        return await self.send_status(
            spec.phone_number_id, spec.message_id, spec.status, spec.error_code
        )

    @control
    async def _r_stats(self, request: Request) -> Any:
        """Webhook attempts per kind since the last reset (DELETE resets): answers by status
        code, transport errors, the answer latency's percentiles, items delivered and given
        up; and the statuses still waiting to be posted."""
        if request.method == "DELETE":
            self.webhooks.stats.reset()
        return {"webhooks": self.webhooks.stats.view(), "status_backlog": self._status_backlog}

    @control
    async def _r_templates(self, request: Request) -> Any:
        if request.method == "POST":
            return self.template_store.put(TemplateIn.model_validate(await read_body(request)))
        waba_id = request.query_params.get("waba_id", "")
        page = self.template_store.page(waba_id, url="", limit=1000, after=None, fields=None)
        return page["data"]


# The demo WhatsApp channel's business account (`bootstrap --demo`). The sandbox gives it a few
# approved templates, synced into Tidings when the sandbox starts, so a closed service window
# can be answered out of the box. Other WABAs (tests' own) start empty.
DEMO_WABA = "100000000000900"
DEMO_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "order_update",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} has shipped. Reply here with any question.",
            }
        ],
    },
    {
        "name": "appointment_reminder",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Reminder: your appointment is on {{1}} at {{2}}. Reply to change it.",
            }
        ],
    },
    {
        "name": "follow_up",
        "category": "MARKETING",
        "components": [
            {
                "type": "BODY",
                "text": "Hello {{1}}, we have an answer to your question. Reply to continue.",
            },
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
        ],
    },
]


class WhatsAppBinding(UrlBinding["WhatsAppSimulator", Any]):
    kind: ClassVar[str] = "whatsapp"

    def __init__(self, base_url: str, sim: WhatsAppSimulator) -> None:
        super().__init__(base_url, sim)
        # Control calls go straight to the simulator app; provider traffic uses real HTTP.
        self.control = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
        )

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c: Any = channel.config
        resp = await self.control.put(
            f"/_sim/accounts/{c.phone_number_id}",
            json={
                "access_token": c.access_token,
                "app_secret": c.app_secret,
                "verify_token": c.verify_token,
                "webhook_url": webhook_url,
                "display_phone_number": c.display_phone_number or "15550001111",
                # Template sync lists GET /{waba_id}/message_templates.
                "waba_id": c.waba_id,
            },
        )
        resp.raise_for_status()
        if c.waba_id == DEMO_WABA and not self.sim.template_store.knows(DEMO_WABA):
            for spec in DEMO_TEMPLATES:
                self.sim.template_store.put(TemplateIn(waba_id=DEMO_WABA, language="en", **spec))

    @staticmethod
    def _who(channel: ChannelInfo, user: str) -> tuple[str, str]:
        """(the channel's phone_number_id, the customer's wa_id: the phone page's digits)."""
        pnid = str(getattr(channel.config, "phone_number_id", ""))
        return pnid, "".join(ch for ch in user if ch.isdigit())

    async def age(self, channel: ChannelInfo, user: str, hours: float) -> None:
        """The simulated phone agrees: its 24 h window (131047) follows the same clock."""
        pnid, digits = self._who(channel, user)
        await self.control.post(
            "/_sim/window",
            json={"phone_number_id": pnid, "user": digits, "last_inbound_hours_ago": hours},
        )

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        digits = self._who(channel, user)[1]
        return await self._inbound(channel, user, {"name": name or digits, "text": text})

    async def _inbound(
        self, channel: ChannelInfo, user: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        pnid, digits = self._who(channel, user)
        resp = await self.control.post(
            "/_sim/inbound", json={"phone_number_id": pnid, "from": digits, **body}
        )
        result: dict[str, Any] = resp.json()
        return result

    async def typing(self, channel: ChannelInfo, user: str) -> bool:
        pnid, digits = self._who(channel, user)
        resp = await self.control.get("/_sim/customers", params={"phone_number_id": pnid})
        return any(bool(row.get("typing")) for row in resp.json() if row.get("wa_id") == digits)

    async def send_location(
        self, channel: ChannelInfo, user: str, name: str | None, place: PhoneLocation
    ) -> dict[str, Any]:
        location: dict[str, Any] = {"latitude": place.latitude, "longitude": place.longitude}
        if place.label:
            location["name"] = place.label
        return await self._inbound(
            channel, user, {"name": name or user, "type": "location", "location": location}
        )

    async def send_file(
        self, channel: ChannelInfo, user: str, name: str | None, file: PhoneFile
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name or user,
            "type": "image" if file.mime_type.startswith("image/") else "document",
            "mime_type": file.mime_type,
            "filename": file.filename,
            "media_b64": base64.b64encode(file.data).decode(),
        }
        if file.caption:
            body["text"] = file.caption
        return await self._inbound(channel, user, body)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversations(*self._who(channel, user))


SANDBOX = SandboxEntry(
    "whatsapp",
    lambda base: WhatsAppSimulator(),
    WhatsAppBinding,
    (
        DemoChannel(
            "whatsapp",
            "WhatsApp (sandbox)",
            lambda base: {
                "phone_number_id": "100000000000001",
                "display_phone_number": "15550001111",
                "access_token": secrets.token_urlsafe(24),
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(12),
                "api_base_url": base,
                # Its templates: the sandbox's demo set (DEMO_TEMPLATES), synced at start.
                "waba_id": DEMO_WABA,
            },
        ),
    ),
)
