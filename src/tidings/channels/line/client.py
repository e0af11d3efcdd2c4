"""Messaging API calls over an injected httpx client: reply, push or multicast, profiles,
quota, media.

Facts relied on are in docs/channels/line.md ("Reply or push", "Retry key", "Multicast",
"Quota", "Media", "Profiles").
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from tidings.channels.base import (
    OutboundMessage,
    Permanent,
    Retriable,
    SendOutcome,
    Sent,
    attempt,
    json_or_none,
)
from tidings.channels.line import errors
from tidings.channels.line.config import LineConfig
from tidings.channels.media import MediaLocation, MediaUnavailable
from tidings.channels.profiles import Profile, ProfileUnavailable, clean
from tidings.domain.enums import MessageKind

TIMEOUT = 15.0
# A reply token is valid for about a minute after the webhook arrived (LINE promises no more,
# and has shortened it before): used only within this many seconds of our receiving the
# message; later, or if LINE refuses it anyway, the message goes by push.
REPLY_TOKEN_SECONDS = 50.0
TEXT_LIMIT = 5000  # UTF-16 code units
MAX_OBJECTS = 5  # message objects per request
QUICK_REPLY_MAX = 13
QUICK_REPLY_LABEL = 20
# Our retry keys are UUIDs derived from what identifies one logical send, so every retry of a
# message carries the same key without storing it (docs/channels/line.md, "Retry key").
_RETRY_NAMESPACE = uuid.UUID("7b0f3c8e-5d0a-4f43-9f3e-2f6a4c1d9b57")


def retry_key(config: LineConfig, message: OutboundMessage) -> str:
    return str(
        uuid.uuid5(
            _RETRY_NAMESPACE,
            f"{config.channel_access_token}|{message.conversation_id}|{message.message_id}",
        )
    )


def _headers(config: LineConfig) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {config.channel_access_token}",
        "Content-Type": "application/json",
    }


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _quick_reply(extra: Any) -> dict[str, Any] | None:
    """Buttons as LINE quick replies: `extra["buttons"]` ([{"text", "data"} | {"text", "url"}])
    or the `interactive` choices (`extra["line_quick_reply"]`, built by the adapter)."""
    items = extra.get("line_quick_reply") if hasattr(extra, "get") else None
    if isinstance(items, list) and items:
        return {"items": items[:QUICK_REPLY_MAX]}
    buttons = extra.get("buttons") if hasattr(extra, "get") else None
    if not isinstance(buttons, list) or not buttons:
        return None
    out = []
    for b in buttons[:QUICK_REPLY_MAX]:
        if not isinstance(b, dict) or not b.get("text"):
            continue
        out.append(
            {"type": "action", "action": action_for(str(b["text"]), b.get("data"), b.get("url"))}
        )
    return {"items": out} if out else None


def action_for(title: str, data: Any = None, url: Any = None) -> dict[str, Any]:
    label = title[:QUICK_REPLY_LABEL]
    if url:
        return {"type": "uri", "label": label, "uri": str(url)}
    if data and str(data) != title:
        # The customer sees their choice as text and we get the id as a postback.
        return {
            "type": "postback",
            "label": label,
            "data": str(data)[:300],
            "displayText": title[:300],
        }
    return {"type": "message", "label": label, "text": title[:300]}


def build_messages(message: OutboundMessage) -> list[dict[str, Any]] | Permanent:
    """Our message as LINE message objects (at most 5), or why it cannot go."""
    objects: list[dict[str, Any]] = []
    extra = message.extra or {}
    text = message.text or ""
    if message.kind == MessageKind.LOCATION:
        given = extra.get("location")
        loc: Mapping[str, Any] = given if isinstance(given, dict) else extra
        lat, lng = loc.get("latitude"), loc.get("longitude")
        if not isinstance(lat, int | float) or not isinstance(lng, int | float):
            return Permanent("A location needs a latitude and a longitude.")
        title = str(loc.get("title") or loc.get("name") or text or "Location")[:100]
        address = str(loc.get("address") or f"{lat:.5f}, {lng:.5f}")[:100]
        objects.append(
            {
                "type": "location",
                "title": title,
                "address": address,
                "latitude": lat,
                "longitude": lng,
            }
        )
        text = ""
    sticker = extra.get("sticker")
    if isinstance(sticker, dict) and message.kind != MessageKind.LOCATION:
        package = sticker.get("package_id") or sticker.get("packageId")
        sticker_id = sticker.get("sticker_id") or sticker.get("stickerId")
        if not package or not sticker_id:
            return Permanent("A LINE sticker needs its package id and sticker id.")
        objects.append({"type": "sticker", "packageId": str(package), "stickerId": str(sticker_id)})
    if text:
        if utf16_len(text) > TEXT_LIMIT:
            return Permanent(f"LINE takes texts of up to {TEXT_LIMIT} characters.")
        objects.append({"type": "text", "text": text})
    for att in message.attachments:
        url = att.url
        if not url:
            return Permanent(
                "LINE fetches files from public https addresses; this file has none "
                "(files uploaded to Tidings cannot be sent on LINE yet)."
            )
        if not url.startswith("https://"):
            return Permanent("LINE only fetches files from https:// addresses.")
        preview = str(extra.get("preview_image_url") or "")
        if att.kind in ("image", "sticker"):
            objects.append(
                {"type": "image", "originalContentUrl": url, "previewImageUrl": preview or url}
            )
        elif att.kind == "video":
            if not preview.startswith("https://"):
                return Permanent(
                    "LINE shows a video with a preview image; give `preview_image_url`."
                )
            objects.append({"type": "video", "originalContentUrl": url, "previewImageUrl": preview})
        elif att.kind == "audio":
            duration = extra.get("duration_ms")
            objects.append(
                {
                    "type": "audio",
                    "originalContentUrl": url,
                    # Required by LINE; only the label shown before playing depends on it.
                    "duration": duration if isinstance(duration, int) and duration > 0 else 60000,
                }
            )
        else:
            return Permanent(
                "LINE has no way for a business to send files other than images, video and audio."
            )
    if not objects:
        return Permanent("The message is empty.")
    if len(objects) > MAX_OBJECTS:
        return Permanent(f"LINE takes at most {MAX_OBJECTS} messages (text and files) in one send.")
    quick = _quick_reply(extra)
    if quick is not None:
        # Only the last message's quick reply is shown.
        objects[-1]["quickReply"] = quick
    return objects


def fresh_reply_token(context: Any, now: datetime | None = None) -> str | None:
    if not hasattr(context, "get") or context.get("standby"):
        return None  # standby: another channel owns the chat, no reply token
    token = context.get("reply_token")
    received = context.get("received_at")
    if not isinstance(token, str) or not token or not isinstance(received, str):
        return None
    try:
        at = datetime.fromisoformat(received)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - at).total_seconds()
    return token if age <= REPLY_TOKEN_SECONDS else None


async def _post(
    url: str, body: dict[str, Any], headers: dict[str, str], http: httpx.AsyncClient
) -> httpx.Response | Retriable:
    content = orjson.dumps(body)
    return await attempt("LINE", http.post(url, content=content, headers=headers, timeout=TIMEOUT))


def _sent_id(doc: Any, fallback: str) -> str:
    sent = doc.get("sentMessages") if isinstance(doc, dict) else None
    if isinstance(sent, list) and sent and isinstance(sent[0], dict):
        mid = sent[0].get("id")
        if isinstance(mid, str | int) and not isinstance(mid, bool):
            return str(mid)
    return fallback


async def send(
    config: LineConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    objects = build_messages(message)
    if isinstance(objects, Permanent):
        return objects
    token = fresh_reply_token(message.reply_context)
    if token is not None:
        outcome = await _deliver(config, "reply", {"replyToken": token, "messages": objects}, http)
        if not (isinstance(outcome, Permanent) and outcome.code == errors.INVALID_REPLY_TOKEN):
            return outcome
        # Expired or used meanwhile: push instead, once.
    body = {"to": message.to, "messages": objects}
    return await _deliver(config, "push", body, http, retry_key(config, message))


async def _deliver(
    config: LineConfig,
    path: str,
    body: dict[str, Any],
    http: httpx.AsyncClient,
    key: str | None = None,
) -> SendOutcome:
    """A reply (free: no quota used; no retry key, LINE refuses one there) or, with the retry
    `key`, a push. A push spends the monthly quota; every attempt of one message carries the
    same retry key, so a push whose answer was lost is not sent twice: LINE answers 409 with the
    accepted request id, which means it already went."""
    headers = _headers(config) if key is None else {**_headers(config), "X-Line-Retry-Key": key}
    resp = await _post(f"{config.api_base_url}/v2/bot/message/{path}", body, headers, http)
    if isinstance(resp, Retriable):
        return resp
    doc = json_or_none(resp.content)
    if resp.status_code == 200:
        return Sent(_sent_id(doc, f"request:{resp.headers.get('x-line-request-id', key or '')}"))
    accepted = resp.headers.get("x-line-accepted-request-id")
    if key is not None and resp.status_code == 409 and accepted:
        return Sent(_sent_id(doc, f"request:{accepted}"))
    return errors.outcome(resp.status_code, doc)


# Multicast (docs/channels/line.md, "Multicast"): up to 500 user ids per call, 200 calls per
# second per channel; a call whose answer is lost is tried again at once with the same retry
# key, a few times, while the worker still holds the deliveries.
MULTICAST_MAX = 500
MULTICAST_RATE = 200.0
MULTICAST_TRIES = 3
MULTICAST_BACKOFF_SECONDS = 0.5


def multicast_key(message: OutboundMessage) -> str | None:
    """The LINE message objects as canonical JSON, or None when this message cannot go by
    multicast: group and room ids are not accepted there, and a message LINE would refuse
    goes alone so that its own reason is recorded."""
    if not message.to.startswith("U"):
        return None
    objects = build_messages(message)
    if isinstance(objects, Permanent):
        return None
    return orjson.dumps(objects, option=orjson.OPT_SORT_KEYS).decode()


def multicast_retry_key(config: LineConfig, messages: Sequence[OutboundMessage]) -> str:
    """One key for one call: the same recipients' same messages give the same key."""
    ids = ",".join(str(m.message_id) for m in sorted(messages, key=lambda m: m.message_id))
    return str(uuid.uuid5(_RETRY_NAMESPACE, f"{config.channel_access_token}|multicast|{ids}"))


async def multicast(
    config: LineConfig, messages: Sequence[OutboundMessage], http: httpx.AsyncClient
) -> list[SendOutcome]:
    """Messages with one `multicast_key` to their recipients in one call (at most
    MULTICAST_MAX). LINE answers `{}` and no per-recipient ids, so each recipient's message
    is recorded under the call's request id and its user id. Any error sends nothing, and
    every recipient gets the same outcome (LINE's reason; a campaign's fallback applies)."""
    if not messages:
        return []
    if len(messages) > MULTICAST_MAX:
        raise ValueError(f"at most {MULTICAST_MAX} recipients per multicast")
    objects = build_messages(messages[0])
    if isinstance(objects, Permanent):
        return [objects] * len(messages)
    key = multicast_retry_key(config, messages)
    headers = {**_headers(config), "X-Line-Retry-Key": key}
    body = {"to": [m.to for m in messages], "messages": objects}
    outcome: SendOutcome = Retriable("LINE multicast was not tried.")
    request_id: str | None = None
    for tried in range(MULTICAST_TRIES):
        if tried:
            await asyncio.sleep(MULTICAST_BACKOFF_SECONDS * 2 ** (tried - 1))
        resp = await _post(f"{config.api_base_url}/v2/bot/message/multicast", body, headers, http)
        if isinstance(resp, Retriable):
            outcome = resp
            continue
        if resp.status_code == 200:
            request_id = resp.headers.get("x-line-request-id") or key
            break
        accepted = resp.headers.get("x-line-accepted-request-id")
        if resp.status_code == 409 and accepted:
            request_id = accepted  # an earlier try went; its answer was lost
            break
        outcome = errors.outcome(resp.status_code, json_or_none(resp.content))
        if isinstance(outcome, Permanent):
            break
    if request_id is None:
        return [outcome] * len(messages)
    return [Sent(f"multicast:{request_id}:{m.to}") for m in messages]


async def _get(config: LineConfig, path: str, http: httpx.AsyncClient) -> tuple[int, Any]:
    resp = await http.get(
        f"{config.api_base_url}{path}",
        headers={"Authorization": f"Bearer {config.channel_access_token}"},
        timeout=TIMEOUT,
    )
    return resp.status_code, json_or_none(resp.content)


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int | None  # None: no monthly limit ("type": "none")
    used: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def sentence(self) -> str:
        if self.limit is None:
            return f"no monthly push limit; {self.used} pushed this month"
        return f"{self.remaining} of {self.limit} push messages left this month"


async def quota(config: LineConfig, http: httpx.AsyncClient) -> Quota:
    """The monthly allowance and its use (`/v2/bot/message/quota[/consumption]`); LINE's count
    is approximate and includes messages sent from LINE Official Account Manager."""
    status, doc = await _get(config, "/v2/bot/message/quota", http)
    if status != 200 or not isinstance(doc, dict):
        raise errors_as_exception(status, doc)
    status2, used_doc = await _get(config, "/v2/bot/message/quota/consumption", http)
    if status2 != 200 or not isinstance(used_doc, dict):
        raise errors_as_exception(status2, used_doc)
    used = used_doc.get("totalUsage")
    value = doc.get("value")
    limit = value if doc.get("type") == "limited" and isinstance(value, int) else None
    return Quota(limit, used if isinstance(used, int) else 0)


class LineApiError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def errors_as_exception(status: int, doc: Any) -> LineApiError:
    return LineApiError(errors.outcome(status, doc).reason)


async def fetch_profile(config: LineConfig, address: str, http: httpx.AsyncClient) -> Profile:
    """A user's display name and picture (`/v2/bot/profile/{userId}`); a group's name from its
    summary; rooms have none."""
    if address.startswith("R"):
        return Profile(name=None)
    path = (
        f"/v2/bot/group/{address}/summary"
        if address.startswith("C")
        else f"/v2/bot/profile/{address}"
    )
    try:
        status, doc = await _get(config, path, http)
    except httpx.HTTPError as exc:
        raise ProfileUnavailable(
            f"LINE did not answer ({type(exc).__name__})", retriable=True
        ) from None
    if status == 429 or status >= 500:
        raise ProfileUnavailable(f"LINE answered {status}", retriable=True)
    if status != 200 or not isinstance(doc, dict):
        # 404: not a friend any more (or blocked) — LINE will not say who they are.
        raise ProfileUnavailable(errors.outcome(status, doc).reason, retriable=False)
    name = clean(doc.get("groupName") if address.startswith("C") else doc.get("displayName"))
    picture = doc.get("pictureUrl")
    return Profile(
        name=name,
        picture_url=picture
        if isinstance(picture, str) and picture.startswith("https://")
        else None,
    )


async def locate_media(
    config: LineConfig, message_id: str | None, url: str | None, http: httpx.AsyncClient
) -> MediaLocation:
    """Content sent through LINE is at `{data_api_base_url}/v2/bot/message/{id}/content` with
    the bearer token; content from an external provider at its own URL (fetched through the
    egress policy). Big video and audio may still be preparing (202): asked again later."""
    if not message_id:
        if url and url.startswith(("https://", "http://")):
            return MediaLocation(url)
        raise MediaUnavailable("The LINE message carries no content id.")
    if not message_id.isdigit():
        raise MediaUnavailable("The LINE message id is not a number.")
    auth = {"Authorization": f"Bearer {config.channel_access_token}"}
    base = f"{config.data_api_base_url}/v2/bot/message/{message_id}/content"
    try:
        resp = await http.get(f"{base}/transcoding", headers=auth, timeout=TIMEOUT)
    except httpx.HTTPError:
        raise MediaUnavailable("Could not reach LINE.", retriable=True) from None
    doc = json_or_none(resp.content)
    if resp.status_code == 200 and isinstance(doc, dict):
        if doc.get("status") == "processing":
            raise MediaUnavailable("LINE is still preparing this file; will retry.", retriable=True)
        if doc.get("status") == "failed":
            raise MediaUnavailable("LINE could not prepare this file for download.")
    elif resp.status_code == 404:
        raise MediaUnavailable("LINE no longer has this file.")
    elif resp.status_code == 410:
        raise MediaUnavailable("The customer unsent this message; its content is gone.")
    elif resp.status_code == 429 or resp.status_code >= 500:
        raise MediaUnavailable(f"LINE answered {resp.status_code}; will retry.", retriable=True)
    # 400 ("doesn't support this type"): images and files need no preparing.
    return MediaLocation(url=base, headers=auth, provider_endpoint=True)


async def set_webhook(config: LineConfig, url: str, http: httpx.AsyncClient) -> None:
    """`PUT /v2/bot/channel/webhook/endpoint`: what "Webhook URL" in the Console sets (LINE may
    take up to a minute to use it)."""
    resp = await http.put(
        f"{config.api_base_url}/v2/bot/channel/webhook/endpoint",
        content=orjson.dumps({"endpoint": url}),
        headers=_headers(config),
        timeout=TIMEOUT,
    )
    if resp.status_code != 200:
        raise errors_as_exception(resp.status_code, json_or_none(resp.content))


async def webhook_info(config: LineConfig, http: httpx.AsyncClient) -> dict[str, Any]:
    status, doc = await _get(config, "/v2/bot/channel/webhook/endpoint", http)
    if status != 200 or not isinstance(doc, dict):
        raise errors_as_exception(status, doc)
    return doc


async def test_webhook(config: LineConfig, http: httpx.AsyncClient) -> dict[str, Any]:
    """`POST /v2/bot/channel/webhook/test`: LINE posts an empty, signed event list to the set
    URL and says how it went (`success`, `statusCode`, `reason`, `detail`)."""
    resp = await http.post(
        f"{config.api_base_url}/v2/bot/channel/webhook/test",
        content=b"{}",
        headers=_headers(config),
        timeout=TIMEOUT,
    )
    doc = json_or_none(resp.content)
    if resp.status_code != 200 or not isinstance(doc, dict):
        raise errors_as_exception(resp.status_code, doc)
    return doc


LOADING_SECONDS = 10  # 5 to 60, in steps of 5


async def start_loading(config: LineConfig, chat_id: str, http: httpx.AsyncClient) -> SendOutcome:
    """The loading animation ("…" in the chat) while an agent types: one-to-one chats only;
    it ends after `loadingSeconds` or when our next message arrives (docs/channels/line.md,
    "Typing")."""
    if not chat_id.startswith("U"):
        return Permanent("LINE shows the loading animation only in one-to-one chats.")
    resp = await _post(
        f"{config.api_base_url}/v2/bot/chat/loading/start",
        {"chatId": chat_id, "loadingSeconds": LOADING_SECONDS},
        _headers(config),
        http,
    )
    if isinstance(resp, Retriable):
        return resp
    if resp.status_code in (200, 202):
        return Sent(f"loading:{chat_id}")
    return errors.outcome(resp.status_code, json_or_none(resp.content))
