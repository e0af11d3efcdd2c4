"""WeChat temporary media for the media worker (docs/channels/wechat.md#temporary-media).

An inbound image, voice or video message carries a `MediaId` for a temporary asset kept 3 days;
`GET /cgi-bin/media/get?access_token=T&media_id=ID` answers the bytes with their Content-Type,
or — as every WeChat API error — HTTP 200 with `{"errcode":…,"errmsg":…}` (40007 for an unknown
or expired id, docs/channels/wechat.md#error-codes). The token comes from the adapter's token cache
(`client.TOKENS`), so it is refreshed ahead of expiry; a token WeChat refuses (40001/40014/42001) is
dropped and the worker's retry fetches a fresh one.

Not handled: that media/get may answer a video with JSON `{"video_url":…}`
(docs/channels/wechat.md#temporary-media); such an answer is shown as a failed download with that
reason.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from tidings.channels.base import Retriable
from tidings.channels.media import MediaLocation, MediaUnavailable
from tidings.channels.wechat import client
from tidings.channels.wechat.config import WeChatConfig
from tidings.channels.wechat.errors import TOKEN_ERRORS, outcome_for


def _reader(config: WeChatConfig) -> Callable[[bytes], MediaUnavailable]:
    def read(body: bytes) -> MediaUnavailable:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return MediaUnavailable("WeChat answered with broken JSON instead of the file.")
        if not isinstance(doc, dict):
            return MediaUnavailable("WeChat answered with JSON instead of the file.")
        if "video_url" in doc:
            return MediaUnavailable("WeChat answered with a video link instead of the file.")
        code = doc.get("errcode")
        if not isinstance(code, int) or isinstance(code, bool):
            return MediaUnavailable("WeChat answered with JSON instead of the file.")
        if code in TOKEN_ERRORS:
            client.TOKENS.forget(config)  # the next attempt gets a fresh token
            return MediaUnavailable("WeChat refused the access token; will retry.", retriable=True)
        errmsg = doc.get("errmsg")
        outcome = outcome_for(code, errmsg if isinstance(errmsg, str) else "")
        reason = outcome.reason.replace("refused the message", "refused the download")
        return MediaUnavailable(reason, retriable=isinstance(outcome, Retriable))

    return read


async def locate(
    config: WeChatConfig, media_id: str | None, http: httpx.AsyncClient
) -> MediaLocation:
    if not media_id or not media_id.isascii() or not media_id.isprintable() or " " in media_id:
        raise MediaUnavailable("The WeChat message carries no MediaId.")
    token = await client.TOKENS.get(config, http)
    if not isinstance(token, str):
        raise MediaUnavailable(token.reason, retriable=isinstance(token, Retriable))
    url = httpx.URL(
        f"{config.api_base_url}/cgi-bin/media/get",
        params={"access_token": token, "media_id": media_id},
    )
    return MediaLocation(url=str(url), json_error=_reader(config), provider_endpoint=True)
