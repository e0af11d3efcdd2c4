"""Viber callbacks: signature check, one event per request, events → canonical events.

Facts (docs/channels/viber.md, "Callbacks"): Viber POSTs one JSON object per callback, signed
with `X-Viber-Content-Signature` = lowercase hex HMAC-SHA256(auth token, raw body). There is no
redelivery flag, so a retried callback is recognised by its event and `message_token` (plus the
user for receipts, which carry the token of *our* message). `message_token` is a 64-bit integer
sent as a bare JSON number above 2^53: orjson reads it as an exact `int`, and it is kept as a
decimal string from there on, never passed through a float.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

from tidings.channels.base import RawEvent, WebhookRequest, check_secret
from tidings.channels.base import nonempty_str as _str
from tidings.domain.enums import ConsentStatus, InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    ReceiptWatermark,
    Sender,
    StatusUpdate,
)
from tidings.domain.phones import to_e164

SIGNATURE_HEADER = "x-viber-content-signature"
RECEIPTS = frozenset({"delivered", "seen", "failed"})

# Inbound media message types: our attachment kind and the usual MIME type.
_MEDIA: dict[str, tuple[str, str | None]] = {
    "picture": ("image", "image/jpeg"),
    "video": ("video", "video/mp4"),
    "file": ("document", None),
    "sticker": ("sticker", "image/png"),
}


def signature(auth_token: str, body: bytes) -> str:
    return hmac.new(auth_token.encode(), body, hashlib.sha256).hexdigest()


def verify(auth_token: str, request: WebhookRequest) -> None:
    # On the raw bytes as received (docs/channels/viber.md).
    check_secret(
        request.headers.get(SIGNATURE_HEADER, "").strip().lower(),
        signature(auth_token, request.body),
        "missing X-Viber-Content-Signature header",
        "X-Viber-Content-Signature does not match the body",
    )


def token_of(value: Any) -> str | None:
    """`message_token` as a decimal string. Only an exact integer (or its decimal string) is
    accepted: a float would already have lost the low digits of a 64-bit token."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    return None


def _when(doc: dict[str, Any]) -> datetime | None:
    ts = doc.get("timestamp")
    if isinstance(ts, int) and not isinstance(ts, bool) and 0 < ts < 10**14:
        return datetime.fromtimestamp(ts / 1000, UTC)
    return None


def _load(body: bytes) -> dict[str, Any]:
    # Not JSON at all: orjson's ValueError is answered 400 by the webhook endpoint.
    doc = orjson.loads(body)
    if not isinstance(doc, dict):
        raise PayloadError("a Viber callback is a JSON object")
    if not isinstance(doc.get("event"), str) or not doc["event"]:
        raise PayloadError("callback has no event")
    return doc


def _person(doc: dict[str, Any]) -> Sender | None:
    """Whom the callback is about: its `sender` or `user` (with a name), else its `user_id`."""
    for field in ("sender", "user"):
        person = doc.get(field)
        if isinstance(person, dict) and _str(person.get("id")):
            return Sender(address=person["id"], name=_str(person.get("name")))
    uid = _str(doc.get("user_id"))
    return Sender(address=uid) if uid else None


def event_key(doc: dict[str, Any]) -> str:
    """The dedupe key: identical across Viber's retries of one callback."""
    event = doc["event"]
    token = token_of(doc.get("message_token"))
    person = _person(doc)
    user = person.address if person else "-"
    if event in RECEIPTS:
        # Receipts carry the token of our message; one per user (docs/channels/viber.md).
        return f"{event}:{token}:{user}"
    if token is not None:
        return f"{event}:{token}"
    return f"{event}:{user}:{doc.get('timestamp')}"


def split(body: bytes) -> list[RawEvent]:
    doc = _load(body)
    if doc["event"] == "webhook":
        # The probe Viber sends while set_webhook runs: answered 200, nothing to keep.
        return []
    lane = InboundLane.STATUS if doc["event"] in RECEIPTS else InboundLane.CUSTOMER
    return [RawEvent(key=event_key(doc), payload=body, occurred_at=_when(doc), lane=lane)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse(payload: bytes) -> list[CanonicalEvent]:
    doc = _load(payload)
    event = doc["event"]
    occurred = _when(doc) or datetime.now(UTC)
    key = event_key(doc)
    if event == "webhook":
        return [Ignored("set_webhook probe")]
    if event == "message":
        return [_message(doc, key, occurred)]
    if event in RECEIPTS:
        return _receipt(doc, event, occurred)
    if event == "client_status":
        return [Ignored("client_status callback (undocumented)")]
    person = _person(doc)
    if person is None:
        # Nobody to show it to: acknowledged and kept, never a failed event.
        return [Ignored(f"{event[:64]} callback names no user")]

    def notice(text: str, consent: ConsentStatus | None = None, **extra: Any) -> InboundMessage:
        return InboundMessage(
            provider_message_id=key,
            sender=person,
            occurred_at=occurred,
            kind=MessageKind.SYSTEM,
            text=text,
            extra={"event": event, **{k: v for k, v in extra.items() if v is not None}},
            consent=consent,
        )

    if event == "subscribed":
        # Subscribing lets the bot message the user; it lifts an earlier unsubscribe.
        return [notice("Subscribed to the Viber bot", ConsentStatus.OPTED_IN)]
    if event == "unsubscribed":
        # Viber refuses every later send to this user (status 6): recorded as an opt-out, so
        # replies and campaigns are refused before they are queued.
        return [
            notice(
                "Unsubscribed from the Viber bot; Viber will refuse replies",
                ConsentStatus.OPTED_OUT,
            )
        ]
    if event == "conversation_started":
        # The user opened the chat (button or deep link). Not a subscription: until they write
        # or subscribe, Viber refuses messages to them. Kept as a visible notice so agents see
        # the visit and its deep-link context (docs/channels/viber.md, "Callbacks").
        context = _str(doc.get("context"))
        subscribed = doc.get("subscribed") is True
        text = "Opened the Viber chat" + (f" (context {context!r})" if context else "")
        if not subscribed:
            text += "; not subscribed yet, so replies wait until they write"
        return [notice(text, context=context, subscribed=subscribed)]
    return [
        InboundMessage(
            provider_message_id=key,
            sender=person,
            occurred_at=occurred,
            kind=MessageKind.UNSUPPORTED,
            extra={"type": "event", "event": event[:64]},
        )
    ]


def _receipt(doc: dict[str, Any], event: str, occurred: datetime) -> list[CanonicalEvent]:
    token = token_of(doc.get("message_token"))
    user = _str(doc.get("user_id"))
    if token is None:
        return [Ignored(f"{event} callback without message_token")]
    if event == "delivered":
        return [StatusUpdate(token, MessageStatus.DELIVERED, occurred, recipient=user)]
    if event == "seen":
        update = StatusUpdate(token, MessageStatus.READ, occurred, recipient=user)
        if user is None:
            return [update]
        # One `seen` per read action, whatever the count: everything earlier was read too.
        return [update, ReceiptWatermark(user, MessageStatus.READ, occurred)]
    desc = _str(doc.get("desc"))
    return [
        StatusUpdate(
            token,
            MessageStatus.FAILED,
            occurred,
            recipient=user,
            error_code="failed",
            error_reason=f"Viber could not deliver the message: {desc}"
            if desc
            else "Viber could not deliver the message.",
        )
    ]


def _message(doc: dict[str, Any], key: str, occurred: datetime) -> InboundMessage:
    token = token_of(doc.get("message_token"))
    sender = _person(doc)
    if sender is None:
        raise PayloadError("message callback names no user")
    msg = doc.get("message")
    if not isinstance(msg, dict):
        raise PayloadError("message callback without a message object")
    kind, text, attachments, extra = _content(msg)
    tracking = _str(msg.get("tracking_data"))
    if tracking:
        extra["tracking_data"] = tracking[:4000]
    return InboundMessage(
        provider_message_id=token or key,
        sender=sender,
        occurred_at=occurred,
        kind=kind,
        text=text,
        attachments=tuple(attachments),
        extra=extra,
        # A user who writes can be messaged again (docs/channels/viber.md, "Callbacks"): this
        # lifts an earlier unsubscribe; consent.py records nothing when there was none.
        consent=ConsentStatus.OPTED_IN,
    )


def _content(
    msg: dict[str, Any],
) -> tuple[MessageKind, str | None, list[AttachmentRef], dict[str, Any]]:
    mtype = _str(msg.get("type")) or "missing"
    text = _str(msg.get("text"))
    if mtype == "text":
        return MessageKind.TEXT, text or "", [], {}
    if mtype in _MEDIA:
        kind, mime = _MEDIA[mtype]
        url = _str(msg.get("media"))
        extra: dict[str, Any] = {}
        sticker_id = _int(msg.get("sticker_id"))
        if mtype == "sticker" and sticker_id is not None:
            extra["sticker_id"] = sticker_id
        if url is None:
            if mtype == "sticker":
                return MessageKind.TEXT, f"[Viber sticker {sticker_id}]", [], extra
            return MessageKind.UNSUPPORTED, text, [], {"type": mtype, "reason": "no media URL"}
        # The Python SDK reads `size`, the reference says `file_size`: accept both.
        size = _int(msg.get("file_size")) or _int(msg.get("size"))
        ref = AttachmentRef(
            kind=kind,
            mime_type=None if mtype == "file" else mime,
            url=url,
            filename=_str(msg.get("file_name")),
            caption=text,
            size=size,
        )
        duration = _int(msg.get("duration"))
        if duration is not None:
            extra["duration"] = duration
        return MessageKind.MEDIA, text, [ref], extra
    if mtype == "location":
        loc = msg.get("location")
        if isinstance(loc, dict):
            lat, lon = loc.get("lat"), loc.get("lon")
            if isinstance(lat, int | float) and isinstance(lon, int | float):
                place = {"latitude": lat, "longitude": lon}
                if _str(loc.get("address")):
                    place["address"] = loc["address"]
                return MessageKind.LOCATION, None, [], place
    if mtype == "contact":
        card = msg.get("contact")
        if isinstance(card, dict):
            name = _str(card.get("name"))
            phone = _str(card.get("phone_number"))
            contact: dict[str, Any] = {}
            if name:
                contact["name"] = name
            if phone:
                contact["phone_number"] = phone
                normal = to_e164(phone)
                if normal:
                    contact["phone_e164"] = normal
            return MessageKind.CONTACT_CARD, None, [], {"contact": contact}
    if mtype == "url":
        url = _str(msg.get("media"))
        if url:
            # Shown as the link the customer shared; it stays text in the UI.
            return MessageKind.TEXT, url, [], {"url": url}
    if mtype == "rich_media":
        alt = _str(msg.get("alt_text")) or text
        return MessageKind.TEXT, alt or "[Viber rich media message]", [], {"type": "rich_media"}
    return MessageKind.UNSUPPORTED, text, [], {"type": mtype[:64]}
