"""Bot API calls over an injected httpx client: sends, chat actions and webhook set-up."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tidings.channels.base import OutboundAttachment, OutboundMessage, Retriable, SendOutcome, Sent
from tidings.channels.telegram import errors
from tidings.channels.telegram.config import TelegramConfig
from tidings.domain.errors import TidingsError

TIMEOUT = 15.0
UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# Bot API: captions are limited to 1024 characters (texts to 4096).
CAPTION_LIMIT = 1024
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


# Sent as a photo (Telegram recompresses it); every other image goes as a document.
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
# sendAudio: "Your audio must be in the .MP3 or .M4A format"; sendVideo: "MPEG4 videos".
AUDIO_TYPES = frozenset({"audio/mpeg", "audio/mp4", "audio/x-m4a"})
VIDEO_TYPES = frozenset({"video/mp4"})


class TelegramError(TidingsError):
    """A Bot API call (other than a send) that Telegram refused."""

    code = "telegram_error"
    status = 502


def _chat_id(to: str) -> int | str:
    # Numeric chat ids go as numbers; "@channelusername" stays a string.
    return int(to) if to.lstrip("-").isdigit() else to


def method_for(mime: str | None) -> tuple[str, str]:
    """The Bot API method and its file field for an uploaded file of this type."""
    if mime in PHOTO_TYPES:
        return "sendPhoto", "photo"
    if mime in AUDIO_TYPES:
        return "sendAudio", "audio"
    if mime in VIDEO_TYPES:
        return "sendVideo", "video"
    return "sendDocument", "document"


async def call(
    config: TelegramConfig,
    method: str,
    params: dict[str, Any],
    http: httpx.AsyncClient,
    file: tuple[str, tuple[str, bytes, str]] | None = None,
) -> tuple[int, Any]:
    """POST one Bot API method as JSON, or with a `file` as multipart/form-data: objects
    (reply_markup, reply_parameters) then travel as JSON strings, as the Bot API expects in form
    encodings. Returns (HTTP status, parsed body or None)."""
    url = f"{config.api_base_url}/bot{config.bot_token}/{method}"
    if file is None:
        resp = await http.post(url, json=params, timeout=TIMEOUT)
    else:
        form = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in params.items()}
        resp = await http.post(url, data=form, files=dict([file]), timeout=UPLOAD_TIMEOUT)
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, None


async def _send(
    config: TelegramConfig,
    method: str,
    params: dict[str, Any],
    http: httpx.AsyncClient,
    file: tuple[str, tuple[str, bytes, str]] | None = None,
) -> SendOutcome:
    try:
        status, doc = await call(config, method, params, http, file)
    except httpx.TimeoutException:
        return Retriable("Telegram did not answer in time; retrying.")
    except httpx.HTTPError as exc:
        return Retriable(f"Could not reach Telegram ({type(exc).__name__}); retrying.")
    if status == 200 and isinstance(doc, dict) and doc.get("ok") is True:
        result = doc.get("result")
        if isinstance(result, dict) and isinstance(result.get("message_id"), int):
            chat = result.get("chat")
            chat_id = chat.get("id") if isinstance(chat, dict) else params["chat_id"]
            return Sent(f"{chat_id}:{result['message_id']}")
        return Retriable("Telegram answered without a message; retrying.")
    return errors.outcome(status, doc)


def _reply_markup(extra: Any) -> dict[str, Any] | None:
    """`extra["buttons"]`: [{"text", "data"} | {"text", "url"}] → one inline-keyboard row each."""
    buttons = extra.get("buttons") if hasattr(extra, "get") else None
    if not isinstance(buttons, list) or not buttons:
        return None
    rows = []
    for b in buttons:
        if not isinstance(b, dict) or not b.get("text"):
            continue
        button: dict[str, Any] = {"text": str(b["text"])}
        if b.get("url"):
            button["url"] = str(b["url"])
        else:
            button["callback_data"] = str(b.get("data") or b["text"])[:64]
        rows.append([button])
    return {"inline_keyboard": rows} if rows else None


def _media_params(att: OutboundAttachment, caption: str | None) -> tuple[str, dict[str, Any]]:
    source = att.provider_media_id or att.url
    if att.kind == "image":
        method, field = "sendPhoto", "photo"
    else:
        method, field = "sendDocument", "document"
    params: dict[str, Any] = {field: source}
    if caption:
        params["caption"] = caption
    return method, params


async def send_message(
    config: TelegramConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    chat_id = _chat_id(message.to)
    common: dict[str, Any] = {"chat_id": chat_id}
    if message.reply_to_provider_id and message.reply_to_provider_id.startswith(f"{chat_id}:"):
        ref = message.reply_to_provider_id.split(":")[1]
        if ref.isdigit():
            common["reply_parameters"] = {
                "message_id": int(ref),
                "allow_sending_without_reply": True,
            }
    markup = _reply_markup(message.extra)
    if markup is not None:
        common["reply_markup"] = markup

    if not message.attachments:
        return await _send(config, "sendMessage", {**common, "text": message.text or ""}, http)

    # Media by URL (or a known file_id). The text rides as the first caption when it fits;
    # otherwise it goes first as its own message.
    text = message.text or ""
    first: Sent | None = None
    if text and len(text) > CAPTION_LIMIT:
        outcome = await _send(config, "sendMessage", {**common, "text": text}, http)
        if not isinstance(outcome, Sent):
            return outcome
        first, text = outcome, ""
    for att in message.attachments:
        caption = att.caption or text or None
        if att.url or att.provider_media_id:
            method, params = _media_params(att, caption)
            outcome = await _send(config, method, {**common, **params}, http)
        elif att.load is not None:
            # A file stored by Tidings goes up in the send call itself (multipart).
            mime = att.mime_type or "application/octet-stream"
            method, field = method_for(mime)
            params = {"caption": caption} if caption else {}
            upload = (field, (att.filename or "file", await att.load(), mime))
            outcome = await _send(config, method, {**common, **params}, http, upload)
        else:
            continue
        text = ""
        if not isinstance(outcome, Sent):
            # Part of the message may already be out; report the failure of the rest.
            return outcome
        first = first or outcome
    if first is None:
        return await _send(config, "sendMessage", {**common, "text": message.text or ""}, http)
    return first


async def send_chat_action(
    config: TelegramConfig, chat_id: str, action: str, http: httpx.AsyncClient
) -> None:
    """Show "typing…" (or another action) to the customer for about 5 seconds."""
    if action not in CHAT_ACTIONS:
        raise TelegramError(f"unknown chat action {action!r}", code="invalid_input")
    await _checked(config, "sendChatAction", {"chat_id": _chat_id(chat_id), "action": action}, http)


async def _checked(
    config: TelegramConfig, method: str, params: dict[str, Any], http: httpx.AsyncClient
) -> Any:
    status, doc = await call(config, method, params, http)
    if status == 200 and isinstance(doc, dict) and doc.get("ok") is True:
        return doc.get("result")
    description = doc.get("description") if isinstance(doc, dict) else None
    raise TelegramError(f"Telegram {method} failed: {description or f'HTTP {status}'}")


async def set_webhook(
    config: TelegramConfig,
    url: str,
    http: httpx.AsyncClient,
    *,
    drop_pending_updates: bool = False,
) -> None:
    """Point the bot's webhook at `url` with the channel's secret token.

    Telegram then signs every delivery with `X-Telegram-Bot-Api-Secret-Token`. For a real bot the
    URL must be https on port 443, 80, 88 or 8443 (docs/channels/telegram.md#webhook-delivery)."""
    params: dict[str, Any] = {
        "url": url,
        "secret_token": config.secret_token,
        "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member"],
    }
    if drop_pending_updates:
        params["drop_pending_updates"] = True
    await _checked(config, "setWebhook", params, http)


async def delete_webhook(config: TelegramConfig, http: httpx.AsyncClient) -> None:
    await _checked(config, "deleteWebhook", {}, http)


async def get_webhook_info(config: TelegramConfig, http: httpx.AsyncClient) -> dict[str, Any]:
    result = await _checked(config, "getWebhookInfo", {}, http)
    return result if isinstance(result, dict) else {}


async def get_me(config: TelegramConfig, http: httpx.AsyncClient) -> dict[str, Any]:
    result = await _checked(config, "getMe", {}, http)
    return result if isinstance(result, dict) else {}
