"""The Messenger-platform Send API, shared by Messenger and Instagram
(docs/channels/messenger.md#send-api, docs/channels/instagram.md#sending): `POST
/{version}/{page-or-ig-id}/messages` with `recipient`, `messaging_type`, and a `message` (text,
attachment(s), quick replies) or a `sender_action` alone.

Never raises for provider trouble: every answer becomes Sent, Retriable or Permanent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from tidings import httpclient
from tidings.channels.base import OutboundMessage, Permanent, Retriable, SendOutcome, Sent
from tidings.channels.meta_common import GraphError, graph_error
from tidings.channels.meta_common.messaging import METADATA_PREFIX
from tidings.domain.enums import MessageKind

logger = logging.getLogger(__name__)

# Meta gives no send deadline; a slow Graph answer must not hold a delivery worker for long.
TIMEOUT = httpx.Timeout(20.0, connect=5.0)

# The only tag Tidings ever sends. CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE and
# ACCOUNT_UPDATE get error 100 from 2026-04-27
# (docs/channels/messenger.md#messaging-window-and-tags), and Instagram has no other tag.
ALLOWED_TAGS = frozenset({"HUMAN_AGENT"})
_ATTACHMENT_TYPES = {"image": "image", "audio": "audio", "video": "video", "file": "file"}
_ATTACHMENT_TYPES["document"] = "file"
_SIGNALS = {"mark_read": "mark_seen", "typing_on": "typing_on", "typing_off": "typing_off"}


def _attachment(spec: Mapping[str, Any]) -> dict[str, Any] | Permanent:
    kind = _ATTACHMENT_TYPES.get(str(spec.get("kind") or ""))
    if kind is None:
        return Permanent(f"Cannot send a {spec.get('kind')!r} attachment on this channel.")
    payload: dict[str, Any]
    if spec.get("provider_media_id"):
        payload = {"attachment_id": str(spec["provider_media_id"])}
    elif spec.get("url"):
        payload = {"url": str(spec["url"]), "is_reusable": True}
    else:
        return Permanent("The attachment has neither a URL nor an attachment id.")
    return {"type": kind, "payload": payload}


def _attachment_specs(message: OutboundMessage) -> list[Mapping[str, Any]]:
    specs: list[Mapping[str, Any]] = [
        {"kind": a.kind, "url": a.url, "provider_media_id": a.provider_media_id}
        for a in message.attachments
    ]
    extra = message.extra.get("attachments")
    if not specs and isinstance(extra, list):
        specs = [a for a in extra if isinstance(a, Mapping)]
    return specs


def build_body(message: OutboundMessage) -> dict[str, Any] | Permanent:
    """The Send API body for one message, or Permanent when it cannot be expressed."""
    recipient = (
        {"user_ref": message.to[len("user_ref:") :]}
        if message.to.startswith("user_ref:")
        else {"id": message.to}
    )
    body: dict[str, Any] = {"recipient": recipient}
    signal = message.extra.get("signal")
    if signal is not None:
        # Sender actions go alone with the recipient (docs/channels/messenger.md#send-api).
        action = _SIGNALS.get(str(signal))
        if action is None:
            return Permanent(f"There is no {signal!r} sender action.")
        body["sender_action"] = action
        return body
    if message.kind is MessageKind.REACTION:
        target = message.extra.get("target_provider_id") or message.reply_to_provider_id
        if not isinstance(target, str) or not target:
            return Permanent("A reaction needs the message it reacts to.")
        # Sender actions go alone with the recipient (docs/channels/messenger.md#send-api); no emoji
        # = unreact.
        if message.text:
            body["sender_action"] = "react"
            # Instagram reacts by name ("love", docs/channels/instagram.md#sending); Messenger by
            # emoji (docs/channels/messenger.md#send-api).
            name = message.extra.get("reaction")
            reaction = name if isinstance(name, str) and name else message.text
            body["payload"] = {"message_id": target, "reaction": reaction}
        else:
            body["sender_action"] = "unreact"
            body["payload"] = {"message_id": target}
        return body
    tag = message.extra.get("tag")
    if tag is not None:
        if tag not in ALLOWED_TAGS:
            return Permanent(f"The message tag {tag!r} is not allowed; only HUMAN_AGENT is.")
        body["messaging_type"] = "MESSAGE_TAG"
        body["tag"] = tag
    else:
        body["messaging_type"] = "RESPONSE"
    content: dict[str, Any] = {}
    if message.kind is MessageKind.TEXT:
        if not message.text:
            return Permanent("The message has no text.")
        content["text"] = message.text
    elif message.kind is MessageKind.MEDIA:
        specs = _attachment_specs(message)
        if not specs:
            return Permanent("A media message needs an attachment.")
        built = [_attachment(s) for s in specs]
        for item in built:
            if isinstance(item, Permanent):
                return item
        attachments = [b for b in built if not isinstance(b, Permanent)]
        if len(attachments) == 1:
            content["attachment"] = attachments[0]
        elif all(a["type"] == "image" for a in attachments):
            content["attachments"] = attachments  # several images in one message
        else:
            return Permanent("Only images can be sent several at a time; send one file each.")
        if message.text:
            return Permanent("A caption cannot travel with an attachment here; send it as text.")
    elif message.kind is MessageKind.INTERACTIVE and isinstance(
        message.extra.get("button_template"), Mapping
    ):
        # A button template: postback and web_url buttons under a text
        # (docs/channels/messenger.md#send-api).
        content["attachment"] = {
            "type": "template",
            "payload": dict(message.extra["button_template"]),
        }
    else:
        return Permanent(f"This channel cannot send a {message.kind.value} message.")
    quick = message.extra.get("quick_replies")
    if isinstance(quick, list) and quick:
        content["quick_replies"] = [
            {"content_type": "text", "title": str(q.get("title")), "payload": str(q.get("payload"))}
            for q in quick
            if isinstance(q, Mapping)
        ]
    # Echoed back verbatim in the is_echo webhook, so the echo of our own reply is recognised.
    content["metadata"] = f"{METADATA_PREFIX}{message.message_id}"
    body["message"] = content
    if message.reply_to_provider_id:
        body["reply_to"] = {"mid": message.reply_to_provider_id}
    return body


def sent_id(body: dict[str, Any], doc: Any, message_id: int) -> str | None:
    """The Send API's `message_id`; sender actions (reactions) answer with the recipient only:
    they have no mid."""
    mid = doc.get("message_id") if isinstance(doc, dict) else None
    if isinstance(mid, str) and mid:
        return mid
    if "sender_action" in body and isinstance(doc, dict) and doc.get("recipient_id"):
        return f"tidings-action-{message_id}"
    return None


async def post(
    url: str,
    token: str,
    body: dict[str, Any],
    http: httpx.AsyncClient,
    label: str,
    outcome_for: Callable[[GraphError], Retriable | Permanent],
    sent_id: Callable[[Any], str | None],
) -> SendOutcome:
    """One Graph send (Messenger, Instagram and WhatsApp alike): `sent_id` reads the provider's
    id for it from the JSON answer (None when there is none)."""
    try:
        response = await httpclient.post(
            http,
            url,
            content=orjson.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
    except httpx.TimeoutException:
        # The request may have reached Meta; Graph has no idempotency key, so a retry can
        # duplicate. Still better than silently dropping the message.
        return Retriable(f"{label} did not answer in time; the message will be retried.")
    except httpx.TransportError as exc:
        logger.warning("%s send transport error: %r", label, exc)
        return Retriable(f"Could not reach {label}; the message will be retried.")
    if not response.is_success:
        return outcome_for(graph_error(response))
    try:
        ident = sent_id(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        ident = sent_id(None)
    if ident:
        return Sent(ident)
    return Permanent(f"{label} accepted the request but returned no message id.")
