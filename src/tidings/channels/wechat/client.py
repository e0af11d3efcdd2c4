"""Calling the WeChat APIs: access tokens, the Customer Service send API, temporary media.

Never raises for provider trouble: every answer becomes Sent, Retriable or Permanent.

Access tokens come from `POST /cgi-bin/stable_token` (docs/channels/wechat.md#access-tokens): in its
normal mode it returns the *same* token while that is valid, so several Tidings processes sharing
one Official Account do not invalidate each other's tokens, which the classic `/cgi-bin/token` does
on every call. Tokens are cached in memory per account and refreshed ahead of expiry, and again when
WeChat answers 40001/40014/42001 (the call is then retried once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from tidings.channels.base import (
    OutboundMessage,
    Permanent,
    Retriable,
    SendOutcome,
    Sent,
    json_or_none,
)
from tidings.channels.wechat.config import WeChatConfig
from tidings.channels.wechat.errors import TOKEN_ERRORS, outcome_for
from tidings.domain.enums import MessageKind

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# Refresh this long before WeChat's expires_in runs out (wechatpy uses 60 s; the platform keeps
# a replaced token valid for ~5 minutes, so five minutes of margin never leaves a gap).
REFRESH_MARGIN_SECONDS = 300.0

_MB = 1024 * 1024
# Temporary media limits (docs/channels/wechat.md#temporary-media; doc versions disagree, these are
# the current larger ones).
MEDIA_LIMITS = {"image": 10 * _MB, "voice": 2 * _MB, "video": 10 * _MB, "thumb": 64 * 1024}
# Our attachment kinds → WeChat media/msg types.
_MEDIA_TYPE = {"image": "image", "audio": "voice", "voice": "voice", "video": "video"}

Failure = Retriable | Permanent


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float  # time.monotonic()


class TokenCache:
    """Access tokens per Official Account, in this process's memory."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    @staticmethod
    def _key(config: WeChatConfig) -> tuple[str, str, str]:
        secret = hashlib.sha256(config.app_secret.encode()).hexdigest()
        return (config.api_base_url, config.app_id, secret)

    def _lock(self, key: tuple[str, str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def get(self, config: WeChatConfig, http: httpx.AsyncClient) -> str | Failure:
        key = self._key(config)
        cached = self._tokens.get(key)
        if cached is not None and cached.refresh_at > time.monotonic():
            return cached.value
        async with self._lock(key):  # one fetch per account, not one per waiting send
            cached = self._tokens.get(key)
            if cached is not None and cached.refresh_at > time.monotonic():
                return cached.value
            return await self._fetch(config, http, key, force=False)

    async def refresh(
        self, config: WeChatConfig, http: httpx.AsyncClient, stale: str
    ) -> str | Failure:
        """A token other than `stale`, which WeChat just refused."""
        key = self._key(config)
        async with self._lock(key):
            cached = self._tokens.get(key)
            if cached is not None and cached.value != stale:
                return cached.value  # another send already refreshed it
            self._tokens.pop(key, None)
            fresh = await self._fetch(config, http, key, force=False)
            if isinstance(fresh, str) and fresh == stale:
                # WeChat still hands out the token it refuses (revoked elsewhere): rotate it.
                fresh = await self._fetch(config, http, key, force=True)
            return fresh

    def forget(self, config: WeChatConfig) -> None:
        self._tokens.pop(self._key(config), None)

    async def _fetch(
        self, config: WeChatConfig, http: httpx.AsyncClient, key: tuple[str, str, str], force: bool
    ) -> str | Failure:
        body = {
            "grant_type": "client_credential",
            "appid": config.app_id,
            "secret": config.app_secret,
            "force_refresh": force,
        }
        try:
            resp = await http.post(
                f"{config.api_base_url}/cgi-bin/stable_token",
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=TIMEOUT,
            )
        except httpx.HTTPError as exc:
            log.warning("wechat token fetch failed: %r", exc)
            return Retriable("Could not reach WeChat to get an access token; will retry.")
        doc = _json(resp)
        token = doc.get("access_token") if doc else None
        if isinstance(token, str) and token:
            expires_in = doc.get("expires_in") if doc else None
            seconds = float(expires_in) if isinstance(expires_in, int | float) else 7200.0
            margin = min(REFRESH_MARGIN_SECONDS, seconds / 2)
            self._tokens[key] = _Token(token, time.monotonic() + seconds - margin)
            return token
        failure = _failure(resp, doc)
        if failure.code in {str(c) for c in TOKEN_ERRORS}:
            return Permanent("WeChat refused to issue an access token.", code=failure.code)
        return failure


TOKENS = TokenCache()


def _json(resp: httpx.Response) -> dict[str, Any] | None:
    doc = json_or_none(resp.content)
    return doc if isinstance(doc, dict) else None


def _errcode(doc: dict[str, Any] | None) -> int:
    code = doc.get("errcode", 0) if doc else 0
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _failure(resp: httpx.Response, doc: dict[str, Any] | None) -> Failure:
    if resp.status_code >= 500 or resp.status_code == 429:
        return Retriable(f"WeChat answered HTTP {resp.status_code}; will retry.")
    if doc is None:
        return Retriable(f"WeChat answered HTTP {resp.status_code} without JSON; will retry.")
    errmsg = doc.get("errmsg")
    return outcome_for(_errcode(doc), errmsg if isinstance(errmsg, str) else "")


async def call(
    config: WeChatConfig,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response | Failure:
    """One authenticated API call; a refused token is refreshed and the call retried once.

    Returns the response when it is not a JSON error (binary media downloads included)."""
    token = await TOKENS.get(config, http)
    for attempt in range(2):
        if not isinstance(token, str):
            return token
        try:
            resp = await http.request(
                method,
                f"{config.api_base_url}{path}",
                params={**(params or {}), "access_token": token},
                timeout=TIMEOUT,
                **kwargs,
            )
        except httpx.TimeoutException:
            # The request may have reached WeChat, which has no idempotency key.
            return Retriable("WeChat did not answer in time; will retry.")
        except httpx.HTTPError as exc:
            log.warning("wechat call %s failed: %r", path, exc)
            return Retriable("Could not reach WeChat; will retry.")
        doc = _json(resp) if _looks_json(resp) else None
        code = _errcode(doc)
        if code in TOKEN_ERRORS and attempt == 0:
            token = await TOKENS.refresh(config, http, token)
            continue
        if code != 0 or resp.status_code >= 400:
            return _failure(resp, doc)
        return resp
    raise AssertionError("unreachable")


def _looks_json(resp: httpx.Response) -> bool:
    ctype = resp.headers.get("content-type", "")
    # WeChat sends some JSON errors as text/plain.
    return "json" in ctype or (ctype.startswith("text/") and resp.content[:1] == b"{")


# ------------------------------------------------------------------------------------ media


@dataclass(frozen=True, slots=True)
class Media:
    data: bytes
    content_type: str
    filename: str | None


async def upload_media(
    config: WeChatConfig,
    http: httpx.AsyncClient,
    media_type: str,
    data: bytes,
    filename: str,
    mime_type: str,
) -> str | Failure:
    """Upload a temporary asset (kept 3 days) and return its media_id
    (docs/channels/wechat.md#temporary-media)."""
    limit = MEDIA_LIMITS.get(media_type)
    if limit is None:
        return Permanent(f"WeChat has no {media_type!r} media type.")
    if len(data) > limit:
        return Permanent(f"The file is larger than WeChat's {limit // 1024} KB {media_type} limit.")
    resp = await call(
        config,
        http,
        "POST",
        "/cgi-bin/media/upload",
        params={"type": media_type},
        # The multipart field must be called "media".
        files={"media": (filename, data, mime_type)},
    )
    if not isinstance(resp, httpx.Response):
        return resp
    doc = _json(resp) or {}
    media_id = doc.get("media_id")
    if isinstance(media_id, str) and media_id:
        return media_id
    return Permanent("WeChat accepted the upload but returned no media_id.")


async def download_media(
    config: WeChatConfig, http: httpx.AsyncClient, media_id: str
) -> Media | Failure:
    """Fetch an inbound message's temporary asset (`GET /cgi-bin/media/get`)."""
    resp = await call(config, http, "GET", "/cgi-bin/media/get", params={"media_id": media_id})
    if not isinstance(resp, httpx.Response):
        return resp
    ctype = resp.headers.get("content-type", "application/octet-stream")
    filename = None
    disposition = resp.headers.get("content-disposition", "")
    if "filename=" in disposition:
        filename = disposition.split("filename=", 1)[1].strip().strip('"') or None
    return Media(resp.content, ctype, filename)


async def _fetch_url(http: httpx.AsyncClient, url: str, limit: int) -> Media | Failure:
    try:
        async with http.stream("GET", url, timeout=TIMEOUT) as resp:
            if resp.status_code >= 400:
                return Permanent(f"The attachment could not be fetched (HTTP {resp.status_code}).")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    return Permanent("The attachment is larger than WeChat allows.")
                chunks.append(chunk)
            ctype = resp.headers.get("content-type", "application/octet-stream")
    except httpx.HTTPError:
        return Retriable("The attachment could not be fetched; will retry.")
    return Media(b"".join(chunks), ctype.split(";")[0].strip(), None)


# ------------------------------------------------------------------------------------- send


async def _media_payload(
    config: WeChatConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> tuple[str, dict[str, Any]] | Failure:
    if not message.attachments:
        return Permanent("A media message needs an attachment.")
    att = message.attachments[0]
    media_type = _MEDIA_TYPE.get(att.kind)
    if media_type is None:
        return Permanent(f"WeChat customer-service messages cannot carry a {att.kind!r} file.")
    media_id = att.provider_media_id
    if not media_id:
        if att.url is None and att.load is not None:
            # A file stored by Tidings (an agent's upload): upload it as temporary media.
            data, named = await att.load(), att.mime_type or "bin"
            ctype = att.mime_type or "application/octet-stream"
        elif not att.url:
            return Permanent("The attachment has neither a WeChat media id nor a link.")
        else:
            fetched = await _fetch_url(http, att.url, MEDIA_LIMITS[media_type])
            if not isinstance(fetched, Media):
                return fetched
            data, named = fetched.data, fetched.content_type
            ctype = att.mime_type or fetched.content_type
        uploaded = await upload_media(
            config,
            http,
            media_type,
            data,
            att.filename or f"upload.{named.rsplit('/', 1)[-1]}",
            ctype,
        )
        if not isinstance(uploaded, str):
            return uploaded
        media_id = uploaded
    obj: dict[str, Any] = {"media_id": media_id}
    if media_type == "video":
        obj["title"] = att.caption or message.text or ""
        obj["description"] = message.text or ""
    return media_type, obj


async def send_message(
    config: WeChatConfig, message: OutboundMessage, http: httpx.AsyncClient
) -> SendOutcome:
    """`POST /cgi-bin/message/custom/send` (docs/channels/wechat.md#customer-service-messages)."""
    body: dict[str, Any] = {"touser": message.to}
    if message.kind is MessageKind.TEXT:
        if not message.text:
            return Permanent("The message has no text.")
        body["msgtype"] = "text"
        body["text"] = {"content": message.text}
    elif message.kind is MessageKind.MEDIA:
        media = await _media_payload(config, message, http)
        if not isinstance(media, tuple):
            return media
        body["msgtype"], body[media[0]] = media
    else:
        return Permanent(f"WeChat cannot send a {message.kind.value} message.")
    kf_account = message.extra.get("kf_account")
    if isinstance(kf_account, str) and kf_account:
        body["customservice"] = {"kf_account": kf_account}
    # orjson writes UTF-8 as is: WeChat refuses \uXXXX escapes with 40033
    # (docs/channels/wechat.md#customer-service-messages).
    resp = await call(
        config,
        http,
        "POST",
        "/cgi-bin/message/custom/send",
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    if not isinstance(resp, httpx.Response):
        return resp
    doc = _json(resp) or {}
    # The documented answer is just {"errcode":0,"errmsg":"ok"}; newer ones add a msgid.
    msgid = doc.get("msgid")
    if isinstance(msgid, int | str) and not isinstance(msgid, bool) and str(msgid):
        return Sent(str(msgid))
    return Sent(f"wechat-out-{message.message_id}")
