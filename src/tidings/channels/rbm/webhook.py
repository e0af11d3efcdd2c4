"""RBM webhook: verification handshake, X-Goog-Signature over the decoded Pub/Sub data, and
user messages/events → canonical events (docs/channels/rbm.md#webhook-and-signature).

Deliveries are Pub/Sub push envelopes `{"message": {"attributes", "data": <base64 JSON>,
"messageId", "publishTime"}, "subscription"}`; the signature covers the *decoded* `data`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import orjson

from tidings.channels import google_common as google
from tidings.channels.base import RawEvent, WebhookRequest, json_of
from tidings.domain.enums import ConsentStatus, InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    Sender,
    StatusUpdate,
)
from tidings.domain.jsondepth import check_depth
from tidings.domain.phones import to_e164

_CONSENT_EVENTS = {"UNSUBSCRIBE": ConsentStatus.OPTED_OUT, "SUBSCRIBE": ConsentStatus.OPTED_IN}


def _envelope(body: bytes) -> tuple[dict[str, Any], bytes]:
    """The Pub/Sub message and its decoded data; SignatureError when there is nothing to check
    (an unsigned body cannot be trusted enough to even be stored)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SignatureError("body is not a Pub/Sub push envelope; cannot verify it") from None
    message = doc.get("message") if isinstance(doc, dict) else None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str):
        raise SignatureError("Pub/Sub envelope has no message.data to verify")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("message.data is not base64") from None
    assert isinstance(message, dict)
    return message, decoded


def verify(client_token: str, request: WebhookRequest) -> None:
    if google.verification_secret(client_token, request.body) is not None:
        return  # the handshake carries the client token itself instead of a signature
    _message, decoded = _envelope(request.body)
    google.check_signature(client_token, request.headers, decoded)


def split(client_token: str, request: WebhookRequest) -> list[RawEvent]:
    if google.verification_secret(client_token, request.body) is not None:
        return []
    message, decoded = _envelope(request.body)
    check_depth(decoded)  # the signed data is JSON too: refused (400) when absurdly deep
    data = json_of(decoded, "message.data is not JSON: {exc}")
    if not isinstance(data, dict):
        raise PayloadError("message.data must be a JSON object")
    attributes = message.get("attributes") if isinstance(message.get("attributes"), dict) else {}
    # Dedupe on the decoded messageId/eventId (docs/channels/rbm.md#retries-and-dedupe); other
    # traffic (agent launch events) on the Pub/Sub message id.
    if data.get("eventId"):
        key = f"event:{data['eventId']}"
    elif data.get("messageId"):
        key = f"msg:{data['messageId']}"
    else:
        key = f"pubsub:{message.get('messageId') or google.signature('', decoded)[:40]}"
    payload = orjson.dumps({"attributes": attributes, "data": data})
    # Delivery and read receipts may wait; IS_TYPING and anything else is the customer's.
    lane = InboundLane.STATUS if data.get("eventType") in google.RECEIPTS else InboundLane.CUSTOMER
    when = google.timestamp(data.get("sendTime"))
    return [RawEvent(key=key[:300], payload=payload, occurred_at=when, lane=lane)]


def _sender(data: dict[str, Any]) -> Sender:
    raw = data.get("senderPhoneNumber") or data.get("phoneNumber")
    if not isinstance(raw, str) or not raw:
        raise PayloadError("senderPhoneNumber is missing")
    e164 = to_e164(raw)
    # RBM users are MSISDNs, so the identity meets the customer's SMS/WhatsApp ones. A number
    # that does not parse is kept as given, never rewritten. The carrier vouches for it.
    return Sender(address=e164 or raw, phone=e164, phone_verified=True)


def parse(payload: bytes) -> list[CanonicalEvent]:
    doc = orjson.loads(payload)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise PayloadError("stored RBM event has no data")
    when = google.timestamp(data.get("sendTime")) or datetime.now(UTC)
    event_type = data.get("eventType")
    if isinstance(event_type, str):
        return [_event(data, event_type, when)]
    if not data.get("messageId"):
        kind = (doc.get("attributes") or {}).get("type") or "unknown"
        return [Ignored(f"RBM {kind} notification")]
    sender = _sender(data)
    mid = str(data["messageId"])

    def inbound(
        kind: MessageKind,
        text: str | None = None,
        extra: dict[str, Any] | None = None,
        attachments: tuple[AttachmentRef, ...] = (),
    ) -> InboundMessage:
        return InboundMessage(mid, sender, when, kind, text, attachments, extra=extra or {})

    if isinstance(data.get("text"), str):
        return [inbound(MessageKind.TEXT, text=data["text"])]
    reply = data.get("suggestionResponse")
    if isinstance(reply, dict):
        return [
            inbound(
                MessageKind.INTERACTIVE,
                text=str(reply.get("text") or reply.get("postbackData") or ""),
                extra={
                    "postback_data": reply.get("postbackData"),
                    "type": reply.get("type") or "REPLY",
                },
            )
        ]
    location = data.get("location")
    if isinstance(location, dict):
        extra = {"latitude": location.get("latitude"), "longitude": location.get("longitude")}
        return [inbound(MessageKind.LOCATION, extra=extra)]
    user_file = data.get("userFile")
    if isinstance(user_file, dict) and isinstance(user_file.get("payload"), dict):
        file = user_file["payload"]
        mime = str(file.get("mimeType") or "application/octet-stream")
        major, slash, _ = mime.partition("/")
        kind = major if slash and major in ("image", "video", "audio") else "document"
        size = file.get("fileSizeBytes")
        ref = AttachmentRef(
            kind=kind,
            mime_type=mime,
            url=file.get("fileUri") if isinstance(file.get("fileUri"), str) else None,
            filename=file.get("fileName") if isinstance(file.get("fileName"), str) else None,
            size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
        )
        return [inbound(MessageKind.MEDIA, attachments=(ref,))]
    known = [k for k in data if k not in ("senderPhoneNumber", "messageId", "sendTime", "agentId")]
    return [inbound(MessageKind.UNSUPPORTED, extra={"type": known[0] if known else "empty"})]


def _event(data: dict[str, Any], event_type: str, when: datetime) -> CanonicalEvent:
    status = google.RECEIPTS.get(event_type)
    if status is not None and data.get("messageId"):
        return StatusUpdate(
            provider_message_id=str(data["messageId"]),
            status=status,
            occurred_at=when,
            recipient=_sender(data).address,
        )
    if event_type == "TTL_EXPIRATION_REVOKED" and data.get("messageId"):
        return StatusUpdate(
            provider_message_id=str(data["messageId"]),
            status=MessageStatus.FAILED,
            occurred_at=when,
            error_code=event_type,
            error_reason="The RCS message expired before it reached the phone and was withdrawn.",
        )
    consent = _CONSENT_EVENTS.get(event_type)
    if consent is not None and data.get("eventId"):
        # The user stopped (or resumed) the agent's messages from the phone
        # (docs/channels/rbm.md#unsubscribe): recorded in the consent registry, so replies are
        # refused up front.
        said = "stopped" if consent == ConsentStatus.OPTED_OUT else "allowed again"
        return InboundMessage(
            provider_message_id=f"event:{data['eventId']}",
            sender=_sender(data),
            occurred_at=when,
            kind=MessageKind.SYSTEM,
            text=f"The customer {said} messages from this RCS agent ({event_type})",
            extra={"event": event_type},
            consent=consent,
        )
    # IS_TYPING, TTL_EXPIRATION_REVOKE_FAILED: nothing to store.
    return Ignored(f"RBM event {event_type}")
