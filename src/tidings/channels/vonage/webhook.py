"""Vonage inbound-SMS and delivery-receipt webhooks: verify, split, parse (pure, no I/O).

Vonage calls the account's inbound URL and its delivery-receipt URL with flat parameters, as
JSON ("POST-JSON") or a form ("POST") (docs/channels/vonage.md#inbound-and-receipt-webhooks). Both
URLs may point at the same Tidings endpoint: a receipt is told apart by its
`status`/`err-code`/`scts` fields.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tidings.channels.base import RawEvent, WebhookRequest, json_of
from tidings.channels.vonage import signature
from tidings.channels.vonage.config import VonageConfig
from tidings.channels.vonage.errors import DLR_REASONS
from tidings.domain.enums import InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import CanonicalEvent, Ignored, InboundMessage, Sender, StatusUpdate
from tidings.domain.phones import to_e164

# Our `client-ref` on every send; Vonage echoes it on each part's receipt
# (docs/channels/vonage.md#inbound-and-receipt-webhooks), so all parts of a long message map to the
# one Tidings message.
CLIENT_REF_PREFIX = "tidings-"
# A signed timestamp this far in the future is refused (clock skew allowance).
FUTURE_SKEW_SECONDS = 300

_DLR_STATUS = {
    "delivered": MessageStatus.DELIVERED,
    "accepted": MessageStatus.SENT,
    "buffered": MessageStatus.SENT,
    "expired": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
    "rejected": MessageStatus.FAILED,
}


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def params_of(request: WebhookRequest) -> dict[str, str]:
    """The webhook's parameters, from a JSON body, a form body, or (without a body) the query."""
    if not request.body:
        return dict(request.query)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or request.body.lstrip()[:1] == b"{":
        doc = json_of(request.body, "body is not valid JSON")
        if not isinstance(doc, dict):
            raise PayloadError("body must be a JSON object of parameters")
        return {str(k): _flat(v) for k, v in doc.items()}
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("form body is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def verify(config: VonageConfig, request: WebhookRequest, now: float | None = None) -> None:
    try:
        params = params_of(request)
    except PayloadError as exc:
        # An unreadable body cannot be checked, so it is not trusted (and not stored).
        raise SignatureError(f"cannot verify the signature: {exc.message}") from None
    if not params.get("sig"):
        raise SignatureError("missing 'sig': enable signed webhooks on the Vonage account")
    if not signature.matches(params, config.signature_secret, config.signature_method):
        raise SignatureError("the 'sig' parameter does not match the signature secret")
    raw_ts = params.get("timestamp", "")
    if not raw_ts.isdigit():
        raise SignatureError("signed webhook has no unix 'timestamp'")
    age = (time.time() if now is None else now) - int(raw_ts)
    if age > config.signature_max_age_seconds or age < -FUTURE_SKEW_SECONDS:
        raise SignatureError("the signed timestamp is outside the accepted window (a replay?)")


def _is_receipt(params: Mapping[str, str]) -> bool:
    return "status" in params and ("err-code" in params or "scts" in params)


def _when(params: Mapping[str, str]) -> datetime | None:
    # `message-timestamp` is "YYYY-MM-DD HH:MM:SS" in UTC
    # (docs/channels/vonage.md#inbound-and-receipt-webhooks).
    raw = params.get("message-timestamp", "")
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        pass
    ts = params.get("timestamp", "")
    return datetime.fromtimestamp(int(ts), UTC) if ts.isdigit() else None


def split(request: WebhookRequest) -> list[RawEvent]:
    params = {k: v for k, v in params_of(request).items() if k not in ("sig", "nonce")}
    message_id = params.get("messageId")
    if not message_id:
        raise PayloadError("webhook has no 'messageId'")
    if _is_receipt(params):
        what, key = "receipt", f"dlr:{message_id}:{params['status']}"
    elif "msisdn" in params:
        what, key = "inbound", f"in:{message_id}"
    else:
        raise PayloadError("webhook is neither an inbound message nor a delivery receipt")
    payload = orjson.dumps({"what": what, "params": params})
    lane = InboundLane.STATUS if what == "receipt" else InboundLane.CUSTOMER
    return [RawEvent(key=key[:300], payload=payload, occurred_at=_when(params), lane=lane)]


def parse(payload: bytes) -> list[CanonicalEvent]:
    doc = orjson.loads(payload)
    params: dict[str, str] = doc["params"]
    if doc["what"] == "receipt":
        return [_receipt(params)]
    return [_inbound(params)]


def _inbound(params: Mapping[str, str]) -> InboundMessage:
    msisdn = params.get("msisdn", "").strip()
    if not msisdn:
        raise PayloadError("inbound message has no 'msisdn'")
    # Vonage sends international digits without "+"; alphanumeric senders stay as given,
    # flagged, never rewritten.
    phone = to_e164(msisdn)
    extra: dict[str, Any] = {"to": params.get("to")}
    if phone is None:
        extra["unparsed_sender"] = msisdn
    if params.get("keyword"):
        extra["keyword"] = params["keyword"]
    if params.get("concat") == "true":
        # Parts of a long SMS arrive as separate webhooks; each is kept with its place.
        extra["concat"] = {
            "ref": params.get("concat-ref"),
            "part": params.get("concat-part"),
            "total": params.get("concat-total"),
        }
    kind_param = params.get("type", "text")
    text = params.get("text")
    if kind_param in ("text", "unicode") and text is not None:
        kind, body = MessageKind.TEXT, text
    else:
        kind, body = MessageKind.UNSUPPORTED, None
        extra["type"] = kind_param
    return InboundMessage(
        provider_message_id=params["messageId"],
        # The network delivered it from that number: verified (docs/architecture.md).
        sender=Sender(address=phone or msisdn, phone=phone or msisdn, phone_verified=True),
        occurred_at=_when(params) or datetime.now(UTC),
        kind=kind,
        text=body,
        extra=extra,
    )


def _receipt(params: Mapping[str, str]) -> StatusUpdate | Ignored:
    ref = params.get("client-ref", "")
    if not ref.startswith(CLIENT_REF_PREFIX):
        return Ignored(f"receipt {params.get('messageId')} is for a message Tidings did not send")
    word = params.get("status", "").lower()
    status = _DLR_STATUS.get(word)
    if status is None:
        return Ignored(f"receipt status {word!r} says nothing definite")
    err = params.get("err-code") or None
    reason = None
    if status == MessageStatus.FAILED:
        reason = DLR_REASONS.get(err or "", f"The carrier reported the message as {word}.")
    return StatusUpdate(
        provider_message_id=ref,
        status=status,
        occurred_at=_when(params) or datetime.now(UTC),
        recipient=params.get("msisdn"),
        error_code=err if status == MessageStatus.FAILED else None,
        error_reason=reason,
    )
