"""A WeChat Official Account simulator that speaks the real protocol
(docs/channels/wechat.md#protocol-facts).

It plays both of WeChat's roles towards Tidings:

- the API Tidings calls (`api_base_url`): `GET /cgi-bin/token` and `POST /cgi-bin/stable_token`
  (expiring, rotating tokens; a replaced token stays valid 5 minutes; stale ones answer
  40001/42001), `POST /cgi-bin/message/custom/send` (validated like the real one: 48-hour
  interaction window → 45015, per-window quota → 45047, unknown openid → 40003, `\\uXXXX`
  escapes → 40033…), temporary media (`/cgi-bin/media/upload`, `/cgi-bin/media/get`,
  3-day expiry) and `GET /cgi-bin/user/info` (the nickname the customer was given, or empty
  with `nicknames: false`, as WeChat answers most accounts since 2021-12-27). Errors are
  HTTP 200 `{"errcode", "errmsg": "… rid: …"}` like WeChat's.
- the pusher: customer messages and events are POSTed to the account's server URL as XML,
  signed (`signature`, and in compatibility/safe mode `encrypt_type=aes` + `msg_signature`
  over the AES-encrypted body), with WeChat's retries: a push that times out (5 s) or gets an
  unusable answer is sent again, 3 attempts in all, identical each time
  (docs/channels/wechat.md#push-deadline-and-retries). `duplicates` adds identical re-pushes on
  purpose.

Control routes (JSON), under `/_sim/`:
- `PUT /_sim/accounts/{app_id}` {app_secret, token, webhook_url, encoding_aes_key?, mode?
  ("plain" | "compat" | "safe"), original_id?, token_ttl?, duplicates?, push_timeout?,
  nicknames?}
- `POST /_sim/inbound` {app_id, openid, type?: text|image|voice|video|shortvideo|location|link|
  event, text?, event?, event_key?, image_base64?, content_type?, latitude?, longitude?,
  label?, title?, url?, create_time?, xml?, name?} — the customer acts (`name`: their
  nickname); the push result is returned
- `POST /_sim/fail` {app_id, errcode, path?: "custom/send", count?} — inject errors
- `POST /_sim/tokens/expire` {app_id} and `POST /_sim/tokens/revoke` {app_id}
- `POST /_sim/clock` {advance: seconds} — move the simulator's clock (windows, tokens, media)
- `GET /_sim/sent?app_id=` (a media message keeps its object as sent, e.g. `image:{media_id}`),
  `GET /_sim/pushes?app_id=`, `GET /_sim/media?app_id=` (media_id, type, content_type, size,
  sha256, filename, origin: customer|upload), `GET /_sim/conversations?app_id=&openid=`

Mounted sub-apps get no lifespan events: whoever creates the simulator calls `aclose()`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from xml.sax.saxutils import escape

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.wechat import crypto
from tidings.simulators.kit import (
    ControlError,
    DemoChannel,
    Failure,
    SandboxEntry,
    SimulatorBase,
    UrlBinding,
    answering,
    control_error,
    control_routes,
    injected,
    list_handler,
    read_json,
    thread_entry,
    thread_of,
    thread_route,
)

WINDOW_SECONDS = 48 * 3600
# Since 2023-06-12: a user message allows 5 messages within 48 h; a follow, QR scan or menu
# click allows 3 within 1 minute (docs/channels/wechat.md#customer-service-messages).
MESSAGE_QUOTA = 5
EVENT_QUOTA, EVENT_WINDOW_SECONDS = 3, 60
# A replaced token stays valid ~5 minutes (docs/channels/wechat.md#access-tokens).
TOKEN_OVERLAP_SECONDS = 300
# Temporary media are kept 3 days (docs/channels/wechat.md#temporary-media).
MEDIA_TTL_SECONDS = 3 * 24 * 3600
PUSH_ATTEMPTS = 3  # "总共重试三次" (docs/channels/wechat.md#push-deadline-and-retries)
_MB = 1024 * 1024
MEDIA_LIMITS = {"image": 10 * _MB, "voice": 2 * _MB, "video": 10 * _MB, "thumb": 64 * 1024}
MEDIA_MIME = {
    "image": ("image/jpeg", "image/png", "image/gif"),
    "voice": ("audio/amr", "audio/mpeg", "audio/mp3"),
    "video": ("video/mp4",),
    "thumb": ("image/jpeg",),
}
TEXT_LIMIT_BYTES = 2048
# A JSON \uXXXX escape not itself escaped: WeChat refuses them with 40033
# (docs/channels/wechat.md#customer-service-messages).
_UNICODE_ESCAPE = re.compile(rb"(?<!\\)\\u[0-9a-fA-F]{4}")
_OPENID = re.compile(r"^[\w\-]{28}$")

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid meida size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41006: "media_id missing",
    42001: "access_token expired",
    43002: "require POST method",
    43004: "require subscribe",
    44002: "empty post data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
}


def openid_for(app_id: str, user: str) -> str:
    """A stable 28-character OpenID for a customer of one account (OpenIDs are per-OA)."""
    if _OPENID.match(user):
        return user
    digest = hashlib.sha256(f"{app_id}:{user}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def error(errcode: int, errmsg: str | None = None) -> JSONResponse:
    # WeChat answers API errors with HTTP 200 and a " rid: …" suffix
    # (docs/channels/wechat.md#error-codes).
    msg = errmsg or ERRMSG.get(errcode, "error")
    return JSONResponse({"errcode": errcode, "errmsg": f"{msg} rid: {uuid.uuid4().hex[:24]}"})


class WeChatError(Exception):
    """An API call that fails: answered by `error(errcode, errmsg)`."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        super().__init__(errmsg)
        self.errcode, self.errmsg = errcode, errmsg

    def response(self) -> JSONResponse:
        return error(self.errcode, self.errmsg)


_api = answering(WeChatError, answer=WeChatError.response)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WeChatError(47001) from None
    if not isinstance(body, dict):
        raise WeChatError(47001)
    return body


_control = answering(ControlError, answer=ControlError.response)
# A listing for an app_id the simulator does not know.
_NO_APP = ControlError(404, "unknown app_id")


@dataclass
class User:
    openid: str
    subscribed: bool = True
    window_until: float = 0.0
    quota_left: int = 0
    nickname: str = ""
    subscribe_time: int = 0


@dataclass
class MediaItem:
    data: bytes
    content_type: str
    media_type: str
    filename: str
    created_at: float
    origin: str = "customer"  # or "upload" (POST /cgi-bin/media/upload)


@dataclass
class Account:
    app_id: str
    app_secret: str
    token: str
    webhook_url: str
    encoding_aes_key: str | None = None
    mode: str = "plain"
    original_id: str = "gh_0000000000000"
    token_ttl: float = 7200.0
    duplicates: int = 0
    push_timeout: float = 5.0
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at (sim clock)
    current_token: str | None = None
    users: dict[str, User] = field(default_factory=dict)
    media: dict[str, MediaItem] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[dict[str, Any]] = field(default_factory=list)
    thread: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Since 2021-12-27 `user/info` returns an empty nickname for most accounts; the sandbox
    # gives the phone page's name unless this is turned off (PUT /_sim/accounts `nicknames`).
    nicknames: bool = True


class WeChatSimulator(SimulatorBase):
    def __init__(
        self, public_url: str = "http://wechat.sim", http: httpx.AsyncClient | None = None
    ):
        super().__init__(http)
        self.public_url = public_url.rstrip("/")
        self.accounts: dict[str, Account] = {}
        self.offset = 0.0
        self._ids = itertools.count(int(time.time()) * 1000)
        self.app = Starlette(
            routes=[
                Route("/cgi-bin/token", self._token, methods=["GET", "POST"]),
                Route("/cgi-bin/stable_token", self._stable_token, methods=["GET", "POST"]),
                Route("/cgi-bin/message/custom/send", self._custom_send, methods=["GET", "POST"]),
                Route("/cgi-bin/media/upload", self._media_upload, methods=["GET", "POST"]),
                Route("/cgi-bin/media/get", self._media_get, methods=["GET"]),
                Route("/cgi-bin/user/info", self._user_info, methods=["GET"]),
                Route("/mmbiz/{media_id}", self._pic_url, methods=["GET"]),
                *control_routes(
                    {
                        "accounts/{app_id}": (self._put_account, ["PUT"]),
                        "inbound": (self._inbound, ["POST"]),
                        "fail": (self._fail, ["POST"]),
                        "tokens/expire": (self._expire_tokens, ["POST"]),
                        "tokens/revoke": (self._revoke_tokens, ["POST"]),
                        "clock": (self._clock, ["POST"]),
                        "sent": (list_handler(self.accounts, "app_id", "sent", _NO_APP), ["GET"]),
                        "pushes": (
                            list_handler(self.accounts, "app_id", "pushes", _NO_APP),
                            ["GET"],
                        ),
                        "media": (self._media_list, ["GET"]),
                        "conversations": (
                            thread_route(self.conversation, "app_id", "openid"),
                            ["GET"],
                        ),
                    }
                ),
            ]
        )

    def now(self) -> float:
        return time.time() + self.offset

    # ----------------------------------------------------------------------- error shape

    def _account_by_token(self, request: Request) -> Account:
        token = request.query_params.get("access_token")
        if not token:
            raise WeChatError(41001)
        for acct in self.accounts.values():
            if token in acct.tokens:
                if acct.tokens[token] <= self.now():
                    raise WeChatError(42001)
                return acct
        raise WeChatError(40001)

    def _injected(self, acct: Account, path: str) -> None:
        if f := injected(acct.failures, path):
            raise WeChatError(f.code)

    # --------------------------------------------------------------------------- tokens

    def _issue(self, acct: Account) -> str:
        now = self.now()
        if acct.current_token and acct.tokens.get(acct.current_token, 0) > now:
            # The replaced token keeps working for ~5 minutes, then stops
            # (docs/channels/wechat.md#access-tokens).
            acct.tokens[acct.current_token] = min(
                acct.tokens[acct.current_token], now + TOKEN_OVERLAP_SECONDS
            )
        token = secrets.token_urlsafe(96)
        acct.tokens[token] = now + acct.token_ttl
        acct.current_token = token
        return token

    def _credentials(self, appid: Any, secret: Any) -> Account:
        if not appid:
            raise WeChatError(41002)
        if not secret:
            raise WeChatError(41004)
        acct = self.accounts.get(str(appid))
        if acct is None:
            raise WeChatError(40013)
        if str(secret) != acct.app_secret:
            raise WeChatError(40125)
        return acct

    def _token_answer(self, acct: Account, token: str) -> JSONResponse:
        remaining = max(0, int(acct.tokens[token] - self.now()))
        return JSONResponse({"access_token": token, "expires_in": remaining})

    @_api
    async def _token(self, request: Request) -> Response:
        q = request.query_params
        if q.get("grant_type") != "client_credential":
            raise WeChatError(40002)
        found = self._credentials(q.get("appid"), q.get("secret"))
        # The classic endpoint issues a new token on every call
        # (docs/channels/wechat.md#access-tokens).
        self._injected(found, "token")
        return self._token_answer(found, self._issue(found))

    @_api
    async def _stable_token(self, request: Request) -> Response:
        if request.method != "POST":
            raise WeChatError(43002)
        body = _json_object(await request.body())
        if body.get("grant_type") != "client_credential":
            raise WeChatError(40002)
        found = self._credentials(body.get("appid"), body.get("secret"))
        self._injected(found, "token")
        current = found.current_token
        # Normal mode hands out the same token while it is valid; force_refresh rotates it.
        if body.get("force_refresh") is not True and current and found.tokens[current] > self.now():
            return self._token_answer(found, current)
        return self._token_answer(found, self._issue(found))

    # ---------------------------------------------------------------------- custom send

    @_api
    async def _custom_send(self, request: Request) -> Response:
        if request.method != "POST":
            raise WeChatError(43002)
        acct = self._account_by_token(request)
        raw = await request.body()
        if not raw.strip():
            raise WeChatError(44002)
        if _UNICODE_ESCAPE.search(raw):
            raise WeChatError(40033)
        body = _json_object(raw)
        user = acct.users.get(str(body.get("touser", "")))
        if user is None:
            raise WeChatError(40003)
        if not user.subscribed:
            raise WeChatError(43004)
        self._injected(acct, "custom/send")
        now = self.now()
        if now >= user.window_until:
            raise WeChatError(45015)
        if user.quota_left <= 0:
            raise WeChatError(45047)
        msgtype = body.get("msgtype")
        entry: dict[str, Any] = {"touser": user.openid, "msgtype": msgtype, "at": now}
        obj = body.get(str(msgtype))
        if msgtype == "text":
            content = obj.get("content") if isinstance(obj, dict) else None
            if not isinstance(content, str) or not content:
                raise WeChatError(44004)
            if len(content.encode()) > TEXT_LIMIT_BYTES:
                raise WeChatError(45002)
            entry["content"] = content
        elif msgtype in ("image", "voice", "video"):
            media_id = obj.get("media_id") if isinstance(obj, dict) else None
            if not media_id:
                raise WeChatError(41006)
            item = acct.media.get(str(media_id))
            if item is None or now - item.created_at > MEDIA_TTL_SECONDS:
                raise WeChatError(40007)
            entry["media_id"] = media_id
            entry[msgtype] = obj  # the message object exactly as sent
        else:
            raise WeChatError(40008)
        kf = body.get("customservice")
        if isinstance(kf, dict) and kf.get("kf_account"):
            entry["kf_account"] = kf["kf_account"]
        user.quota_left -= 1
        msgid = next(self._ids)
        entry["msgid"] = msgid
        acct.sent.append(entry)
        acct.thread.append(
            thread_entry(
                str(msgid),
                "out",
                entry.get("content") or f"[{msgtype}]",
                "delivered",
                at=now,
                user=user.openid,
            )
        )
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    # ---------------------------------------------------------------------------- media

    def _store_media(
        self,
        acct: Account,
        media_type: str,
        data: bytes,
        content_type: str,
        filename: str,
        origin: str = "customer",
    ) -> str:
        media_id = secrets.token_urlsafe(48)
        acct.media[media_id] = MediaItem(
            data, content_type, media_type, filename, self.now(), origin
        )
        return media_id

    @_api
    async def _media_upload(self, request: Request) -> Response:
        if request.method != "POST":
            raise WeChatError(43002)
        acct = self._account_by_token(request)
        media_type = request.query_params.get("type", "")
        if media_type not in MEDIA_LIMITS:
            raise WeChatError(40004)
        form = await request.form(max_files=1)
        upload = form.get("media")  # the multipart field must be called "media"
        if upload is None or isinstance(upload, str):
            raise WeChatError(41005, "media data missing")
        data = await upload.read()
        await form.close()
        content_type = (upload.content_type or "").split(";")[0].strip()
        if content_type not in MEDIA_MIME[media_type]:
            raise WeChatError(40005)
        if not data or len(data) > MEDIA_LIMITS[media_type]:
            raise WeChatError(40006)
        media_id = self._store_media(
            acct, media_type, data, content_type, upload.filename or "upload", "upload"
        )
        return JSONResponse(
            {"type": media_type, "media_id": media_id, "created_at": int(self.now())}
        )

    @_api
    async def _media_get(self, request: Request) -> Response:
        acct = self._account_by_token(request)
        item = acct.media.get(request.query_params.get("media_id", ""))
        if item is None or self.now() - item.created_at > MEDIA_TTL_SECONDS:
            raise WeChatError(40007)
        return Response(
            item.data,
            media_type=item.content_type,
            headers={"Content-Disposition": f'attachment; filename="{item.filename}"'},
        )

    async def _pic_url(self, request: Request) -> Response:
        # PicUrl of inbound images: a public CDN link, no token needed.
        for acct in self.accounts.values():
            item = acct.media.get(request.path_params["media_id"])
            if item is not None:
                return Response(item.data, media_type=item.content_type)
        return Response(b"not found", status_code=404)

    # --------------------------------------------------------------------------- pushes

    def _interact(self, acct: Account, openid: str, *, message: bool) -> User:
        user = acct.users.setdefault(openid, User(openid))
        now = self.now()
        if message:
            user.window_until, user.quota_left = now + WINDOW_SECONDS, MESSAGE_QUOTA
        elif now >= user.window_until:
            user.window_until, user.quota_left = now + EVENT_WINDOW_SECONDS, EVENT_QUOTA
        return user

    @staticmethod
    def _xml(values: dict[str, Any]) -> bytes:
        parts = ["<xml>"]
        for name, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                parts.append(f"<{name}>{value}</{name}>")
            else:
                text = str(value).replace("]]>", "]]]]><![CDATA[>")
                parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
        parts.append("</xml>")
        return "\n".join(parts).encode()

    def signed_push(self, acct: Account, plain: bytes, openid: str) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat would send for `plain` in the account's mode."""
        timestamp, nonce = str(int(self.now())), str(secrets.randbelow(10**10))
        query = {
            "signature": crypto.signature(acct.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
        }
        if acct.mode == "plain" or not acct.encoding_aes_key:
            return query, plain
        encrypt = crypto.encrypt(acct.encoding_aes_key, acct.app_id, plain)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = crypto.signature(acct.token, timestamp, nonce, encrypt)
        envelope = f"<ToUserName><![CDATA[{escape(acct.original_id)}]]></ToUserName>"
        if acct.mode == "compat":
            # Compatibility mode: the plaintext fields and the Encrypt element together.
            inner = plain.decode().strip()
            inner = inner.removeprefix("<xml>").removesuffix("</xml>")
            envelope = inner
        body = f"<xml>{envelope}\n<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n</xml>"
        return query, body.encode()

    @staticmethod
    def _accepted(acct: Account, resp: httpx.Response) -> bool:
        # "success" or an empty body acknowledge; a passive reply is XML (encrypted in safe
        # mode). Anything else makes WeChat retry and show the user an error
        # (docs/channels/wechat.md#push-deadline-and-retries).
        text = resp.content.strip()
        if resp.status_code != 200:
            return False
        if text in (b"", b"success"):
            return True
        if not text.startswith(b"<xml>"):
            return False
        return acct.mode != "safe" or b"<Encrypt>" in text

    async def push(self, acct: Account, plain: bytes, openid: str) -> dict[str, Any]:
        """Deliver one push with WeChat's retries; identical query and body every time."""
        query, body = self.signed_push(acct, plain, openid)
        attempts: list[Any] = []
        delivered = False
        for _ in range(PUSH_ATTEMPTS):
            outcome = await self._post(acct, query, body)
            attempts.append(outcome)
            if outcome == "accepted":
                delivered = True
                break
        # Duplicates on demand: what Tidings sees when WeChat gave up waiting on a slow answer.
        for _ in range(acct.duplicates if delivered else 0):
            attempts.append(await self._post(acct, query, body))
        record = {"query": query, "attempts": attempts, "delivered": delivered, "at": self.now()}
        acct.pushes.append(record)
        return record

    async def _post(self, acct: Account, query: dict[str, str], body: bytes) -> str:
        # The kit's pooled client, but not its `deliver`: what acknowledges a push is in the
        # answer's body (`_accepted`), and WeChat retries at once, with the identical request.
        try:
            resp = await self.webhooks.http.post(
                acct.webhook_url,
                params=query,
                content=body,
                headers={"Content-Type": "text/xml"},
                timeout=acct.push_timeout,
            )
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return f"error: {type(exc).__name__}"
        return "accepted" if self._accepted(acct, resp) else f"refused: {resp.status_code}"

    # ------------------------------------------------------------------------- control

    def register(self, app_id: str, values: dict[str, Any]) -> Account:
        acct = self.accounts.get(app_id)
        if acct is None:
            acct = Account(
                app_id=app_id,
                app_secret=str(values["app_secret"]),
                token=str(values["token"]),
                webhook_url=str(values["webhook_url"]),
            )
            self.accounts[app_id] = acct
        for name in ("app_secret", "token", "webhook_url", "original_id"):
            if values.get(name):
                setattr(acct, name, str(values[name]))
        if "encoding_aes_key" in values:
            acct.encoding_aes_key = values["encoding_aes_key"] or None
        acct.mode = str(values.get("mode") or ("safe" if acct.encoding_aes_key else "plain"))
        if acct.mode not in ("plain", "compat", "safe"):
            raise ValueError("mode must be plain, compat or safe")
        for name in ("token_ttl", "push_timeout"):
            if values.get(name) is not None:
                setattr(acct, name, float(values[name]))
        if values.get("duplicates") is not None:
            acct.duplicates = int(values["duplicates"])
        if values.get("nicknames") is not None:
            acct.nicknames = bool(values["nicknames"])
        return acct

    async def _put_account(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        app_id = request.path_params["app_id"]
        missing = [k for k in ("app_secret", "token", "webhook_url") if not body.get(k)]
        if app_id not in self.accounts and missing:
            return control_error(f"missing {', '.join(missing)}")
        try:
            acct = self.register(app_id, body)
        except (ValueError, TypeError) as exc:
            return control_error(str(exc))
        return JSONResponse({"app_id": acct.app_id, "mode": acct.mode})

    def _lookup(self, app_id: Any) -> Account:
        acct = self.accounts.get(str(app_id or ""))
        if acct is None:
            raise ControlError(404, "unknown app_id")
        return acct

    def customer_xml(self, acct: Account, openid: str, body: dict[str, Any]) -> bytes:
        """The push document for one customer action
        (field names: docs/channels/wechat.md#push-messages-and-events)."""
        kind = str(body.get("type") or ("event" if body.get("event") else "text"))
        created = int(body.get("create_time") or self.now())
        values: dict[str, Any] = {
            "ToUserName": acct.original_id,
            "FromUserName": openid,
            "CreateTime": created,
            "MsgType": kind,
        }
        if kind == "event":
            event = str(body.get("event") or "subscribe")
            values["Event"] = event
            key = body.get("event_key")
            if key is not None:
                values["EventKey"] = str(key)
            if event in ("subscribe", "SCAN") and key:
                values["Ticket"] = secrets.token_urlsafe(16)
            return self._xml(values)
        if kind == "text":
            values["Content"] = str(body.get("text") or "")
        elif kind in ("image", "voice", "video", "shortvideo"):
            media_type = {"shortvideo": "video"}.get(kind, kind)
            raw = base64.b64decode(str(body.get("image_base64") or body.get("data_base64") or ""))
            ctype = str(body.get("content_type") or MEDIA_MIME[media_type][0])
            media_id = self._store_media(acct, media_type, raw, ctype, f"{kind}.bin")
            if kind == "image":
                values["PicUrl"] = f"{self.public_url}/mmbiz/{media_id}"
            values["MediaId"] = media_id
            if kind == "voice":
                values["Format"] = str(body.get("format") or "amr")
                if body.get("text"):
                    values["Recognition"] = str(body["text"])
            if kind in ("video", "shortvideo"):
                values["ThumbMediaId"] = self._store_media(
                    acct, "thumb", b"\xff\xd8thumb", "image/jpeg", "thumb.jpg"
                )
        elif kind == "location":
            values["Location_X"] = float(body.get("latitude") or 0)
            values["Location_Y"] = float(body.get("longitude") or 0)
            values["Scale"] = int(body.get("scale") or 15)
            values["Label"] = str(body.get("label") or "")
        elif kind == "link":
            values["Title"] = str(body.get("title") or "")
            values["Description"] = str(body.get("text") or "")
            values["Url"] = str(body.get("url") or "")
        values["MsgId"] = int(body.get("msg_id") or next(self._ids))
        return self._xml(values)

    @_control
    async def _inbound(self, request: Request) -> JSONResponse:
        return JSONResponse(await self.customer_acts(await read_json(request)))

    async def customer_acts(self, body: dict[str, Any]) -> dict[str, Any]:
        """A `/_sim/inbound` body: the customer's push, delivered; the push result."""
        acct = self._lookup(body.get("app_id"))
        who = str(body.get("openid") or body.get("user") or "").strip()
        if not who:
            raise ControlError(400, "openid (or user) is required")
        openid = openid_for(acct.app_id, who)
        try:
            plain = (
                str(body["xml"]).encode()
                if body.get("xml")
                else self.customer_xml(acct, openid, body)
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ControlError(400, str(exc)) from None
        kind = str(body.get("type") or ("event" if body.get("event") else "text"))
        event = str(body.get("event") or "")
        if kind != "event":
            self._interact(acct, openid, message=True)
        if isinstance(body.get("name"), str) and body["name"].strip():
            # The phone page's name for the customer: their WeChat nickname.
            acct.users.setdefault(openid, User(openid)).nickname = body["name"].strip()
        elif event == "unsubscribe":
            acct.users.setdefault(openid, User(openid)).subscribed = False
        elif event in ("subscribe", "SCAN", "CLICK"):
            user = self._interact(acct, openid, message=False)
            user.subscribed = True
        acct.thread.append(
            thread_entry(
                uuid.uuid4().hex,
                "in",
                body.get("text") or (f"[{event}]" if kind == "event" else f"[{kind}]"),
                "sent",
                at=self.now(),
                user=openid,
            )
        )
        return {"openid": openid, **await self.push(acct, plain, openid)}

    @_api
    async def _user_info(self, request: Request) -> Response:
        """`GET /cgi-bin/user/info?access_token=…&openid=…&lang=zh_CN`: a follower's basic
        information; `subscribe: 0` (never followed or unfollowed) carries only the openid."""
        acct = self._account_by_token(request)
        self._injected(acct, "user/info")
        openid = request.query_params.get("openid", "")
        if not _OPENID.match(openid):
            raise WeChatError(40003)
        user = acct.users.get(openid)
        if user is None or not user.subscribed:
            return JSONResponse({"subscribe": 0, "openid": openid})
        if not user.subscribe_time:
            user.subscribe_time = int(self.now())
        return JSONResponse(
            {
                "subscribe": 1,
                "openid": openid,
                "nickname": user.nickname if acct.nicknames else "",
                "sex": 0,
                "language": request.query_params.get("lang") or "zh_CN",
                "city": "",
                "province": "",
                "country": "",
                "headimgurl": "",
                "subscribe_time": user.subscribe_time,
                "remark": "",
                "groupid": 0,
                "tagid_list": [],
                "subscribe_scene": "ADD_SCENE_SEARCH",
                "qr_scene": 0,
                "qr_scene_str": "",
            }
        )

    @_control
    async def _fail(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        acct = self._lookup(body.get("app_id"))
        acct.failures.append(
            Failure(
                str(body.get("path") or "custom/send"),
                int(body.get("errcode", -1)),
                times=int(body.get("count", 1)),
            )
        )
        return JSONResponse({"ok": True})

    @_control
    async def _expire_tokens(self, request: Request) -> JSONResponse:
        acct = self._lookup((await read_json(request)).get("app_id"))
        for token in acct.tokens:
            acct.tokens[token] = min(acct.tokens[token], self.now())
        return JSONResponse({"expired": len(acct.tokens)})

    @_control
    async def _revoke_tokens(self, request: Request) -> JSONResponse:
        acct = self._lookup((await read_json(request)).get("app_id"))
        count = len(acct.tokens)
        acct.tokens.clear()
        acct.current_token = None
        return JSONResponse({"revoked": count})

    async def _clock(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        self.offset += float(body.get("advance") or 0)
        return JSONResponse({"now": self.now(), "offset": self.offset})

    @_control
    async def _media_list(self, request: Request) -> JSONResponse:
        acct = self._lookup(request.query_params.get("app_id"))
        return JSONResponse(
            [
                {
                    "media_id": k,
                    "type": v.media_type,
                    "content_type": v.content_type,
                    "size": len(v.data),
                    "sha256": hashlib.sha256(v.data).hexdigest(),
                    "filename": v.filename,
                    "origin": v.origin,
                }
                for k, v in acct.media.items()
            ]
        )

    def conversation(self, app_id: str, openid: str | None) -> list[dict[str, Any]]:
        acct = self.accounts.get(app_id)
        return thread_of(acct.thread, openid) if acct else []


class WeChatBinding(UrlBinding[WeChatSimulator, Any]):
    """Sandbox glue: registers WeChat channels whose `api_base_url` is this simulator, and lets
    the customer-phone page act as a follower (the typed id becomes a stable OpenID)."""

    kind: ClassVar[str] = "wechat"

    # Control calls go straight to the simulator, in process; provider traffic uses real HTTP.

    async def register(self, channel: Any, webhook_url: str) -> None:
        c = channel.config
        values = {"app_secret": c.app_secret, "token": c.token, "webhook_url": webhook_url}
        self.sim.register(c.app_id, {**values, "encoding_aes_key": c.encoding_aes_key})

    async def send_as_customer(
        self, channel: Any, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        body = {"app_id": channel.config.app_id, "user": user, "text": text, "name": name}
        try:
            return await self.sim.customer_acts(body)
        except ControlError as exc:
            return {"error": exc.message}

    async def thread(self, channel: Any, user: str) -> list[dict[str, Any]]:
        app_id = channel.config.app_id
        return self.sim.conversation(app_id, openid_for(app_id, user))


SANDBOX = SandboxEntry(
    "wechat",
    WeChatSimulator,
    WeChatBinding,
    (
        DemoChannel(
            "wechat",
            "WeChat Official Account (sandbox)",
            lambda base: {
                "app_id": f"wx{secrets.token_hex(8)}",
                "app_secret": secrets.token_hex(16),
                "token": secrets.token_urlsafe(16),
                # Safe mode: a 43-character EncodingAESKey, as the WeChat console generates.
                "encoding_aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
                "api_base_url": base,
            },
        ),
    ),
)
