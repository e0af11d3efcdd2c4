"""REST Bot API calls over an injected httpx client: sends, webhook set-up, user details.

Every call is `POST {api_base_url}/pa/{method}` with JSON and the `X-Viber-Auth-Token` header;
Viber answers HTTP 200 with `{"status": 0, ...}` on success and another `status` on failure
(docs/channels/viber.md, "Sending" and "Errors").
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tidings import httpclient
from tidings.channels.base import (
    OutboundAttachment,
    OutboundMessage,
    Permanent,
    Retriable,
    SendOutcome,
    Sent,
    attempt,
    json_or_none,
)
from tidings.channels.viber import errors
from tidings.channels.viber.config import SENDER_NAME_MAX, ViberConfig
from tidings.channels.viber.webhook import token_of
from tidings.domain.enums import MessageKind
from tidings.domain.errors import TidingsError

TIMEOUT = 15.0
AUTH_HEADER = "X-Viber-Auth-Token"
TEXT_LIMIT = 7000
# The whole send_message body may be at most 30 KB.
BODY_LIMIT = 30 * 1024
# Keyboards: a 6-column grid; more than 24 buttons is not known to work.
MAX_BUTTONS = 24
# The callbacks Tidings asks for; `message`, `subscribed` and `unsubscribed` always come.
EVENT_TYPES = ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
DEFAULT_SENDER = "Support"


class ViberError(TidingsError):
    """A Viber call (other than a send) that Viber refused."""

    code = "viber_error"
    status = 502


def _headers(config: ViberConfig) -> dict[str, str]:
    return {AUTH_HEADER: config.auth_token, "Content-Type": "application/json"}


async def call(
    config: ViberConfig, method: str, body: dict[str, Any], http: httpx.AsyncClient
) -> tuple[int, Any]:
    """POST one method. Returns (HTTP status, parsed body or None); big-int tokens stay ints."""
    resp = await http.post(
        f"{config.api_base_url}/pa/{method}",
        content=orjson.dumps(body),
        headers=_headers(config),
        timeout=TIMEOUT,
    )
    return resp.status_code, json_or_none(resp.content)


async def _checked(
    config: ViberConfig, method: str, body: dict[str, Any], http: httpx.AsyncClient
) -> dict[str, Any]:
    try:
        status, doc = await call(config, method, body, http)
    except httpx.HTTPError as exc:
        raise ViberError(f"Could not reach Viber for {method} ({type(exc).__name__}).") from None
    if status == 200 and isinstance(doc, dict) and doc.get("status") == 0:
        return doc
    said = doc.get("status_message") if isinstance(doc, dict) else None
    code = doc.get("status") if isinstance(doc, dict) else None
    raise ViberError(f"Viber {method} failed: {said or f'HTTP {status}'} (status {code})")


def sender(config: ViberConfig) -> dict[str, str]:
    """The author shown on our messages: required by Viber, name at most 28 characters."""
    out = {"name": (config.sender_name or DEFAULT_SENDER)[:SENDER_NAME_MAX]}
    if config.sender_avatar:
        out["avatar"] = config.sender_avatar
    return out


def keyboard(buttons: Any) -> dict[str, Any] | None:
    """`extra["buttons"]` ([{"text", "data"?} | {"text", "url"}]) → a Viber keyboard, one
    full-width button per row. A reply button's `ActionBody` comes back as the user's text."""
    if not isinstance(buttons, list | tuple) or not buttons:
        return None
    rows = []
    for b in list(buttons)[:MAX_BUTTONS]:
        if not isinstance(b, dict) or not b.get("text"):
            continue
        button: dict[str, Any] = {
            "Columns": 6,
            "Rows": 1,
            "Text": str(b["text"])[:250],
            "TextSize": "regular",
        }
        if b.get("url"):
            button |= {"ActionType": "open-url", "ActionBody": str(b["url"])}
        else:
            button |= {"ActionType": "reply", "ActionBody": str(b.get("data") or b["text"])}
        rows.append(button)
    if not rows:
        return None
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": rows}


def _media_body(att: OutboundAttachment, caption: str | None, size: int | None) -> dict[str, Any]:
    if att.kind == "image":
        body: dict[str, Any] = {"type": "picture", "media": att.url, "text": caption or ""}
        return body
    if att.kind == "video":
        return {"type": "video", "media": att.url, "size": size or 0}
    name = att.filename or (att.url or "file").rsplit("/", 1)[-1].split("?")[0] or "file"
    return {"type": "file", "media": att.url, "size": size or 0, "file_name": name[:256]}


async def _size_of(att: OutboundAttachment, http: httpx.AsyncClient) -> int | None:
    """Viber wants the byte size of videos and files; ask the URL's server (HEAD)."""
    if att.url is None:
        return None
    try:
        resp = await http.head(att.url, timeout=TIMEOUT, follow_redirects=True)
    except httpx.HTTPError:
        return None
    raw = resp.headers.get("content-length", "")
    return int(raw) if resp.status_code == 200 and raw.isdigit() else None


async def _post_send(
    config: ViberConfig, body: dict[str, Any], http: httpx.AsyncClient
) -> SendOutcome:
    data = orjson.dumps(body)
    if len(data) > BODY_LIMIT:
        return Permanent("The message is larger than the 30 KB Viber accepts in one send.")
    url = f"{config.api_base_url}/pa/send_message"
    resp = await attempt(
        "Viber", httpclient.post(http, url, content=data, headers=_headers(config))
    )
    if isinstance(resp, Retriable):
        return resp
    doc = json_or_none(resp.content)
    if resp.status_code == 200 and isinstance(doc, dict) and doc.get("status") == 0:
        token = token_of(doc.get("message_token"))
        if token is None:
            return Retriable("Viber answered without a message token; retrying.")
        return Sent(token)
    return errors.outcome(resp.status_code, doc)


def base_body(config: ViberConfig, message: OutboundMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "receiver": message.to,
        "sender": sender(config),
        # Comes back in the user's next message: which conversation they answer.
        "tracking_data": f"tidings:{message.conversation_id}",
    }
    extra = message.extra if hasattr(message.extra, "get") else {}
    kb = keyboard(extra.get("buttons"))
    if kb is not None:
        body["keyboard"] = kb
    return body


async def send_message(
    config: ViberConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    common = base_body(config, message)
    extra = message.extra if hasattr(message.extra, "get") else {}
    text = message.text or ""
    location = extra.get("location")
    if message.kind == MessageKind.LOCATION or isinstance(location, dict):
        place = location if isinstance(location, dict) else extra
        lat, lon = place.get("latitude"), place.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            return Permanent("A Viber location needs a latitude and a longitude.")
        return await _post_send(
            config, {**common, "type": "location", "location": {"lat": lat, "lon": lon}}, http
        )
    sticker = extra.get("sticker_id")
    if isinstance(sticker, int) and not isinstance(sticker, bool):
        return await _post_send(config, {**common, "type": "sticker", "sticker_id": sticker}, http)
    url = extra.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")) and not text:
        return await _post_send(config, {**common, "type": "url", "media": url[:2000]}, http)
    if len(text) > TEXT_LIMIT:
        return Permanent(f"The message is longer than Viber's {TEXT_LIMIT} characters.")

    sendable = [a for a in message.attachments if a.url]
    if not sendable:
        if message.attachments:
            return Permanent("Viber only sends files from public URLs; this attachment has none.")
        return await _post_send(config, {**common, "type": "text", "text": text}, http)

    first: Sent | None = None
    # A picture takes a caption (kept short); anything else goes with the text before it.
    if text and (sendable[0].kind != "image" or len(text) > 512):
        outcome = await _post_send(config, {**common, "type": "text", "text": text}, http)
        if not isinstance(outcome, Sent):
            return outcome
        first, text = outcome, ""
    for att in sendable:
        size = None if att.kind == "image" else await _size_of(att, http)
        if att.kind != "image" and size is None:
            return Permanent(
                "Viber needs the size of a video or file, and its URL did not tell it."
            )
        caption = att.caption or text or None
        outcome = await _post_send(config, {**common, **_media_body(att, caption, size)}, http)
        text = ""
        if not isinstance(outcome, Sent):
            return outcome
        first = first or outcome
    assert first is not None
    return first


async def set_webhook(config: ViberConfig, url: str, http: httpx.AsyncClient) -> dict[str, Any]:
    """Point the bot's callbacks at `url` (an empty URL removes the webhook). Viber probes the
    URL with a signed `webhook` callback and answers only after our 200."""
    body: dict[str, Any] = {"url": url}
    if url:
        body |= {"event_types": EVENT_TYPES, "send_name": True, "send_photo": True}
    return await _checked(config, "set_webhook", body, http)


async def get_user_details(config: ViberConfig, user_id: str, http: httpx.AsyncClient) -> Any:
    """(HTTP status, body) of `get_user_details`: 2 calls per user per 12 hours."""
    return await call(config, "get_user_details", {"id": user_id}, http)
