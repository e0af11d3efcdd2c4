"""WeChat plain mode signs only (token, timestamp, nonce), not the body: a captured query string
must not sign forged pushes forever. Over real HTTP against the test server: a push signed
now is stored; the same signature scheme with a timestamp older than a few minutes is refused
with 401 and stores nothing (issue #15, item 12)."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import func, select

from tests.conftest import Owner, Server
from tidings.channels.wechat import crypto
from tidings.storage.models import InboundEvent

TOKEN = "tokenreplay0001"


def push(msg_id: int) -> bytes:
    return (
        b"<xml><ToUserName>gh_1</ToUserName><FromUserName>oAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        b"</FromUserName><CreateTime>1714037059</CreateTime><MsgType>text</MsgType>"
        b"<Content>forged</Content><MsgId>%d</MsgId></xml>" % msg_id
    )


def signed(timestamp: int) -> dict[str, str]:
    ts, nonce = str(timestamp), "486452656"
    return {"signature": crypto.signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}


async def stored(server: Server) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(InboundEvent)) or 0)


async def test_plain_mode_refuses_an_old_signature(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "wechat",
            "name": "WeChat OA",
            "config": {
                "app_id": "wxreplay0001",
                "app_secret": "secret",
                "token": TOKEN,
                "api_base_url": f"{server.url}/sandbox/wechat",
            },
        },
    )
    assert resp.status_code == 201, resp.text
    url = f"{server.url}/webhooks/wechat/{resp.json()['id']}"
    now = int(time.time())
    async with httpx.AsyncClient(timeout=20) as http:
        # A signature captured ten minutes ago (or a year ago) no longer signs anything.
        ten_minutes = await http.post(url, params=signed(now - 600), content=push(1))
        a_year = await http.post(url, params=signed(now - 365 * 86400), content=push(2))
        no_timestamp = await http.post(
            url, params={**signed(now), "timestamp": ""}, content=push(3)
        )
        assert [r.status_code for r in (ten_minutes, a_year, no_timestamp)] == [401, 401, 401]
        assert ten_minutes.json()["error"]["code"] == "stale_signature"
        assert await stored(server) == 0
        # A fresh one (a little clock skew either way) is accepted.
        fresh = await http.post(url, params=signed(now - 30), content=push(4))
        ahead = await http.post(url, params=signed(now + 30), content=push(5))
    assert [fresh.status_code, ahead.status_code] == [200, 200], fresh.text
    assert await stored(server) == 2
