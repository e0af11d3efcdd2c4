"""Sending through the WhatsApp Cloud API (`POST /{version}/{phone_number_id}/messages`).

Never raises for provider trouble: every answer becomes Sent, Retriable or Permanent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

import httpx

from tidings.channels.base import OutboundMessage, Permanent, Retriable, SendOutcome
from tidings.channels.meta_common import send
from tidings.channels.whatsapp import media
from tidings.channels.whatsapp.config import WhatsAppConfig
from tidings.channels.whatsapp.errors import graph_outcome
from tidings.domain.enums import MessageKind

# Outbound media kinds and whether they take a caption (audio and stickers do not,
# docs/channels/whatsapp.md#sending).
_MEDIA_CAPTION = {"image": True, "video": True, "document": True, "audio": False, "sticker": False}
_PHONE_PUNCTUATION = str.maketrans("", "", " -()+.")


def messages_url(config: WhatsAppConfig) -> str:
    return f"{config.api_base_url}/{config.api_version}/{config.phone_number_id}/messages"


def _recipient(address: str) -> dict[str, str]:
    """`to` for phone numbers, `recipient` for business-scoped user ids.

    Graph prepends the *business* number's country code to a `to` without `+`
    (docs/channels/whatsapp.md#sending), so our E.164 digits always go out with their `+`. BSUIDs
    look like `US.1349...` (a country code, a dot, up to 128 alphanumerics) and go in `recipient`
    (from ~May 2026).
    """
    stripped = address.strip()
    if "." in stripped and stripped[:1].isalpha():
        return {"recipient": stripped}
    digits = stripped.translate(_PHONE_PUNCTUATION)
    if digits.isascii() and digits.isdigit():
        return {"to": f"+{digits}"}
    return {"to": stripped}


def _media_object(message: OutboundMessage) -> tuple[str, dict[str, Any]] | Permanent:
    if not message.attachments:
        return Permanent("A media message needs an attachment.")
    # One attachment per WhatsApp message; the caller splits albums into several messages.
    att = message.attachments[0]
    kind = "document" if att.kind == "file" else att.kind
    if kind not in _MEDIA_CAPTION:
        return Permanent(f"WhatsApp cannot send a {att.kind!r} attachment.")
    obj: dict[str, Any]
    # An uploaded media id is what Meta recommends; a public link is fetched (and cached for
    # 10 minutes) by Meta.
    if att.provider_media_id:
        obj = {"id": att.provider_media_id}
    elif att.url:
        obj = {"link": att.url}
    else:
        return Permanent("The attachment has neither a WhatsApp media id nor a link.")
    caption = att.caption or message.text
    if caption and _MEDIA_CAPTION[kind]:
        obj["caption"] = caption
    if kind == "document" and att.filename:
        obj["filename"] = att.filename
    return kind, obj


def build_body(message: OutboundMessage) -> dict[str, Any] | Permanent:
    """The Graph request body for one message, or Permanent when it cannot be expressed."""
    signal = message.extra.get("signal")
    if signal is not None:
        return _signal_body(signal, message.extra.get("target_provider_id"))
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    body.update(_recipient(message.to))
    kind = message.kind
    if kind is MessageKind.TEXT:
        if not message.text:
            return Permanent("The message has no text.")
        preview = bool(message.extra.get("preview_url", False))
        body["type"] = "text"
        body["text"] = {"body": message.text, "preview_url": preview}
    elif kind is MessageKind.MEDIA:
        media = _media_object(message)
        if isinstance(media, Permanent):
            return media
        body["type"], body[media[0]] = media
    elif kind is MessageKind.TEMPLATE:
        if not message.template:
            return Permanent("The template message has no template.")
        # Passed as is: it is already Graph's `template` object (name, language, components).
        body["type"] = "template"
        body["template"] = dict(message.template)
    elif kind is MessageKind.REACTION:
        target = message.extra.get("target_provider_id") or message.reply_to_provider_id
        if not isinstance(target, str) or not target:
            return Permanent("A reaction needs the message it reacts to.")
        body["type"] = "reaction"
        # An empty emoji removes the reaction.
        body["reaction"] = {"message_id": target, "emoji": message.text or ""}
    elif kind in _EXTRA_TYPES:
        wa_type = _EXTRA_TYPES[kind]
        obj = message.extra.get(wa_type)
        if not isinstance(obj, Mapping | list):
            return Permanent(f"The {kind.value} message has no {wa_type!r} content.")
        body["type"] = wa_type
        body[wa_type] = obj
    else:
        return Permanent(f"WhatsApp cannot send a {kind.value} message.")
    if message.reply_to_provider_id and kind is not MessageKind.REACTION:
        body["context"] = {"message_id": message.reply_to_provider_id}
    # Echoed back in every status webhook for this message (statuses[].biz_opaque_callback_data),
    # so a receipt can be tied to our message even before the wamid is stored.
    body["biz_opaque_callback_data"] = str(message.message_id)
    return body


def _signal_body(signal: object, target: object) -> dict[str, Any] | Permanent:
    """Mark as read, optionally with a typing indicator: `{"status": "read", "message_id":
    <the customer's wamid>}` on the messages endpoint; marking one message read marks the
    earlier ones read too (docs/channels/whatsapp.md#sending)."""
    if signal not in ("mark_read", "typing_on"):
        return Permanent(f"WhatsApp has no {signal!r} signal.")
    if not isinstance(target, str) or not target:
        return Permanent("There is no customer message to mark as read.")
    body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": target}
    if signal == "typing_on":
        body["typing_indicator"] = {"type": "text"}
    return body


# Kinds whose WhatsApp object the composer builds and hands over in `extra[<type>]`.
_EXTRA_TYPES = {
    MessageKind.INTERACTIVE: "interactive",
    MessageKind.LOCATION: "location",
    MessageKind.CONTACT_CARD: "contacts",
}


async def send_message(
    config: WhatsAppConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    if message.kind is MessageKind.MEDIA and message.attachments:
        first = message.attachments[0]
        if not first.provider_media_id and not first.url and first.load is not None:
            # A file stored by Tidings: upload it first and send it by id
            # (docs/channels/whatsapp.md#media-limits-and-downloads).
            uploaded = await media.upload(
                config,
                await first.load(),
                first.mime_type or "application/octet-stream",
                first.filename,
                http,
            )
            if isinstance(uploaded, Retriable | Permanent):
                return uploaded
            # A WebP image goes out as a sticker, the only WhatsApp type that takes WebP
            # (docs/channels/whatsapp.md#media-limits-and-downloads).
            webp = first.kind == "image" and first.mime_type == "image/webp"
            first = replace(
                first, provider_media_id=uploaded, load=None, kind="sticker" if webp else first.kind
            )
            message = replace(message, attachments=(first, *message.attachments[1:]))
    body = build_body(message)
    if isinstance(body, Permanent):
        return body
    ids = partial(_sent_id, body, message_id=message.message_id)
    url = messages_url(config)
    return await send.post(url, config.access_token, body, http, "WhatsApp", graph_outcome, ids)


def _sent_id(body: dict[str, Any], doc: Any, message_id: int) -> str | None:
    """The wamid; read receipts and typing indicators answer `{"success": true}`, with no id."""
    try:
        wamid = doc["messages"][0]["id"]
    except (KeyError, IndexError, TypeError):
        wamid = None
    if isinstance(wamid, str) and wamid:
        return wamid
    if "status" in body and isinstance(doc, dict) and doc.get("success") is True:
        return f"tidings-signal-{message_id}"
    return None
