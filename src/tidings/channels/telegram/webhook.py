"""Telegram webhook: secret-token check, one update per request, updates → canonical events.

Facts (docs/channels/telegram.md#webhook-delivery): Telegram POSTs one `Update` JSON per request
with the `secret_token` given to setWebhook echoed in `X-Telegram-Bot-Api-Secret-Token`; `update_id`
increases sequentially and is the dedupe key; non-2xx answers are retried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from tidings.channels.base import RawEvent, WebhookRequest, check_secret, json_of
from tidings.channels.base import nonempty_str as _str
from tidings.domain.enums import MessageKind
from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    MessageEdited,
    Sender,
)
from tidings.domain.phones import to_e164

AUTH_HEADER = "x-telegram-bot-api-secret-token"

# Message fields that carry a file, with our attachment kind and Telegram's usual MIME type.
_MEDIA: dict[str, tuple[str, str | None]] = {
    "photo": ("image", "image/jpeg"),
    "document": ("document", None),
    "voice": ("audio", "audio/ogg"),
    "audio": ("audio", None),
    "video": ("video", "video/mp4"),
    "video_note": ("video", "video/mp4"),
    "animation": ("video", "video/mp4"),
    "sticker": ("sticker", "image/webp"),
}


def verify(secret_token: str, request: WebhookRequest) -> None:
    # Constant-time: the header is the only thing that authenticates Telegram.
    check_secret(
        request.headers.get(AUTH_HEADER),
        secret_token,
        "missing X-Telegram-Bot-Api-Secret-Token header",
        "X-Telegram-Bot-Api-Secret-Token does not match the channel's",
    )


def split(body: bytes) -> list[RawEvent]:
    doc = json_of(body, "body is not JSON: {exc}")
    if not isinstance(doc, dict):
        raise PayloadError("a Telegram update is a JSON object")
    update_id = doc.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise PayloadError("update has no integer update_id")
    occurred: datetime | None = None
    for value in doc.values():
        if isinstance(value, dict) and isinstance(value.get("date"), int):
            occurred = datetime.fromtimestamp(value["date"], UTC)
            break
    return [RawEvent(key=f"update:{update_id}", payload=body, occurred_at=occurred)]


def message_ref(chat_id: Any, message_id: Any) -> str:
    """Our provider message id. Telegram's `message_id` is only unique within one chat."""
    return f"{chat_id}:{message_id}"


def parse(payload: bytes) -> list[CanonicalEvent]:
    update = orjson.loads(payload)
    if not isinstance(update, dict):
        raise PayloadError("a Telegram update is a JSON object")
    for field in ("message", "channel_post"):
        if isinstance(update.get(field), dict):
            return [_message(update[field])]
    for field in ("edited_message", "edited_channel_post"):
        if isinstance(update.get(field), dict):
            return [_edit(update[field])]
    if isinstance(update.get("callback_query"), dict):
        return [_callback(update["callback_query"])]
    if isinstance(update.get("my_chat_member"), dict):
        member = update["my_chat_member"].get("new_chat_member")
        status = member.get("status") if isinstance(member, dict) else None
        # "kicked" in a private chat means the user blocked the bot; sends will get 403.
        return [Ignored(f"bot membership changed to {status!r}")]
    kinds = [k for k in update if k != "update_id"]
    return [Ignored(f"update type {kinds[0] if kinds else 'empty'!r} is not handled")]


def _sender(msg: dict[str, Any]) -> Sender:
    chat = msg.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        raise PayloadError("message.chat.id is missing")
    person = msg.get("from") if isinstance(msg.get("from"), dict) else {}
    assert isinstance(person, dict)
    name = " ".join(p for p in (_str(person.get("first_name")), _str(person.get("last_name"))) if p)
    if chat.get("type") in ("group", "supergroup", "channel"):
        # The conversation is the group; name it after the group, not whoever spoke last.
        name = _str(chat.get("title")) or name
    phone = None
    contact = msg.get("contact")
    sender_id = person.get("id")
    if (
        isinstance(contact, dict)
        and isinstance(sender_id, int)
        and not isinstance(sender_id, bool)
        and contact.get("user_id") == sender_id
    ):
        # The customer shared their own number (docs/channels/telegram.md, "Shared contacts"):
        # Telegram only sets contact.user_id to the sender's own id for their own account's
        # number, so it is verified and lets this identity meet their SMS/WhatsApp one. Anyone
        # else's contact card (no user_id, or another one) is not the sender's number.
        phone = to_e164(str(contact.get("phone_number") or ""))
    return Sender(
        address=str(chat["id"]), name=name or None, phone=phone, phone_verified=phone is not None
    )


def _when(msg: dict[str, Any], field: str = "date") -> datetime:
    value = msg.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)


def _content(
    msg: dict[str, Any],
) -> tuple[MessageKind, str | None, list[AttachmentRef], dict[str, Any]]:
    text = _str(msg.get("text"))
    if text is not None:
        return MessageKind.TEXT, text, [], {}
    caption = _str(msg.get("caption"))
    for field, (kind, default_mime) in _MEDIA.items():
        item = msg.get(field)
        if field == "photo" and isinstance(item, list) and item:
            # Telegram lists several sizes of one photo; the last is the largest.
            item = item[-1]
        if not isinstance(item, dict) or not _str(item.get("file_id")):
            continue
        size = item.get("file_size")
        ref = AttachmentRef(
            kind=kind,
            mime_type=_str(item.get("mime_type")) or default_mime,
            provider_media_id=item["file_id"],
            filename=_str(item.get("file_name")),
            caption=caption,
            size=size if isinstance(size, int) else None,
        )
        extra = {"emoji": item["emoji"]} if field == "sticker" and _str(item.get("emoji")) else {}
        return MessageKind.MEDIA, caption, [ref], extra
    location = msg.get("location")
    if isinstance(location, dict):
        lat, lng = location.get("latitude"), location.get("longitude")
        if isinstance(lat, int | float) and isinstance(lng, int | float):
            return MessageKind.LOCATION, None, [], {"latitude": lat, "longitude": lng}
    contact = msg.get("contact")
    if isinstance(contact, dict):
        card = {
            k: contact[k]
            for k in ("phone_number", "first_name", "last_name", "user_id")
            if contact.get(k) is not None
        }
        return MessageKind.CONTACT_CARD, None, [], {"contact": card}
    known = [k for k in msg if k not in ("message_id", "from", "chat", "date", "sender_chat")]
    return MessageKind.UNSUPPORTED, caption, [], {"type": known[0] if known else "empty"}


def _message(msg: dict[str, Any]) -> InboundMessage:
    if not isinstance(msg.get("message_id"), int):
        raise PayloadError("message.message_id is missing")
    sender = _sender(msg)
    kind, text, attachments, extra = _content(msg)
    reply = msg.get("reply_to_message")
    reply_ref = (
        message_ref(sender.address, reply["message_id"])
        if isinstance(reply, dict) and isinstance(reply.get("message_id"), int)
        else None
    )
    return InboundMessage(
        provider_message_id=message_ref(sender.address, msg["message_id"]),
        sender=sender,
        occurred_at=_when(msg),
        kind=kind,
        text=text,
        attachments=tuple(attachments),
        reply_to_provider_id=reply_ref,
        extra=extra,
    )


def _edit(msg: dict[str, Any]) -> MessageEdited:
    """`edited_message` carries the whole message again with `edit_date`: the stored message
    takes the new text (earlier versions are kept by the edit action)."""
    original = _message(msg)
    return MessageEdited(
        provider_message_id=original.provider_message_id,
        occurred_at=_when(msg, "edit_date"),
        text=original.text,
    )


def _callback(query: dict[str, Any]) -> InboundMessage:
    """An inline-keyboard button press: shown as the customer's answer (the button's data)."""
    qid = _str(query.get("id"))
    if qid is None:
        raise PayloadError("callback_query.id is missing")
    origin = query.get("message") if isinstance(query.get("message"), dict) else None
    person = query.get("from") if isinstance(query.get("from"), dict) else {}
    assert isinstance(person, dict)
    if origin is not None:
        sender = _sender({**origin, "from": person})
    elif isinstance(person.get("id"), int):
        sender = Sender(address=str(person["id"]), name=_str(person.get("first_name")))
    else:
        raise PayloadError("callback_query has neither message.chat nor from.id")
    reply_ref = (
        message_ref(sender.address, origin["message_id"])
        if origin is not None and isinstance(origin.get("message_id"), int)
        else None
    )
    return InboundMessage(
        provider_message_id=f"callback:{qid}",
        sender=sender,
        occurred_at=datetime.now(UTC),
        kind=MessageKind.INTERACTIVE,
        text=_str(query.get("data")),
        reply_to_provider_id=reply_ref,
        extra={"callback_query_id": qid},
    )
