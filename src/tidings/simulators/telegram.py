"""A Telegram Bot API simulator that speaks the real protocol
(docs/channels/telegram.md#protocol-facts).

Both of Telegram's roles towards Tidings:
- the Bot API at `/bot{token}/{method}` (GET or POST; query, form, multipart or JSON
  parameters), answering `{"ok":true,"result":...}` or `{"ok":false,"error_code":N,
  "description":"...","parameters":{"retry_after":S}?}`; methods getMe, setWebhook,
  deleteWebhook, getWebhookInfo, sendMessage, sendPhoto, sendDocument, sendAudio, sendVideo,
  sendChatAction, getFile; files (sent by customers, or uploaded by the bot) are downloaded
  from `/file/bot{token}/{file_path}`; an unknown token gets 401 "Unauthorized", a malformed
  one 404 "Not Found";
- the webhook sender: one update per POST, in update_id order, carrying the setWebhook
  `secret_token` in `X-Telegram-Bot-Api-Secret-Token`, retried on non-2xx and then given up
  (recorded in getWebhookInfo's `last_error_message`), duplicated on demand.

It also enforces flood control (about 1 message/s per chat with a small burst, ~30/s per bot:
429 with `retry_after`) and users who blocked the bot (403 "Forbidden: bot was blocked by the
user").

Control API (JSON, under `/_sim/`), which plays the customers and sets the knobs:
- `PUT  /_sim/bots/{token}` {username?, first_name?, per_chat_per_second?, per_chat_burst?,
  global_per_second?, max_attempts?, retry_base_seconds?} — create/update a bot
- `POST /_sim/inbound` {token, chat_id, first_name?, last_name?, username?, text? | photo? |
  document? | voice? | video? | sticker? | location? | contact? | share_contact? (the
  customer's own number, sent as their own card) | other{...}, caption?,
  reply_to?, duplicates?} — the customer writes; a file kind may be `true` or an object
  {data_b64?, file_size?, file_name?, mime_type?} (the bytes getFile then serves; a
  `file_size` without data stands for a file that large); {token, redeliver: update_id}
  sends an earlier update again
- `POST /_sim/edit` {token, chat_id, message_id, text} — the customer edits a message
- `POST /_sim/callback` {token, chat_id, message_id, data} — the customer presses a button
- `POST /_sim/block` {token, chat_id, blocked} — the customer blocks/unblocks the bot
- `POST /_sim/fail` {token, method, error_code, description?, retry_after?, times?}
- `GET  /_sim/sent?token=` every Bot API call with its parameters and outcome (an uploaded
  file as {upload: filename, content_type, size, sha256})
- `GET  /_sim/conversations?token=&chat_id=` the thread as the customer sees it
- `GET  /_sim/deliveries?token=` webhook delivery attempts

Sandbox mode mounts `TelegramSimulator().app` under `/sandbox/telegram`. Mounted apps get no
lifespan events, so the owner calls `await sim.aclose()`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import math
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tidings.channels.telegram import TelegramConfig, client
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    DemoChannel,
    Failure,
    Outbox,
    SandboxEntry,
    SimulatorBase,
    TokenBucket,
    UrlBinding,
    control_routes,
    injected,
    is_2xx,
    list_handler,
    read_json,
    refusing_bad_input,
    thread_entry,
    thread_route,
)

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_JSON_PARAMS = frozenset({"reply_markup", "reply_parameters", "allowed_updates", "entities"})
_PARSE_MODES = frozenset({"MarkdownV2", "HTML", "Markdown"})
_ACTIONS = frozenset(
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
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
_MB = 1024 * 1024
# Bot API reference (docs/channels/telegram.md#files): getFile serves "files of up to 20MB";
# multipart uploads take "10 MB max size for photos, 50 MB for other files".
DOWNLOAD_LIMIT = 20 * _MB
PHOTO_UPLOAD_LIMIT = 10 * _MB
UPLOAD_LIMIT = 50 * _MB
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF")
# Stand-in bytes for a customer's file when the control call gives none.
_SAMPLE = {
    "photo": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)),
    "document": b"%PDF-1.4\n" + b"1 0 obj <<>> endobj\n" * 8,
    "voice": b"OggS\x00\x02" + bytes(range(64)),
    "video": b"\x00\x00\x00\x18ftypmp42" + bytes(range(128)),
    "sticker": b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(range(32)),
}


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.code)


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class Chat:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    blocked: bool = False
    thread: list[dict[str, Any]] = field(default_factory=list)
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def as_chat(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "first_name": self.first_name, "type": "private"}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat

    def as_user(self) -> dict[str, Any]:
        user = {k: v for k, v in self.as_chat().items() if k != "type"}
        return {**user, "is_bot": False, "language_code": "en"}


@dataclass
class SimFile:
    """A file Telegram holds: what getFile describes and `/file/bot.../<path>` serves."""

    file_id: str
    file_unique_id: str
    file_path: str
    size: int
    data: bytes | None = None  # None: only `size` matters (a file too big to download)

    def as_file(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.size,
            "file_path": self.file_path,
        }


@dataclass
class Bot:
    token: str
    id: int
    username: str
    first_name: str
    webhook_url: str | None = None
    secret_token: str | None = None
    max_connections: int = 40
    allowed_updates: list[str] | None = None
    next_update_id: int = field(default_factory=lambda: secrets.randbelow(10**8) + 10**8)
    pending: list[dict[str, Any]] = field(default_factory=list)
    # Every update queued so far, by update_id, so one can be delivered again on demand.
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_error_date: int | None = None
    last_error_message: str | None = None
    chats: dict[int, Chat] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    files: dict[str, SimFile] = field(default_factory=dict)
    per_chat_per_second: float = 1.0
    per_chat_burst: float = 3.0
    global_per_second: float = 30.0
    buckets: dict[int, TokenBucket] = field(default_factory=dict)
    global_bucket: TokenBucket | None = None
    max_attempts: int = 5
    retry_base_seconds: float = 0.1
    outbox: Outbox[dict[str, Any]] | None = None

    def as_user(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }


class TelegramSimulator(SimulatorBase):
    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.bots: dict[str, Bot] = {}
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._download, methods=["GET"]),
                *control_routes(
                    {
                        "bots/{token}": (self._put_bot, ["PUT"]),
                        "inbound": (self._inbound, ["POST"]),
                        "edit": (self._edit, ["POST"]),
                        "callback": (self._callback, ["POST"]),
                        "block": (self._block, ["POST"]),
                        "fail": (self._fail, ["POST"]),
                        "sent": (list_handler(self.bots, "token", "calls"), ["GET"]),
                        "conversations": (
                            thread_route(self.conversation, "token", "chat_id"),
                            ["GET"],
                        ),
                        "deliveries": (list_handler(self.bots, "token", "deliveries"), ["GET"]),
                    }
                ),
            ]
        )

    # ---------------------------------------------------------------------------------------
    # Bots, chats and updates (also used in-process by the sandbox binding)

    def ensure_bot(self, token: str, **knobs: Any) -> Bot:
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError("a bot token looks like 123456:ABC-def")
        bot = self.bots.get(token)
        if bot is None:
            bot_id = int(match.group(1))
            bot = Bot(token, bot_id, f"tidings_{bot_id}_bot", "Tidings sandbox bot")
            self.bots[token] = bot
        for name, value in knobs.items():
            if value is not None and hasattr(bot, name):
                setattr(bot, name, value)
        bot.buckets.clear()
        bot.global_bucket = None
        return bot

    def chat(self, bot: Bot, chat_id: int, **who: Any) -> Chat:
        chat = bot.chats.get(chat_id)
        if chat is None:
            chat = Chat(chat_id, str(who.get("first_name") or f"User {chat_id}"))
            bot.chats[chat_id] = chat
        for name in ("first_name", "last_name", "username"):
            if who.get(name):
                setattr(chat, name, str(who[name]))
        return chat

    def push(self, bot: Bot, payload: dict[str, Any], duplicates: int = 0) -> int:
        """Queue one update (plus `duplicates` identical redeliveries) for the webhook."""
        update_id = bot.next_update_id
        bot.next_update_id += 1
        update = {"update_id": update_id, **payload}
        bot.updates[update_id] = update
        bot.pending.extend([update] * (1 + max(0, duplicates)))
        self._kick(bot)
        return update_id

    def _kick(self, bot: Bot) -> None:
        if bot.outbox is None:
            # One update at a time, in order.
            bot.outbox = Outbox(
                lambda head: self._deliver(bot, head[0]),
                lambda: bool(bot.webhook_url),
                f"telegram-sim-{bot.id}",
                pending=bot.pending,
            )
        bot.outbox.kick(self.tasks)

    async def _deliver(self, bot: Bot, update: dict[str, Any]) -> None:
        body = orjson.dumps(update)

        def attempt(n: int) -> tuple[str, bytes, dict[str, str]] | None:
            url = bot.webhook_url
            if not url:
                return None
            headers = {"Content-Type": "application/json"}
            if bot.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = bot.secret_token
            return url, body, headers

        def record(n: int, status: int, detail: str) -> None:
            bot.deliveries.append(
                {"update_id": update["update_id"], "attempt": n, "status": status}
            )
            if not is_2xx(status):
                bot.last_error_date = int(time.time())
                bot.last_error_message = (
                    f"Wrong response from the webhook: {status} {detail}"
                    if status
                    else f"Connection failed: {detail}"
                )

        went = await self.webhooks.deliver(
            attempt,
            attempts=bot.max_attempts,
            base_seconds=bot.retry_base_seconds,
            on_attempt=record,
        )
        if not went and bot.webhook_url:
            log.info("telegram simulator gave up on update %s", update["update_id"])

    def customer_message(self, bot: Bot, chat: Chat, body: dict[str, Any]) -> dict[str, Any]:
        """Build the Message a customer sends, from a control-API body."""
        msg: dict[str, Any] = {
            "message_id": next(chat.message_ids),
            "from": chat.as_user(),
            "chat": chat.as_chat(),
            "date": int(time.time()),
        }
        shown = body.get("text")
        if body.get("text"):
            msg["text"] = str(body["text"])
        elif body.get("photo"):
            small = self.store_file(bot, "photo", _SAMPLE["photo"][:64], "photos", "jpg")
            big = self.customer_file(bot, "photo", body["photo"], "photos", "jpg")
            msg["photo"] = [
                {**_ref(small), "width": 90, "height": 90},
                {**_ref(big), "width": 800, "height": 800},
            ]
            shown = "[photo]"
        elif isinstance(body.get("document"), dict) or body.get("document"):
            doc = body["document"] if isinstance(body["document"], dict) else {}
            name = str(doc.get("file_name") or "file.pdf")
            ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
            stored = self.customer_file(bot, "document", body["document"], "documents", ext)
            msg["document"] = {
                **_ref(stored),
                "file_name": name,
                "mime_type": str(doc.get("mime_type") or "application/pdf"),
            }
            shown = f"[document {msg['document']['file_name']}]"
        elif body.get("voice"):
            stored = self.customer_file(bot, "voice", body["voice"], "voice", "oga")
            msg["voice"] = {**_ref(stored), "duration": 3, "mime_type": "audio/ogg"}
            shown = "[voice]"
        elif body.get("video"):
            stored = self.customer_file(bot, "video", body["video"], "videos", "mp4")
            msg["video"] = {
                **_ref(stored),
                "width": 640,
                "height": 480,
                "duration": 5,
                "mime_type": "video/mp4",
            }
            shown = "[video]"
        elif body.get("sticker"):
            stored = self.store_file(bot, "sticker", _SAMPLE["sticker"], "stickers", "webp")
            msg["sticker"] = {
                **_ref(stored),
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": str(body["sticker"]) if isinstance(body["sticker"], str) else "👍",
            }
            shown = "[sticker]"
        elif isinstance(body.get("location"), dict):
            loc = body["location"]
            msg["location"] = {
                "latitude": float(loc["latitude"]),
                "longitude": float(loc["longitude"]),
            }
            shown = "[location]"
        elif isinstance(body.get("contact"), dict):
            msg["contact"] = dict(body["contact"])
            shown = "[contact]"
        elif isinstance(body.get("share_contact"), str) and body["share_contact"]:
            # "Share my contact" (a request_contact button): the customer's own card, whose
            # user_id is theirs; Telegram sends the number without "+" (docs/channels/telegram.md).
            msg["contact"] = {
                "phone_number": body["share_contact"].lstrip("+"),
                "first_name": chat.first_name,
                "user_id": chat.id,
            }
            if chat.last_name:
                msg["contact"]["last_name"] = chat.last_name
            shown = "[my contact]"
        elif isinstance(body.get("other"), dict) and body["other"]:
            # A message type Tidings does not know (say, `dice` or a newer Bot API type).
            msg.update({str(k): v for k, v in body["other"].items() if k not in msg})
            shown = "[unsupported]"
        else:
            raise ValueError(
                "give text, photo, document, voice, video, sticker, location, contact or "
                "share_contact"
            )
        if body.get("caption") and "text" not in msg:
            msg["caption"] = str(body["caption"])
        if isinstance(body.get("reply_to"), int):
            msg["reply_to_message"] = {"message_id": body["reply_to"], "chat": chat.as_chat()}
        chat.thread.append(
            thread_entry(msg["message_id"], "in", msg.get("caption") or shown, "sent")
        )
        return msg

    def store_file(
        self, bot: Bot, prefix: str, data: bytes | None, folder: str, ext: str, size: int = 0
    ) -> SimFile:
        fid = _file_id(prefix)
        n = len(bot.files)
        stored = SimFile(
            fid, _uid(), f"{folder}/file_{n}.{ext}", len(data) if data is not None else size, data
        )
        bot.files[fid] = stored
        return stored

    def customer_file(self, bot: Bot, kind: str, spec: Any, folder: str, ext: str) -> SimFile:
        """The file behind a customer's photo/document/voice/video (control-API `spec`)."""
        spec = spec if isinstance(spec, dict) else {}
        if spec.get("data_b64"):
            data: bytes | None = base64.b64decode(str(spec["data_b64"]), validate=True)
        elif spec.get("file_size"):
            size = int(spec["file_size"])
            if size <= 0:
                raise ValueError("file_size must be positive")
            # Only as large as it says: too big for getFile, or zero bytes of that size.
            data = bytes(size) if size <= DOWNLOAD_LIMIT else None
            return self.store_file(bot, kind, data, folder, ext, size)
        else:
            data = _SAMPLE[kind]
        return self.store_file(bot, kind, data, folder, ext)

    # ---------------------------------------------------------------------------------------
    # The Bot API

    async def _api(self, request: Request) -> Response:
        token = request.path_params["token"]
        method = request.path_params["method"]
        if not _TOKEN.match(token):
            return ApiError(404, "Not Found").response()
        bot = self.bots.get(token)
        if bot is None:
            return ApiError(401, "Unauthorized").response()
        try:
            params = await _params(request)
        except ApiError as exc:
            return exc.response()
        handler = getattr(self, f"_m_{method.lower()}", None)
        record: dict[str, Any] = {"method": method, "params": _printable(params)}
        bot.calls.append(record)
        try:
            if handler is None:
                raise ApiError(404, "Not Found")
            if f := injected(bot.failures, method.lower()):
                raise ApiError(f.code, f.message or "", f.retry_after)
            result = await handler(bot, params)
        except ApiError as exc:
            record["error_code"] = exc.code
            return exc.response()
        record["ok"] = True
        body: dict[str, Any] = {"ok": True, "result": result}
        if method.lower() == "setwebhook":
            body["description"] = "Webhook was set" if params.get("url") else "Webhook was deleted"
        return JSONResponse(body)

    async def _m_getme(self, bot: Bot, params: dict[str, Any]) -> Any:
        return {**bot.as_user(), "can_join_groups": True, "supports_inline_queries": False}

    async def _m_setwebhook(self, bot: Bot, params: dict[str, Any]) -> Any:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            raise _bad("secret token contains unallowed characters")
        # The real Bot API also requires https on port 443, 80, 88 or 8443; the sandbox
        # accepts plain http on loopback so that it runs on a laptop.
        if url and not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        max_conn = params.get("max_connections", 40)
        if not str(max_conn).isdigit() or not 1 <= int(max_conn) <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        if params.get("drop_pending_updates") in (True, "true", "True", "1"):
            bot.pending.clear()
        bot.webhook_url = url or None
        bot.secret_token = str(secret) if secret else None
        bot.max_connections = int(max_conn)
        allowed = params.get("allowed_updates")
        bot.allowed_updates = list(allowed) if isinstance(allowed, list) else None
        if bot.webhook_url:
            self._kick(bot)
        return True

    async def _m_deletewebhook(self, bot: Bot, params: dict[str, Any]) -> Any:
        bot.webhook_url, bot.secret_token = None, None
        if params.get("drop_pending_updates") in (True, "true", "True", "1"):
            bot.pending.clear()
        return True

    async def _m_getwebhookinfo(self, bot: Bot, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": bot.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.pending),
            "max_connections": bot.max_connections,
        }
        if bot.allowed_updates is not None:
            info["allowed_updates"] = bot.allowed_updates
        if bot.last_error_date is not None:
            info["last_error_date"] = bot.last_error_date
            info["last_error_message"] = bot.last_error_message
        return info

    def _target(self, bot: Bot, params: dict[str, Any]) -> Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None
        chat = bot.chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _flood(self, bot: Bot, chat: Chat) -> None:
        if bot.global_bucket is None:
            bot.global_bucket = TokenBucket(bot.global_per_second, bot.global_per_second)
        bucket = bot.buckets.setdefault(
            chat.id, TokenBucket(bot.per_chat_per_second, bot.per_chat_burst)
        )
        wait = max(bucket.take(), bot.global_bucket.take())
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Too Many Requests: retry after {seconds}", seconds)

    def _sent_message(
        self, bot: Bot, chat: Chat, params: dict[str, Any], content: dict[str, Any], shown: str
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": next(chat.message_ids),
            "from": bot.as_user(),
            "chat": chat.as_chat(),
            "date": int(time.time()),
            **content,
        }
        reply = params.get("reply_parameters")
        if isinstance(reply, dict) and isinstance(reply.get("message_id"), int):
            msg["reply_to_message"] = {"message_id": reply["message_id"], "chat": chat.as_chat()}
        if isinstance(params.get("reply_markup"), dict):
            msg["reply_markup"] = params["reply_markup"]
        shown = msg.get("caption") or shown
        chat.thread.append(thread_entry(msg["message_id"], "out", shown, "delivered"))
        return msg

    def _check_markup(self, params: dict[str, Any]) -> None:
        if "parse_mode" in params and params["parse_mode"] not in _PARSE_MODES:
            raise _bad(f"unsupported parse_mode {params['parse_mode']!r}")
        markup = params.get("reply_markup")
        if markup is not None and not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")

    async def _m_sendmessage(self, bot: Bot, params: dict[str, Any]) -> Any:
        chat = self._target(bot, params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad("message text is empty")
        if len(text) > TEXT_LIMIT:
            raise _bad("message is too long")
        self._check_markup(params)
        self._flood(bot, chat)
        return self._sent_message(bot, chat, params, {"text": text}, text)

    def _media_source(self, params: dict[str, Any], field_name: str) -> str:
        source = params.get(field_name)
        if isinstance(source, UploadFile):
            return source.filename or "upload"
        if not isinstance(source, str) or not source:
            raise _bad(f"there is no {field_name} in the request")
        if "://" in source and not source.startswith(("http://", "https://")):
            raise _bad("wrong HTTP URL specified")
        if " " in source:
            raise _bad("wrong remote file identifier specified: Wrong character in the string")
        return source

    def _caption(self, params: dict[str, Any]) -> str | None:
        caption = params.get("caption")
        if caption is not None and len(str(caption)) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        return str(caption) if caption else None

    def _media_send(
        self, bot: Bot, params: dict[str, Any], field_name: str, limit: int
    ) -> tuple[Chat, str, SimFile | None, dict[str, str]]:
        """The checks of a sendPhoto/sendDocument/...: (chat, source, stored upload, the
        caption as content)."""
        chat = self._target(bot, params)
        source, stored = self._upload(bot, params, field_name, limit)
        caption = self._caption(params)
        self._check_markup(params)
        self._flood(bot, chat)
        return chat, source, stored, {"caption": caption} if caption else {}

    async def _m_sendphoto(self, bot: Bot, params: dict[str, Any]) -> Any:
        chat, source, stored, caption = self._media_send(bot, params, "photo", PHOTO_UPLOAD_LIMIT)
        fid = _file_id("photo")
        big = {"file_id": fid, "file_unique_id": _uid()} if stored is None else _ref(stored)
        content: dict[str, Any] = {
            "photo": [
                {"file_id": f"{fid}s", "file_unique_id": _uid(), "width": 90, "height": 90},
                {**big, "width": 1280, "height": 960},
            ],
            **caption,
        }
        return self._sent_message(bot, chat, params, content, f"[photo {source}]")

    async def _m_senddocument(self, bot: Bot, params: dict[str, Any]) -> Any:
        chat, source, stored, caption = self._media_send(bot, params, "document", UPLOAD_LIMIT)
        name = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "file"
        ref = (
            {"file_id": _file_id("doc"), "file_unique_id": _uid()}
            if stored is None
            else _ref(stored)
        )
        content: dict[str, Any] = {
            "document": {
                **ref,
                "file_name": name,
                "mime_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
            },
            **caption,
        }
        return self._sent_message(bot, chat, params, content, f"[document {name}]")

    def _upload(
        self, bot: Bot, params: dict[str, Any], field_name: str, limit: int
    ) -> tuple[str, SimFile | None]:
        """The source of a media send; a multipart upload is checked and kept as a file."""
        source = params.get(field_name)
        if not isinstance(source, UploadFile):
            return self._media_source(params, field_name), None
        data = source.file.read()
        if not data:
            raise _bad("file must be non-empty")
        if len(data) > limit:
            # The Bot API server refuses bodies over its limits this way [assumed wording].
            raise ApiError(413, "Request Entity Too Large")
        if field_name == "photo" and not data.startswith(_IMAGE_MAGIC):
            raise _bad("IMAGE_PROCESS_FAILED")
        name = source.filename or "file"
        ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
        folder = {"photo": "photos", "audio": "music", "video": "videos"}.get(field_name)
        return name, self.store_file(bot, field_name, data, folder or "documents", ext)

    async def _m_sendaudio(self, bot: Bot, params: dict[str, Any]) -> Any:
        return await self._send_file(bot, params, "audio")

    async def _m_sendvideo(self, bot: Bot, params: dict[str, Any]) -> Any:
        return await self._send_file(bot, params, "video")

    async def _send_file(self, bot: Bot, params: dict[str, Any], field_name: str) -> Any:
        chat, source, stored, caption = self._media_send(bot, params, field_name, UPLOAD_LIMIT)
        upload = params.get(field_name)
        ref = {"file_id": _file_id(field_name), "file_unique_id": _uid()}
        obj: dict[str, Any] = _ref(stored) if stored is not None else ref
        obj["file_name"] = source.rstrip("/").rsplit("/", 1)[-1]
        obj["mime_type"] = (
            upload.content_type
            if isinstance(upload, UploadFile) and upload.content_type
            else mimetypes.guess_type(obj["file_name"])[0] or "application/octet-stream"
        )
        obj["duration"] = 0
        if field_name == "video":
            obj.update({"width": 640, "height": 480})
        shown = f"[{field_name} {obj['file_name']}]"
        return self._sent_message(bot, chat, params, {field_name: obj, **caption}, shown)

    async def _m_getfile(self, bot: Bot, params: dict[str, Any]) -> Any:
        stored = bot.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise _bad("file is too big")
        return stored.as_file()

    async def _download(self, request: Request) -> Response:
        bot = self.bots.get(request.path_params["token"])
        path = request.path_params["file_path"]
        stored = next((f for f in bot.files.values() if f.file_path == path), None) if bot else None
        if stored is None or stored.data is None:
            return ApiError(404, "Not Found").response()
        return Response(stored.data, media_type="application/octet-stream")

    async def _m_sendchataction(self, bot: Bot, params: dict[str, Any]) -> Any:
        self._target(bot, params)
        if params.get("action") not in _ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    # ---------------------------------------------------------------------------------------
    # Control API

    @refusing_bad_input
    async def _put_bot(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        knobs = {
            k: body.get(k)
            for k in (
                "username",
                "first_name",
                "per_chat_per_second",
                "per_chat_burst",
                "global_per_second",
                "max_attempts",
                "retry_base_seconds",
            )
        }
        bot = self.ensure_bot(request.path_params["token"], **knobs)
        return JSONResponse({"id": bot.id, "username": bot.username})

    def _control_bot(self, body: dict[str, Any]) -> Bot:
        bot = self.bots.get(str(body.get("token") or ""))
        if bot is None:
            raise LookupError("unknown bot token; PUT /_sim/bots/{token} first")
        return bot

    @refusing_bad_input
    async def _inbound(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        if body.get("redeliver") is not None:
            # Telegram sending an update again (it saw no 2xx in time): same update_id.
            try:
                bot = self._control_bot(body)
                update = bot.updates[int(body["redeliver"])]
            except (LookupError, ValueError, TypeError) as exc:
                raise LookupError(f"no such update: {exc}") from None
            bot.pending.append(update)
            self._kick(bot)
            return JSONResponse(
                {"update_id": update["update_id"], "message_id": update["message"]["message_id"]}
            )
        bot = self._control_bot(body)
        who = {k: body.get(k) for k in ("first_name", "last_name", "username")}
        chat = self.chat(bot, int(body["chat_id"]), **who)
        chat.blocked = False  # writing to the bot again unblocks it, as on Telegram
        msg = self.customer_message(bot, chat, body)
        update_id = self.push(bot, {"message": msg}, int(body.get("duplicates") or 0))
        return JSONResponse({"update_id": update_id, "message_id": msg["message_id"]})

    async def _edit(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        try:
            bot = self._control_bot(body)
            chat = bot.chats[int(body["chat_id"])]
            message_id = int(body["message_id"])
            original = next(m for m in chat.thread if m["id"] == message_id)
        except (LookupError, KeyError, ValueError, TypeError, StopIteration) as exc:
            return JSONResponse({"error": f"no such message: {exc}"}, status_code=400)
        original["text"] = str(body.get("text") or "")
        edited = {
            "message_id": message_id,
            "from": chat.as_user(),
            "chat": chat.as_chat(),
            "date": int(original["at"]),
            "edit_date": int(time.time()),
            "text": original["text"],
        }
        update_id = self.push(bot, {"edited_message": edited}, int(body.get("duplicates") or 0))
        return JSONResponse({"update_id": update_id})

    @refusing_bad_input
    async def _callback(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        bot = self._control_bot(body)
        chat = bot.chats[int(body["chat_id"])]
        query: dict[str, Any] = {
            "id": str(secrets.randbelow(10**18)),
            "from": chat.as_user(),
            "chat_instance": str(chat.id),
            "data": str(body.get("data") or ""),
        }
        if isinstance(body.get("message_id"), int):
            query["message"] = {
                "message_id": body["message_id"],
                "from": bot.as_user(),
                "chat": chat.as_chat(),
                "date": int(time.time()),
            }
        update_id = self.push(bot, {"callback_query": query})
        return JSONResponse({"update_id": update_id, "callback_query_id": query["id"]})

    @refusing_bad_input
    async def _block(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        bot = self._control_bot(body)
        chat = self.chat(bot, int(body["chat_id"]))
        chat.blocked = bool(body.get("blocked", True))
        # Telegram tells the bot with a my_chat_member update (status "kicked" = blocked).
        status = "kicked" if chat.blocked else "member"
        self.push(
            bot,
            {
                "my_chat_member": {
                    "chat": chat.as_chat(),
                    "from": chat.as_user(),
                    "date": int(time.time()),
                    "old_chat_member": {"user": bot.as_user(), "status": "member"},
                    "new_chat_member": {"user": bot.as_user(), "status": status},
                }
            },
        )
        return JSONResponse({"blocked": chat.blocked})

    @refusing_bad_input
    async def _fail(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        bot = self._control_bot(body)
        code = int(body["error_code"])
        default = {429: "Too Many Requests: retry after 1", 500: "Internal Server Error"}
        retry_after = body.get("retry_after")
        if code == 429 and retry_after is None:
            retry_after = 1
        bot.failures.append(
            Failure(
                str(body.get("method") or "sendMessage").lower(),
                code,
                str(body.get("description") or default.get(code, "Bad Request")),
                int(retry_after) if retry_after is not None else None,
                int(body.get("times") or 1),
            )
        )
        return JSONResponse({"ok": True})

    def conversation(self, token: str, chat_id: str | None) -> list[dict[str, Any]]:
        bot, raw = self.bots.get(token), chat_id or ""
        chat = bot.chats.get(int(raw)) if bot and raw.lstrip("-").isdigit() else None
        return list(chat.thread) if chat else []


def _file_id(prefix: str) -> str:
    return f"{prefix.upper()}-{secrets.token_urlsafe(18)}"


def _uid() -> str:
    return secrets.token_urlsafe(8)


def _ref(stored: SimFile) -> dict[str, Any]:
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": stored.size,
    }


def _printable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (_upload_record(v) if isinstance(v, UploadFile) else v) for k, v in params.items()}


def _upload_record(upload: UploadFile) -> dict[str, Any]:
    upload.file.seek(0)
    data = upload.file.read()
    upload.file.seek(0)
    return {
        "upload": upload.filename,
        "content_type": upload.content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


async def _params(request: Request) -> dict[str, Any]:
    """Bot API parameters from the query string, a form, a multipart body or JSON."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return params
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _bad("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _bad("can't parse JSON object")
        params.update(body)
        return params
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        for key, value in form.multi_items():
            params[key] = value
    # In query and form encodings, objects and arrays travel as JSON strings.
    for key in _JSON_PARAMS & params.keys():
        if isinstance(params[key], str):
            try:
                params[key] = orjson.loads(params[key])
            except orjson.JSONDecodeError:
                raise _bad(f"can't parse {key} JSON object") from None
    return params


class TelegramBinding(UrlBinding[TelegramSimulator, TelegramConfig]):
    """Connects sandbox Telegram channels to the simulator (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "telegram"
    config_type = TelegramConfig

    def __init__(self, base_url: str, sim: TelegramSimulator) -> None:
        super().__init__(base_url, sim)
        # setWebhook goes through the adapter's own client code, in process: at start-up the
        # server is not listening yet, so real HTTP to ourselves would fail.
        prefix = urlsplit(self.base_url).path
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=Starlette(routes=[Mount(prefix, sim.app)]))
        )

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        config = self.config(channel)
        self.sim.ensure_bot(config.bot_token)
        await client.set_webhook(config, webhook_url, self.api)

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        bot = self.sim.ensure_bot(self.config(channel).bot_token)
        chat = self.sim.chat(bot, chat_id_for(user), first_name=name)
        msg = self.sim.customer_message(bot, chat, {"text": text})
        update_id = self.sim.push(bot, {"message": msg})
        return {"update_id": update_id, "message_id": msg["message_id"]}

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversation(self.config(channel).bot_token, str(chat_id_for(user)))


def chat_id_for(user: str) -> int:
    """The phone page lets people type any name; Telegram chat ids are integers."""
    text = user.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return 10**9 + int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % 10**9


SANDBOX = SandboxEntry(
    "telegram",
    lambda base: TelegramSimulator(),
    TelegramBinding,
    (
        DemoChannel(
            "telegram",
            "Telegram (sandbox)",
            lambda base: {
                "bot_token": f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(26)}",
                "secret_token": secrets.token_urlsafe(24),
                "api_base_url": base,
            },
        ),
    ),
)
