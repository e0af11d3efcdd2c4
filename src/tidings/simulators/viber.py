"""A Viber REST Bot API simulator that speaks the real protocol (docs/channels/viber.md).

Both of Viber's roles towards Tidings:
- the Bot API at `POST /pa/{method}` (JSON; the token in `X-Viber-Auth-Token` or in an
  `auth_token` body field, as the official SDKs send it): set_webhook (probing the URL with a
  signed `webhook` callback before answering), send_message, get_user_details,
  get_account_info, get_online. Every answer is HTTP 200 with a numeric `status` and a prose
  `status_message` ("Not subscribed"...), as Viber does;
- the callback sender: one compact JSON event per POST with a bare 64-bit `message_token`
  above 2^53 and `X-Viber-Content-Signature` (hex HMAC-SHA256 of the auth token over the raw
  body), retried on non-200 and duplicated on demand.

State per bot: users (24-character base64 ids), their subscription, their 24 h session, how
many messages they got without replying (100 per hour, then status 12), get_user_details calls
(2 per user per 12 h, then status 12), chatbot-initiated messages (billed; a free allowance and
a balance as knobs, codes 23/24). After each accepted send the user's phone reports
`delivered` and, when they read it, `seen` (knobs). Media the customers send are served from
`/media/{id}` and expire (1 hour by default, a knob).

Control API (JSON, under `/_sim/`), which plays the customers and sets the knobs:
- `PUT  /_sim/bots/{token}` {name?, probe_webhook?, auto_delivered?, auto_seen?,
  media_ttl_seconds?, per_user_unreplied_cap?, user_details_per_12h?, session_hours?,
  free_bot_initiated?, balance?, max_attempts?, retry_base_seconds?,
  message_subscribes?, probe_fail_status?}
- `POST /_sim/inbound` {token, user, name?, avatar?, text? | picture? | video? | file? |
  sticker_id? | contact? | location? | url? | other?, caption?, duplicates?} — the customer
  writes (a media kind may be `true` or {data_b64?, file_name?, mime_type?}); {token,
  redeliver: message_token} sends an earlier callback again
- `POST /_sim/subscribe` / `/_sim/unsubscribe` {token, user, name?}
- `POST /_sim/open` {token, user, name?, context?} — conversation_started
- `POST /_sim/seen` {token, user} — the customer reads everything they got
- `POST /_sim/failed` {token, message_token, desc?} — a `failed` callback for a sent message
- `POST /_sim/fail` {token, method, status, status_message?, times?} — the next answers fail
- `GET  /_sim/sent?token=` every API call with its body and answer
- `GET  /_sim/conversations?token=&user=` the thread as the customer sees it
- `GET  /_sim/deliveries?token=` callback attempts
- `GET  /_sim/users?token=`

Sandbox mode mounts `ViberSimulator(media_base_url).app` under `/sandbox/viber`. Mounted apps
get no lifespan events, so the owner calls `await sim.aclose()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.viber import ViberConfig
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    ControlError,
    DemoChannel,
    Failure,
    Outbox,
    PhoneFile,
    PhoneLocation,
    SandboxEntry,
    SimulatorBase,
    UrlBinding,
    answering,
    control_error,
    control_routes,
    injected,
    list_handler,
    refusing_bad_input,
    thread_entry,
)

log = logging.getLogger(__name__)

TEXT_LIMIT = 7000
BODY_LIMIT = 30 * 1024
SENDER_NAME_MAX = 28
SEND_TYPES = frozenset(
    {"text", "picture", "video", "file", "contact", "location", "url", "sticker", "rich_media"}
)
ALL_EVENTS = ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
# Tokens are 64-bit and above 2^53, so a float-parsing client would corrupt them.
TOKEN_START = 5_466_297_578_174_182_639
_SAMPLE = {
    "picture": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)), "image/jpeg", "jpg"),
    "video": (b"\x00\x00\x00\x18ftypmp42" + bytes(range(128)), "video/mp4", "mp4"),
    "file": (b"%PDF-1.4\n" + b"1 0 obj <<>> endobj\n" * 8, "application/pdf", "pdf"),
}
# Prose status messages as Viber words them (Viber's error table, as in docs/channels/viber.md).
_MESSAGES = {
    0: "ok",
    1: "invalidUrl",
    2: "invalidAuthToken",
    3: "badData",
    4: "missingData",
    5: "Not a Viber user",
    6: "Not subscribed",
    10: "webhookNotSet",
    12: "Too many requests",
    23: "freeMessagesExceeded",
    24: "noBalance",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str | None = None) -> None:
        self.status, self.message = status, message or _MESSAGES.get(status, "generalError")
        super().__init__(self.message)


def user_id_for(name: str) -> str:
    """A stable Viber-shaped id (base64 of 16 bytes, 24 characters) for a phone-page name."""
    return base64.b64encode(hashlib.sha256(name.strip().encode()).digest()[:16]).decode()


@dataclass
class User:
    id: str
    name: str
    avatar: str | None = None
    country: str = "DE"
    language: str = "en"
    api_version: int = 10
    subscribed: bool = False
    session_started: float | None = None
    # Messages received since the user's last message, with when (for the per-hour cap).
    unreplied: deque[float] = field(default_factory=deque)
    details_calls: deque[float] = field(default_factory=deque)
    thread: list[dict[str, Any]] = field(default_factory=list)

    def as_user(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "country": self.country,
            "language": self.language,
            "api_version": self.api_version,
        }
        if self.avatar:
            out["avatar"] = self.avatar
        return out


@dataclass
class Media:
    data: bytes
    mime: str
    expires: float


@dataclass
class Bot:
    token: str
    name: str = "Tidings sandbox bot"
    uri: str = "tidingssandbox"
    webhook_url: str | None = None
    event_types: list[str] = field(default_factory=lambda: list(ALL_EVENTS))
    users: dict[str, User] = field(default_factory=dict)
    # Knobs: what Viber does not document is configurable
    # (docs/channels/viber.md#open-points-unconfirmed-configurable-in-the-simulator).
    probe_webhook: bool = True
    probe_fail_status: int = 1
    auto_delivered: bool = True
    auto_seen: bool = False
    media_ttl_seconds: float = 3600.0
    per_user_unreplied_cap: int = 100
    user_details_per_12h: int = 2
    session_hours: float = 24.0
    free_bot_initiated: int | None = None
    balance: bool = True
    message_subscribes: bool = True
    max_attempts: int = 5
    retry_base_seconds: float = 0.1
    # Records.
    callbacks: dict[str, bytes] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    outbound: dict[str, str] = field(default_factory=dict)  # message_token -> user id
    pending: list[bytes] = field(default_factory=list)
    outbox: Outbox[bytes] | None = None


_lookup = answering(LookupError, answer=lambda exc: control_error(str(exc)))
# A listing for a token the simulator does not know (as `_bot` refuses it).
_NO_BOT = ControlError(400, "unknown bot token; PUT /_sim/bots/{token} first")


def _acting(
    act: Callable[[ViberSimulator, Bot, dict[str, Any]], dict[str, Any]],
) -> Callable[[ViberSimulator, Request], Awaitable[Response]]:
    """A control route acting on the bot its body's `token` names: the dict `act` returns as
    JSON, a lookup or value error as a 400."""

    @refusing_bad_input
    async def handle(self: ViberSimulator, request: Request) -> Response:
        body = await self._json(request)
        return JSONResponse(act(self, self._bot(body.get("token")), body))

    return handle


class ViberSimulator(SimulatorBase):
    KNOBS: ClassVar[tuple[str, ...]] = (
        "name",
        "probe_webhook",
        "probe_fail_status",
        "auto_delivered",
        "auto_seen",
        "media_ttl_seconds",
        "per_user_unreplied_cap",
        "user_details_per_12h",
        "session_hours",
        "free_bot_initiated",
        "balance",
        "message_subscribes",
        "max_attempts",
        "retry_base_seconds",
    )

    def __init__(self, media_base_url: str = "", http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.media_base_url = media_base_url.rstrip("/")
        self.bots: dict[str, Bot] = {}
        self.media: dict[str, Media] = {}
        self._tokens = itertools.count(TOKEN_START, 7919)
        self.app = Starlette(
            routes=[
                Route("/pa/{method}", self._api, methods=["POST"]),
                Route("/media/{media_id}", self._media, methods=["GET", "HEAD"]),
                *control_routes(
                    {
                        "bots/{token}": (self._put_bot, ["PUT"]),
                        "inbound": (self._inbound, ["POST"]),
                        "subscribe": (self._subscribe, ["POST"]),
                        "unsubscribe": (self._unsubscribe, ["POST"]),
                        "open": (self._open, ["POST"]),
                        "seen": (self._seen, ["POST"]),
                        "failed": (self._failed_callback, ["POST"]),
                        "fail": (self._fail, ["POST"]),
                        "sent": (self._sent, ["GET"]),
                        "conversations": (self._conversations, ["GET"]),
                        "deliveries": (
                            list_handler(self.bots, "token", "deliveries", _NO_BOT),
                            ["GET"],
                        ),
                        "users": (self._users, ["GET"]),
                    }
                ),
            ]
        )

    # ---------------------------------------------------------------------------------------
    # Bots, users and callbacks (also used in-process by the sandbox binding)

    def ensure_bot(self, token: str, **knobs: Any) -> Bot:
        bot = self.bots.get(token)
        if bot is None:
            bot = Bot(token)
            self.bots[token] = bot
        for name, value in knobs.items():
            if name in self.KNOBS and value is not None:
                setattr(bot, name, value)
        return bot

    def user(self, bot: Bot, user: str, name: str | None = None) -> User:
        """The customer called `user` (a phone-page name, or a Viber id as given)."""
        uid = user if len(user) == 24 and user.endswith("==") else user_id_for(user)
        found = bot.users.get(uid)
        if found is None:
            found = User(uid, name or user)
            bot.users[uid] = found
        elif name:
            found.name = name
        return found

    def next_token(self) -> int:
        return next(self._tokens)

    def push(self, bot: Bot, event: dict[str, Any], duplicates: int = 0) -> int:
        """Queue one callback (plus identical `duplicates`) for the webhook; its token."""
        token = event.get("message_token")
        if not isinstance(token, int):
            token = self.next_token()
        doc = {
            "event": event["event"],
            "timestamp": int(time.time() * 1000),
            "chat_hostname": "SN-CHAT-05_",
            "message_token": token,
            **{k: v for k, v in event.items() if k not in ("event", "message_token")},
        }
        body = orjson.dumps(doc)
        bot.callbacks[str(token) + ":" + doc["event"]] = body
        optional = doc["event"] in ALL_EVENTS and doc["event"] not in ("subscribed", "unsubscribed")
        if optional and doc["event"] not in bot.event_types:
            return int(token)
        self._outbox(bot).put(self.tasks, *[body] * (1 + max(0, duplicates)))
        return int(token)

    def _outbox(self, bot: Bot) -> Outbox[bytes]:
        if bot.outbox is None:
            # One callback per request.
            bot.outbox = Outbox(
                lambda head: self._deliver(bot, head[0]),
                lambda: bool(bot.webhook_url),
                "viber-sim-callbacks",
                pending=bot.pending,
            )
        return bot.outbox

    def kick(self, bot: Bot) -> None:
        self._outbox(bot).kick(self.tasks)

    def _signed(self, bot: Bot, body: bytes) -> dict[str, str]:
        mac = hmac.new(bot.token.encode(), body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "X-Viber-Content-Signature": mac}

    async def _deliver(self, bot: Bot, body: bytes) -> None:
        def attempt(n: int) -> tuple[str, bytes, dict[str, str]] | None:
            url = bot.webhook_url
            return (url, body, self._signed(bot, body)) if url else None

        def record(n: int, status: int, _detail: str) -> None:
            bot.deliveries.append({"body": body.decode(), "attempt": n, "status": status})

        went = await self.webhooks.deliver(
            attempt,
            attempts=bot.max_attempts,
            base_seconds=bot.retry_base_seconds,
            ok=lambda status: status == 200,
            on_attempt=record,
        )
        if not went and bot.webhook_url:
            log.info("viber simulator gave up on a callback after %s attempts", bot.max_attempts)

    def store_media(self, bot: Bot, data: bytes, mime: str, ext: str) -> str:
        media_id = f"{secrets.token_hex(8)}.{ext}"
        self.media[media_id] = Media(data, mime, time.time() + bot.media_ttl_seconds)
        return f"{self.media_base_url}/media/{media_id}"

    def customer_writes(self, bot: Bot, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """Build and queue a `message` callback from a control-API body; its token."""
        message, shown = self._message(bot, body)
        # The user answered: their session opens and the per-user cap resets.
        now = time.time()
        user.session_started = now
        user.unreplied.clear()
        if bot.message_subscribes:
            user.subscribed = True
        token = self.next_token()
        user.thread.append(thread_entry(str(token), "in", shown, "sent"))
        self.push(
            bot,
            {
                "event": "message",
                "message_token": token,
                "sender": user.as_user(),
                "message": message,
                "silent": False,
            },
            int(body.get("duplicates") or 0),
        )
        return {"message_token": str(token), "user_id": user.id}

    def _message(self, bot: Bot, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        if isinstance(body.get("other"), dict):
            return dict(body["other"]), f"[{body['other'].get('type', 'unknown')}]"
        for kind in ("picture", "video", "file"):
            spec = body.get(kind)
            if not spec:
                continue
            data, mime, ext = _SAMPLE[kind]
            name = f"{kind}.{ext}"
            if isinstance(spec, dict):
                if spec.get("data_b64"):
                    data = base64.b64decode(str(spec["data_b64"]))
                mime = str(spec.get("mime_type") or mime)
                name = str(spec.get("file_name") or name)
                ext = name.rsplit(".", 1)[-1] if "." in name else ext
            msg: dict[str, Any] = {
                "type": kind,
                "media": self.store_media(bot, data, mime, ext),
                "file_name": name,
                "file_size": len(data),
            }
            if body.get("caption") and kind == "picture":
                msg["text"] = str(body["caption"])
            if kind == "video":
                msg["duration"] = 12
            return msg, str(body.get("caption") or f"[{kind}: {name}]")
        if body.get("sticker_id") is not None:
            sid = int(body["sticker_id"])
            media = f"{self.media_base_url}/media/sticker-{sid}.png"
            return {"type": "sticker", "sticker_id": sid, "media": media}, f"[sticker {sid}]"
        if isinstance(body.get("contact"), dict):
            card = body["contact"]
            return {"type": "contact", "contact": card}, f"[contact {card.get('name', '')}]"
        if isinstance(body.get("location"), dict):
            loc = body["location"]
            return {
                "type": "location",
                "location": loc,
            }, f"[location {loc.get('lat')},{loc.get('lon')}]"
        if body.get("url"):
            return {"type": "url", "media": str(body["url"])}, str(body["url"])
        text = str(body.get("text") or "")
        return {"type": "text", "text": text}, text

    # ---------------------------------------------------------------------------------------
    # The Bot API

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        token = request.headers.get("x-viber-auth-token") or (
            body.get("auth_token") if isinstance(body, dict) else None
        )
        bot = self.bots.get(str(token or ""))
        try:
            if bot is None:
                raise ApiError(2)
            if not isinstance(body, dict):
                raise ApiError(3)
            if f := injected(bot.failures, method):
                raise ApiError(f.code, f.message)
            answer = await self._call(bot, method, body, len(raw))
        except ApiError as exc:
            answer = {"status": exc.status, "status_message": exc.message}
        if bot is not None:
            bot.sent.append({"method": method, "body": body, "answer": answer})
        # Always HTTP 200: the outcome is in `status`.
        return Response(orjson.dumps(answer), media_type="application/json")

    async def _call(self, bot: Bot, method: str, body: dict[str, Any], size: int) -> dict[str, Any]:
        if method == "set_webhook":
            return await self._set_webhook(bot, body)
        if method == "send_message":
            return self._send(bot, body, size)
        if method == "get_user_details":
            return self._user_details(bot, body)
        if method == "get_account_info":
            return {
                "status": 0,
                "status_message": "ok",
                "id": f"pa:{abs(hash(bot.token)) % 10**18}",
                "name": bot.name,
                "uri": bot.uri,
                "webhook": bot.webhook_url or "",
                "event_types": bot.event_types,
                "subscribers_count": sum(1 for u in bot.users.values() if u.subscribed),
                "members": [],
            }
        if method == "get_online":
            ids = body.get("ids")
            if not isinstance(ids, list) or len(ids) > 100:
                raise ApiError(3, "ids must be a list of at most 100")
            return {
                "status": 0,
                "status_message": "ok",
                "users": [
                    {"id": i, "online_status": 1, "online_status_message": "offline"}
                    for i in ids
                    if i in bot.users
                ],
            }
        raise ApiError(3, f"unknown method {method}")

    async def _set_webhook(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        url = body.get("url")
        if not isinstance(url, str):
            raise ApiError(4, "url is required")
        if not url:
            bot.webhook_url = None
            return {"status": 0, "status_message": "ok"}
        if not url.startswith(("http://", "https://")):
            raise ApiError(1)
        types = body.get("event_types")
        wanted = [t for t in types if t in ALL_EVENTS] if isinstance(types, list) else ALL_EVENTS
        if bot.probe_webhook:
            # Viber answers only after the URL took a signed `webhook` callback with a 200.
            probe = orjson.dumps(
                {
                    "event": "webhook",
                    "timestamp": int(time.time() * 1000),
                    "chat_hostname": "SN-CHAT-22_",
                    "message_token": self.next_token(),
                }
            )
            status, _ = await self.webhooks.exchange(url, probe, self._signed(bot, probe))
            ok = status == 200
            bot.deliveries.append({"body": probe.decode(), "attempt": 1, "status": int(ok) * 200})
            if not ok:
                raise ApiError(bot.probe_fail_status)
        bot.webhook_url = url
        bot.event_types = list(wanted)
        self.kick(bot)
        return {"status": 0, "status_message": "ok", "event_types": bot.event_types}

    def _send(self, bot: Bot, body: dict[str, Any], size: int) -> dict[str, Any]:
        if size > BODY_LIMIT:
            raise ApiError(3, "the request is larger than 30 KB")
        if bot.webhook_url is None:
            raise ApiError(10)
        receiver, mtype = body.get("receiver"), body.get("type")
        sender = body.get("sender")
        if not isinstance(receiver, str) or not receiver:
            raise ApiError(4, "receiver is required")
        if mtype not in SEND_TYPES and not (mtype is None and body.get("keyboard")):
            raise ApiError(3, f"unknown type {mtype!r}")
        if not isinstance(sender, dict) or not isinstance(sender.get("name"), str):
            raise ApiError(4, "sender.name is required")
        if len(sender["name"]) > SENDER_NAME_MAX:
            raise ApiError(3, "sender.name is longer than 28 characters")
        shown = self._validate(body, mtype)
        user = bot.users.get(receiver)
        if user is None:
            raise ApiError(5)
        if not user.subscribed:
            raise ApiError(6)
        now = time.time()
        while user.unreplied and user.unreplied[0] < now - 3600:
            user.unreplied.popleft()
        if len(user.unreplied) >= bot.per_user_unreplied_cap:
            raise ApiError(12)
        in_session = (
            user.session_started is not None
            and now - user.session_started < bot.session_hours * 3600
        )
        if not in_session:
            # Chatbot-initiated: billed per message, after any free allowance.
            if bot.free_bot_initiated is not None:
                if bot.free_bot_initiated <= 0 and not bot.balance:
                    raise ApiError(23)
                bot.free_bot_initiated = max(0, bot.free_bot_initiated - 1)
            elif not bot.balance:
                raise ApiError(24)
        user.unreplied.append(now)
        token = self.next_token()
        bot.outbound[str(token)] = user.id
        user.thread.append(
            thread_entry(
                str(token),
                "out",
                shown,
                "sent",
                at=now,
                billing="session" if in_session else "chatbot_initiated",
                keyboard=body.get("keyboard"),
            )
        )
        if bot.auto_delivered:
            self._receipt(bot, user, "delivered", token)
        if bot.auto_seen:
            self.read_all(bot, user)
        return {
            "status": 0,
            "status_message": "ok",
            "message_token": token,
            "chat_hostname": "SN-CHAT-05_",
            # This simulator's reading of a field Viber does not define
            # (docs/channels/viber.md#sessions-and-cost): 0 free in a session, 1 chatbot-initiated.
            "billing_status": 0 if in_session else 1,
        }

    def _validate(self, body: dict[str, Any], mtype: Any) -> str:
        if mtype == "text":
            text = body.get("text")
            if not isinstance(text, str) or not text:
                raise ApiError(4, "text is required")
            if len(text) > TEXT_LIMIT:
                raise ApiError(3, "text is longer than 7000 characters")
            return text
        if mtype in ("picture", "video", "file", "url"):
            media = body.get("media")
            if not isinstance(media, str) or not media.startswith(("http://", "https://")):
                raise ApiError(1)
            if mtype in ("video", "file") and not isinstance(body.get("size"), int):
                raise ApiError(4, "size is required")
            if mtype == "file" and not body.get("file_name"):
                raise ApiError(4, "file_name is required")
            return str(body.get("text") or f"[{mtype}: {media}]")
        if mtype == "location":
            loc = body.get("location")
            if not isinstance(loc, dict) or not {"lat", "lon"} <= set(loc):
                raise ApiError(4, "location.lat and location.lon are required")
            return f"[location {loc['lat']},{loc['lon']}]"
        if mtype == "sticker":
            if not isinstance(body.get("sticker_id"), int):
                raise ApiError(4, "sticker_id is required")
            return f"[sticker {body['sticker_id']}]"
        if mtype == "contact":
            return f"[contact {body.get('contact')}]"
        return str(body.get("alt_text") or f"[{mtype}]")

    def _receipt(self, bot: Bot, user: User, event: str, token: int | str) -> None:
        self.push(bot, {"event": event, "message_token": int(token), "user_id": user.id})

    def read_all(self, bot: Bot, user: User) -> int:
        """The user reads the chat: one `seen` for the newest unread message (Viber sends one
        per read action, whatever the count)."""
        unread = [m for m in user.thread if m["direction"] == "out" and m["status"] != "seen"]
        for m in unread:
            m["status"] = "seen"
        if unread:
            self._receipt(bot, user, "seen", unread[-1]["id"])
        return len(unread)

    def _user_details(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        uid = body.get("id")
        user = bot.users.get(uid) if isinstance(uid, str) else None
        if user is None:
            raise ApiError(5)
        now = time.time()
        while user.details_calls and user.details_calls[0] < now - 12 * 3600:
            user.details_calls.popleft()
        if len(user.details_calls) >= bot.user_details_per_12h:
            raise ApiError(12)
        user.details_calls.append(now)
        details = {
            **user.as_user(),
            "primary_device_os": "Android 14",
            "viber_version": "22.1.0",
            "mcc": 262,
            "mnc": 1,
            "device_type": "Pixel 8",
        }
        return {
            "status": 0,
            "status_message": "ok",
            "message_token": self.next_token(),
            "user": details,
        }

    async def _media(self, request: Request) -> Response:
        media_id = request.path_params["media_id"]
        if media_id.startswith("sticker-"):
            return Response(_SAMPLE["picture"][0], media_type="image/png")
        item = self.media.get(media_id)
        if item is None or item.expires < time.time():
            # Expired links answer like a missing file.
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        data = b"" if request.method == "HEAD" else item.data
        headers = {"Content-Length": str(len(item.data))}
        return Response(data, media_type=item.mime, headers=headers)

    # ---------------------------------------------------------------------------------------
    # Control API

    async def _json(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise LookupError("the body must be JSON") from None
        if not isinstance(body, dict):
            raise LookupError("the body must be a JSON object")
        return body

    def _bot(self, token: Any) -> Bot:
        bot = self.bots.get(str(token or ""))
        if bot is None:
            raise LookupError("unknown bot token; PUT /_sim/bots/{token} first")
        return bot

    @_lookup
    async def _put_bot(self, request: Request) -> JSONResponse:
        body = await self._json(request)
        bot = self.ensure_bot(request.path_params["token"], **body)
        return JSONResponse({k: getattr(bot, k) for k in self.KNOBS})

    @_acting
    def _inbound(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("redeliver") is not None:
            key = f"{body['redeliver']}:message"
            if key not in bot.callbacks:
                raise LookupError("no such message_token")
            bot.pending.append(bot.callbacks[key])
            self.kick(bot)
            return {"message_token": str(body["redeliver"])}
        user = self.user(bot, str(body.get("user") or ""), body.get("name"))
        if isinstance(body.get("avatar"), str):
            user.avatar = body["avatar"] or None
        return self.customer_writes(bot, user, body)

    @_acting
    def _subscribe(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        user = self.user(bot, str(body.get("user") or ""), body.get("name"))
        user.subscribed = True
        token = self.push(bot, {"event": "subscribed", "user": user.as_user()})
        return {"message_token": str(token), "user_id": user.id}

    @_acting
    def _unsubscribe(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        user = self.user(bot, str(body.get("user") or ""), body.get("name"))
        user.subscribed = False
        token = self.push(bot, {"event": "unsubscribed", "user_id": user.id})
        return {"message_token": str(token), "user_id": user.id}

    @_acting
    def _open(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        user = self.user(bot, str(body.get("user") or ""), body.get("name"))
        event: dict[str, Any] = {
            "event": "conversation_started",
            "type": "open",
            "user": user.as_user(),
            "subscribed": user.subscribed,
        }
        if body.get("context"):
            event["context"] = str(body["context"])
        token = self.push(bot, event)
        return {"message_token": str(token), "user_id": user.id}

    @_acting
    def _seen(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        user = self.user(bot, str(body.get("user") or ""))
        return {"read": self.read_all(bot, user)}

    @_acting
    def _failed_callback(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        token = str(body.get("message_token") or "")
        uid = bot.outbound.get(token)
        if uid is None:
            raise LookupError("no sent message with that message_token")
        event = {
            "event": "failed",
            "message_token": int(token),
            "user_id": uid,
            "desc": str(body.get("desc") or "failure description"),
        }
        self.push(bot, event)
        return {"message_token": token}

    @_acting
    def _fail(self, bot: Bot, body: dict[str, Any]) -> dict[str, Any]:
        failure = Failure(
            str(body.get("method") or "send_message"),
            int(body["status"]),
            str(body["status_message"]) if body.get("status_message") else None,
            times=int(body.get("times") or 1),
        )
        bot.failures.append(failure)
        return {"queued": failure.times}

    def _query_bot(self, request: Request) -> Bot:
        return self._bot(request.query_params.get("token"))

    @_lookup
    async def _sent(self, request: Request) -> Response:
        bot = self._query_bot(request)
        # Tokens as strings: a JSON reader in a browser would round them.
        return Response(_stringify_tokens(bot.sent), media_type="application/json")

    @_lookup
    async def _conversations(self, request: Request) -> JSONResponse:
        bot = self._query_bot(request)
        user = bot.users.get(user_id_for(request.query_params.get("user", "")))
        user = user or bot.users.get(request.query_params.get("user", ""))
        return JSONResponse(user.thread if user else [])

    @_lookup
    async def _users(self, request: Request) -> JSONResponse:
        bot = self._query_bot(request)
        return JSONResponse(
            [
                {**u.as_user(), "subscribed": u.subscribed, "messages": len(u.thread)}
                for u in bot.users.values()
            ]
        )


def _stringify_tokens(value: Any) -> bytes:
    def fix(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (str(x) if k == "message_token" else fix(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return orjson.dumps(fix(value))


class ViberBinding(UrlBinding[ViberSimulator, ViberConfig]):
    """Connects sandbox Viber channels to the simulator (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "viber"
    config_type = ViberConfig

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        # The bot exists from now on, with its webhook set in process: at start-up the server
        # is not listening yet, so the probe a real set_webhook makes could not be answered.
        # Tidings' own set_webhook call (actions.admin) follows over HTTP with the probe.
        bot = self.sim.ensure_bot(self.config(channel).auth_token, name=channel.name[:28])
        bot.webhook_url = webhook_url
        self.sim.kick(bot)

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        bot = self.sim.ensure_bot(self.config(channel).auth_token)
        return self.sim.customer_writes(bot, self.sim.user(bot, user, name), {"text": text})

    async def send_location(
        self, channel: ChannelInfo, user: str, name: str | None, place: PhoneLocation
    ) -> dict[str, Any]:
        bot = self.sim.ensure_bot(self.config(channel).auth_token)
        body = {"location": {"lat": place.latitude, "lon": place.longitude}}
        return self.sim.customer_writes(bot, self.sim.user(bot, user, name), body)

    async def send_file(
        self, channel: ChannelInfo, user: str, name: str | None, file: PhoneFile
    ) -> dict[str, Any]:
        bot = self.sim.ensure_bot(self.config(channel).auth_token)
        kind = "picture" if file.mime_type in ("image/jpeg", "image/png") else "file"
        spec = {"data_b64": base64.b64encode(file.data).decode(), "file_name": file.filename}
        body = {kind: {**spec, "mime_type": file.mime_type}, "caption": file.caption}
        return self.sim.customer_writes(bot, self.sim.user(bot, user, name), body)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        bot = self.sim.bots.get(self.config(channel).auth_token)
        found = bot.users.get(user_id_for(user)) if bot else None
        return list(found.thread) if found else []


SANDBOX = SandboxEntry(
    "viber",
    ViberSimulator,
    ViberBinding,
    (
        DemoChannel(
            "viber",
            "Viber (sandbox)",
            lambda base: {
                "auth_token": "-".join(secrets.token_hex(8) for _ in range(3)),
                "api_base_url": base,
                "sender_name": "Tidings Support",
            },
        ),
    ),
)
