"""WhatsApp webhooks: split and parse (the handshake and signature are Meta's, in
`meta_common`). Pure functions, no I/O.

`split` runs on the hot path before Meta gets its 200, so it only walks the envelope with
orjson and cuts it into small self-contained pieces; `parse` (in the ingest worker) turns one
piece into canonical events and is where the per-type knowledge lives. Facts:
docs/channels/whatsapp.md#protocol-facts and docs/providers/graph-api.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from tidings.channels.base import RawEvent, json_of
from tidings.channels.meta_common import dict_at, digest, list_at
from tidings.channels.meta_common import timestamp as _when
from tidings.channels.whatsapp.errors import failure_reason
from tidings.domain.enums import InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError
from tidings.domain.events import (
    AttachmentRef,
    CanonicalEvent,
    Ignored,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    Sender,
    StatusUpdate,
    TemplateStatus,
)

OBJECT = "whatsapp_business_account"
# `_when`: WhatsApp timestamps are Unix seconds as a string ("1749416383"); entry.time is an int.
# Read like every Meta time, by magnitude, so one written in milliseconds is not dated in the year
# 57000 and failed (docs/channels/messenger.md, "Timestamps").

# --------------------------------------------------------------------------------------------
# Split: hot path. orjson and dict walking only.


def _contacts_for(element: dict[str, Any], contacts: list[Any], by_id: dict[str, Any]) -> list[Any]:
    """The contacts[] entries that describe this element's user.

    A batch can carry many users' messages in one change, each with its own contacts[] entry;
    copying them all into every piece would make a 1000-message batch quadratic.
    """
    if len(contacts) <= 1:
        return contacts
    found = []
    for key in ("from", "from_user_id", "recipient_id", "recipient_user_id"):
        ident = element.get(key)
        if isinstance(ident, str) and ident in by_id:
            contact = by_id[ident]
            if contact not in found:
                found.append(contact)
    return found


def _index_contacts(contacts: list[Any]) -> dict[str, Any]:
    by_id: dict[str, Any] = {}
    if len(contacts) > 1:
        for contact in contacts:
            if isinstance(contact, dict):
                for key in ("wa_id", "user_id"):
                    ident = contact.get(key)
                    if isinstance(ident, str):
                        by_id[ident] = contact
    return by_id


def _status_key(status: dict[str, Any]) -> str:
    """`status:<wamid>:<status>`, and for `failed` also the first error code.

    Meta's retries resend the same status, which must collapse. A `failed` for a wamid is not
    documented as final, though (Meta keeps trying undelivered messages for up to 30 days,
    docs/channels/whatsapp.md#status-webhooks), so a later failure with a different code is new
    information and must not be swallowed as a duplicate of the first.
    """
    ident = status.get("id")
    state = status.get("status")
    if not isinstance(ident, str) or not ident or not isinstance(state, str):
        return f"status:h:{digest(status)}"
    if state == "failed":
        errors = status.get("errors")
        code = None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
        return f"status:{ident}:failed:{code if code is not None else 'none'}"
    return f"status:{ident}:{state}"


def _id_key(prefix: str, element: dict[str, Any]) -> str:
    ident = element.get("id")
    return (
        f"{prefix}:{ident}" if isinstance(ident, str) and ident else f"{prefix}:h:{digest(element)}"
    )


def _split_list(
    items: object,
    head: dict[str, Any],
    name: str,
    key: Callable[[dict[str, Any]], str],
    out: list[RawEvent],
    people: Callable[[dict[str, Any]], list[Any]] | None = None,
    lane: str = InboundLane.CUSTOMER,
) -> None:
    """One piece per element of `items` (value.messages, .statuses, .message_echoes): `head`,
    the contacts[] entries of the element's user when `people` picks them, and the element
    itself under `name`."""
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            out.append(_opaque(head["field"], head["waba_id"], item))
            continue
        body = {**head, "contacts": people(item)} if people else dict(head)
        body[name] = item
        out.append(RawEvent(key(item), orjson.dumps(body), _when(item.get("timestamp")), lane))


def _split_messages_change(waba_id: object, value: dict[str, Any], out: list[RawEvent]) -> None:
    metadata = value.get("metadata")
    contacts = value.get("contacts")
    if not isinstance(contacts, list):
        contacts = []
    by_id = _index_contacts(contacts)
    head = {"field": "messages", "waba_id": waba_id, "metadata": metadata}
    people = partial(_contacts_for, contacts=contacts, by_id=by_id)
    _split_list(value.get("messages"), head, "message", partial(_id_key, "msg"), out, people)
    statuses = value.get("statuses")
    _split_list(statuses, head, "status", _status_key, out, people, InboundLane.STATUS)

    errors = value.get("errors")
    if isinstance(errors, list):
        number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
        for error in errors:
            # value.errors carry no id or timestamp: the content (scoped to the number) is the
            # only stable key, so two identical errors in different webhooks collapse into one.
            body = {**head, "error": error}
            out.append(RawEvent(f"error:{digest([number, error])}", orjson.dumps(body), None))


def _opaque(field: object, waba_id: object, thing: object) -> RawEvent:
    # Kept rather than dropped: parse refuses it, so it shows up as a failed, replayable event.
    body = {"field": field, "waba_id": waba_id, "malformed": thing}
    return RawEvent(f"bad:{digest(body)}", orjson.dumps(body), None)


def split(body: bytes) -> list[RawEvent]:
    """Cut a verified webhook body into one RawEvent per message, status, error or other change.

    Meta may batch up to 1000 updates in one POST across several entry[] and changes[]
    (docs/providers/graph-api.md#batching-retries-and-order), so every level is walked. Keys are
    stable across Meta's retries: `msg:<wamid>`, `status:<wamid>:<status>[:<code>]`, `error:<hash>`,
    `echo:<wamid>`, `change:<field>:<hash>`, and `bad:<hash>` for a malformed part (kept, fails in
    parse).
    """
    doc = json_of(body, "The WhatsApp webhook body is not valid JSON.")
    if not isinstance(doc, dict) or doc.get("object") != OBJECT:
        raise PayloadError("The webhook is not a WhatsApp Business Account event.")
    entries = doc.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("The WhatsApp webhook has no entry list.")

    out: list[RawEvent] = []
    for entry in entries:
        if not isinstance(entry, dict):
            out.append(_opaque(None, None, entry))
            continue
        waba_id = entry.get("id")
        changes = entry.get("changes")
        if not isinstance(changes, list):
            out.append(_opaque(None, waba_id, entry))
            continue
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                out.append(_opaque(None, waba_id, change))
                continue
            field = change.get("field")
            value = change["value"]
            if field == "messages":
                _split_messages_change(waba_id, value, out)
            elif field == "smb_message_echoes":
                # Coexistence numbers only: what the business typed in the WhatsApp Business
                # app (docs/channels/whatsapp.md#inbound-payloads).
                head = {"field": field, "waba_id": waba_id, "metadata": value.get("metadata")}
                echoes = value.get("message_echoes")
                _split_list(echoes, head, "echo", partial(_id_key, "echo"), out)
            else:
                # Template, quality and account updates: one piece per change. entry.time is in
                # the key so a later, identical-looking update (APPROVED again) is kept.
                piece = {
                    "field": field,
                    "waba_id": waba_id,
                    "time": entry.get("time"),
                    "value": value,
                }
                key = f"change:{field}:{digest(piece)}"
                out.append(RawEvent(key, orjson.dumps(piece), _when(entry.get("time"))))
    return out


# --------------------------------------------------------------------------------------------
# Parse: the ingest worker. Untrusted input: every field is type-checked before use.


def _str(obj: object, key: str) -> str | None:
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _digits(value: str | None) -> str | None:
    if value and value.isascii() and value.isdigit():
        return value
    return None


def _required_time(element: dict[str, Any], what: str) -> datetime:
    when = _when(element.get("timestamp"))
    if when is None:
        raise PayloadError(f"The WhatsApp {what} has no valid timestamp.")
    return when


def _sender(message: dict[str, Any], contacts: list[Any]) -> Sender:
    """Phone digits when WhatsApp reveals them, else the BSUID.

    From the BSUID rollout (~April 2026) a user with a username may arrive with only
    `from_user_id` / `contacts[].user_id` and no phone (docs/channels/whatsapp.md#inbound-payloads),
    so the phone is optional.
    """
    wa_id = _str(message, "from")
    user_id = _str(message, "from_user_id")
    contact: dict[str, Any] = {}
    for candidate in contacts:
        if not isinstance(candidate, dict):
            continue
        matches = (wa_id is not None and candidate.get("wa_id") == wa_id) or (
            user_id is not None and candidate.get("user_id") == user_id
        )
        if matches or len(contacts) == 1:
            contact = candidate
            break
    wa_id = wa_id or _str(contact, "wa_id")
    user_id = user_id or _str(contact, "user_id")
    digits = _digits(wa_id)
    address = digits or user_id or wa_id
    if not address:
        raise PayloadError("The WhatsApp message names no sender (no from, wa_id or user_id).")
    profile = dict_at(contact, "profile")
    name = _str(profile, "name") or _str(profile, "username")
    aliases = (user_id,) if user_id and user_id != address else ()
    return Sender(
        address=address,
        name=name or None,
        phone=f"+{digits}" if digits else None,
        # wa_id is WhatsApp's own account number for the user: verified.
        phone_verified=digits is not None,
        aliases=aliases,
    )


# System messages that say the user now goes by another id (docs/channels/whatsapp.md,
# "Identity changes"). `customer_changed_number` is the name older Graph versions used.
_MOVES = ("user_changed_number", "customer_changed_number", "user_changed_user_id")


def _parse_system(message: dict[str, Any], contacts: list[Any]) -> CanonicalEvent:
    """A `type: "system"` message. It names no sender the usual way: Meta sends no contacts[]
    with it, and `user_changed_user_id` has no `from` either — the user is in `system`
    (the new `user_id` / `wa_id`, and `previous_user_id`). Never fails for want of a sender."""
    ident = _str(message, "id")
    assert ident is not None
    system = dict_at(message, "system")
    stype = _str(system, "type") or "system"
    body = _str(system, "body")
    when = _required_time(message, "system message")
    extra: dict[str, Any] = {"type": stype}
    old_number = _digits(_str(message, "from"))
    if stype in _MOVES:
        new_number = _digits(_str(system, "wa_id") or _str(system, "new_wa_id"))
        if stype == "user_changed_user_id":
            # Only the BSUID changed; a `from`, when present, is still their number.
            new_number = new_number or old_number
        new_user = _str(system, "user_id")
        previous: list[str] = []
        for candidate in (
            _str(message, "from"),
            _str(message, "from_user_id"),
            _str(system, "previous_user_id"),
            *(_str(c, key) for c in contacts for key in ("wa_id", "user_id")),
        ):
            if candidate and candidate not in previous and candidate != new_user:
                previous.append(candidate)
        address = new_number or new_user
        if new_number:
            extra["new_wa_id"] = new_number
        if new_user:
            extra["new_user_id"] = new_user
        if address and previous:
            return InboundMessage(
                provider_message_id=ident,
                sender=Sender(
                    address=address,
                    phone=f"+{new_number}" if new_number else None,
                    phone_verified=new_number is not None,
                    aliases=(new_user,) if new_user and new_user != address else (),
                ),
                occurred_at=when,
                kind=MessageKind.SYSTEM,
                text=body,
                extra=extra,
                moved_from=tuple(previous),
            )
    try:
        sender = _sender(message, contacts)
    except PayloadError:
        return Ignored(f"WhatsApp system message {stype!r} names no user")
    return InboundMessage(
        provider_message_id=ident,
        sender=sender,
        occurred_at=when,
        kind=MessageKind.SYSTEM,
        text=body,
        extra=extra,
    )


_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")


class _Content:
    """What a message says, independent of who sent it (shared by inbound and echoes)."""

    __slots__ = ("attachments", "extra", "kind", "target", "text")

    def __init__(self, kind: MessageKind, text: str | None = None) -> None:
        self.kind = kind
        self.text = text
        self.attachments: tuple[AttachmentRef, ...] = ()
        self.target: str | None = None
        self.extra: dict[str, Any] = {}


def _media(kind: str, obj: dict[str, Any]) -> _Content:
    caption = _str(obj, "caption")
    content = _Content(MessageKind.MEDIA, caption)
    content.attachments = (
        AttachmentRef(
            kind=kind,
            mime_type=_str(obj, "mime_type"),
            provider_media_id=_str(obj, "id"),
            # Present on current inbound webhooks but needs the bearer token to fetch
            # (docs/channels/whatsapp.md#media-limits-and-downloads).
            url=_str(obj, "url") or _str(obj, "link"),
            filename=_str(obj, "filename"),
            caption=caption,
            size=_int(obj.get("file_size")),
        ),
    )
    if kind == "audio" and obj.get("voice") is True:
        content.extra["voice"] = True
    if kind == "sticker" and obj.get("animated") is True:
        content.extra["animated"] = True
    if sha := _str(obj, "sha256"):
        content.extra["sha256"] = sha
    return content


def _location(obj: dict[str, Any]) -> _Content:
    extra: dict[str, Any] = {}
    for key in ("latitude", "longitude"):
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            extra[key] = value
    for key in ("name", "address", "url"):
        if text := _str(obj, key):
            extra[key] = text
    words = [w for w in (extra.get("name"), extra.get("address")) if w]
    content = _Content(MessageKind.LOCATION, ", ".join(words) or None)
    content.extra = extra
    return content


def _contact_cards(cards: list[Any]) -> _Content:
    names = []
    for card in cards:
        name = dict_at(card, "name")
        formatted = _str(name, "formatted_name") or " ".join(
            w for w in (_str(name, "first_name"), _str(name, "last_name")) if w
        )
        if formatted:
            names.append(formatted)
    content = _Content(MessageKind.CONTACT_CARD, ", ".join(names) or None)
    content.extra = {"contacts": [c for c in cards if isinstance(c, dict)]}
    return content


def _interactive(obj: dict[str, Any]) -> _Content:
    sub = _str(obj, "type") or ""
    if sub in ("button_reply", "list_reply"):
        reply = dict_at(obj, sub)
        content = _Content(MessageKind.INTERACTIVE, _str(reply, "title"))
        content.extra = {"type": sub, "id": _str(reply, "id"), "title": _str(reply, "title")}
        if description := _str(reply, "description"):
            content.extra["description"] = description
        return content
    if sub == "nfm_reply":
        # A completed WhatsApp Flow: the answers are a JSON string in response_json.
        reply = dict_at(obj, "nfm_reply")
        content = _Content(MessageKind.INTERACTIVE, _str(reply, "body") or "Form submitted")
        content.extra = {"type": sub, "name": _str(reply, "name")}
        raw = _str(reply, "response_json")
        if raw is not None:
            try:
                content.extra["response"] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                content.extra["response_json"] = raw
        return content
    content = _Content(MessageKind.UNSUPPORTED)
    content.extra = {"type": f"interactive.{sub}" if sub else "interactive", "interactive": obj}
    return content


def _order(obj: dict[str, Any]) -> _Content:
    items = [i for i in list_at(obj, "product_items") if isinstance(i, dict)]
    lines = []
    for item in items:
        qty = item.get("quantity")
        sku = _str(item, "product_retailer_id") or "?"
        price = item.get("item_price")
        currency = _str(item, "currency") or ""
        lines.append(f"{qty} x {sku} @ {price} {currency}".strip())
    text = _str(obj, "text")
    summary = f"Order of {len(items)} item(s): " + "; ".join(lines)
    content = _Content(MessageKind.TEXT, f"{text}\n{summary}" if text else summary)
    content.extra = {"type": "order", "order": obj}
    return content


def _content(message: dict[str, Any]) -> _Content:
    mtype = _str(message, "type") or "unknown"
    if mtype == "text":
        return _Content(MessageKind.TEXT, _str(dict_at(message, "text"), "body") or "")
    if mtype in _MEDIA_TYPES:
        return _media(mtype, dict_at(message, mtype))
    if mtype == "location":
        return _location(dict_at(message, "location"))
    if mtype == "contacts":
        return _contact_cards(list_at(message, "contacts"))
    if mtype == "interactive":
        return _interactive(dict_at(message, "interactive"))
    if mtype == "button":
        # Quick-reply button on a template: `payload` is what we set when sending it.
        button = dict_at(message, "button")
        content = _Content(MessageKind.INTERACTIVE, _str(button, "text"))
        content.extra = {"type": "button", "payload": _str(button, "payload")}
        return content
    if mtype == "reaction":
        reaction = dict_at(message, "reaction")
        # Removal is an empty or absent emoji (both seen,
        # docs/channels/whatsapp.md#inbound-payloads): text "" means removed.
        content = _Content(MessageKind.REACTION, _str(reaction, "emoji") or "")
        content.target = _str(reaction, "message_id")
        return content
    if mtype == "system":
        # Only reached for an echo (a business never sends one); inbound: _parse_system.
        system = dict_at(message, "system")
        content = _Content(MessageKind.SYSTEM, _str(system, "body"))
        content.extra = {"type": _str(system, "type")}
        return content
    if mtype == "order":
        return _order(dict_at(message, "order"))
    content = _Content(MessageKind.UNSUPPORTED)
    if mtype == "unsupported":
        # e.g. a poll: WhatsApp says which in `unsupported.type`, plus a 131051 error.
        inner = _str(dict_at(message, "unsupported"), "type")
        content.extra = {"type": inner or "unsupported"}
    else:
        content.extra = {"type": mtype}
        if isinstance(message.get(mtype), dict | list):
            content.extra[mtype] = message[mtype]
    errors = list_at(message, "errors")
    if errors and isinstance(errors[0], dict):
        error = errors[0]
        code = _int(error.get("code"))
        content.extra["error_code"] = code
        # Kept out of `text`, which is what the customer wrote.
        content.extra["error_reason"] = failure_reason(
            code, _str(error, "title"), _str(dict_at(error, "error_data"), "details")
        )
    return content


def _common_extra(message: dict[str, Any], extra: dict[str, Any]) -> None:
    context = dict_at(message, "context")
    if context.get("forwarded") is True:
        extra["forwarded"] = True
    if context.get("frequently_forwarded") is True:
        extra["frequently_forwarded"] = True
    if product := dict_at(context, "referred_product"):
        extra["referred_product"] = product
    # Click-to-WhatsApp ad that started the chat.
    if referral := dict_at(message, "referral"):
        extra["referral"] = referral


def _parse_revision(message: dict[str, Any], mtype: str) -> CanonicalEvent:
    """`revoke` / `edit` of an earlier message: only coexistence numbers get them
    (docs/channels/whatsapp.md#inbound-payloads)."""
    obj = dict_at(message, mtype)
    original = _str(obj, "original_message_id")
    if not original:
        raise PayloadError(f"The WhatsApp {mtype} names no original_message_id.")
    when = _required_time(message, mtype)
    if mtype == "revoke":
        return MessageDeleted(provider_message_id=original, occurred_at=when)
    edited = dict_at(obj, "message")
    return MessageEdited(provider_message_id=original, occurred_at=when, text=_content(edited).text)


def _parse_message(doc: dict[str, Any], echo: bool) -> CanonicalEvent:
    """A customer's message, or (`echo`) one the business wrote in the WhatsApp Business app."""
    what = "message echo" if echo else "message"
    message = doc["echo" if echo else "message"]
    if not isinstance(message, dict):
        raise PayloadError(f"The WhatsApp {what} is not an object.")
    ident = _str(message, "id")
    if not ident and not echo:
        raise PayloadError("The WhatsApp message has no id.")
    mtype = _str(message, "type")
    if mtype in ("revoke", "edit"):
        return _parse_revision(message, mtype)
    if echo:
        to = _str(message, "to") or _str(message, "to_user_id")
        if not ident or not to:
            raise PayloadError("The WhatsApp message echo has no id or recipient.")
        digits = _digits(to)
        # The sender of an echo is the business; the address is the customer it was written
        # to, which is what places it in that customer's conversation.
        sender = Sender(address=to, phone=f"+{digits}" if digits else None, phone_verified=True)
    elif mtype == "system":
        return _parse_system(message, list_at(doc, "contacts"))
    content = _content(message)
    if not echo:
        _common_extra(message, content.extra)
        sender = _sender(message, list_at(doc, "contacts"))
    assert ident  # refused above on both paths
    return InboundMessage(
        provider_message_id=ident,
        sender=sender,
        occurred_at=_required_time(message, what),
        kind=content.kind,
        text=content.text,
        attachments=content.attachments,
        reply_to_provider_id=None if echo else _str(dict_at(message, "context"), "id"),
        target_provider_id=content.target,
        extra=content.extra,
        echo=echo,
    )


_STATUSES = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.READ,
    # First play of a voice note: as good as read.
    "played": MessageStatus.READ,
    "failed": MessageStatus.FAILED,
}


def _parse_status(doc: dict[str, Any]) -> CanonicalEvent:
    status = doc["status"]
    if not isinstance(status, dict):
        raise PayloadError("The WhatsApp status is not an object.")
    ident = _str(status, "id")
    if not ident:
        raise PayloadError("The WhatsApp status has no message id.")
    state = _str(status, "status")
    mapped = _STATUSES.get(state or "")
    if mapped is None:
        return Ignored(f"WhatsApp status {state!r} for {ident} has no effect in Tidings.")
    error_code = error_reason = None
    if mapped is MessageStatus.FAILED:
        errors = list_at(status, "errors")
        code, error_reason = _failure(errors[0] if errors else None)
        error_code = str(code) if code is not None else None
    return StatusUpdate(
        provider_message_id=ident,
        status=mapped,
        occurred_at=_required_time(status, "status"),
        recipient=_str(status, "recipient_id") or _str(status, "recipient_user_id"),
        error_code=error_code,
        error_reason=error_reason,
        our_message_ref=_str(status, "biz_opaque_callback_data"),
    )


def _failure(error: object) -> tuple[int | None, str]:
    """The code of a Graph error object (`statuses[].errors[]`, `value.errors[]`) and its reason
    in plain words."""
    code = _int(error.get("code")) if isinstance(error, dict) else None
    title = _str(error, "title") or _str(error, "message")
    return code, failure_reason(code, title, _str(dict_at(error, "error_data"), "details"))


def _parse_error(doc: dict[str, Any]) -> Ignored:
    number = _str(dict_at(doc, "metadata"), "phone_number_id") or "?"
    reason = _failure(doc["error"])[1]
    return Ignored(f"WhatsApp reported an error for phone number id {number}: {reason}")


def _parse_change(doc: dict[str, Any]) -> CanonicalEvent:
    field = doc.get("field")
    value = dict_at(doc, "value")
    if field == "message_template_status_update":
        name = _str(value, "message_template_name")
        event = _str(value, "event")
        if not name or not event:
            raise PayloadError("The WhatsApp template status names no template or event.")
        template_id = value.get("message_template_id")
        reason = _str(value, "reason")
        rejection = _str(dict_at(value, "rejection_info"), "reason")
        return TemplateStatus(
            name=name,
            language=_str(value, "message_template_language"),
            status=event,
            provider_template_id=str(template_id) if _int(template_id) is not None else None,
            category=_str(value, "message_template_category"),
            reason=rejection or (reason if reason and reason != "NONE" else None),
        )
    return Ignored(f"WhatsApp {field!r} webhooks have no effect in Tidings yet.")


def parse(payload: bytes) -> list[CanonicalEvent]:
    """Turn one piece cut by `split` into canonical events.

    Unknown message types become UNSUPPORTED messages; only a structurally broken piece (no
    id, no sender, no timestamp, not JSON) raises PayloadError, leaving it failed and
    replayable.
    """
    doc = json_of(payload, "The stored WhatsApp event is not valid JSON.")
    if not isinstance(doc, dict):
        raise PayloadError("The stored WhatsApp event is not an object.")
    if "message" in doc:
        return [_parse_message(doc, echo=False)]
    if "status" in doc:
        return [_parse_status(doc)]
    if "error" in doc:
        return [_parse_error(doc)]
    if "echo" in doc:
        return [_parse_message(doc, echo=True)]
    if "value" in doc:
        return [_parse_change(doc)]
    raise PayloadError("The WhatsApp webhook piece is malformed and cannot be understood.")
