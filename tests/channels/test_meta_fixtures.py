"""Every inbound kind of Messenger (docs/channels/messenger.md#inbound-events) and Instagram
(docs/channels/instagram.md#inbound-events), as a realistic payload in tests/fixtures/<provider>/,
signed with the app secret and POSTed to the channel's webhook over real HTTP; the outcome is read
back through the REST API.

Fixture timestamps are rewritten to "now" before signing (a payload from last year would land
outside the service window and before our own outbound messages, which is not what these
tests are about). Fixtures that act on an earlier message (edits, reactions, deletes, replies)
are preceded by that provider's `text.json`; receipts are preceded by a real reply sent
through the simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import create_channel
from tidings.channels.meta_common import sign

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
APP_SECRET = "meta-app-secret-for-fixtures"

# The ids the fixtures use.
PAGE_ID, PSID = "104857600000001", "6543210987654321"
IG_ID, IGSID = "17841405822304914", "1914362212592315"
M_BASE = "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"
I_BASE = (
    "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1ODIyMzA0OTE0OjM0MDI4MjM2Njg0MTcxMDMwMTI0ND"
    "I3NjAzNzI2NjQ2NjMwMjY4OTozMjA4MzUwNjU2NzIyNjQ2MTI0NzA0NDY3NjU0NDMyMTI4MAZDZD"
)

Msg = dict[str, Any]


@dataclass(frozen=True)
class Case:
    # What the newest message of the thread looks like afterwards (direction, kind, body);
    # None = no new message.
    newest: tuple[str, str, str | None] | None
    setup: str | None = None  # "text" | "outbound"
    attachments: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # Further checks on the whole thread (oldest first).
    check: Callable[[list[Msg]], bool] | None = None


def _edited(thread: list[Msg]) -> bool:
    [first] = thread
    return first["body"] == "hello, world! (edited)" and len(first["extra"]["edits"]) == 1


def _deleted(thread: list[Msg]) -> bool:
    [first] = thread
    return first["body"] is None and bool(first["extra"].get("deleted_at"))


def _replies_to_first(thread: list[Msg]) -> bool:
    return thread[-1]["reply_to_id"] == thread[0]["id"]


def _outbound_is(status: str) -> Callable[[list[Msg]], bool]:
    def check(thread: list[Msg]) -> bool:
        return [m["status"] for m in thread if m["direction"] == "out"] == [status]

    return check


MESSENGER: dict[str, Case] = {
    "text": Case(("in", "text", "hello, world!")),
    "quick_reply": Case(("in", "text", "Red"), extra={"quick_reply_payload": "PICK_RED"}),
    "reply_to": Case(("in", "text", "re: that one"), setup="text", check=_replies_to_first),
    "image": Case(("in", "media", None), attachments=1),
    "audio": Case(("in", "media", None), attachments=1),
    "video": Case(("in", "media", None), attachments=1),
    "file": Case(("in", "media", None), attachments=1),
    # The old `image` twin of a sticker is dropped: one attachment, not two.
    "sticker": Case(("in", "media", None), attachments=1),
    "reel": Case(("in", "media", "ig reel"), attachments=1),
    "fallback_link": Case(("in", "media", "look https://example.com/shop")),
    # Written by the business in another inbox: outgoing, never a customer message.
    "echo_other_app": Case(
        ("out", "text", "Sent from the Page inbox"), extra={"app_id": "263902037430900"}
    ),
    "delivery": Case(None, setup="outbound", check=_outbound_is("delivered")),
    "read": Case(None, setup="outbound", check=_outbound_is("read")),
    "reaction": Case(("in", "reaction", "\u2764\ufe0f"), setup="text", check=_replies_to_first),
    "unreact": Case(("in", "reaction", ""), setup="text", extra={"action": "unreact"}),
    "edit": Case(None, setup="text", check=_edited),
    "postback": Case(
        ("in", "interactive", "Get Started"),
        extra={"type": "postback", "payload": "GET_STARTED"},
    ),
    "referral_ad": Case(
        ("in", "system", "Opened the conversation from an ad (ref summer-ad)"),
        extra={"type": "referral"},
    ),
    "standby": Case(("in", "text", "answered while another app has thread control")),
    "user_ref": Case(("in", "text", "hi from the website chat plugin")),
    "unknown_message": Case(("in", "unsupported", None), extra={"type": "unknown"}),
    "unknown_event": Case(None),
    # A shared location keeps its coordinates (the UI links them to a map).
    "location": Case(
        ("in", "location", "Brandenburger Tor"),
        extra={"latitude": 52.516275, "longitude": 13.377704},
    ),
    # Page-level events name no customer: kept on the channel's health, no failed event.
    "policy_enforcement": Case(None),
    "app_roles": Case(None),
    # The App Dashboard's test sample: seconds, as a string.
    "dashboard_sample": Case(("in", "text", "test_message")),
    # The messaging_postbacks reference: the `changes[]` form, a `user_ref` sender, seconds
    # as a string.
    "postback_reference": Case(
        ("in", "interactive", "TITLE-FOR-THE-CTA"),
        extra={"type": "postback", "payload": "USER-DEFINED-PAYLOAD"},
    ),
}

INSTAGRAM: dict[str, Case] = {
    "text": Case(("in", "text", "hi")),
    "image": Case(("in", "media", None), attachments=1),
    "audio": Case(("in", "media", None), attachments=1),
    "video": Case(("in", "media", None), attachments=1),
    "file": Case(("in", "media", None), attachments=1),
    "share": Case(("in", "media", "share"), attachments=1),
    "story_mention": Case(("in", "media", "story mention"), attachments=1),
    "ig_reel": Case(("in", "media", "ig reel"), attachments=1),
    "deleted": Case(None, setup="text", check=_deleted),
    "unsupported": Case(("in", "unsupported", None), extra={"type": "unsupported"}),
    # Instagram could not hand the attachment over: unsupported, never a file.
    "unsupported_type": Case(
        ("in", "unsupported", None),
        extra={"type": "unsupported", "attachment_type": "unsupported_type"},
    ),
    "quick_reply": Case(("in", "text", "Yes"), extra={"quick_reply_payload": "YES"}),
    "reply_to": Case(("in", "text", "re"), setup="text", check=_replies_to_first),
    "reply_to_story": Case(
        ("in", "text", "nice!"), check=lambda t: "reply_to_story" in t[0]["extra"]
    ),
    "referral_in_message": Case(("in", "text", "hi"), check=lambda t: "referral" in t[0]["extra"]),
    "reaction": Case(("in", "reaction", "\u2764\ufe0f"), setup="text", extra={"reaction": "love"}),
    "unreact": Case(("in", "reaction", ""), setup="text", extra={"action": "unreact"}),
    # `messaging_seen`: there are no delivery receipts on Instagram
    # (docs/channels/instagram.md#inbound-events).
    "read": Case(None, setup="outbound", check=_outbound_is("read")),
    "postback": Case(("in", "interactive", "Opening hours"), extra={"payload": "ICEBREAKER_HOURS"}),
    "referral": Case(
        (
            "in",
            "system",
            "Opened the conversation from https://ig.me/m/luckyshrub?ref=bio-link (ref bio-link)",
        ),
    ),
    "echo": Case(("out", "text", "Replied from the Instagram app")),
    "comment": Case(None),
    "unknown_event": Case(None),
}

PROVIDERS: dict[str, tuple[dict[str, Case], str, str]] = {
    "messenger": (MESSENGER, PAGE_ID, PSID),
    "instagram": (INSTAGRAM, IG_ID, IGSID),
}


def _cases() -> list[Any]:
    out = []
    for provider, (cases, _, _) in PROVIDERS.items():
        on_disk = {p.stem for p in (FIXTURES / provider).glob("*.json")}
        # Every fixture has an expectation and every expectation a fixture.
        assert on_disk == set(cases), (provider, on_disk ^ set(cases))
        out += [pytest.param(provider, name, id=f"{provider}-{name}") for name in sorted(cases)]
    return out


def _moved(value: Any, ms: int) -> Any:
    """`ms` in the unit and type of the fixture's own value: Meta sends milliseconds in most
    events but seconds, sometimes as a string, in others."""
    number = float(value) if isinstance(value, str) else value
    when = ms if number >= 100_000_000_000 else ms // 1000
    return str(when) if isinstance(value, str) else when


def _now(doc: Any, ms: int) -> Any:
    """The fixture with every timestamp/time/watermark moved to `ms`, unit kept."""
    if isinstance(doc, dict):
        return {
            k: _moved(v, ms) if k in ("timestamp", "time", "watermark") else _now(v, ms)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_now(v, ms) for v in doc]
    return doc


async def _channel(server: Server, api: httpx.AsyncClient, provider: str) -> dict[str, Any]:
    base = f"{server.url}/sandbox/{provider}"
    config: dict[str, Any] = {"app_secret": APP_SECRET, "verify_token": "verify-fixtures"}
    if provider == "messenger":
        config |= {"page_id": PAGE_ID, "page_access_token": "EAAB-page", "api_base_url": base}
    else:
        config |= {"instagram_account_id": IG_ID, "access_token": "IGQV-user", "api_base_url": base}
    return await create_channel(api, provider, config, name=provider)


async def _post(webhook: str, provider: str, name: str) -> None:
    doc = orjson.loads((FIXTURES / provider / f"{name}.json").read_bytes())
    body = orjson.dumps(_now(doc, int(time.time() * 1000)))
    async with httpx.AsyncClient(timeout=20) as client:
        resp = await client.post(
            webhook,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(APP_SECRET, body),
            },
        )
    assert resp.status_code == 200, resp.text


async def _settled(api: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    """Wait until `n` inbound events are stored and none is still pending."""

    async def check() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = (
            await api.get("/api/v1/inbound_events", params={"state": ""})
        ).json()
        return rows if len(rows) >= n and all(r["state"] != "pending" for r in rows) else None

    return await eventually(check)  # type: ignore[no-any-return]


async def _thread(api: httpx.AsyncClient) -> list[Msg]:
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    if not convs:
        return []
    assert len(convs) == 1, convs
    return (await api.get(f"/api/v1/conversations/{convs[0]['id']}/messages")).json()["data"]  # type: ignore[no-any-return]


async def _outbound(
    server: Server, api: httpx.AsyncClient, provider: str, account: str, user: str
) -> None:
    """A customer message through the simulator, then a reply that reaches the simulator and is
    sent, with the simulator's own receipts off so that only the fixture can move it on."""
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/{provider}", timeout=20
    ) as sim:
        assert (await sim.post("/_sim/config", json={"auto_receipts": []})).status_code == 200
        resp = await sim.post(
            "/_sim/inbound", json={"account_id": account, "from": user, "text": "hi"}
        )
        assert resp.json()["status"] == 200, resp.text

        async def conv() -> list[Any]:
            return (await api.get("/api/v1/conversations")).json()["data"]

        [c] = await eventually(conv)
        reply = await api.post(
            f"/api/v1/conversations/{c['id']}/messages", json={"text": "Thanks!"}
        )
        assert reply.status_code == 201, reply.text

        async def sent() -> bool:
            return [m["status"] for m in await _thread(api) if m["direction"] == "out"] == ["sent"]

        await eventually(sent)
        # The echo of that reply is in before the fixture goes.
        await sim.post("/_sim/flush", json={"timeout": 5})


@pytest.mark.parametrize(("provider", "name"), _cases())
async def test_fixture_arrives_through_the_webhook(
    server: Server, owner: Owner, api: httpx.AsyncClient, provider: str, name: str
) -> None:
    cases, account, user = PROVIDERS[provider]
    case = cases[name]
    channel = await _channel(server, api, provider)
    stored = 0
    if case.setup == "text":
        await _post(channel["webhook_url"], provider, "text")
        stored = 1
        await _settled(api, stored)
    elif case.setup == "outbound":
        await _outbound(server, api, provider, account, user)
        stored = len((await api.get("/api/v1/inbound_events", params={"state": ""})).json())
    before = await _thread(api)

    await _post(channel["webhook_url"], provider, name)
    events = await _settled(api, stored + 1)

    # Stored and processed without error (a failed event would carry its reason).
    assert [(e["state"], e["error"]) for e in events if e["state"] != "done"] == []
    thread = await _thread(api)
    if case.newest is None:
        assert len(thread) == len(before)
    else:
        assert len(thread) == len(before) + 1
        newest = thread[-1]
        assert (newest["direction"], newest["kind"], newest["body"]) == case.newest
        assert len(newest["attachments"]) == case.attachments
        assert {k: newest["extra"].get(k) for k in case.extra} == case.extra
    if case.check is not None:
        assert case.check(thread), thread
