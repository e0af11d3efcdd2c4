"""Customer names from the providers' profile APIs (issue #16 item 7).

The adapters read real-shaped answers (tests/fixtures/<kind>/…) served by a stand-in for the
provider; end to end, a customer who writes through the sandbox gets their name on the contact
in the background, once a day at most, and WeChat's empty nicknames leave the contact unnamed
(shown as "Customer #id") without retrying forever."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tidings.channels.instagram import InstagramAdapter, InstagramConfig
from tidings.channels.messenger import MessengerAdapter, MessengerConfig
from tidings.channels.profiles import Profile, ProfileUnavailable
from tidings.channels.wechat import WeChatAdapter, WeChatConfig
from tidings.storage.models import ContactIdentity
from tidings.storage.types import utcnow

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _fixture(*parts: str) -> bytes:
    return (FIXTURES.joinpath(*parts)).read_bytes()


def _provider(routes: dict[str, bytes], seen: list[httpx.Request]) -> httpx.AsyncClient:
    """A stand-in for the provider's API answering each path with a fixture."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = routes.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"error": {"message": "no route", "code": 100}})
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_messenger_user_profile() -> None:
    seen: list[httpx.Request] = []
    config = MessengerConfig(
        page_id="104857600000001",
        page_access_token="EAAB-page",
        app_secret="s",
        verify_token="v",
        api_base_url="https://graph.example",
    )
    routes = {"/v25.0/6543210987654321": _fixture("messenger", "profile", "user_profile.json")}
    async with _provider(routes, seen) as http:
        profile = await MessengerAdapter().fetch_profile(config, "6543210987654321", http)
        # A chat-plugin visitor has no PSID: nothing is asked.
        assert await MessengerAdapter().fetch_profile(config, "user_ref:abc", http) == Profile(None)
    assert profile == Profile(name="Peter Chang")
    [request] = seen
    assert request.url.params["fields"] == "first_name,last_name,profile_pic"
    assert request.headers["authorization"] == "Bearer EAAB-page"


async def test_instagram_user_profile() -> None:
    seen: list[httpx.Request] = []
    config = InstagramConfig(
        instagram_account_id="17841405822304914",
        access_token="IGQV-user",
        app_secret="s",
        verify_token="v",
        api_base_url="https://graph.example",
    )
    routes = {"/v25.0/1914362212592315": _fixture("instagram", "profile", "user_profile.json")}
    async with _provider(routes, seen) as http:
        profile = await InstagramAdapter().fetch_profile(config, "1914362212592315", http)
        with pytest.raises(ProfileUnavailable) as refused:
            await InstagramAdapter().fetch_profile(config, "999", http)
    assert profile == Profile(name="Peter Chang", username="peter_chang_aw")
    assert refused.value.retriable is False
    assert seen[0].url.params["fields"] == "name,username,profile_pic"


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("user_info.json", "Band"),
        # Since 2021-12-27 most accounts get an empty nickname; unfollowed users only an openid.
        ("user_info_without_nickname.json", None),
        ("user_info_unsubscribed.json", None),
    ],
)
async def test_wechat_user_info(fixture: str, name: str | None) -> None:
    seen: list[httpx.Request] = []
    config = WeChatConfig(
        app_id="wxprofiles0001", app_secret="s", token="t", api_base_url="https://wx.example"
    )
    routes = {
        "/cgi-bin/stable_token": orjson.dumps({"access_token": "TOKEN-1", "expires_in": 7200}),
        "/cgi-bin/user/info": _fixture("wechat", fixture),
    }
    async with _provider(routes, seen) as http:
        profile = await WeChatAdapter().fetch_profile(config, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", http)
    assert profile == Profile(name=name)
    info = seen[-1]
    assert info.url.path == "/cgi-bin/user/info"
    assert info.url.params["openid"] == "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
    assert info.url.params["access_token"] == "TOKEN-1"


async def _identity(server: Server) -> ContactIdentity | None:
    async with server.runtime.db.read() as s:
        return await s.scalar(select(ContactIdentity))


async def test_messenger_name_arrives_in_the_background_once_a_day(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    base = f"{server.url}/sandbox/messenger"
    config = {
        "page_id": "104857600000077",
        "page_access_token": "EAAB-profiles",
        "app_secret": "profiles-secret",
        "verify_token": "v",
        "api_base_url": base,
    }
    resp = await api.post(
        "/api/v1/channels", json={"kind": "messenger", "name": "fb", "config": config}
    )
    assert resp.status_code == 201, resp.text
    async with httpx.AsyncClient(base_url=base, headers=sandbox_headers(server), timeout=20) as sim:
        who = {"account_id": "104857600000077", "from": "7000000000000077", "name": "Ines Ortega"}
        assert (await sim.post("/_sim/inbound", json={**who, "text": "hi"})).json()["status"] == 200

        async def listed() -> dict[str, Any] | None:
            rows = (await api.get("/api/v1/ui/conversations")).json()["data"]
            return rows[0] if rows and rows[0]["contact_display_name"] == "Ines Ortega" else None

        row = await eventually(listed)
        contact = (await api.get(f"/api/v1/contacts/{row['contact_id']}")).json()
        assert contact["name"] == "Ines Ortega"
        assert contact["identities"][0]["display_name"] == "Ines Ortega"
        fetched = await _identity(server)
        assert fetched is not None and fetched.profile_fetched_at is not None
        assert fetched.profile_due_at is None

        # The customer renames themself and writes again at once: not asked again today.
        who["name"] = "Ines O."
        assert (await sim.post("/_sim/inbound", json={**who, "text": "again"})).json()[
            "status"
        ] == 200

        async def two() -> bool:
            msgs = (await api.get(f"/api/v1/conversations/{row['id']}/messages")).json()["data"]
            return len(msgs) == 2

        await eventually(two)
        again = await _identity(server)
        assert again is not None
        assert again.profile_due_at is None
        assert again.profile_fetched_at == fetched.profile_fetched_at
        assert (await api.get(f"/api/v1/contacts/{row['contact_id']}")).json()["name"] == (
            "Ines Ortega"
        )

        # A day later the profile is stale: her next message asks again and the new name
        # reaches the contact (the old one was the provider's, nobody else's).
        async with server.runtime.db.write() as s:
            stale = await s.get_one(ContactIdentity, fetched.id)
            stale.profile_fetched_at = utcnow() - timedelta(days=1, minutes=1)
        assert (await sim.post("/_sim/inbound", json={**who, "text": "third"})).json()[
            "status"
        ] == 200

        async def renamed() -> dict[str, Any] | None:
            got = (await api.get(f"/api/v1/contacts/{row['contact_id']}")).json()
            return got if got["name"] == "Ines O." else None

        await eventually(renamed)


async def test_wechat_without_nickname_stays_customer_number(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    base = f"{server.url}/sandbox/wechat"
    config = {
        "app_id": "wxprofiles0002",
        "app_secret": "profiles-secret",
        "token": "profilestoken",
        "api_base_url": base,
    }
    resp = await api.post(
        "/api/v1/channels", json={"kind": "wechat", "name": "wx", "config": config}
    )
    assert resp.status_code == 201, resp.text
    async with httpx.AsyncClient(base_url=base, headers=sandbox_headers(server), timeout=20) as sim:
        # As WeChat has answered most accounts since 2021-12-27: an empty nickname.
        put = await sim.put("/_sim/accounts/wxprofiles0002", json={"nicknames": False})
        assert put.status_code == 200, put.text
        body = {"app_id": "wxprofiles0002", "user": "follower-7", "text": "你好", "name": "小明"}
        assert (await sim.post("/_sim/inbound", json=body)).json()["delivered"] is True

    async def fetched() -> ContactIdentity | None:
        identity = await _identity(server)
        return identity if identity is not None and identity.profile_fetched_at else None

    identity = await eventually(fetched)
    assert identity.profile_due_at is None  # asked once, not retried
    assert identity.display_name is None
    [row] = (await api.get("/api/v1/ui/conversations")).json()["data"]
    assert row["contact_name"] is None
    shown = f"Customer #{row['contact_id']}"
    assert row["contact_display_name"] == shown
    # One rule everywhere the customer is shown: the contact panel and search say the same.
    contact = (await api.get(f"/api/v1/contacts/{row['contact_id']}")).json()
    assert contact["display_name"] == shown
    found = (await api.get("/api/v1/ui/search", params={"q": "你好"})).json()
    assert [m["contact_display_name"] for m in found["messages"]] == [shown]
    address = contact["identities"][0]["address"]
    found = (await api.get("/api/v1/ui/search", params={"q": address})).json()
    assert [c["display_name"] for c in found["contacts"]] == [shown]
