"""LINE webhooks: signature on the raw bytes, one stored event per `events[]` entry, events →
canonical events. The facts relied on are in docs/channels/line.md ("Webhooks", "Events").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson

from tidings.channels.base import RawEvent, WebhookRequest, check_secret, json_of
from tidings.channels.base import nonempty_str as _str
from tidings.domain.enums import ConsentStatus, MessageKind
from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    Sender,
)

SIGNATURE_HEADER = "x-line-signature"

# Message types whose bytes are fetched from the content endpoint, with our attachment kind.
_MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
# Events LINE sends that an inbox has nothing to do with (docs/channels/line.md, "Events").
_IGNORED = {
    "videoPlayComplete": "a customer watched one of our videos to the end",
    "beacon": "LINE Beacon events are not used",
    "accountLink": "account linking is not used",
    "membership": "LINE membership changes are not used",
    "module": "module channel events are not used",
    "activated": "module channel events are not used",
    "deactivated": "module channel events are not used",
    "botSuspended": "module channel events are not used",
    "botResumed": "module channel events are not used",
    "delivery": "partner delivery completion events are not used",
}


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(channel secret, raw body)), as LINE puts in `x-line-signature`."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify(secret: str, request: WebhookRequest) -> None:
    # On the bytes exactly as received: re-serialising the JSON (escapes, spacing) changes the
    # MAC (docs/channels/line.md, "Webhooks").
    check_secret(
        request.headers.get(SIGNATURE_HEADER),
        signature(secret, request.body),
        "missing x-line-signature header",
        "x-line-signature does not match the channel secret",
    )


def split(body: bytes) -> list[RawEvent]:
    """One raw event per `events[]` entry, keyed by `webhookEventId`: a redelivery (or a
    spontaneous duplicate) carries the same id, so the database keeps one. An empty `events`
    (the Console's "Verify" probe) stores nothing and is answered 200."""
    doc = json_of(body, "body is not JSON: {exc}")
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise PayloadError("a LINE webhook is an object with an `events` list")
    out = []
    seen: set[str] = set()
    for event in doc["events"]:
        if not isinstance(event, dict):
            raise PayloadError("every entry of `events` must be an object")
        event_id = event.get("webhookEventId")
        if isinstance(event_id, str) and event_id:
            key = f"event:{event_id}"
        else:
            # Not expected from LINE; keep it once per exact content.
            canonical = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
            key = f"event-sha:{hashlib.sha256(canonical).hexdigest()}"
        if key in seen:
            continue  # the same event twice in one request: stored once
        seen.add(key)
        out.append(RawEvent(key=key, payload=orjson.dumps(event), occurred_at=_when(event, None)))
    return out


def _when(event: dict[str, Any], default: datetime | None) -> datetime | None:
    ts = event.get("timestamp")
    if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0:
        try:
            return datetime.fromtimestamp(ts / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return default
    return default


def chat_of(source: Any) -> tuple[str, str | None]:
    """(the conversation's address, who spoke): a 1:1 chat is the user; in a group or room the
    conversation is the group/room (pushes go there), and the speaker is kept apart."""
    if not isinstance(source, dict):
        raise PayloadError("event has no source")
    kind = source.get("type")
    user = _str(source.get("userId"))
    if kind == "group" and _str(source.get("groupId")):
        return source["groupId"], user
    if kind == "room" and _str(source.get("roomId")):
        return source["roomId"], user
    if user:
        return user, user
    raise PayloadError("event source names no user, group or room")


def parse(payload: bytes) -> list[CanonicalEvent]:
    event = orjson.loads(payload)
    if not isinstance(event, dict):
        raise PayloadError("a LINE event is a JSON object")
    kind = event.get("type")
    if not isinstance(kind, str):
        raise PayloadError("event has no type")
    if kind in _IGNORED:
        return [Ignored(f"LINE {kind}: {_IGNORED[kind]}")]
    occurred = _when(event, None) or datetime.now(UTC)
    if kind == "unsend":
        mid = _str((event.get("unsend") or {}).get("messageId"))
        if mid is None:
            raise PayloadError("unsend has no messageId")
        return [MessageDeleted(provider_message_id=mid, occurred_at=occurred)]
    if kind == "messageEdited":
        msg = event.get("message")
        if not isinstance(msg, dict) or not _str(msg.get("id")):
            raise PayloadError("messageEdited has no message.id")
        return [MessageEdited(msg["id"], occurred, _str(msg.get("text")))]
    if not isinstance(event.get("source"), dict) and kind != "message":
        # An event about no one (LINE omits `source` only on a failed account link; a future
        # type might too): understood, and nothing to file it under.
        return [Ignored(f"LINE {kind} names no user, group or room")]
    address, speaker = chat_of(event.get("source"))
    sender = Sender(address=address)
    extra: dict[str, Any] = {"event": kind}
    reply_token = _str(event.get("replyToken"))
    if reply_token is not None:
        # Used by `send` while it is fresh (docs/channels/line.md, "Reply or push").
        extra["reply_token"] = reply_token
    if speaker is not None and speaker != address:
        extra["speaker"] = speaker
    if event.get("mode") == "standby":
        extra["standby"] = True
    if (event.get("deliveryContext") or {}).get("isRedelivery") is True:
        extra["redelivered"] = True
    event_id = _str(event.get("webhookEventId")) or f"{kind}:{event.get('timestamp')}"

    def as_message(
        text: str | None,
        consent: ConsentStatus | None = None,
        message_kind: MessageKind = MessageKind.SYSTEM,
    ) -> list[CanonicalEvent]:
        return [
            InboundMessage(
                provider_message_id=f"event:{event_id}",
                sender=sender,
                occurred_at=occurred,
                kind=message_kind,
                text=text,
                extra=extra,
                consent=consent,
            )
        ]

    if kind == "message":
        return [_message(event, sender, occurred, extra)]
    if kind == "follow":
        unblocked = (event.get("follow") or {}).get("isUnblocked") is True
        return as_message(
            "Unblocked the LINE Official Account" if unblocked else "Added the account as a friend",
            ConsentStatus.OPTED_IN,
        )
    if kind == "unfollow":
        return as_message("Blocked the LINE Official Account", ConsentStatus.OPTED_OUT)
    if kind == "postback":
        postback = event.get("postback") or {}
        data = _str(postback.get("data")) if isinstance(postback, dict) else None
        params = postback.get("params") if isinstance(postback, dict) else None
        if isinstance(params, dict) and params:
            extra["params"] = params
        return as_message(data, message_kind=MessageKind.INTERACTIVE)
    # Group and room membership: lines in the group's own conversation (docs/channels/line.md,
    # "Groups and rooms"), not channel notices — they are about one chat, not the account.
    if kind == "join":
        return as_message("The LINE account was added to this group")
    if kind == "leave":
        return as_message("The LINE account was removed from this group")
    if kind in ("memberJoined", "memberLeft"):
        field = "joined" if kind == "memberJoined" else "left"
        members = (event.get(field) or {}).get("members")
        ids = [
            m["userId"]
            for m in members or []
            if isinstance(m, dict) and isinstance(m.get("userId"), str)
        ]
        extra["members"] = ids
        n = len(ids)
        who = "1 member" if n == 1 else f"{n} members"
        return as_message(f"{who} {'joined' if field == 'joined' else 'left'} the group")
    # A type LINE adds later: visible, never a crash.
    extra["type"] = kind
    return as_message(None, message_kind=MessageKind.UNSUPPORTED)


def _message(
    event: dict[str, Any], sender: Sender, occurred: datetime, extra: dict[str, Any]
) -> InboundMessage:
    msg = event.get("message")
    if not isinstance(msg, dict) or not _str(msg.get("id")):
        raise PayloadError("message event has no message.id")
    mid: str = msg["id"]
    mtype = msg.get("type")
    text: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()
    kind = MessageKind.TEXT
    if isinstance(msg.get("quoteToken"), str):
        extra["quote_token"] = msg["quoteToken"]
    if mtype == "text":
        text = msg.get("text") if isinstance(msg.get("text"), str) else ""
        # LINE emoji arrive as alt text such as "(love)"; mentions as "@name" spans.
        for field in ("emojis", "mention"):
            if msg.get(field):
                extra[field] = msg[field]
    elif mtype in _MEDIA_KINDS:
        kind = MessageKind.MEDIA
        provider = msg.get("contentProvider")
        url = None
        if isinstance(provider, dict) and provider.get("type") == "external":
            # Sent through another service: fetched from its own URL (egress policy applies).
            url = _str(provider.get("originalContentUrl"))
        size = msg.get("fileSize")
        attachments = (
            AttachmentRef(
                kind=_MEDIA_KINDS[mtype],
                provider_media_id=None if url else mid,
                url=url,
                filename=_str(msg.get("fileName")),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            ),
        )
        if isinstance(msg.get("duration"), int):
            extra["duration_ms"] = msg["duration"]
        if isinstance(msg.get("imageSet"), dict):
            extra["image_set"] = msg["imageSet"]
    elif mtype == "location":
        lat, lng = msg.get("latitude"), msg.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lng, int | float):
            kind = MessageKind.UNSUPPORTED
            extra["type"] = "location without coordinates"
        else:
            kind = MessageKind.LOCATION
            words = [w for w in (_str(msg.get("title")), _str(msg.get("address"))) if w]
            text = ", ".join(words) or None
            extra.update(latitude=lat, longitude=lng)
            for field in ("title", "address"):
                if _str(msg.get(field)):
                    extra[field] = msg[field]
    elif mtype == "sticker":
        kind = MessageKind.MEDIA
        package, sticker = _str(msg.get("packageId")), _str(msg.get("stickerId"))
        extra["sticker"] = {
            k: v
            for k, v in (
                ("package_id", package),
                ("sticker_id", sticker),
                ("resource_type", msg.get("stickerResourceType")),
                ("keywords", msg.get("keywords")),
                ("text", msg.get("text")),
            )
            if v
        }
        # No API returns the sticker image; LINE's sticker shop serves the static picture. Kept
        # as a reference only: fetching it is left to whoever opens it.
        if sticker is not None and sticker.isdigit():
            extra["sticker"]["image_url"] = (
                f"https://stickershop.line-scdn.net/stickershop/v1/sticker/{sticker}/android/sticker.png"
            )
        # A message sticker carries the words the customer typed on it; others show as a tag.
        text = _str(msg.get("text")) or "[sticker]"
    else:
        kind = MessageKind.UNSUPPORTED
        extra["type"] = mtype if isinstance(mtype, str) else "message without a type"
    quoted = _str(msg.get("quotedMessageId"))
    return InboundMessage(
        provider_message_id=mid,
        sender=sender,
        occurred_at=occurred,
        kind=kind,
        text=text,
        attachments=attachments,
        reply_to_provider_id=quoted,
        extra=extra,
    )
