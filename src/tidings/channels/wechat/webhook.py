"""WeChat pushes: URL verification (GET), signature and safe-mode checks, split and parse.

Everything here is pure. XML is read only through `defusedxml` with DTDs, entities and external
references forbidden (docs/channels/wechat.md#safe-mode-crypto: the official 2018 samples were
hardened against XXE); a push carrying any of them is refused before anything is stored.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from tidings.channels.base import RawEvent, WebhookReply, WebhookRequest
from tidings.channels.wechat import crypto
from tidings.channels.wechat.config import WeChatConfig
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

# Voice `Format` values (docs/channels/wechat.md#push-messages-and-events) and the MIME types
# agents' browsers know them by.
_VOICE_MIME = {"amr": "audio/amr", "speex": "audio/speex", "mp3": "audio/mpeg"}

# How old a plain-mode push's signed `timestamp` may be. In plain mode the signature covers only
# (token, timestamp, nonce), not the body: without an age limit one captured query string would
# sign any body forever. WeChat retries a push three times within ~15 s.
MAX_PLAIN_AGE_SECONDS = 300


def read_xml(body: bytes) -> Element:
    """The root of a WeChat XML document, or PayloadError. Never expands an entity."""
    try:
        root: Element = fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise PayloadError(
            f"XML with a DTD or entities is refused ({type(exc).__name__})", code="forbidden_xml"
        ) from None
    except ParseError as exc:
        raise PayloadError(f"body is not well-formed XML: {exc}") from None
    if root.tag != "xml":
        raise PayloadError(f"expected an <xml> document, got <{root.tag}>")
    return root


def fields(root: Element) -> dict[str, str]:
    """Top-level `<Name>value</Name>` pairs (CDATA already unwrapped by the parser)."""
    return {child.tag: (child.text or "") for child in root}


def handshake(config: WeChatConfig, request: WebhookRequest) -> WebhookReply:
    """Answer the server-URL check: echo `echostr` when the signature holds
    (docs/channels/wechat.md#server-url-check-and-signatures)."""
    q = request.query
    echostr = q.get("echostr")
    if echostr is None:
        raise SignatureError("the verification request has no echostr")
    if "msg_signature" in q and config.encoding_aes_key:
        # The encrypted-echostr flavour (WeChat's sample VerifyURL;
        # docs/channels/wechat.md#server-url-check-and-signatures): msg_signature over four
        # values, then the echostr is decrypted and its plaintext returned.
        plain = _decrypt(config, q, echostr, "echostr", "the configured Token")
        return WebhookReply(200, plain, "text/plain")
    _check_signature(config, q)
    # Official Accounts get the raw echostr back even in safe mode
    # (docs/channels/wechat.md#server-url-check-and-signatures).
    return WebhookReply(200, echostr.encode(), "text/plain")


def _check_signature(config: WeChatConfig, q: Mapping[str, str]) -> None:
    expected = crypto.signature(config.token, q.get("timestamp", ""), q.get("nonce", ""))
    if not crypto.signature_matches(expected, q.get("signature")):
        raise SignatureError("signature does not match the configured Token")


def _decrypt(config: WeChatConfig, q: Mapping[str, str], value: str, what: str, by: str) -> bytes:
    """`value` decrypted once `msg_signature` (over token, timestamp, nonce and `value`) holds."""
    assert config.encoding_aes_key is not None
    expected = crypto.signature(config.token, q.get("timestamp", ""), q.get("nonce", ""), value)
    if not crypto.signature_matches(expected, q.get("msg_signature")):
        raise SignatureError(f"msg_signature does not match {by}")
    try:
        return crypto.decrypt(config.encoding_aes_key, config.app_id, value)
    except crypto.CryptoError as exc:
        raise SignatureError(f"{what} cannot be decrypted: {exc}") from None


def _refuse(exc: PayloadError) -> SignatureError:
    return SignatureError(exc.message, code=exc.code)


def plaintext(config: WeChatConfig, request: WebhookRequest) -> bytes:
    """The authenticated message XML of a push; raises SignatureError otherwise.

    Plain mode: only the query `signature` over (token, timestamp, nonce) is checked: WeChat does
    not sign the body in this mode, which is why safe mode is recommended (docs/channels).
    Compatibility and safe mode (`encrypt_type=aes`): `msg_signature` covers the `Encrypt`
    value, which is decrypted and must end in our AppID; the plaintext copy that compatibility
    mode also sends is ignored, since nothing vouches for it.
    """
    q = request.query
    _check_signature(config, q)
    try:
        root = read_xml(request.body)
    except PayloadError as exc:
        raise _refuse(exc) from None
    encrypted = q.get("encrypt_type", "raw").lower() == "aes"
    if not encrypted:
        if config.encoding_aes_key:
            raise SignatureError(
                "this channel has an EncodingAESKey, so pushes must be encrypted "
                "(encrypt_type=aes); a plaintext push is refused"
            )
        _check_fresh(q.get("timestamp", ""))
        return request.body
    if not config.encoding_aes_key:
        raise SignatureError(
            "the push is encrypted but the channel has no encoding_aes_key; add the "
            "EncodingAESKey from the WeChat console"
        )
    encrypt = root.findtext("Encrypt")
    if not encrypt:
        raise SignatureError("an encrypted push must carry <Encrypt>")
    inner = _decrypt(config, q, encrypt, "the push", "the Encrypt value")
    try:
        read_xml(inner)
    except PayloadError as exc:
        raise _refuse(exc) from None
    return inner


def _check_fresh(timestamp: str, now: float | None = None) -> None:
    """Refuse a plain-mode push whose signed timestamp is missing or older than
    MAX_PLAIN_AGE_SECONDS. A timestamp ahead of our clock is let through: it proves nothing
    stale, and refusing it would only punish clock skew."""
    if not timestamp.isdigit():
        raise SignatureError("the push has no numeric timestamp", code="stale_signature")
    age = (time.time() if now is None else now) - int(timestamp)
    if age > MAX_PLAIN_AGE_SECONDS:
        raise SignatureError(
            f"the push's signed timestamp is {int(age)} s old (at most "
            f"{MAX_PLAIN_AGE_SECONDS} s in plain mode); a replayed signature is refused",
            code="stale_signature",
        )


def _created(values: dict[str, str]) -> datetime | None:
    raw = values.get("CreateTime", "").strip()
    if not raw.isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def event_key(values: dict[str, str]) -> str:
    """The dedupe key of one push, identical across WeChat's retries
    (docs/channels/wechat.md#duplicate-pushes)."""
    msg_id = values.get("MsgId", "").strip()
    if msg_id:
        return f"msg:{msg_id}"
    if values.get("MsgType") == "event":
        # Events carry no MsgId: FromUserName + CreateTime (+ the event name, so a subscribe and
        # a SCAN in the same second stay apart).
        event = values.get("Event", "")
        if event.upper() in ("TEMPLATESENDJOBFINISH", "MASSSENDJOBFINISH") and values.get("MsgID"):
            return f"job:{values['MsgID']}:{event}"
        return f"event:{values.get('FromUserName', '')}:{values.get('CreateTime', '')}:{event}"
    return f"nokey:{hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()}"


def split(config: WeChatConfig, request: WebhookRequest) -> list[RawEvent]:
    """One push is one event; the stored payload is the (decrypted) message XML, so replays
    never need the key that was current when it arrived."""
    try:
        body = plaintext(config, request)
    except SignatureError as exc:  # verify() ran first; this only happens if config changed
        raise PayloadError(exc.message) from None
    values = fields(read_xml(body))
    key = event_key(values)
    # Template / mass-send job reports are receipts; everything else is the customer's.
    lane = InboundLane.STATUS if key.startswith("job:") else InboundLane.CUSTOMER
    return [RawEvent(key=key[:300], payload=body, occurred_at=_created(values), lane=lane)]


# ------------------------------------------------------------------------------------- parse


def parse(payload: bytes) -> list[CanonicalEvent]:
    root = read_xml(payload)
    values = fields(root)
    openid = values.get("FromUserName", "").strip()
    if not openid:
        raise PayloadError("push has no FromUserName")
    occurred = _created(values) or datetime.now(UTC)
    msg_type = values.get("MsgType", "").strip()
    key = event_key(values)
    if msg_type == "event":
        return [_event(root, values, openid, occurred, key)]

    def message(
        kind: MessageKind,
        text: str | None = None,
        attachments: tuple[AttachmentRef, ...] = (),
        **extra: Any,
    ) -> InboundMessage:
        mid = values.get("MsgId") or key
        return _inbound(mid, openid, occurred, kind, text, attachments, _clean(extra))

    media_id = values.get("MediaId") or None
    if msg_type == "text":
        return [
            message(
                MessageKind.TEXT,
                values.get("Content", ""),
                msg_data_id=values.get("MsgDataId"),
                idx=values.get("Idx"),
            )
        ]
    if msg_type == "image":
        ref = AttachmentRef(kind="image", provider_media_id=media_id, url=values.get("PicUrl"))
        return [message(MessageKind.MEDIA, attachments=(ref,))]
    if msg_type == "voice":
        fmt = values.get("Format", "").lower()
        recognition = values.get("Recognition") or None
        ref = AttachmentRef(
            kind="audio",
            mime_type=_VOICE_MIME.get(fmt),
            provider_media_id=media_id,
            caption=recognition,
        )
        return [
            message(
                MessageKind.MEDIA,
                attachments=(ref,),
                format=fmt,
                recognition=recognition,
                media_id_16k=values.get("MediaId16K"),
            )
        ]
    if msg_type in ("video", "shortvideo"):
        ref = AttachmentRef(kind="video", provider_media_id=media_id)
        return [
            message(
                MessageKind.MEDIA,
                attachments=(ref,),
                type=msg_type,
                thumb_media_id=values.get("ThumbMediaId"),
            )
        ]
    if msg_type == "location":
        label = values.get("Label") or None
        return [
            message(
                MessageKind.LOCATION,
                label,
                latitude=_float(values.get("Location_X")),
                longitude=_float(values.get("Location_Y")),
                scale=values.get("Scale"),
                label=label,
            )
        ]
    if msg_type == "link":
        title, url = values.get("Title", ""), values.get("Url", "")
        description = values.get("Description", "")
        text = "\n".join(part for part in (title, description, url) if part)
        return [message(MessageKind.TEXT, text, type="link", title=title, url=url)]
    if msg_type == "miniprogrampage":
        title = values.get("Title", "")
        return [
            message(
                MessageKind.TEXT,
                f"Mini Program page: {title}" if title else "Mini Program page",
                type="miniprogrampage",
                app_id=values.get("AppId"),
                page_path=values.get("PagePath"),
                thumb_url=values.get("ThumbUrl"),
            )
        ]
    return [message(MessageKind.UNSUPPORTED, type=msg_type or "missing MsgType")]


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _event(
    root: Element, values: dict[str, str], openid: str, occurred: datetime, key: str
) -> CanonicalEvent:
    raw_event = values.get("Event", "").strip()
    # Names are case-sensitive as sent (subscribe lower, SCAN upper); compare case-insensitively
    # like wechatpy does (docs/channels/wechat.md#push-messages-and-events).
    event = raw_event.lower()
    event_key_value = values.get("EventKey", "")

    def system(text: str, consent: ConsentStatus | None = None, **extra: Any) -> InboundMessage:
        extra = {"event": raw_event, **_clean(extra)}
        return _inbound(key, openid, occurred, MessageKind.SYSTEM, text, (), extra, consent)

    if event == "subscribe":
        scene = event_key_value.removeprefix("qrscene_") if event_key_value else ""
        # Following again lifts an earlier unfollow's opt-out (consent.py records nothing
        # for a first follow).
        if scene:
            return system(
                f"Followed the Official Account by scanning QR code {scene!r}",
                ConsentStatus.OPTED_IN,
                scene=scene,
                ticket=values.get("Ticket"),
            )
        return system("Followed the Official Account", ConsentStatus.OPTED_IN)
    if event == "unsubscribe":
        # WeChat accepts no more customer-service messages to this user (43004/45015 follow):
        # recorded as an opt-out, so replies are refused before they are queued.
        return system(
            "Unfollowed the Official Account; WeChat will refuse replies", ConsentStatus.OPTED_OUT
        )
    if event == "scan":
        return system(
            f"Scanned QR code {event_key_value!r}",
            scene=event_key_value,
            ticket=values.get("Ticket"),
        )
    if event == "click":
        return system(f"Tapped menu item {event_key_value!r}", menu_key=event_key_value)
    if event in ("scancode_push", "scancode_waitmsg"):
        result = root.findtext("ScanCodeInfo/ScanResult") or ""
        return system(f"Scanned a code from the menu: {result}", scan_result=result)
    if event == "location":
        # Periodic position reports (every few seconds while the chat is open): kept out of the
        # thread, and they do not open a reply window.
        return Ignored(
            f"location report {values.get('Latitude')},{values.get('Longitude')} from {openid}"
        )
    if event == "view":
        return Ignored(f"{openid} opened menu link {event_key_value}")
    if event in ("pic_sysphoto", "pic_photo_or_album", "pic_weixin", "location_select"):
        # The picture or location itself follows as an ordinary image/location message.
        return Ignored(f"{raw_event} menu event; its content arrives as a separate message")
    if event == "templatesendjobfinish":
        status = values.get("Status", "")
        # Note the casing: MsgID on job events, MsgId on messages
        # (docs/channels/wechat.md#push-messages-and-events).
        msg_id = values.get("MsgID", "").strip()
        if not msg_id:
            return Ignored("TEMPLATESENDJOBFINISH without MsgID")
        if status == "success":
            return StatusUpdate(msg_id, MessageStatus.DELIVERED, occurred, recipient=openid)
        reason = (
            "The customer has blocked template messages from this Official Account."
            if "block" in status
            else f"WeChat could not deliver the template message ({status or 'no status'})."
        )
        return StatusUpdate(
            msg_id,
            MessageStatus.FAILED,
            occurred,
            recipient=openid,
            error_code=status[:64] or None,
            error_reason=reason,
        )
    if event in ("masssendjobfinish", "subscribe_msg_popup_event", "subscribe_msg_change_event"):
        return Ignored(f"{raw_event} job/subscription report")
    extra = {"type": "event", "event": raw_event or "missing Event"}
    return _inbound(key, openid, occurred, MessageKind.UNSUPPORTED, None, (), extra)


def _clean(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if v not in (None, "")}


def _inbound(
    mid: str,
    openid: str,
    occurred: datetime,
    kind: MessageKind,
    text: str | None,
    attachments: tuple[AttachmentRef, ...],
    extra: dict[str, Any],
    consent: ConsentStatus | None = None,
) -> InboundMessage:
    return InboundMessage(
        mid, Sender(address=openid), occurred, kind, text, attachments, extra=extra, consent=consent
    )
