"""A follower's name (docs/channels/wechat.md, "Customer names").

    GET /cgi-bin/user/info?access_token=…&openid=…&lang=zh_CN
    -> {"subscribe": 1, "openid": "o6_bm…", "nickname": "", "language": "zh_CN",
        "subscribe_time": 1618441997, "remark": "", "tagid_list": [], …}

Since 2021-12-27 WeChat no longer returns `nickname` / `headimgurl` from this call for most
accounts (the field is there, empty); `subscribe: 0` (no longer following) carries only the
openid. The account's own `remark` for the follower is the next best name.
"""

from __future__ import annotations

import httpx
import orjson

from tidings.channels.base import Permanent
from tidings.channels.profiles import Profile, ProfileUnavailable, clean
from tidings.channels.wechat import client
from tidings.channels.wechat.config import WeChatConfig


async def fetch(config: WeChatConfig, openid: str, http: httpx.AsyncClient) -> Profile:
    answer = await client.call(
        config,
        http,
        "GET",
        "/cgi-bin/user/info",
        params={"openid": openid, "lang": "zh_CN"},
    )
    if not isinstance(answer, httpx.Response):
        raise ProfileUnavailable(
            f"WeChat refused the follower's profile: {answer.reason}",
            retriable=not isinstance(answer, Permanent),
        )
    try:
        doc = orjson.loads(answer.content)
    except orjson.JSONDecodeError as exc:
        raise ProfileUnavailable("WeChat answered no JSON", retriable=True) from exc
    if not isinstance(doc, dict):
        raise ProfileUnavailable("WeChat answered no profile", retriable=False)
    return Profile(name=clean(doc.get("nickname")) or clean(doc.get("remark")))
