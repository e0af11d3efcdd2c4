"""One place for the test setup every file needs: channels of each kind, created the way an
administrator does it (``POST /api/v1/channels`` over real HTTP), pointed at the provider's
simulator in the server's sandbox.

Each ``<kind>_channel`` helper fills in what a test does not care about (the sandbox URL, a
display name, the fields the kind requires) and takes everything else as keyword arguments, so a
test passes the secrets it later signs or checks with and any override it is about; a keyword
given by the test always wins over the default. Every helper asserts the API answered 201 and
returns the channel as the API returned it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.conftest import Server

MASK = "••••"


def sandbox_url(server: Server, kind: str) -> str:
    """The base URL of `kind`'s simulator in the server's sandbox."""
    return f"{server.url}/sandbox/{kind}"


async def create_channel(
    api: httpx.AsyncClient,
    kind: str,
    config: dict[str, Any],
    *,
    name: str,
    masked: Iterable[str] = (),
    **body: Any,
) -> dict[str, Any]:
    """``POST /api/v1/channels`` with `kind`, `name` and `config` (plus any other top-level
    field in `body`); asserts 201 and that each config key in `masked` comes back masked."""
    resp = await api.post(
        "/api/v1/channels", json={"kind": kind, "name": name, "config": config, **body}
    )
    assert resp.status_code == 201, resp.text
    channel: dict[str, Any] = resp.json()
    for key in masked:
        assert channel["config"][key] == MASK, key
    return channel


async def whatsapp_channel(
    api: httpx.AsyncClient,
    server: Server,
    *,
    phone_number_id: str,
    name: str = "WhatsApp",
    **config: Any,
) -> dict[str, Any]:
    """A WhatsApp Cloud API channel on the sandbox's Graph API simulator."""
    defaults = {
        "access_token": "EAAG-test-access-token",
        "app_secret": "wa-app-secret-for-tests",
        "verify_token": "verify-me",
        "api_base_url": sandbox_url(server, "whatsapp"),
    }
    return await create_channel(
        api,
        "whatsapp",
        {"phone_number_id": phone_number_id, **defaults, **config},
        name=name,
    )


async def messenger_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "Facebook Page", **config: Any
) -> dict[str, Any]:
    """A Messenger (Facebook Page) channel, without the human-agent tag unless the test asks;
    the test passes page_id and its secrets."""
    defaults = {
        "verify_token": "verify-me",
        "human_agent": False,
        "api_base_url": sandbox_url(server, "messenger"),
    }
    return await create_channel(api, "messenger", {**defaults, **config}, name=name)


async def instagram_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "Instagram", **config: Any
) -> dict[str, Any]:
    """An Instagram channel; the test passes the flavour, account id and secrets."""
    defaults = {"api_base_url": sandbox_url(server, "instagram")}
    return await create_channel(api, "instagram", {**defaults, **config}, name=name)


async def line_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "OA", **config: Any
) -> dict[str, Any]:
    """A LINE Official Account; both the Messaging API and its data API on the simulator. The
    channel secret and access token must come back masked."""
    base = sandbox_url(server, "line")
    defaults = {"api_base_url": base, "data_api_base_url": base}
    return await create_channel(
        api,
        "line",
        {**defaults, **config},
        name=name,
        masked=("channel_secret", "channel_access_token"),
    )


async def viber_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "Viber", **config: Any
) -> dict[str, Any]:
    """A Viber bot ("Acme Support" unless the test names the sender)."""
    defaults = {"api_base_url": sandbox_url(server, "viber"), "sender_name": "Acme Support"}
    return await create_channel(api, "viber", {**defaults, **config}, name=name)


async def telegram_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "Bot", **config: Any
) -> dict[str, Any]:
    """A Telegram bot; the test passes bot_token and secret_token."""
    defaults = {"api_base_url": sandbox_url(server, "telegram")}
    return await create_channel(api, "telegram", {**defaults, **config}, name=name)


async def rbm_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "RCS", **config: Any
) -> dict[str, Any]:
    """An RCS Business Messaging agent; the test passes agent_id and its tokens."""
    defaults = {"api_base_url": sandbox_url(server, "rbm")}
    return await create_channel(api, "rbm", {**defaults, **config}, name=name)


async def gbm_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "Business Messages", **config: Any
) -> dict[str, Any]:
    """A (legacy) Google Business Messages agent."""
    defaults = {"api_base_url": sandbox_url(server, "gbm")}
    return await create_channel(api, "gbm", {**defaults, **config}, name=name)


async def vonage_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "SMS", **config: Any
) -> dict[str, Any]:
    """A Vonage SMS number (+14155550100 unless the test gives one)."""
    defaults = {
        "signature_method": "sha256",
        "from_number": "+14155550100",
        "api_base_url": sandbox_url(server, "vonage"),
    }
    return await create_channel(api, "vonage", {**defaults, **config}, name=name)


async def twilio_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "SMS", **config: Any
) -> dict[str, Any]:
    """A Twilio SMS number (+14155550100 unless given) with a fresh random account SID and auth token (unless given); the
    returned channel also carries them as ``_sid`` and ``_secret`` so the test can sign."""
    body = {
        "account_sid": "AC" + secrets.token_hex(16),
        "auth_token": secrets.token_hex(16),
        "from_number": "+14155550100",
        "api_base_url": sandbox_url(server, "twilio"),
        **config,
    }
    channel = await create_channel(api, "twilio", body, name=name)
    channel["_secret"] = body["auth_token"]
    channel["_sid"] = body["account_sid"]
    return channel


async def wechat_channel(
    api: httpx.AsyncClient, server: Server, *, name: str = "WeChat OA", **config: Any
) -> dict[str, Any]:
    """A WeChat Official Account; the test passes app_id, app_secret and token. The app secret
    must come back masked."""
    defaults = {"api_base_url": sandbox_url(server, "wechat")}
    return await create_channel(
        api, "wechat", {**defaults, **config}, name=name, masked=("app_secret",)
    )


async def smpp_channel(
    api: httpx.AsyncClient, config: dict[str, Any], *, name: str = "SMPP"
) -> dict[str, Any]:
    """An SMPP channel with `config` as given (the SMSC's address is the test's own)."""
    return await create_channel(api, "smpp", config, name=name)


async def api_channel(
    api: httpx.AsyncClient,
    *,
    secret: str,
    server: Server | None = None,
    account: str | None = None,
    webhook_url: str | None = None,
    name: str | None = None,
    **body: Any,
) -> dict[str, Any]:
    """A generic API channel signed with `secret`, named "Website <account>" ("Website" without
    an account) unless `name` says otherwise. Its outbound webhook is `webhook_url`, or with
    `server` and `account` the sandbox API simulator's receiver for that account. `body` holds
    other top-level fields of the request (an ``inbox_id``, say)."""
    config: dict[str, Any] = {"secret": secret}
    if webhook_url is None and server is not None and account is not None:
        webhook_url = f"{sandbox_url(server, 'api')}/accounts/{account}/receive"
    if webhook_url:
        config["webhook_url"] = webhook_url
    label = name or (f"Website {account}" if account else "Website")
    return await create_channel(api, "api", config, name=label, **body)


def simulator(server: Server, kind: str, *, timeout: float = 20) -> httpx.AsyncClient:
    """An HTTP client for `kind`'s simulator in the sandbox (its ``/_sim/...`` controls), with
    the sandbox's access headers."""
    from tests.conftest import sandbox_headers

    return httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=sandbox_url(server, kind), timeout=timeout
    )
