"""A Messenger-platform simulator, shared by Messenger (`object: page`) and Instagram
(`object: instagram`): the Send API Tidings calls, and the webhooks Meta sends back.

Stateful: per (account, PSID/IGSID) the 24-hour window
and the 7-day HUMAN_AGENT extension; retired tags refused with code 100; outside the window
(10, 2018278); an echo (`is_echo`, `app_id`, `metadata`) for every outbound message; delivery
and read watermarks (Messenger) or `read.mid` seen events (Instagram); signed, ASCII-escaped
webhooks with retries, duplicates, batching and reordering on demand; failure injection with
the real Graph error envelope; the User Profile API (`GET /{version}/{PSID}?fields=…`) answers
with the name the customer was given. A JSON control API under `/_sim/` plays the customer
(`timestamp_format` writes an event's time in seconds, or seconds as a string, as some Meta
events do).

Facts: docs/providers/graph-api.md, docs/channels/messenger.md#protocol-facts,
docs/channels/instagram.md#protocol-facts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tidings.runtime import ChannelInfo
from tidings.simulators.kit import ControlError, DemoChannel, Handler, SandboxEntry, UrlBinding
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
    read_form,
    unknown_object,
)
from tidings.simulators.meta.webhooks import DeliveryKnobs

# Retired from 2026-04-27: requests using them get error code 100
# (docs/channels/messenger.md#messaging-window-and-tags).
RETIRED_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"})
_SENDER_ACTIONS = frozenset({"mark_seen", "typing_on", "typing_off", "react", "unreact"})
# Reaction names Messenger reports (docs/channels/messenger.md#inbound-events).
REACTIONS = {"love": "\u2764\ufe0f", "smile": "\U0001f606", "wow": "\U0001f62e"}
REACTIONS.update({"sad": "\U0001f622", "angry": "\U0001f620", "like": "\U0001f44d"})
_CDN_TYPES = {
    "image": ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64),
    "audio": ("audio/mp4", b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 64),
    "video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64),
    "file": ("application/pdf", b"%PDF-1.4\n%sim\n" + b"0" * 64),
    "sticker": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
}


@dataclass(frozen=True)
class ProductSpec:
    """What differs between Messenger and Instagram."""

    name: str  # log and task names
    object: str  # webhook `object`
    label: str
    text_max_chars: int | None
    text_max_bytes: int | None
    max_images: int
    attachment_types: frozenset[str]
    allowed_tags: frozenset[str]
    messaging_types: frozenset[str]
    # Messenger reports delivery + read watermarks; Instagram only `read` (messaging_seen)
    # with the mid seen, and no delivery receipts (docs/channels/instagram.md#inbound-events).
    receipts: tuple[str, ...]
    read_by_mid: bool
    # Messenger: 300 calls/s per Page; Instagram Login: 100/s per account
    # (docs/channels/messenger.md#rate-limits, docs/channels/instagram.md#rate-limits).
    rate_per_second: float
    max_file_bytes: int = 25 * 1024 * 1024


MESSENGER = ProductSpec(
    name="messenger",
    object="page",
    label="Messenger",
    text_max_chars=2000,
    text_max_bytes=None,
    max_images=30,
    attachment_types=frozenset({"audio", "file", "image", "video", "template"}),
    allowed_tags=frozenset({"HUMAN_AGENT", "CUSTOMER_FEEDBACK"}),
    messaging_types=frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG", "UTILITY"}),
    receipts=("delivered", "read"),
    read_by_mid=False,
    rate_per_second=300.0,
)
INSTAGRAM = ProductSpec(
    name="instagram",
    object="instagram",
    label="Instagram",
    text_max_chars=None,
    text_max_bytes=1000,
    max_images=10,
    attachment_types=frozenset(
        {"audio", "file", "image", "video", "template", "like_heart", "MEDIA_SHARE"}
    ),
    # Other Messenger tags are not available on Instagram
    # (docs/channels/instagram.md#window-and-tags).
    allowed_tags=frozenset({"HUMAN_AGENT"}),
    messaging_types=frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"}),
    receipts=("read",),
    read_by_mid=True,
    rate_per_second=100.0,
)


# --------------------------------------------------------------------------------------------
# Knobs and control bodies


class Knobs(DeliveryKnobs):
    """The webhook sender's knobs (retries, duplicates, timeout, escaping, history,
    `webhook_concurrency`) are `DeliveryKnobs`'."""

    model_config = ConfigDict(extra="forbid")
    enforce_window: bool = True
    window_hours: float = Field(24.0, gt=0)
    human_agent_hours: float = Field(168.0, gt=0)
    # Whether the app passed App Review for the Human Agent feature.
    human_agent_approved: bool = True
    # (10, 2018278) as on Messenger; Instagram client code has also seen 2534022
    # (docs/channels/instagram.md#sending).
    window_subcode: int = 2018278
    echoes: bool = True
    auto_receipts: list[Literal["delivered", "read"]] | None = None  # None = product default
    receipt_delay: float = Field(0.05, ge=0)
    rate_per_second: float | None = Field(None, gt=0)  # None = product default
    # Reaction sends produce no echo on Instagram (docs/channels/instagram.md#inbound-events); kept
    # as a knob.
    echo_reactions: bool = False


class AccountIn(base.AccountIn):
    app_id: str = "1517776481860111"
    # Instagram via a Facebook Page: sends go to the Page's id.
    page_id: str | None = None


class EventSpec(BaseModel):
    """One thing the customer does. `type`: text | attachments | quick_reply | postback |
    referral | reaction | unreact | edit | delete | unsupported | read | page_reply."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    account_id: str | None = None
    from_: str | None = Field(None, alias="from", pattern=r"^\d{5,20}$")
    name: str | None = None
    type: str = "text"
    text: str | None = None
    id: str | None = None
    timestamp: int | None = None  # ms
    # How the webhook writes it: Meta sends ms in most events but seconds, sometimes as a
    # string, in others (the App Dashboard's test sample, the postback reference).
    timestamp_format: Literal["ms", "seconds", "seconds_string"] = "ms"
    reply_to: str | None = None
    attachments: list[dict[str, Any]] | None = None
    payload: str | None = None
    title: str | None = None
    referral: dict[str, Any] | None = None
    mid: str | None = None  # reaction/edit/delete target
    reaction: str | None = None
    standby: bool = False


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: str
    events: list[EventSpec]
    # Deliver the elements in a random order (Meta does not guarantee order,
    # docs/providers/graph-api.md#batching-retries-and-order).
    shuffle: bool = False
    # One entry per element instead of one entry holding them all.
    split_entries: bool = False


class FailIn(base.FailIn):
    subcode: int | None = None
    message: str | None = None


# --------------------------------------------------------------------------------------------
# State


@dataclass
class Account(MetaAccount):
    app_id: str
    page_id: str | None

    def public(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "page_id": self.page_id,
            "app_id": self.app_id,
            "webhook_url": self.webhook_url,
        }


@dataclass
class Customer:
    psid: str
    name: str | None = None
    last_inbound: float | None = None  # seconds
    typing: bool = False


@dataclass
class SimMessage:
    mid: str
    direction: Literal["in", "out"]
    account_id: str
    user: str
    text: str | None
    content: Any
    timestamp: int  # ms
    status: str
    seq: int
    source: str = "customer"  # customer | api | page_inbox
    reactions: list[str] = field(default_factory=list)
    metadata: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.mid,
            "user": self.user,
            "direction": self.direction,
            "text": self.text,
            "content": self.content,
            "timestamp": self.timestamp,
            "status": self.status,
            "source": self.source,
            "reactions": self.reactions,
        }


class _GraphError(GraphError):
    def __init__(
        self,
        code: int,
        message: str,
        subcode: int | None = None,
        *,
        http_status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code, http_status, headers)
        self.message, self.subcode = message, subcode

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": fbtrace_id(),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}


def _window_error(subcode: int) -> _GraphError:
    return _GraphError(10, "(#10) This message is sent outside of allowed window.", subcode)


def _param(message: str) -> _GraphError:
    return _GraphError(100, f"(#100) {message}")


class MessagingSimulator(MetaSimulator[Knobs, Account]):
    """In-memory Messenger or Instagram. `.app` is the ASGI app; public coroutines are what the
    control routes call."""

    account_type = Account
    account_model: ClassVar[type[base.AccountIn]] = AccountIn
    fail_model: ClassVar[type[base.FailIn]] = FailIn

    def __init__(
        self,
        product: ProductSpec,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        cdn_base_url: str = "",
    ) -> None:
        super().__init__(product.name, Knobs(), http=http, clock=clock)
        self.product = product
        self.customers: dict[tuple[str, str], Customer] = {}
        self.messages: dict[str, SimMessage] = {}
        self.cdn: dict[str, tuple[str, bytes]] = {}
        self.cdn_base_url = cdn_base_url.rstrip("/")
        # Attachment Upload API: attachment_id -> the uploaded file
        # (docs/channels/messenger.md#attachment-upload, docs/channels/instagram.md#media-formats).
        self.uploads: dict[str, dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self.app = self._build_app(self._routes())

    async def reset(self, *, accounts: bool = False) -> None:
        await super().reset(accounts=accounts)
        self.customers.clear()
        self.messages.clear()

    # ---------------------------------------------------------------- control: set-up

    def _account_extra(self, account_id: str, spec: AccountIn) -> dict[str, Any]:
        return {"app_id": spec.app_id, "page_id": spec.page_id}

    def _find_customer(self, account_id: str, user: str) -> Customer | None:
        return self.customers.get((account_id, user))

    def _window_view(self, customer: Customer) -> dict[str, Any]:
        return {"user": customer.psid, "window": self._window(customer)}

    # ---------------------------------------------------------------- ids

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _new_mid(self) -> str:
        if self.product.object == "instagram":
            # IG mids are long opaque base64-like strings
            # (docs/channels/instagram.md#inbound-events).
            raw = b"ig_msg:" + secrets.token_bytes(48)
            return base64.b64encode(raw).decode().rstrip("=")
        return "m_" + secrets.token_urlsafe(40)

    # ---------------------------------------------------------------- control: the customer

    def _customer(self, account_id: str, psid: str) -> Customer:
        customer = self.customers.get((account_id, psid))
        if customer is None:
            customer = Customer(psid)
            self.customers[(account_id, psid)] = customer
        return customer

    def _keep(
        self,
        mid: str,
        direction: Literal["in", "out"],
        account: Account,
        user: str,
        text: str | None,
        content: Any,
        ts: int,
        source: str = "customer",
    ) -> SimMessage:
        """A message of the thread, stored as `sent`."""
        message = SimMessage(
            mid, direction, account.account_id, user, text, content, ts, "sent", next(self._seq)
        )
        message.source = source
        self.messages[mid] = message
        return message

    def _cdn_url(self, kind: str) -> str:
        asset = secrets.token_hex(12)
        self.cdn[asset] = _CDN_TYPES.get(kind, _CDN_TYPES["file"])
        return f"{self.cdn_base_url}/cdn/{asset}?oh=sim&oe={int(self._clock()) + 3600:x}"

    def _element(self, account: Account, spec: EventSpec) -> dict[str, Any]:
        """One `messaging[]` element for what the customer (or the Page inbox) did
        (docs/channels/messenger.md#inbound-events, docs/channels/instagram.md#inbound-events)."""
        if spec.from_ is None:
            raise ControlError(422, "`from` (the PSID/IGSID, digits) is required")
        customer = self._customer(account.account_id, spec.from_)
        if spec.name:
            customer.name = spec.name
        ts = spec.timestamp if spec.timestamp is not None else self._now_ms()
        written: int | str = ts
        if spec.timestamp_format != "ms":
            written = ts // 1000 if spec.timestamp_format == "seconds" else str(ts // 1000)
        base: dict[str, Any] = {
            "sender": {"id": spec.from_},
            "recipient": {"id": account.account_id},
            "timestamp": written,
        }
        kind = spec.type
        opens_window = True
        if kind in ("text", "attachments", "quick_reply", "unsupported"):
            mid = spec.id or self._new_mid()
            message: dict[str, Any] = {"mid": mid}
            if kind == "unsupported":
                message["is_unsupported"] = True
            if spec.text is not None:
                message["text"] = spec.text
            elif kind == "text":
                raise ControlError(422, "a text message needs `text`")
            if kind == "quick_reply":
                message["quick_reply"] = {"payload": spec.payload or "QUICK_REPLY"}
            if kind == "attachments":
                message["attachments"] = [
                    a
                    if isinstance(a.get("payload"), dict)
                    else {
                        "type": a.get("type", "image"),
                        "payload": {"url": self._cdn_url(str(a.get("type", "image")))},
                    }
                    for a in (spec.attachments or [{"type": "image"}])
                ]
            if spec.reply_to:
                message["reply_to"] = {"mid": spec.reply_to}
            if spec.referral:
                message["referral"] = spec.referral
            base["message"] = message
            if mid not in self.messages:
                self._keep(mid, "in", account, spec.from_, spec.text, message, ts)
        elif kind == "page_reply":
            # The business wrote from another inbox (Page inbox, IG app): an echo only.
            mid = spec.id or self._new_mid()
            base["sender"], base["recipient"] = {"id": account.account_id}, {"id": spec.from_}
            echo = {
                "mid": mid,
                "is_echo": True,
                "app_id": 263902037430900,
                "text": spec.text or "",
            }
            base["message"] = echo
            self._keep(mid, "out", account, spec.from_, spec.text, echo, ts, "page_inbox")
            opens_window = False
        elif kind == "postback":
            postback: dict[str, Any] = {
                "mid": spec.id or self._new_mid(),
                "title": spec.title or spec.text or "Get Started",
                "payload": spec.payload or "GET_STARTED",
            }
            if spec.referral:
                postback["referral"] = spec.referral
            base["postback"] = postback
        elif kind == "referral":
            base["referral"] = spec.referral or {
                "ref": "sim",
                "source": "SHORTLINK",
                "type": "OPEN_THREAD",
            }
        elif kind in ("reaction", "unreact"):
            target = self.messages.get(spec.mid or "")
            if target is None:
                raise ControlError(404, f"no message {spec.mid!r} to react to")
            reaction: dict[str, Any] = {
                "mid": target.mid,
                "action": "react" if kind == "reaction" else "unreact",
            }
            if kind == "reaction":
                name = spec.reaction or "love"
                reaction["reaction"] = name
                reaction["emoji"] = REACTIONS.get(name, name)
                target.reactions.append(reaction["emoji"])
            elif target.reactions:
                target.reactions.pop()
            base["reaction"] = reaction
        elif kind in ("edit", "delete"):
            target = self.messages.get(spec.mid or "")
            if target is None or target.direction != "in":
                raise ControlError(404, f"no customer message {spec.mid!r} to {kind}")
            if kind == "edit":
                target.text = spec.text
                base["message_edit"] = {"mid": target.mid, "text": spec.text or "", "num_edit": 1}
            else:
                target.text = None
                base["message"] = {"mid": target.mid, "is_deleted": True}
            opens_window = False
        elif kind == "read":
            opens_window = False
            outs = [
                m
                for m in self.messages.values()
                if m.direction == "out"
                and m.user == spec.from_
                and m.account_id == account.account_id
            ]
            for m in outs:
                m.status = "read"
            if self.product.read_by_mid:
                last = max(outs, key=lambda m: m.seq).mid if outs else spec.mid or ""
                base["read"] = {"mid": last}
            else:
                base["read"] = {"watermark": ts}
        else:
            raise ControlError(422, f"unknown event type {kind!r}")
        if opens_window:
            # A message, postback, referral or reaction opens/renews the 24 h window
            # (docs/channels/messenger.md#messaging-window-and-tags).
            customer.last_inbound = max(customer.last_inbound or 0.0, ts / 1000.0)
        return base

    def _envelope(
        self, account: Account, elements: list[dict[str, Any]], standby: bool = False
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": account.account_id, "time": self._now_ms()}
        entry["standby" if standby else "messaging"] = elements
        return {"object": self.product.object, "entry": [entry]}

    async def inbound(self, spec: EventSpec) -> dict[str, Any]:
        account = self._account(spec.account_id or "")
        element = self._element(account, spec)
        result = await self._post(
            account, self._envelope(account, [element], spec.standby), "event", []
        )
        message = element.get("message") or element.get("postback") or {}
        result["id"] = message.get("mid")
        return result

    async def batch(self, spec: BatchIn) -> dict[str, Any]:
        account = self._account(spec.account_id)
        elements = [self._element(account, e) for e in spec.events]
        if spec.shuffle:
            random.shuffle(elements)
        if spec.split_entries:
            payload = {
                "object": self.product.object,
                "entry": [
                    {"id": account.account_id, "time": self._now_ms(), "messaging": [e]}
                    for e in elements
                ],
            }
        else:
            payload = self._envelope(account, elements)
        result = await self._post(account, payload, "batch", [])
        result["ids"] = [(e.get("message") or e.get("postback") or {}).get("mid") for e in elements]
        return result

    # ---------------------------------------------------------------- reading state

    def conversations(self, account_id: str, user: str | None = None) -> list[dict[str, Any]]:
        thread = sorted(
            (
                m
                for m in self.messages.values()
                if m.account_id == account_id and (user is None or m.user == user)
            ),
            key=lambda m: (m.timestamp, m.seq),
        )
        return [m.view() for m in thread]

    def customer_list(self, account_id: str) -> list[dict[str, Any]]:
        return [
            {"user": c.psid, "name": c.name, "window": self._window(c), "typing": c.typing}
            for (acct, _), c in self.customers.items()
            if acct == account_id
        ]

    # ---------------------------------------------------------------- window

    def _window(self, customer: Customer) -> str:
        """standard | human_agent | closed"""
        if customer.last_inbound is None:
            return "closed"
        age = self._clock() - customer.last_inbound
        if age < self.knobs.window_hours * 3600:
            return "standard"
        if age < self.knobs.human_agent_hours * 3600:
            return "human_agent"
        return "closed"

    # ---------------------------------------------------------------- Graph: Send API

    def _account_for_path(self, node: str, request: Request) -> Account:
        token = bearer(request)
        if not token:
            raise _GraphError(
                190,
                "An active access token must be used to query information about the current user.",
                http_status=400,
            )
        candidates = list(self.accounts.values())
        if node != "me":
            candidates = [a for a in candidates if node in (a.account_id, a.page_id)]
            if not candidates:
                raise _GraphError(100, unknown_object("post", node))
        for account in candidates:
            if has_token(token, account):
                return account
        raise _GraphError(
            190, "Error validating access token: The session is invalid.", http_status=400
        )

    def _bad_path(self, message: str) -> GraphError:
        return _param(message)

    def _failure_error(self, failure: FailIn, code: int) -> GraphError:
        message = failure.message or f"(#{code}) Simulated failure"
        status = failure.http_status or (500 if code in (1, 2) else 400)
        return _GraphError(code, message, failure.subcode, http_status=status)

    async def _send(self, node: str, request: Request, body: Any) -> dict[str, Any]:
        account = self._account_for_path(node, request)
        await self._next_failure()
        if not isinstance(body, dict):
            raise _param("The request body must be a JSON object.")
        self._check_rate(account)
        recipient = body.get("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str) or not psid:
            raise _param("param recipient must be non-empty.")
        customer = self.customers.get((account.account_id, psid))
        if customer is None:
            raise _GraphError(100, "(#100) No matching user found", 2018001)
        action = body.get("sender_action")
        if action is not None:
            return self._sender_action(account, customer, body, action)
        message = body.get("message")
        if not isinstance(message, dict):
            raise _param("param message must be non-empty.")
        self._check_window(body, customer)
        text = self._check_message(message)
        mid = self._new_mid()
        ts = self._now_ms()
        metadata = message.get("metadata")
        sim = self._keep(mid, "out", account, psid, text, message, ts, "api")
        sim.metadata = metadata if isinstance(metadata, str) else None
        customer.typing = False
        self.tasks.spawn(self._after_send(account, sim), f"{self.product.name}-receipts-{mid}")
        return {"recipient_id": psid, "message_id": mid}

    def _check_rate(self, account: Account) -> None:
        limit = self.knobs.rate_per_second or self.product.rate_per_second
        if self._over_rate(account.account_id, limit):
            raise _GraphError(613, "(#613) Calls to this api have exceeded the rate limit.")

    def _check_window(self, body: dict[str, Any], customer: Customer) -> None:
        mtype = body.get("messaging_type")
        if mtype is None:
            raise _param("The parameter messaging_type is required.")
        if mtype not in self.product.messaging_types:
            raise _param(
                f"Param messaging_type must be one of {sorted(self.product.messaging_types)}."
            )
        tag = body.get("tag")
        if mtype == "MESSAGE_TAG":
            if tag in RETIRED_TAGS:
                # Retired on 2026-04-27 (docs/channels/messenger.md#messaging-window-and-tags).
                raise _param(
                    f"The {tag} tag is no longer supported. Use utility templates instead."
                )
            if tag not in self.product.allowed_tags:
                raise _param(f"Param tag must be one of {sorted(self.product.allowed_tags)}.")
        elif tag is not None:
            raise _param("Param tag requires messaging_type MESSAGE_TAG.")
        if not self.knobs.enforce_window:
            return
        window = self._window(customer)
        if window == "standard":
            return
        if mtype == "MESSAGE_TAG" and tag == "HUMAN_AGENT" and window == "human_agent":
            if not self.knobs.human_agent_approved:
                raise _GraphError(
                    10,
                    "(#10) Application does not have the capability to make this API call.",
                    2018278,
                )
            return
        if mtype == "MESSAGE_TAG" and tag == "CUSTOMER_FEEDBACK" and window == "human_agent":
            return
        raise _window_error(self.knobs.window_subcode)

    def _check_message(self, message: dict[str, Any]) -> str | None:
        text = message.get("text")
        attachment = message.get("attachment")
        attachments = message.get("attachments")
        given = [k for k in ("text", "attachment", "attachments") if message.get(k) is not None]
        if len(given) != 1:
            raise _param("Message must contain exactly one of text, attachment or attachments.")
        if text is not None:
            if not isinstance(text, str) or not text:
                raise _param("param message[text] must be a non-empty UTF-8 string.")
            max_chars, max_bytes = self.product.text_max_chars, self.product.text_max_bytes
            if max_chars is not None and len(text) >= max_chars:
                raise _param(
                    f"param message[text] must be UTF-8 encoded and under {max_chars} characters."
                )
            if max_bytes is not None and len(text.encode()) > max_bytes:
                raise _param(
                    f"Length of param message[text] must be less than or equal to {max_bytes}"
                )
        items = [attachment] if attachment is not None else attachments
        if items is not None:
            if not isinstance(items, list) or not items:
                raise _param("param message[attachments] must be a non-empty array.")
            if len(items) > 1 and len(items) > self.product.max_images:
                raise _param(f"At most {self.product.max_images} attachments may be sent at once.")
            for item in items:
                self._check_attachment(item, several=len(items) > 1)
        quick = message.get("quick_replies")
        if quick is not None:
            if not isinstance(quick, list) or not 1 <= len(quick) <= 13:
                raise _param("param message[quick_replies] must have between 1 and 13 items.")
            for q in quick:
                if not isinstance(q, dict) or q.get("content_type") not in (
                    "text",
                    "user_phone_number",
                    "user_email",
                ):
                    raise _param("Each quick reply needs a valid content_type.")
                if q["content_type"] == "text":
                    title, payload = q.get("title"), q.get("payload")
                    if not isinstance(title, str) or not 0 < len(title) <= 20:
                        raise _param("Quick reply titles must be 1-20 characters.")
                    if not isinstance(payload, str | int) or len(str(payload)) > 1000:
                        raise _param("Quick reply payloads must be at most 1000 characters.")
        metadata = message.get("metadata")
        if metadata is not None and (not isinstance(metadata, str) or len(metadata) >= 1000):
            raise _param("param message[metadata] must be a string under 1000 characters.")
        return text if isinstance(text, str) else None

    def _check_attachment(self, item: Any, *, several: bool) -> None:
        if not isinstance(item, dict):
            raise _param("Each attachment must be an object.")
        atype = item.get("type")
        if atype not in self.product.attachment_types:
            raise _param(
                "param message[attachment][type] must be one of "
                f"{sorted(self.product.attachment_types)}."
            )
        if several and atype != "image":
            raise _param("Only images can be sent several at a time.")
        if atype == "like_heart":
            return
        payload = item.get("payload")
        if not isinstance(payload, dict):
            raise _param("param message[attachment][payload] is required.")
        if atype == "template":
            return
        url, attachment_id = payload.get("url"), payload.get("attachment_id")
        if atype == "MEDIA_SHARE":
            if not isinstance(payload.get("id"), str):
                raise _param("A media share needs the id of one of the account's posts.")
            return
        if (url is None) == (attachment_id is None):
            raise _param("An attachment payload needs exactly one of url or attachment_id.")
        if attachment_id is not None and str(attachment_id) not in self.uploads:
            # Meta does not document the error for an unknown attachment id; the simulator answers
            # Graph's generic invalid parameter (docs/providers/graph-api.md#graph-errors).
            raise _param("param message[attachment][payload][attachment_id] is not valid.")
        if url is not None and not (
            isinstance(url, str) and url.startswith(("http://", "https://"))
        ):
            raise _param("param message[attachment][payload][url] must be a valid URL.")

    def _sender_action(
        self, account: Account, customer: Customer, body: dict[str, Any], action: Any
    ) -> dict[str, Any]:
        # Sender actions go alone with the recipient (docs/channels/messenger.md#send-api).
        if action not in _SENDER_ACTIONS:
            raise _param(f"param sender_action must be one of {sorted(_SENDER_ACTIONS)}.")
        if "message" in body:
            raise _param("sender_action cannot be sent with a message.")
        if action in ("react", "unreact"):
            payload = body.get("payload")
            target_id = payload.get("message_id") if isinstance(payload, dict) else None
            target = self.messages.get(target_id) if isinstance(target_id, str) else None
            if target is None or target.account_id != account.account_id:
                raise _param("param payload[message_id] must be a message in this thread.")
            if action == "react":
                reaction = payload.get("reaction") if isinstance(payload, dict) else None
                if not isinstance(reaction, str) or not reaction:
                    raise _param("param payload[reaction] is required.")
                target.reactions.append(f"page:{reaction}")
            else:
                target.reactions = [r for r in target.reactions if not r.startswith("page:")]
        elif action in ("typing_on", "typing_off"):
            customer.typing = action == "typing_on"
        elif action == "mark_seen":
            for m in self.messages.values():
                if (
                    m.direction == "in"
                    and m.user == customer.psid
                    and m.account_id == account.account_id
                ):
                    m.status = "read"
        return {"recipient_id": customer.psid}

    async def _after_send(self, account: Account, message: SimMessage) -> None:
        """The echo, then the receipts, each as its own signed webhook."""
        if self.knobs.echoes:
            await asyncio.sleep(self.knobs.receipt_delay)
            echo: dict[str, Any] = {
                "mid": message.mid,
                "is_echo": True,
                "app_id": int(account.app_id) if account.app_id.isdigit() else account.app_id,
            }
            if message.metadata is not None:
                echo["metadata"] = message.metadata
            content = message.content if isinstance(message.content, dict) else {}
            for key in ("text", "attachments", "quick_replies"):
                if key in content:
                    echo[key] = content[key]
            if "attachment" in content:
                echo["attachments"] = [content["attachment"]]
            element = {
                "sender": {"id": account.account_id},
                "recipient": {"id": message.user},
                "timestamp": message.timestamp,
                "message": echo,
            }
            await self._post(account, self._envelope(account, [element]), "echo", [message.mid])
        receipts = self.knobs.auto_receipts
        if receipts is None:
            receipts = [r for r in ("delivered", "read") if r in self.product.receipts]
        for receipt in receipts:
            if receipt not in self.product.receipts:
                continue
            await asyncio.sleep(self.knobs.receipt_delay)
            mark = self._now_ms()
            element = {
                "sender": {"id": message.user},
                "recipient": {"id": account.account_id},
                "timestamp": mark,
            }
            if receipt == "delivered":
                message.status = "delivered"
                element["delivery"] = {"mids": [message.mid], "watermark": mark}
            elif self.product.read_by_mid:
                message.status = "read"
                element["read"] = {"mid": message.mid}
            else:
                message.status = "read"
                element["read"] = {"watermark": mark}
            await self._post(account, self._envelope(account, [element]), receipt, [message.mid])

    # ---------------------------------------------------------------- CDN (inbound media)

    async def _cdn(self, request: Request) -> Response:
        # Meta CDN URLs are fetched without a token and expire
        # (docs/channels/messenger.md#attachment-upload).
        item = self.cdn.get(request.path_params["asset"])
        if item is None:
            return Response(b"URL signature expired", status_code=403, media_type="text/plain")
        mime, data = item
        return Response(data, media_type=mime)

    # ---------------------------------------------------------------- routes

    def _routes(self) -> list[BaseRoute]:
        own: dict[str, tuple[Handler, Sequence[str]]] = {
            "inbound": (self._calls(EventSpec, self.inbound), ["POST"]),
            "batch": (self._calls(BatchIn, self.batch), ["POST"]),
            "attachments": (self._r_attachments, ["GET"]),
        }
        return [
            *self._control_routes(own),
            Route("/cdn/{asset}", self._cdn, methods=["GET"]),
            Route("/{version}/{node}/messages", self._graph_messages, methods=["POST"]),
            Route(
                "/{version}/{node}/message_attachments",
                self._graph_attachment_upload,
                methods=["POST"],
            ),
            # Last: `/{version}/{node}` would otherwise shadow the two-segment routes above.
            Route("/{version}/{node}", self._graph_profile, methods=["GET"]),
        ]

    # ---------------------------------------------------------------- User Profile API

    async def _graph_profile(self, request: Request) -> Response:
        """`GET /{version}/{PSID}?fields=first_name,last_name,profile_pic` (Messenger) or
        `GET /{version}/{IGSID}?fields=name,username,profile_pic` (Instagram), with the token of
        the account the customer wrote to: the name the customer was given (the phone page's
        name); only the fields asked for, and only those known."""
        version = request.path_params["version"]
        node = request.path_params["node"]

        async def call() -> dict[str, Any]:
            account = self._account_for_path("me", request)
            customer = self.customers.get((account.account_id, node))
            if customer is None:
                raise _GraphError(100, unknown_object("get", node), 33)
            asked = {f.strip() for f in request.query_params.get("fields", "").split(",") if f}
            first, _, last = (customer.name or "").partition(" ")
            known: dict[str, str | None] = {
                "first_name": first or None,
                "last_name": last or None,
                "name": customer.name,
                # Instagram handles: lower case, no spaces (the simulator's stand-in).
                "username": "_".join((customer.name or "").lower().split()) or None,
                "profile_pic": f"{self.cdn_base_url}/cdn/profile-{node}",
            }
            allowed = (
                {"first_name", "last_name", "profile_pic", "name"}
                if self.product.object == "page"
                else {"name", "username", "profile_pic"}
            )
            body: dict[str, Any] = {"id": node}
            for name in sorted(asked & allowed):
                if known.get(name):
                    body[name] = known[name]
            return body

        bad_path = f"Unknown path components: /{version}/{node}"
        return await self._graph_answer(request, call, bad_path)

    # ---------------------------------------------------------------- Attachment Upload API

    async def _graph_attachment_upload(self, request: Request) -> Response:
        """`POST /{page-id}/message_attachments` (docs/channels/messenger.md#attachment-upload;
        Instagram through a Facebook Page with `platform=instagram`,
        docs/channels/instagram.md#media-formats): multipart `message={"attachment": {"type":
        ..., "payload": {"is_reusable": true}}}` + `filedata` -> `{"attachment_id": ...}`."""
        node = request.path_params["node"]
        form = await read_form(request)

        async def call() -> dict[str, Any]:
            account = self._account_for_path(node, request)
            if form is None:
                raise _param("The request must be multipart/form-data with message and filedata.")
            if self.product is INSTAGRAM:
                # Only the Facebook Login flavour has the upload API
                # (docs/channels/instagram.md#media-formats).
                if account.page_id is None or node != account.page_id:
                    raise _param("Attachment upload goes to the Facebook Page of the account.")
                if form.get("platform") != "instagram":
                    raise _param("param platform must be 'instagram'.")
            try:
                spec = json.loads(str(form.get("message") or ""))
                atype = spec["attachment"]["type"]
            except (ValueError, KeyError, TypeError):
                raise _param("param message[attachment][type] is required.") from None
            if atype not in ("image", "audio", "video", "file"):
                raise _param("param message[attachment][type] must be image, audio, video or file.")
            upload = form.get("filedata")
            if upload is None or isinstance(upload, str):
                raise _param("param filedata is required.")
            limit = self.product.max_file_bytes
            if self.product is INSTAGRAM and atype == "image":
                # Instagram images: 8 MB (docs/channels/instagram.md#media-formats)
                limit = 8 * 1024 * 1024
            data = upload.file.read(limit + 1)
            if not data or len(data) > limit:
                raise _param(f"The file must be between 1 byte and {limit} bytes.")
            attachment_id = str(secrets.randbelow(9 * 10**15) + 10**15)
            self.uploads[attachment_id] = {
                "attachment_id": attachment_id,
                "account_id": account.account_id,
                "type": atype,
                "mime_type": (upload.content_type or "").split(";")[0].strip(),
                "filename": upload.filename,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            return {"attachment_id": attachment_id}

        log = {"node": node, "query": {}, "body": form_view(form)}
        return await self._graph_answer(request, call, "Unknown path components.", log)

    @control
    async def _r_attachments(self, request: Request) -> Any:
        return list(self.uploads.values())

    def sent(self, node: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if node is None or r["node"] in (node, "me") or self._page_of(node) == r["node"]
        ]

    def _page_of(self, account_id: str) -> str | None:
        account = self.accounts.get(account_id)
        return account.page_id if account else None


# --------------------------------------------------------------------------------------------
# Sandbox binding


def psid_for(user: str) -> str:
    """The phone page lets people type any name; PSIDs/IGSIDs are numeric strings."""
    text = user.strip()
    if text.isascii() and text.isdigit() and 5 <= len(text) <= 20:
        return text
    digest = hashlib.sha256(text.encode()).digest()
    return str(10**15 + int.from_bytes(digest[:8], "big") % (9 * 10**15))


class MessagingBinding(UrlBinding[MessagingSimulator, Any]):
    """Connects sandbox channels of one kind to a MessagingSimulator (see simulators.sandbox).
    The channel config names its account (`page_id`, or `instagram_account_id`) and points
    `api_base_url` at the simulator."""

    kind: ClassVar[str] = ""
    account_field: ClassVar[str] = "page_id"
    token_field: ClassVar[str] = "page_access_token"  # noqa: S105 (a field name)

    def _account_id(self, channel: ChannelInfo) -> str:
        return str(getattr(channel.config, self.account_field))

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c: Any = channel.config
        secret = getattr(c, "signing_secret", None) or c.app_secret
        await self.sim.register_account(
            self._account_id(channel),
            AccountIn(
                access_token=getattr(c, self.token_field),
                app_secret=secret,
                verify_token=c.verify_token,
                webhook_url=webhook_url,
                page_id=getattr(c, "page_id", None) if self.account_field != "page_id" else None,
            ),
        )

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        spec = EventSpec.model_validate(
            {
                "account_id": self._account_id(channel),
                "from": psid_for(user),
                "name": name,
                "text": text,
            }
        )
        return await self.sim.inbound(spec)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversations(self._account_id(channel), psid_for(user))


def sandbox_entry(
    product: ProductSpec, binding: type[MessagingBinding], account_id: str, **config: Any
) -> SandboxEntry:
    """A product's sandbox entry (`/sandbox/{name}`) and its demo channel on `account_id`,
    with the product's own channel settings in `config`."""

    def demo(base: str) -> dict[str, Any]:
        return {
            **config,
            binding.account_field: account_id,
            binding.token_field: secrets.token_urlsafe(24),
            "app_secret": secrets.token_hex(16),
            "verify_token": secrets.token_urlsafe(12),
            "human_agent": True,
            "api_base_url": base,
        }

    return SandboxEntry(
        product.name,
        lambda base: MessagingSimulator(product, cdn_base_url=base),
        binding,
        (DemoChannel(product.name, f"{product.label} (sandbox)", demo),),
    )
