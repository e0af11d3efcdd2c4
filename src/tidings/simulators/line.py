"""A LINE Messaging API simulator that speaks the real protocol (docs/channels/line.md).

Both of LINE's roles towards Tidings:
- the Messaging API with `Authorization: Bearer {channel access token}` (an unknown token gets
  401 with LINE's body): `POST /v2/bot/message/reply` (reply tokens: single use, expiring),
  `POST /v2/bot/message/push` and `/multicast` (monthly quota, `X-Line-Retry-Key` remembered
  for 24 h: a repeat answers 409 with `x-line-accepted-request-id`), `GET
  /v2/bot/message/quota[/consumption]`, `GET /v2/bot/profile/{userId}`, `GET
  /v2/bot/group/{groupId}/summary`, `GET /v2/bot/info`, `PUT|GET
  /v2/bot/channel/webhook/endpoint`, and the content host's `GET
  /v2/bot/message/{id}/content[/transcoding]` (point `data_api_base_url` here too). Every
  answer carries `X-Line-Request-Id`; errors are `{"message", "details"?}`; requests are
  validated like LINE does (1 to 5 messages, 5,000 UTF-16 units, https URLs); 429 from a
  per-endpoint token bucket;
- the webhook sender: `{"destination", "events": [...]}` signed with `x-line-signature`,
  several events per request when they queue up, redelivered with `isRedelivery: true` after a
  non-2xx answer when redelivery is on, duplicated on demand.

Knobs that LINE does not publish, or that tests need to move (`PUT /_sim/channels`,
`POST /_sim/config`): `reply_token_seconds` (60), `redelivery` (false) with
`redelivery_attempts` (3) and `redelivery_base_seconds` (0.5), `quota` (null: no limit),
`quota_used`, `rate_per_second` (2000), `multicast_rate_per_second` (200),
`transcoding_polls` (0: how many times a video/audio
answers "processing" first).

Control API (JSON, under `/_sim/`), which plays the customers:
- `PUT  /_sim/channels` {channel_access_token, channel_secret, webhook_url?, knobs...}
- `POST /_sim/config` {token, knobs...}
- `POST /_sim/inbound` {token, user_id? | user?, name?, picture_url?, group_id?,
  text? | image? | video? | audio? | file? | location? | sticker? | other?, event?
  (follow/unfollow/postback/...), data?, message_id?, webhook_event_id?, duplicates?} — the
  customer acts; {token, redeliver: webhookEventId} sends an earlier event again
- `POST /_sim/friends` {token, user_ids} people already following the account (no webhooks)
- `POST /_sim/fail` {token, endpoint (reply|push|multicast|profile|content|quota), status, message?,
  times?, lose_answer?} — the next calls fail; `lose_answer`: the call is carried out but
  answered 500 (as if the answer was lost on the way back)
- `GET  /_sim/sent?token=` every send call with its body, outcome and what was delivered
- `GET  /_sim/conversations?token=&user_id=` the thread as the customer sees it
- `GET  /_sim/deliveries?token=` webhook delivery attempts

Sandbox mode mounts `LineSimulator().app` under `/sandbox/line`. Mounted apps get no lifespan
events, so the owner calls `await sim.aclose()`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.line import LineConfig
from tidings.channels.line.webhook import signature
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    ControlError,
    DemoChannel,
    Outbox,
    PhoneFile,
    PhoneLocation,
    SandboxEntry,
    SimulatorBase,
    TokenBucket,
    UrlBinding,
    answering,
    control_error,
    control_routes,
    list_handler,
    read_json,
    thread_entry,
    thread_of,
    thread_route,
)

log = logging.getLogger(__name__)

TEXT_LIMIT = 5000
MAX_MESSAGES = 5
MULTICAST_MAX = 500
RETRY_KEY_SECONDS = 24 * 3600
_USER = re.compile(r"^U[0-9a-f]{32}$")
_GROUP = re.compile(r"^[CR][0-9a-f]{32}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_AUTH_FAILED = (
    "Authentication failed. Confirm that the access token in the authorization header is valid."
)
_TYPES = frozenset(
    {
        "text",
        "textV2",
        "sticker",
        "image",
        "video",
        "audio",
        "location",
        "imagemap",
        "template",
        "flex",
    }
)
# The media URLs a message must give (https only).
_URL_FIELDS = {
    "image": ("originalContentUrl", "previewImageUrl"),
    "video": ("originalContentUrl", "previewImageUrl"),
    "audio": ("originalContentUrl",),
}
# Stand-in bytes for a customer's file when the control call gives none.
_SAMPLE = {
    "image": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)), "image/jpeg"),
    "video": (b"\x00\x00\x00\x18ftypmp42" + bytes(range(128)), "video/mp4"),
    "audio": (b"\x00\x00\x00\x18ftypM4A " + bytes(range(64)), "audio/x-m4a"),
    "file": (b"%PDF-1.4\n" + b"1 0 obj <<>> endobj\n" * 8, "application/pdf"),
}


class LineApiError(Exception):
    def __init__(
        self, status: int, message: str, details: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message}
        if self.details:
            body["details"] = self.details
        return JSONResponse(body, status_code=self.status, headers=_request_id())


_api = answering(LineApiError, answer=LineApiError.response)
_control = answering(ControlError, answer=ControlError.response)


def _bad_body(details: list[dict[str, str]]) -> LineApiError:
    return LineApiError(400, f"The request body has {len(details)} error(s)", details)


# What a send did: (recipient(s), delivered, charged, sentMessages or None for multicast).
Sent = tuple[Any, Any, int, list[dict[str, str]] | None]


def _request_id() -> dict[str, str]:
    return {"X-Line-Request-Id": str(uuid.uuid4())}


@dataclass
class User:
    user_id: str
    name: str
    picture_url: str | None = None
    following: bool = True


@dataclass
class Content:
    data: bytes
    mime: str
    kind: str
    gone: bool = False
    polls_left: int = 0


@dataclass
class Failure:
    status: int
    message: str
    times: int
    lose_answer: bool = False


@dataclass
class Account:
    token: str
    secret: str
    bot_user_id: str
    webhook_url: str | None = None
    reply_token_seconds: float = 60.0
    redelivery: bool = False
    redelivery_attempts: int = 3
    redelivery_base_seconds: float = 0.5
    quota: int | None = None
    quota_used: int = 0
    rate_per_second: float = 2000.0
    multicast_rate_per_second: float = 200.0
    transcoding_polls: int = 0
    users: dict[str, User] = field(default_factory=dict)
    # user id -> when (monotonic) the loading animation ends
    loading: dict[str, float] = field(default_factory=dict)
    # reply token -> (chat address, issued at (monotonic), used)
    reply_tokens: dict[str, list[Any]] = field(default_factory=dict)
    # retry key -> (request id, sentMessages, accepted at)
    retry_keys: dict[str, tuple[str, list[dict[str, str]], float]] = field(default_factory=dict)
    contents: dict[str, Content] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    outbox: Outbox[dict[str, Any]] | None = None
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    thread: list[dict[str, Any]] = field(default_factory=list)

    KNOBS: ClassVar[tuple[str, ...]] = (
        "reply_token_seconds",
        "redelivery",
        "redelivery_attempts",
        "redelivery_base_seconds",
        "quota",
        "quota_used",
        "rate_per_second",
        "multicast_rate_per_second",
        "transcoding_polls",
        "webhook_url",
    )


_ids = itertools.count(int(time.time() * 1000) % 10**15 * 1000)


def _message_id() -> str:
    return str(next(_ids))


def _event_id() -> str:
    # ULID-like: 26 characters of Crockford base32.
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def user_id_for(user: str) -> str:
    """The phone page lets people type any name; LINE user ids are `U` + 32 hex digits."""
    text = user.strip()
    if _USER.match(text):
        return text
    return "U" + hashlib.sha256(f"line-user:{text}".encode()).hexdigest()[:32]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class LineSimulator(SimulatorBase):
    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.accounts: dict[str, Account] = {}
        self.app = Starlette(
            routes=[
                Route("/v2/bot/message/reply", self._reply, methods=["POST"]),
                Route("/v2/bot/message/push", self._push, methods=["POST"]),
                Route("/v2/bot/message/multicast", self._multicast, methods=["POST"]),
                Route("/v2/bot/message/quota", self._quota, methods=["GET"]),
                Route("/v2/bot/message/quota/consumption", self._consumption, methods=["GET"]),
                Route("/v2/bot/message/{mid}/content", self._content, methods=["GET"]),
                Route(
                    "/v2/bot/message/{mid}/content/transcoding", self._transcoding, methods=["GET"]
                ),
                Route("/v2/bot/profile/{user_id}", self._profile, methods=["GET"]),
                Route("/v2/bot/group/{group_id}/summary", self._group, methods=["GET"]),
                Route("/v2/bot/info", self._info, methods=["GET"]),
                Route("/v2/bot/channel/webhook/endpoint", self._endpoint, methods=["GET", "PUT"]),
                Route("/v2/bot/channel/webhook/test", self._webhook_test, methods=["POST"]),
                Route("/v2/bot/chat/loading/start", self._loading, methods=["POST"]),
                *control_routes(
                    {
                        "channels": (self._put_channel, ["PUT"]),
                        "config": (self._config, ["POST"]),
                        "inbound": (self._inbound, ["POST"]),
                        "friends": (self._friends, ["POST"]),
                        "fail": (self._fail, ["POST"]),
                        "sent": (list_handler(self.accounts, "token", "sent"), ["GET"]),
                        "conversations": (
                            thread_route(self.conversation, "token", "user_id"),
                            ["GET"],
                        ),
                        "deliveries": (list_handler(self.accounts, "token", "deliveries"), ["GET"]),
                    }
                ),
            ]
        )

    # ---------------------------------------------------------------------------------------
    # Accounts, users and events (also used in-process by the sandbox binding)

    def ensure_account(self, token: str, secret: str, **knobs: Any) -> Account:
        acct = self.accounts.get(token)
        if acct is None:
            bot = "U" + hashlib.sha256(f"line-bot:{token}".encode()).hexdigest()[:32]
            acct = Account(token, secret, bot)
            acct.outbox = self._outbox(acct)
            self.accounts[token] = acct
        acct.secret = secret
        self.configure(acct, knobs)
        return acct

    def configure(self, acct: Account, knobs: dict[str, Any]) -> None:
        for name in Account.KNOBS:
            if name in knobs:
                setattr(acct, name, knobs[name])
        acct.buckets.clear()
        if acct.webhook_url:
            self._kick(acct)

    def user(self, acct: Account, user_id: str, name: str | None = None, **more: Any) -> User:
        person = acct.users.get(user_id)
        if person is None:
            person = User(user_id, name or f"LINE user {user_id[1:7]}")
            acct.users[user_id] = person
        if name:
            person.name = name
        if more.get("picture_url"):
            person.picture_url = str(more["picture_url"])
        return person

    def event(
        self,
        acct: Account,
        kind: str,
        source: dict[str, Any],
        *,
        reply: bool = True,
        event_id: str | None = None,
        **body: Any,
    ) -> dict[str, Any]:
        """Queue one webhook event (with a fresh reply token where LINE gives one)."""
        event: dict[str, Any] = {
            "type": kind,
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "webhookEventId": event_id or _event_id(),
            "deliveryContext": {"isRedelivery": False},
            "source": source,
            **body,
        }
        if reply:
            token = secrets.token_hex(16)
            event["replyToken"] = token
            chat = source.get("groupId") or source.get("roomId") or source.get("userId")
            # The clock starts when the webhook is sent (`_deliver`).
            acct.reply_tokens[token] = [chat, None, False]
        acct.events[event["webhookEventId"]] = event
        return event

    def queue(self, acct: Account, event: dict[str, Any], duplicates: int = 0) -> None:
        assert acct.outbox is not None
        acct.outbox.put(self.tasks, *[event] * (1 + max(0, duplicates)))

    def customer_message(
        self, acct: Account, person: User, body: dict[str, Any], group_id: str | None = None
    ) -> dict[str, Any]:
        """The `message` object a customer sends, from a control-API body (stores content)."""
        mid = str(body.get("message_id") or _message_id())
        msg: dict[str, Any] = {"id": mid}
        shown = ""
        if "text" in body:
            msg.update(type="text", text=str(body["text"]), quoteToken=secrets.token_urlsafe(8))
            shown = msg["text"]
        elif "location" in body:
            loc = body["location"] if isinstance(body["location"], dict) else {}
            msg.update(
                type="location",
                title=str(loc.get("title") or "Location"),
                address=str(loc.get("address") or ""),
                latitude=float(loc.get("latitude", 35.67966)),
                longitude=float(loc.get("longitude", 139.73669)),
            )
            shown = f"📍 {msg['title']}"
        elif "sticker" in body:
            spec = body["sticker"] if isinstance(body["sticker"], dict) else {}
            msg.update(
                type="sticker",
                packageId=str(spec.get("packageId", "11537")),
                stickerId=str(spec.get("stickerId", "52002738")),
                stickerResourceType=str(spec.get("stickerResourceType", "STATIC")),
                quoteToken=secrets.token_urlsafe(8),
            )
            shown = "[sticker]"
        elif "other" in body:
            spec = body["other"] if isinstance(body["other"], dict) else {}
            msg.update({"type": str(spec.get("type") or "mystery"), **spec})
            shown = f"[{msg['type']}]"
        else:
            for kind in ("image", "video", "audio", "file"):
                if kind in body:
                    spec = body[kind] if isinstance(body[kind], dict) else {}
                    data, mime = _SAMPLE[kind]
                    if spec.get("data_b64"):
                        data = base64.b64decode(str(spec["data_b64"]))
                    mime = str(spec.get("mime_type") or mime)
                    acct.contents[mid] = Content(
                        data, mime, kind, polls_left=acct.transcoding_polls
                    )
                    msg["type"] = kind
                    if kind == "file":
                        msg.update(fileName=str(spec.get("file_name") or "file.pdf"))
                        msg["fileSize"] = len(data)
                    else:
                        msg["contentProvider"] = {"type": "line"}
                    if kind in ("video", "audio"):
                        msg["duration"] = int(spec.get("duration", 4200))
                    shown = f"[{kind}]"
                    break
            else:
                raise ValueError("say what the customer sends: text, image, location, ...")
        if group_id is None:
            acct.thread.append(thread_entry(mid, "in", shown, "sent", user=person.user_id))
        return msg

    def _outbox(self, acct: Account) -> Outbox[dict[str, Any]]:
        # A few events per request (LINE batches what queued up).
        return Outbox(
            lambda batch: self._deliver(acct, batch),
            lambda: bool(acct.webhook_url),
            f"line-sim-{acct.bot_user_id[:8]}",
            batch=5,
            pending=acct.pending,
        )

    def _kick(self, acct: Account) -> None:
        assert acct.outbox is not None
        acct.outbox.kick(self.tasks)

    async def _deliver(self, acct: Account, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for event in events:
            token = self._token_of(acct, event)
            if token is not None and token[1] is None:
                token[1] = now
        attempts = acct.redelivery_attempts if acct.redelivery else 1
        sent = events

        def attempt(n: int) -> tuple[str, bytes, dict[str, str]] | None:
            nonlocal sent
            url = acct.webhook_url
            if not url:
                return None
            if n > 1:
                # A redelivered event is the original with isRedelivery: true (same ids and
                # reply token; its token works for another period unless already used).
                sent = [{**e, "deliveryContext": {"isRedelivery": True}} for e in events]
                for event in sent:
                    token = self._token_of(acct, event)
                    if token is not None:
                        token[1] = time.monotonic()
            body = orjson.dumps({"destination": acct.bot_user_id, "events": sent})
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "x-line-signature": signature(acct.secret, body),
                "User-Agent": "LineBotWebhook/2.0",
            }
            return url, body, headers

        def record(n: int, status: int, _detail: str) -> None:
            acct.deliveries.append(
                {"events": [e["webhookEventId"] for e in sent], "attempt": n, "status": status}
            )

        await self.webhooks.deliver(
            attempt,
            attempts=attempts,
            base_seconds=acct.redelivery_base_seconds,
            on_attempt=record,
        )

    def _token_of(self, acct: Account, event: dict[str, Any]) -> list[Any] | None:
        token = event.get("replyToken")
        return acct.reply_tokens.get(token) if isinstance(token, str) else None

    # ---------------------------------------------------------------------------------------
    # Messaging API

    def _account(self, request: Request) -> Account:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        acct = self.accounts.get(token)
        if acct is None:
            raise LineApiError(401, _AUTH_FAILED)
        return acct

    def _limit(self, acct: Account, endpoint: str, rate: float | None = None) -> None:
        limit = rate or acct.rate_per_second
        bucket = acct.buckets.setdefault(endpoint, TokenBucket(limit, limit))
        if bucket.take():
            raise LineApiError(429, "The API rate limit has been exceeded. Try again later.")

    def _injected(self, acct: Account, endpoint: str) -> Failure | None:
        queue = acct.failures.get(endpoint) or []
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        if failure.lose_answer:
            return failure
        raise LineApiError(failure.status, failure.message)

    async def _body(self, request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("application/json"):
            raise LineApiError(415, f"The content type, {ctype or 'none'}, is not supported")
        raw = await request.body()
        if len(raw) > 2 * 1024 * 1024:
            raise LineApiError(413, "Request Entity Too Large")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise LineApiError(
                400, "The request body could not be parsed as JSON (line: 1, column: 1)"
            ) from None
        if not isinstance(body, dict):
            raise LineApiError(400, "The request body could not be parsed as JSON")
        return body

    def _check_messages(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            raise _bad_body([{"message": "Size must be between 1 and 5", "property": "messages"}])
        details: list[dict[str, str]] = []

        def bad(message: str, prop: str) -> None:
            details.append({"message": message, "property": f"{where}.{prop}"})

        for i, m in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(m, dict) or not m.get("type"):
                bad("May not be empty", "type")
                continue
            kind = m["type"]
            if kind not in _TYPES:
                bad("Invalid message type", "type")
            if kind == "text":
                text = m.get("text")
                if not isinstance(text, str) or not text:
                    bad("May not be empty", "text")
                elif _utf16(text) > TEXT_LIMIT:
                    bad("Length must be between 0 and 5000", "text")
            for url_field in _URL_FIELDS.get(kind, ()):
                url = m.get(url_field)
                if not isinstance(url, str) or not url.startswith("https://"):
                    bad("must be a valid HTTPS URL", url_field)
            if kind == "audio" and not isinstance(m.get("duration"), int):
                bad("May not be empty", "duration")
            if kind == "location":
                for key in ("title", "address", "latitude", "longitude"):
                    if m.get(key) in (None, ""):
                        bad("May not be empty", key)
            if kind == "sticker" and not (m.get("packageId") and m.get("stickerId")):
                bad("May not be empty", "stickerId")
            quick = m.get("quickReply")
            if isinstance(quick, dict):
                items = quick.get("items")
                if not isinstance(items, list) or not 1 <= len(items) <= 13:
                    bad("Size must be between 1 and 13", "quickReply.items")
                    continue
                for j, item in enumerate(items):
                    action = item.get("action") if isinstance(item, dict) else None
                    label = action.get("label") if isinstance(action, dict) else None
                    if not isinstance(label, str) or not 1 <= len(label) <= 20:
                        bad(
                            "Length must be between 1 and 20", f"quickReply.items[{j}].action.label"
                        )
        if details:
            raise _bad_body(details)
        return messages

    def _deliver_out(
        self, acct: Account, to: str, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, str]], bool]:
        """Put our messages in the customer's thread; (sentMessages, delivered)."""
        sent = [{"id": _message_id(), "quoteToken": secrets.token_urlsafe(8)} for _ in messages]
        person = acct.users.get(to)
        delivered = _GROUP.match(to) is not None or (person is not None and person.following)
        if delivered:
            acct.loading.pop(to, None)
            for m, s in zip(messages, sent, strict=True):
                acct.thread.append(
                    thread_entry(
                        s["id"],
                        "out",
                        _shown(m),
                        "delivered",
                        user=to,
                        quick_replies=[
                            i.get("action", {}).get("label")
                            for i in (m.get("quickReply") or {}).get("items", [])
                        ],
                    )
                )
        return sent, delivered

    async def _sending(
        self,
        request: Request,
        endpoint: str,
        send: Callable[[Account, dict[str, Any], list[dict[str, Any]]], Sent],
    ) -> Response:
        """What reply, push and multicast share: auth, rate limit, retry key (a repeat answers
        409), body, injected failure and message checks, then `send`, its record in `sent`
        (an error's too) and the answer (500 when the answer is to be lost)."""
        acct: Account | None = None
        try:
            acct = self._account(request)
            rate = acct.multicast_rate_per_second if endpoint == "multicast" else None
            self._limit(acct, endpoint, rate)
            if endpoint == "reply" and request.headers.get("x-line-retry-key"):
                raise LineApiError(400, "The retry key is not supported on this endpoint")
            key, repeat = self._retry_key(acct, request)
            if repeat is not None:
                return repeat
            body = await self._body(request)
            lost = self._injected(acct, endpoint)
            messages = self._check_messages(body)
            to, delivered, charged, sent = send(acct, body, messages)
        except LineApiError as exc:
            if acct is not None:
                acct.sent.append(
                    {"endpoint": endpoint, "status": exc.status, "error": exc.message, "charged": 0}
                )
            return exc.response()
        request_id = str(uuid.uuid4())
        if key is not None:
            acct.retry_keys[key] = (request_id, sent or [], time.time())
        acct.sent.append(
            {
                "endpoint": endpoint,
                "to": to,
                **({} if endpoint == "reply" else {"key": key}),
                "messages": messages,
                "status": 200,
                "delivered": delivered,
                "charged": charged,
            }
        )
        if lost is not None:
            return LineApiError(500, "Internal server error").response()
        answer = {} if sent is None else {"sentMessages": sent}
        return JSONResponse(answer, headers={"X-Line-Request-Id": request_id})

    async def _reply(self, request: Request) -> Response:
        def send(acct: Account, body: dict[str, Any], messages: list[dict[str, Any]]) -> Sent:
            token = body.get("replyToken")
            entry = acct.reply_tokens.get(token) if isinstance(token, str) else None
            issued = entry[1] if entry is not None else None
            if (
                entry is None
                or entry[2]
                or issued is None
                or time.monotonic() - issued > acct.reply_token_seconds
            ):
                raise LineApiError(400, "Invalid reply token")
            entry[2] = True
            sent, delivered = self._deliver_out(acct, entry[0], messages)
            return entry[0], delivered, 0, sent

        return await self._sending(request, "reply", send)

    def _retry_key(self, acct: Account, request: Request) -> tuple[str | None, Response | None]:
        key = request.headers.get("x-line-retry-key")
        if key is None:
            return None, None
        if not _UUID.match(key):
            raise LineApiError(400, "The retry key must be a UUID")
        seen = acct.retry_keys.get(key)
        if seen is not None and time.time() - seen[2] < RETRY_KEY_SECONDS:
            request_id, sent_messages, _at = seen
            body: dict[str, Any] = {"message": "The retry key is already accepted"}
            if sent_messages:
                body["sentMessages"] = sent_messages
            acct.sent.append({"endpoint": "retry", "key": key, "status": 409, "charged": 0})
            return key, JSONResponse(
                body,
                status_code=409,
                headers={**_request_id(), "x-line-accepted-request-id": request_id},
            )
        return key, None

    def _charge(self, acct: Account, recipients: int) -> None:
        if acct.quota is not None and acct.quota_used + recipients > acct.quota:
            raise LineApiError(429, "You have reached your monthly limit.")
        acct.quota_used += recipients

    async def _push(self, request: Request) -> Response:
        def send(acct: Account, body: dict[str, Any], messages: list[dict[str, Any]]) -> Sent:
            to = body.get("to")
            if not isinstance(to, str) or not (_USER.match(to) or _GROUP.match(to)):
                raise LineApiError(400, "Failed to send messages")
            person = acct.users.get(to)
            # Blocked or unknown users: 200, not delivered and not charged.
            billable = _GROUP.match(to) is not None or (person is not None and person.following)
            if billable:
                self._charge(acct, 1)
            sent, delivered = self._deliver_out(acct, to, messages)
            return to, delivered, 1 if billable else 0, sent

        return await self._sending(request, "push", send)

    async def _multicast(self, request: Request) -> Response:
        """Up to 500 user ids (no groups), the same messages to each; quota per recipient
        who follows (all or nothing: over the quota, nobody gets it); `{}` and no ids back."""

        def send(acct: Account, body: dict[str, Any], messages: list[dict[str, Any]]) -> Sent:
            to = body.get("to")
            if not isinstance(to, list) or not 1 <= len(to) <= MULTICAST_MAX:
                raise _bad_body([{"message": "Size must be between 1 and 500", "property": "to"}])
            for i, uid in enumerate(to):
                if not isinstance(uid, str) or not _USER.match(uid):
                    raise LineApiError(
                        400,
                        f"The property, to[{i}], in the request body is invalid "
                        "(line: -, column: -)",
                    )
            live = [u for u in to if (p := acct.users.get(u)) is not None and p.following]
            self._charge(acct, len(live))
            for uid in live:
                self._deliver_out(acct, uid, messages)
            return to, len(live), len(live), None

        return await self._sending(request, "multicast", send)

    @_api
    async def _quota(self, request: Request) -> Response:
        acct = self._account(request)
        self._injected(acct, "quota")
        body: dict[str, Any] = (
            {"type": "none"} if acct.quota is None else {"type": "limited", "value": acct.quota}
        )
        return JSONResponse(body, headers=_request_id())

    @_api
    async def _consumption(self, request: Request) -> Response:
        acct = self._account(request)
        return JSONResponse({"totalUsage": acct.quota_used}, headers=_request_id())

    def _stored(self, acct: Account, mid: str) -> Content:
        content = acct.contents.get(mid)
        if content is None:
            raise LineApiError(404, "not found")
        if content.gone:
            raise LineApiError(410, "The content is gone")
        return content

    @_api
    async def _content(self, request: Request) -> Response:
        acct = self._account(request)
        self._injected(acct, "content")
        content = self._stored(acct, request.path_params["mid"])
        if content.kind in ("video", "audio") and content.polls_left > 0:
            return Response(b"", status_code=202, headers=_request_id())
        return Response(content.data, media_type=content.mime, headers=_request_id())

    @_api
    async def _transcoding(self, request: Request) -> Response:
        acct = self._account(request)
        content = self._stored(acct, request.path_params["mid"])
        if content.kind not in ("video", "audio"):
            raise LineApiError(400, "Transcoding status doesn't support this type of content")
        if content.polls_left > 0:
            content.polls_left -= 1
            return JSONResponse({"status": "processing"}, headers=_request_id())
        return JSONResponse({"status": "succeeded"}, headers=_request_id())

    @_api
    async def _profile(self, request: Request) -> Response:
        acct = self._account(request)
        self._injected(acct, "profile")
        user_id = request.path_params["user_id"]
        if not _USER.match(user_id):
            raise LineApiError(400, "The value for the 'userId' parameter is invalid")
        person = acct.users.get(user_id)
        if person is None or not person.following:
            raise LineApiError(404, "Not found")
        body = {"displayName": person.name, "userId": person.user_id, "language": "en"}
        if person.picture_url:
            body["pictureUrl"] = person.picture_url
        return JSONResponse(body, headers=_request_id())

    @_api
    async def _group(self, request: Request) -> Response:
        self._account(request)
        group_id = request.path_params["group_id"]
        if not _GROUP.match(group_id) or not group_id.startswith("C"):
            raise LineApiError(400, "The value for the 'groupId' parameter is invalid")
        return JSONResponse(
            {"groupId": group_id, "groupName": f"Group {group_id[1:7]}"}, headers=_request_id()
        )

    @_api
    async def _info(self, request: Request) -> Response:
        acct = self._account(request)
        return JSONResponse(
            {
                "userId": acct.bot_user_id,
                "basicId": "@" + acct.bot_user_id[1:8],
                "displayName": "Tidings sandbox",
                "chatMode": "chat",
                "markAsReadMode": "manual",
            },
            headers=_request_id(),
        )

    @_api
    async def _endpoint(self, request: Request) -> Response:
        acct = self._account(request)
        if request.method == "GET":
            if not acct.webhook_url:
                raise LineApiError(404, "Webhook endpoint not found")
            return JSONResponse(
                {"endpoint": acct.webhook_url, "active": True}, headers=_request_id()
            )
        body = await self._body(request)
        url = body.get("endpoint")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise LineApiError(400, "Invalid webhook endpoint URL")
        acct.webhook_url = url
        self._kick(acct)
        return JSONResponse({}, headers=_request_id())

    @_api
    async def _loading(self, request: Request) -> Response:
        acct = self._account(request)
        body = await self._body(request)
        chat = body.get("chatId")
        seconds = body.get("loadingSeconds", 20)
        if not isinstance(chat, str) or not _USER.match(chat):
            raise _bad_body(
                [
                    {
                        "message": "Only user id is acceptable, please confirm if there are "
                        "any group/room ids or illegal ids.",
                        "property": "chatId",
                    }
                ]
            )
        if not isinstance(seconds, int) or not 5 <= seconds <= 60 or seconds % 5:
            raise _bad_body(
                [
                    {"message": "Must be between 5 and 60", "property": "loadingSeconds"},
                    {"message": "must be a multiple of five", "property": "loadingSeconds"},
                ]
            )
        acct.loading[chat] = time.monotonic() + seconds
        acct.sent.append({"endpoint": "loading", "to": chat, "status": 202, "charged": 0})
        return JSONResponse({}, status_code=202, headers=_request_id())

    @_api
    async def _webhook_test(self, request: Request) -> Response:
        """LINE posts a signed `{"destination", "events": []}` to the URL and reports."""
        acct = self._account(request)
        body = await self._body(request)
        url = body.get("endpoint") or acct.webhook_url
        if not isinstance(url, str) or not url:
            return LineApiError(404, "Webhook endpoint not found").response()
        probe = orjson.dumps({"destination": acct.bot_user_id, "events": []})
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "x-line-signature": signature(acct.secret, probe),
        }
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        status, detail = await self.webhooks.exchange(url, probe, headers)
        reason = "OK" if status == 200 else "ERROR_STATUS_CODE" if status else "COULD_NOT_CONNECT"
        result = {
            "success": status == 200,
            "timestamp": stamp,
            "statusCode": status,
            "reason": reason,
            "detail": str(status) if status else f"{detail}: {url}",
        }
        return JSONResponse(result, headers=_request_id())

    # ---------------------------------------------------------------------------------------
    # Control API

    def _control_account(self, body: dict[str, Any]) -> Account:
        acct = self.accounts.get(str(body.get("token") or body.get("channel_access_token") or ""))
        if acct is None:
            # The quotes are those of the KeyError this message was once written with.
            raise ControlError(404, "'unknown channel access token'")
        return acct

    async def _put_channel(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        token, secret = body.get("channel_access_token"), body.get("channel_secret")
        if not isinstance(token, str) or not token or not isinstance(secret, str) or not secret:
            return control_error("channel_access_token and channel_secret are required")
        acct = self.ensure_account(token, secret, **body)
        return JSONResponse({"bot_user_id": acct.bot_user_id})

    @_control
    async def _config(self, request: Request) -> Response:
        body = await read_json(request)
        acct = self._control_account(body)
        self.configure(acct, body)
        return JSONResponse({k: getattr(acct, k) for k in Account.KNOBS})

    @_control
    async def _inbound(self, request: Request) -> Response:
        body = await read_json(request)
        acct = self._control_account(body)
        if body.get("redeliver"):
            event = acct.events.get(str(body["redeliver"]))
            if event is None:
                return control_error("no such webhookEventId", 404)
            again = {**event, "deliveryContext": {"isRedelivery": True}}
            self.queue(acct, again)
            return JSONResponse({"webhookEventId": event["webhookEventId"]})
        user_id = user_id_for(str(body.get("user_id") or body.get("user") or "customer"))
        person = self.user(acct, user_id, body.get("name"), picture_url=body.get("picture_url"))
        group_id = body.get("group_id")
        source: dict[str, Any] = (
            {"type": "group", "groupId": str(group_id), "userId": user_id}
            if group_id
            else {"type": "user", "userId": user_id}
        )
        kind = str(body.get("event") or "message")
        extra: dict[str, Any] = {}
        reply = True
        if kind == "message":
            try:
                extra["message"] = self.customer_message(acct, person, body, group_id)
            except ValueError as exc:
                return control_error(str(exc))
        elif kind == "follow":
            person.following = True
            extra["follow"] = {"isUnblocked": bool(body.get("unblocked"))}
        elif kind == "unfollow":
            person.following = False
            reply = False
        elif kind == "postback":
            extra["postback"] = {"data": str(body.get("data") or "")}
        elif kind == "unsend":
            mid = str(body.get("message_id") or "")
            if mid in acct.contents:
                acct.contents[mid].gone = True
            extra["unsend"] = {"messageId": mid}
            reply = False
        elif isinstance(body.get("body"), dict):
            extra.update(body["body"])
        event = self.event(
            acct,
            kind,
            source,
            reply=reply,
            event_id=body.get("webhook_event_id"),
            **extra,
        )
        duplicates = body.get("duplicates")
        self.queue(acct, event, duplicates if isinstance(duplicates, int) else 0)
        out = {"webhookEventId": event["webhookEventId"], "user_id": user_id}
        if "message" in extra:
            out["message_id"] = extra["message"]["id"]
        return JSONResponse(out)

    @_control
    async def _friends(self, request: Request) -> Response:
        """People who became friends of the account before it was connected to Tidings (no
        webhooks): {token, user_ids}."""
        body = await read_json(request)
        acct = self._control_account(body)
        ids = body.get("user_ids")
        if not isinstance(ids, list) or not all(isinstance(u, str) for u in ids):
            return control_error("user_ids: a list of LINE user ids")
        for uid in ids:
            self.user(acct, user_id_for(uid)).following = True
        return JSONResponse({"friends": sum(u.following for u in acct.users.values())})

    @_control
    async def _fail(self, request: Request) -> Response:
        body = await read_json(request)
        acct = self._control_account(body)
        endpoint = str(body.get("endpoint") or "push")
        status = body.get("status")
        failure = Failure(
            status if isinstance(status, int) else 500,
            str(body.get("message") or "Internal server error"),
            int(body.get("times") or 1),
            bool(body.get("lose_answer")),
        )
        acct.failures.setdefault(endpoint, []).append(failure)
        return JSONResponse({"queued": len(acct.failures[endpoint])})

    def conversation(self, token: str, user: str | None) -> list[dict[str, Any]]:
        acct = self.accounts.get(token)
        user_id = None if user is None else user_id_for(user)
        return thread_of(acct.thread, user_id) if acct else []


def _shown(m: dict[str, Any]) -> str:
    kind = m.get("type")
    if kind == "text":
        return str(m.get("text", ""))
    if kind == "location":
        return f"📍 {m.get('title', '')}"
    if kind == "sticker":
        return "[sticker]"
    if kind in ("image", "video", "audio"):
        return f"[{kind}] {m.get('originalContentUrl', '')}"
    return f"[{kind}]"


class LineBinding(UrlBinding[LineSimulator, LineConfig]):
    """Connects sandbox LINE channels to the simulator (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "line"
    config_type = LineConfig

    def _account(self, channel: ChannelInfo) -> Account:
        c = self.config(channel)
        return self.sim.ensure_account(c.channel_access_token, c.channel_secret)

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        # As an admin would set "Webhook URL" in the LINE Developers Console.
        acct = self._account(channel)
        self.sim.configure(acct, {"webhook_url": webhook_url})

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        return self._send(channel, user, name, {"text": text})

    def _send(
        self, channel: ChannelInfo, user: str, name: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        acct = self._account(channel)
        user_id = user_id_for(user)
        new = user_id not in acct.users
        person = self.sim.user(acct, user_id, name)
        source = {"type": "user", "userId": user_id}
        if new:
            # A new customer first adds the account as a friend.
            self.sim.queue(
                acct, self.sim.event(acct, "follow", source, follow={"isUnblocked": False})
            )
        msg = self.sim.customer_message(acct, person, body)
        event = self.sim.event(acct, "message", source, message=msg)
        self.sim.queue(acct, event)
        return {"webhookEventId": event["webhookEventId"], "message_id": msg["id"]}

    async def send_location(
        self, channel: ChannelInfo, user: str, name: str | None, place: PhoneLocation
    ) -> dict[str, Any]:
        title = place.label or "Location"
        loc = {"latitude": place.latitude, "longitude": place.longitude, "title": title}
        return self._send(channel, user, name, {"location": loc})

    async def send_file(
        self, channel: ChannelInfo, user: str, name: str | None, file: PhoneFile
    ) -> dict[str, Any]:
        kind = "image" if file.mime_type.startswith("image/") else "file"
        spec = {
            "data_b64": base64.b64encode(file.data).decode(),
            "mime_type": file.mime_type,
            "file_name": file.filename,
        }
        sent = self._send(channel, user, name, {kind: spec})
        if file.caption:
            # LINE has no captions: the words go as their own message.
            sent = self._send(channel, user, name, {"text": file.caption})
        return sent

    async def typing(self, channel: ChannelInfo, user: str) -> bool:
        acct = self.sim.accounts.get(self.config(channel).channel_access_token)
        until = acct.loading.get(user_id_for(user), 0.0) if acct else 0.0
        return until > time.monotonic()

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversation(self.config(channel).channel_access_token, user)


SANDBOX = SandboxEntry(
    "line",
    lambda base: LineSimulator(),
    LineBinding,
    (
        DemoChannel(
            "line",
            "LINE Official Account (sandbox)",
            lambda base: {
                "channel_secret": secrets.token_hex(16),
                "channel_access_token": secrets.token_urlsafe(32),
                "api_base_url": base,
                "data_api_base_url": base,
            },
        ),
    ),
)
