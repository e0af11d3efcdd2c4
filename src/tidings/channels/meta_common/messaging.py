"""The Messenger-platform webhook format, shared by Messenger (`object: page`) and Instagram
(`object: instagram`): `entry[].messaging[]` (and `standby[]`) elements with `sender`,
`recipient`, `timestamp` (Unix milliseconds) and one of message / delivery / read / reaction /
message_edit / postback / referral (docs/channels/messenger.md#inbound-events,
docs/channels/instagram.md#inbound-events).

`split` runs before Meta gets its 200 and only cuts the envelope; `parse` runs in the ingest
worker and holds the per-event knowledge. Both are pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tidings.channels.base import RawEvent, json_of
from tidings.channels.meta_common import dict_at, digest, list_at
from tidings.channels.meta_common import timestamp as _when
from tidings.domain.enums import InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    ChannelNotice,
    Ignored,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    ReceiptWatermark,
    Sender,
    StatusUpdate,
)

# Our own sends carry `metadata: "tidings:<message id>"`, which Meta echoes back verbatim in
# the `is_echo` webhook (docs/channels/messenger.md#inbound-events,
# docs/channels/messenger.md#send-api): that is how an echo of our own reply is told apart from a
# message the business wrote in another inbox.
METADATA_PREFIX = "tidings:"

# Attachment kinds kept in the 16-character column: Meta's names, shortened where needed.
_KIND_NAMES = {"appointment_booking": "appointment"}


@dataclass(frozen=True, slots=True)
class Product:
    """Which Meta product a webhook belongs to."""

    object: str  # "page" | "instagram"
    label: str  # "Messenger" | "Instagram"


# `_when` (meta_common.timestamp): milliseconds in most events, seconds (even as a string) in
# some; read by magnitude.
MESSENGER = Product("page", "Messenger")
INSTAGRAM = Product("instagram", "Instagram")


def _str(obj: object, key: str) -> str | None:
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # ids are numeric strings, but be lenient with numbers
    return None


def _party(element: dict[str, Any], key: str) -> str | None:
    party = dict_at(element, key)
    ident = _str(party, "id")
    if ident:
        return ident
    # Chat-plugin visitors come as sender.user_ref instead of an id
    # (docs/channels/messenger.md#inbound-events).
    ref = _str(party, "user_ref")
    return f"user_ref:{ref}" if ref else None


def event_key(element: dict[str, Any]) -> str:
    """A key identical across Meta's retries of the same event
    (docs/providers/graph-api.md#batching-retries-and-order: dedupe on `mid`, or the
    watermark for receipts)."""
    sender = _party(element, "sender") or "?"
    message = dict_at(element, "message")
    if mid := _str(message, "mid"):
        if message.get("is_deleted") is True:
            return f"deleted:{mid}"
        return f"echo:{mid}" if message.get("is_echo") is True else f"mid:{mid}"
    if delivery := dict_at(element, "delivery"):
        return f"delivery:{sender}:{delivery.get('watermark')}:{digest(delivery.get('mids'))}"
    if read := dict_at(element, "read"):
        mark = read.get("watermark") or _str(read, "mid")
        return f"read:{sender}:{mark}"
    if reaction := dict_at(element, "reaction"):
        return (
            f"reaction:{sender}:{_str(reaction, 'mid')}:{_str(reaction, 'action')}:"
            f"{element.get('timestamp')}"
        )
    if edit := dict_at(element, "message_edit"):
        return f"edit:{_str(edit, 'mid')}:{edit.get('num_edit')}"
    if (postback := dict_at(element, "postback")) and (mid := _str(postback, "mid")):
        return f"postback:{mid}"
    return f"event:{digest(element)}"


def split(body: bytes, product: Product, account_id: str) -> list[RawEvent]:
    """One RawEvent per `messaging[]` / `standby[]` element of the entries for `account_id`.

    Up to 1000 updates may be batched in one POST, so every entry is walked
    (docs/providers/graph-api.md#batching-retries-and-order). An app subscribed to several Pages
    posts all of them to one callback; entries of other accounts are not this channel's and are left
    out.
    """
    doc = json_of(body, f"The {product.label} webhook body is not valid JSON.")
    if not isinstance(doc, dict) or doc.get("object") != product.object:
        raise PayloadError(
            f"The webhook is not a {product.label} event (object != {product.object!r})."
        )
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise PayloadError(f"The {product.label} webhook has no entry list.")
    out: list[RawEvent] = []
    for entry in entries:
        if not isinstance(entry, dict):
            out.append(_opaque(entry))
            continue
        entry_id = _str(entry, "id")
        if entry_id is not None and entry_id != account_id:
            continue
        for standby, field in ((False, "messaging"), (True, "standby")):
            for element in list_at(entry, field):
                if not isinstance(element, dict):
                    out.append(_opaque(element))
                    continue
                out.append(_element(element, entry, entry_id, standby=standby))
        for change in list_at(entry, "changes"):
            value = dict_at(change, "value")
            field = _str(change, "field") or "?"
            if field in _MESSAGING_FIELDS and ("sender" in value or "recipient" in value):
                # A messaging event in the `changes` form: the App Dashboard's "Test" sample
                # and the field references write `{"field": "messages", "value": {sender,
                # recipient, timestamp, message}}` (docs/channels/messenger.md, "Timestamps").
                out.append(_element(value, entry, entry_id, standby=field == "standby"))
                continue
            # Instagram comments/mentions (docs/channels/instagram.md#inbound-events): outside the
            # inbox for now.
            piece = {"entry_id": entry_id, "change": change, "time": entry.get("time")}
            out.append(RawEvent(f"change:{field}:{digest(piece)}", orjson.dumps(piece), None))
    return out


# Webhook fields whose `value` is one `messaging[]` element when they come as `changes`.
_MESSAGING_FIELDS = frozenset(
    (
        "messages",
        "message_echoes",
        "message_edits",
        "message_reactions",
        "message_deliveries",
        "message_reads",
        "messaging_seen",
        "messaging_postbacks",
        "messaging_referral",
        "messaging_referrals",
        "messaging_optins",
        "messaging_policy_enforcement",
        "messaging_handovers",
        "messaging_handover",
        "standby",
    )
)


def _element(
    element: dict[str, Any], entry: dict[str, Any], entry_id: str | None, *, standby: bool
) -> RawEvent:
    piece = {
        "entry_id": entry_id,
        "standby": standby,
        "event": element,
        # Delivery receipts carry no timestamp of their own: the entry's time.
        "time": entry.get("time"),
    }
    when = _when(element.get("timestamp")) or _when(entry.get("time"))
    receipt = dict_at(element, "delivery") or dict_at(element, "read")
    lane = InboundLane.STATUS if receipt else InboundLane.CUSTOMER
    return RawEvent(event_key(element), orjson.dumps(piece), when, lane)


def _opaque(thing: object) -> RawEvent:
    # Kept rather than dropped: parse refuses it, so it is visible as a failed event.
    body = {"malformed": thing}
    return RawEvent(f"bad:{digest(body)}", orjson.dumps(body), None)


# --------------------------------------------------------------------------------------------
# Parse


_MEDIA = frozenset(("image", "audio", "video", "file", "sticker"))
# Attachments Meta could not hand over (Instagram `unsupported_type`, with a CDN URL that
# serves nothing useful; `ephemeral` view-once media): the message is unsupported, not a file
# (docs/channels/instagram.md, "Timestamps, unsupported attachments, page events").
_UNSUPPORTED = frozenset(("unsupported_type", "ephemeral"))


def _location(message: dict[str, Any]) -> dict[str, Any] | None:
    """A shared location: `{"type": "location", "title": …, "url": …, "payload":
    {"coordinates": {"lat": …, "long": …}}}` (docs/channels/messenger.md, "Locations")."""
    for item in list_at(message, "attachments"):
        if not isinstance(item, dict) or item.get("type") != "location":
            continue
        coordinates = dict_at(dict_at(item, "payload"), "coordinates")
        place: dict[str, Any] = {}
        for ours, theirs in (("latitude", "lat"), ("longitude", "long")):
            value = coordinates.get(theirs)
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                place[ours] = float(value)
        if "latitude" not in place or "longitude" not in place:
            continue
        if not (-90 <= place["latitude"] <= 90 and -180 <= place["longitude"] <= 180):
            continue
        if title := _str(item, "title") or _str(dict_at(item, "payload"), "title"):
            place["name"] = title
        return place
    return None


def _attachments(message: dict[str, Any]) -> tuple[list[AttachmentRef], list[dict[str, Any]]]:
    """Attachments (with a CDN URL, no MIME type or size:
    docs/channels/messenger.md#attachment-upload) and the shared links (posts, reels, story
    mentions...) kept for display."""
    items = [a for a in list_at(message, "attachments") if isinstance(a, dict)]
    has_sticker = any(a.get("type") == "sticker" for a in items)
    refs: list[AttachmentRef] = []
    shares: list[dict[str, Any]] = []
    for item in items:
        kind = _str(item, "type") or "file"
        payload = dict_at(item, "payload")
        if kind in _UNSUPPORTED:
            continue
        # Until 2026-08-30 a sticker arrives twice: the new `sticker` attachment and the old
        # `image` form (docs/channels/messenger.md#inbound-events); keep the sticker.
        if has_sticker and kind == "image" and "sticker_id" in payload:
            continue
        url = _str(payload, "url")
        if kind in _MEDIA and url:
            refs.append(AttachmentRef(kind=kind, url=url))
        else:
            share: dict[str, Any] = {"type": kind}
            for key in ("url", "title", "id", "sticker_id"):
                if value := _str(payload, key) or _str(item, key):
                    share[key] = value
            shares.append(share)
            if url:
                refs.append(AttachmentRef(kind=_KIND_NAMES.get(kind, kind)[:16], url=url))
    return refs, shares


def _message(
    element: dict[str, Any], product: Product, sender: str, when: datetime
) -> CanonicalEvent:
    message = dict_at(element, "message")
    mid = _str(message, "mid")
    if not mid:
        raise PayloadError(f"The {product.label} message has no mid.")
    if message.get("is_deleted") is True:
        return MessageDeleted(provider_message_id=mid, occurred_at=when)
    echo = message.get("is_echo") is True
    if echo:
        metadata = _str(message, "metadata") or ""
        if metadata.startswith(METADATA_PREFIX):
            # Our own reply coming back: it confirms the send (and ties the mid to our
            # message if the echo overtook the Send API's answer), never a second message.
            return StatusUpdate(
                provider_message_id=mid,
                status=MessageStatus.SENT,
                occurred_at=when,
                recipient=_party(element, "recipient"),
                our_message_ref=metadata[len(METADATA_PREFIX) :],
            )
    # For an echo the customer is the recipient: that places it in their conversation.
    customer = _party(element, "recipient") if echo else sender
    if not customer:
        raise PayloadError(f"The {product.label} echo names no recipient.")
    text = _str(message, "text")
    extra: dict[str, Any] = {}
    refs, shares = _attachments(message)
    if shares:
        extra["shares"] = shares
    if quick := dict_at(message, "quick_reply"):
        extra["quick_reply_payload"] = _str(quick, "payload")
    reply_to = dict_at(message, "reply_to")
    if story := dict_at(reply_to, "story"):
        extra["reply_to_story"] = {k: v for k, v in story.items() if isinstance(v, str)}
    if referral := dict_at(message, "referral"):
        extra["referral"] = referral
    if echo and (app_id := _str(message, "app_id")):
        extra["app_id"] = app_id
    if text is None and shares:
        # A story mention, shared post or reel says nothing itself: name what it is.
        text = ", ".join(s["type"].replace("_", " ") for s in shares)
    unsupported = [
        a["type"]
        for a in list_at(message, "attachments")
        if isinstance(a, dict) and a.get("type") in _UNSUPPORTED
    ]
    place = _location(message)
    if place is not None:
        kind = MessageKind.LOCATION
        extra.update(place)
        extra.pop("shares", None)
        text = _str(message, "text") or place.get("name")
        refs = []
    elif message.get("is_unsupported") is True or (
        unsupported and not refs and not shares and text is None
    ):
        kind = MessageKind.UNSUPPORTED
        extra["type"] = "unsupported"
    elif refs or shares:
        kind = MessageKind.MEDIA
    elif text is not None:
        kind = MessageKind.TEXT
    else:
        kind = MessageKind.UNSUPPORTED
        extra["type"] = "unknown"
    if unsupported:
        # Even beside text or other files, say that something could not be shown.
        extra["attachment_type"] = unsupported[0]
    return InboundMessage(
        provider_message_id=mid,
        sender=Sender(address=customer),
        occurred_at=when,
        kind=kind,
        text=text,
        attachments=tuple(refs),
        reply_to_provider_id=_str(reply_to, "mid"),
        extra=extra,
        echo=echo,
    )


def _reaction(element: dict[str, Any], sender: str, when: datetime, key: str) -> InboundMessage:
    reaction = dict_at(element, "reaction")
    target = _str(reaction, "mid")
    action = _str(reaction, "action") or "react"
    # `unreact` omits reaction/emoji: an empty text means the reaction was removed.
    emoji = "" if action == "unreact" else (_str(reaction, "emoji") or _str(reaction, "reaction"))
    extra: dict[str, Any] = {"action": action}
    if name := _str(reaction, "reaction"):
        extra["reaction"] = name
    return InboundMessage(
        provider_message_id=key,
        sender=Sender(address=sender),
        occurred_at=when,
        kind=MessageKind.REACTION,
        text=emoji or "",
        target_provider_id=target,
        extra=extra,
    )


def _postback(element: dict[str, Any], sender: str, when: datetime, key: str) -> InboundMessage:
    postback = dict_at(element, "postback")
    title = _str(postback, "title")
    extra: dict[str, Any] = {"type": "postback", "payload": _str(postback, "payload")}
    if referral := dict_at(postback, "referral"):
        extra["referral"] = referral
    return InboundMessage(
        provider_message_id=_str(postback, "mid") or key,
        sender=Sender(address=sender),
        occurred_at=when,
        kind=MessageKind.INTERACTIVE,
        text=title or _str(postback, "payload") or "",
        extra=extra,
    )


def _referral(element: dict[str, Any], sender: str, when: datetime, key: str) -> InboundMessage:
    referral = dict_at(element, "referral")
    source = _str(referral, "source") or "a link"
    words = {"ADS": "an ad", "SHORTLINK": "a link", "CUSTOMER_CHAT_PLUGIN": "the chat plugin"}
    ref = _str(referral, "ref")
    text = f"Opened the conversation from {words.get(source, source)}" + (
        f" (ref {ref})" if ref else ""
    )
    return InboundMessage(
        provider_message_id=key,
        sender=Sender(address=sender),
        occurred_at=when,
        kind=MessageKind.SYSTEM,
        text=text,
        extra={"type": "referral", "referral": referral},
    )


# Page-level events name the Page (recipient) and no customer (docs/channels/messenger.md,
# "Page events"). Meta's reference spells it `policy_enforcement`; older payloads used
# `policy-enforcement`.
_POLICY = ("policy_enforcement", "policy-enforcement")


def _page_event(element: dict[str, Any], product: Product, when: datetime | None) -> CanonicalEvent:
    at = when or datetime.now(UTC)
    for key in _POLICY:
        if key in element:
            policy = dict_at(element, key)
            action = _str(policy, "action") or "notice"
            reason = _str(policy, "reason")
            words = {
                "block": f"{product.label} blocked this channel's messaging",
                "warning": f"{product.label} warned this channel about its messaging",
                "unblock": f"{product.label} lifted its block on this channel",
            }
            text = words.get(action, f"{product.label} policy enforcement: {action}")
            return ChannelNotice(
                topic="policy_enforcement",
                text=f"{text}: {reason}" if reason else f"{text}.",
                occurred_at=at,
                severe=action == "block",
            )
    if "app_roles" in element:
        roles = dict_at(element, "app_roles")
        named = ", ".join(
            f"app {app}: {'/'.join(r for r in role if isinstance(r, str))}"
            for app, role in roles.items()
            if isinstance(role, list)
        )
        return ChannelNotice(
            topic="app_roles",
            text=f"{product.label} changed the apps' roles on this channel ({named or 'none'}).",
            occurred_at=at,
        )
    kinds = sorted(k for k in element if k not in ("sender", "recipient", "timestamp"))
    return Ignored(f"{product.label} page event {kinds} names no customer; nothing to do.")


def parse(payload: bytes, product: Product) -> list[CanonicalEvent]:
    """One piece cut by `split` → canonical events. Unknown event kinds are Ignored (with
    why); a message Meta could not show us becomes an UNSUPPORTED message the agent sees."""
    doc = json_of(payload, f"The stored {product.label} event is not valid JSON.")
    if not isinstance(doc, dict):
        raise PayloadError(f"The stored {product.label} event is not an object.")
    if "change" in doc:
        field = _str(doc["change"], "field")
        return [Ignored(f"{product.label} {field!r} changes have no effect in Tidings yet.")]
    element = doc.get("event")
    if not isinstance(element, dict):
        raise PayloadError(f"The {product.label} webhook piece is malformed.")
    sender = _party(element, "sender")
    when = _when(element.get("timestamp")) or _when(doc.get("time"))
    if not sender:
        if "message" in element:
            raise PayloadError(f"The {product.label} message names no sender.")
        return [_page_event(element, product, when)]
    key = event_key(element)
    if "message" in element:
        if when is None:
            raise PayloadError(f"The {product.label} message has no valid timestamp.")
        return [_message(element, product, sender, when)]
    if delivery := dict_at(element, "delivery"):
        # Every message sent before the watermark is delivered; `mids` may be missing.
        mark = _when(delivery.get("watermark"))
        if mark is None:
            raise PayloadError(f"The {product.label} delivery receipt has no watermark.")
        return [ReceiptWatermark(recipient=sender, status=MessageStatus.DELIVERED, watermark=mark)]
    if "read" in element:
        read = dict_at(element, "read")
        # Messenger: a watermark. Instagram `messaging_seen`: the mid last seen, and the
        # event time says up to when (there are no Instagram delivery receipts,
        # docs/channels/instagram.md#inbound-events).
        mark = _when(read.get("watermark")) or when
        if mark is None:
            raise PayloadError(f"The {product.label} read receipt has no watermark.")
        return [ReceiptWatermark(recipient=sender, status=MessageStatus.READ, watermark=mark)]
    if when is None:
        raise PayloadError(f"The {product.label} event has no valid timestamp.")
    if "reaction" in element:
        return [_reaction(element, sender, when, key)]
    if edit := dict_at(element, "message_edit"):
        mid = _str(edit, "mid")
        if not mid:
            raise PayloadError(f"The {product.label} edit names no message.")
        return [MessageEdited(provider_message_id=mid, occurred_at=when, text=_str(edit, "text"))]
    if "postback" in element:
        return [_postback(element, sender, when, key)]
    if "referral" in element:
        return [_referral(element, sender, when, key)]
    kinds = sorted(k for k in element if k not in ("sender", "recipient", "timestamp"))
    return [Ignored(f"{product.label} event {kinds} has no effect in Tidings.")]
