"""Twilio webhooks: `X-Twilio-Signature` (docs/channels/twilio.md#request-signature),
inbound SMS/MMS (docs/channels/twilio.md#inbound-webhook) and status callbacks
(docs/channels/twilio.md#status-callbacks). Pure functions, no I/O.

Both kinds of webhook reach the channel's one URL: the number's "A message comes in" webhook
and the `StatusCallback` we pass on every send. A status callback carries `MessageStatus`;
an inbound message carries `SmsStatus=received` and a `Body`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

from tidings.channels.base import RawEvent, WebhookRequest
from tidings.channels.twilio import errors
from tidings.domain.enums import InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    Sender,
    StatusUpdate,
)

SIGNATURE_HEADER = "x-twilio-signature"
# MMS carries at most 10 media (docs/channels/twilio.md#inbound-webhook); anything claiming more is
# capped, not trusted.
MAX_MEDIA = 10

_STATUSES: dict[str, MessageStatus] = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    # chatwoot's practice (docs/channels/twilio.md#status-callbacks): undelivered is a failure the
    # agent should see.
    "undelivered": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}


# --- signature ------------------------------------------------------------------------------


def compute_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(auth_token, url + name1 + value1 + ...)), names sorted; a repeated
    name contributes each distinct value, values sorted
    (docs/channels/twilio.md#request-signature, as twilio-python does)."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    data = url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, plus with the default port added or removed: Twilio may or may not
    include `:443`/`:80` when signing, so validators accept either form
    (docs/channels/twilio.md#request-signature)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    host = parts.hostname
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{_userinfo(parts)}{host}:{default}")))
    elif parts.port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{_userinfo(parts)}{host}")))
    return variants


def _userinfo(parts: Any) -> str:
    netloc: str = parts.netloc
    return netloc.rpartition("@")[0] + "@" if "@" in netloc else ""


def is_valid(
    auth_token: str, url: str, params: Sequence[tuple[str, str]], signature: str, body: bytes = b""
) -> bool:
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "bodySHA256" in query:
        # JSON-bodied webhooks: the URL carries the body's hash; only the URL is signed.
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), query["bodySHA256"]):
            return False
        params = ()
    expected = signature.encode()
    return any(
        hmac.compare_digest(compute_signature(auth_token, candidate, params).encode(), expected)
        for candidate in _port_variants(url)
    )


def form_params(request: WebhookRequest) -> list[tuple[str, str]]:
    if request.method != "POST":
        return []
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8 form data") from None
    return parse_qsl(text, keep_blank_values=True)


def verify(auth_token: str, request: WebhookRequest) -> None:
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise SignatureError("missing X-Twilio-Signature header")
    try:
        params = form_params(request)
    except PayloadError:
        raise SignatureError("X-Twilio-Signature does not match (body is not form data)") from None
    if not is_valid(auth_token, request.url, params, signature, request.body):
        raise SignatureError(
            "X-Twilio-Signature does not match; check the Auth Token and that TIDINGS_PUBLIC_URL "
            "is the URL Twilio calls"
        )


# --- split and parse ------------------------------------------------------------------------


def split(request: WebhookRequest, now: datetime) -> list[RawEvent]:
    params = form_params(request)
    fields = dict(params)
    sid = fields.get("MessageSid") or fields.get("SmsSid") or fields.get("SmsMessageSid")
    if not sid:
        raise PayloadError("neither MessageSid nor SmsSid in the webhook")
    status = fields.get("MessageStatus") or ""
    is_status = bool(status) and status != "received"
    what = "status" if is_status else "message"
    # Dedupe on MessageSid, plus the status for callbacks
    # (docs/channels/twilio.md#status-callbacks).
    key = f"status:{sid}:{status}" if is_status else f"msg:{sid}"
    payload = orjson.dumps({"type": what, "received_at": now.isoformat(), "params": params})
    lane = InboundLane.STATUS if is_status else InboundLane.CUSTOMER
    return [RawEvent(key=key[:300], payload=payload, occurred_at=now, lane=lane)]


def parse(payload: bytes) -> list[CanonicalEvent]:
    doc = orjson.loads(payload)
    fields: dict[str, str] = {}
    for name, value in doc["params"]:
        fields.setdefault(str(name), str(value))
    try:
        at = datetime.fromisoformat(doc["received_at"])
    except (KeyError, ValueError):
        at = datetime.now(UTC)
    if doc.get("type") == "status":
        return [_status(fields, at)]
    return [_message(fields, at)]


def _phone(address: str) -> str:
    # Twilio's WhatsApp senders look like "whatsapp:+14155550100".
    return address.partition(":")[2] if address.startswith("whatsapp:") else address


def _media(fields: Mapping[str, str]) -> tuple[AttachmentRef, ...]:
    raw = fields.get("NumMedia", "0").strip()
    count = min(int(raw), MAX_MEDIA) if raw.isdigit() else 0
    refs = []
    for n in range(count):
        url = fields.get(f"MediaUrl{n}")
        if not url:
            continue
        mime = fields.get(f"MediaContentType{n}") or None
        major = (mime or "").partition("/")[0]
        kind = major if major in ("image", "audio", "video") else "file"
        refs.append(AttachmentRef(kind=kind, mime_type=mime, url=url))
    return tuple(refs)


def _message(fields: Mapping[str, str], at: datetime) -> InboundMessage:
    sid = fields.get("MessageSid") or fields.get("SmsSid") or fields.get("SmsMessageSid") or ""
    sender = fields.get("From", "").strip()
    if not sender:
        raise PayloadError("inbound message without From")
    body = fields.get("Body")
    attachments = _media(fields)
    extra: dict[str, Any] = {"to": fields.get("To")}
    for name in ("NumSegments", "FromCountry", "MessagingServiceSid"):
        if fields.get(name):
            extra[name] = fields[name]
    kind = MessageKind.MEDIA if attachments else MessageKind.TEXT
    if not attachments and body is None:
        kind = MessageKind.UNSUPPORTED
    return InboundMessage(
        provider_message_id=sid,
        # SMS or WhatsApp through Twilio: the sender's own number, verified (docs/architecture.md).
        sender=Sender(
            address=sender,
            name=fields.get("ProfileName") or None,
            phone=_phone(sender),
            phone_verified=True,
        ),
        occurred_at=at,
        kind=kind,
        text=body if body else None if attachments else body,
        attachments=attachments,
        extra=extra,
    )


def _status(fields: Mapping[str, str], at: datetime) -> CanonicalEvent:
    sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
    name = fields.get("MessageStatus", "")
    status = _STATUSES.get(name)
    if status is None:
        # queued/sending/accepted/scheduled/partially_delivered: nothing to show yet.
        return Ignored(f"Twilio status {name!r} for {sid}")
    code_raw = fields.get("ErrorCode", "").strip()
    code = int(code_raw) if code_raw.isdigit() else None
    reason = None
    if status == MessageStatus.FAILED:
        if name == "canceled":
            reason = "The scheduled message was canceled at Twilio."
        else:
            reason = errors.sentence(code, fields.get("ErrorMessage"))
    return StatusUpdate(
        provider_message_id=sid,
        status=status,
        occurred_at=at,
        recipient=fields.get("To") or None,
        error_code=code_raw or None,
        error_reason=reason,
    )
