"""Viber sends of every type, profiles and set_webhook through the adapter's own client code,
against the Viber simulator in process (its validation is Viber's: required `size` and
`file_name`, `sender.name`, subscription, the per-user cap, get_user_details' limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tidings.channels.base import OutboundAttachment, OutboundMessage, Permanent, Retriable, Sent
from tidings.channels.profiles import ProfileUnavailable
from tidings.channels.viber import ViberAdapter, ViberConfig
from tidings.domain.enums import MessageKind
from tidings.simulators.viber import Bot, User, ViberSimulator

TOKEN = "sim-token-0123456789-abcdef"
ADAPTER = ViberAdapter()


@pytest.fixture
async def sim() -> AsyncIterator[ViberSimulator]:
    simulator = ViberSimulator("http://viber.test")
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def http(sim: ViberSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://viber.test"
    ) as client:
        yield client


def setup(sim: ViberSimulator) -> tuple[Bot, User, ViberConfig]:
    bot = sim.ensure_bot(TOKEN, probe_webhook=False, auto_delivered=False)
    bot.webhook_url = "http://tidings.invalid/webhooks/viber/1"
    user = sim.user(bot, "Ana", "Ana")
    sim.customer_writes(bot, user, {"text": "hi"})
    bot.pending.clear()
    config = ViberConfig(auth_token=TOKEN, api_base_url="http://viber.test", sender_name="Acme")
    return bot, user, config


def message(to: str, **fields: object) -> OutboundMessage:
    base: dict[str, object] = {
        "message_id": 1,
        "conversation_id": 7,
        "to": to,
        "kind": MessageKind.TEXT,
    }
    return OutboundMessage(**{**base, **fields})  # type: ignore[arg-type]


async def test_every_outbound_type_passes_vibers_validation(
    sim: ViberSimulator, http: httpx.AsyncClient
) -> None:
    bot, user, config = setup(sim)
    video_url = sim.store_media(bot, b"\x00" * 1234, "video/mp4", "mp4")
    pdf_url = sim.store_media(bot, b"%PDF" * 100, "application/pdf", "pdf")
    pic_url = sim.store_media(bot, b"\xff\xd8\xff" * 10, "image/jpeg", "jpg")
    cases = [
        message(user.id, text="Hello"),
        message(
            user.id,
            kind=MessageKind.MEDIA,
            text="your receipt",
            attachments=(OutboundAttachment(kind="image", url=pic_url),),
        ),
        message(
            user.id,
            kind=MessageKind.MEDIA,
            attachments=(OutboundAttachment(kind="video", url=video_url),),
        ),
        message(
            user.id,
            kind=MessageKind.MEDIA,
            attachments=(OutboundAttachment(kind="document", url=pdf_url, filename="a.pdf"),),
        ),
        message(
            user.id, kind=MessageKind.LOCATION, extra={"latitude": 50.76891, "longitude": 6.11499}
        ),
        message(user.id, extra={"sticker_id": 46105}),
        message(user.id, extra={"url": "https://example.com/a"}),
        message(
            user.id,
            kind=MessageKind.INTERACTIVE,
            text="Pick",
            extra={"buttons": [{"text": "Yes", "data": "y"}]},
        ),
    ]
    for case in cases:
        outcome = await ADAPTER.send(config, case, http)
        assert isinstance(outcome, Sent), (case, outcome)
        assert int(outcome.provider_message_id) > 2**53
    sends = [c for c in bot.sent if c["method"] == "send_message"]
    assert [s["body"]["type"] for s in sends] == [
        "text",
        "picture",
        "video",
        "file",
        "location",
        "sticker",
        "url",
        "text",
    ]
    assert sends[1]["body"]["text"] == "your receipt"
    assert sends[2]["body"]["size"] == 1234
    assert (sends[3]["body"]["size"], sends[3]["body"]["file_name"]) == (400, "a.pdf")
    assert sends[7]["body"]["keyboard"]["Buttons"][0]["ActionBody"] == "y"
    assert all(s["body"]["sender"] == {"name": "Acme"} for s in sends)
    assert all(s["answer"]["status"] == 0 for s in sends)


async def test_refusals_become_outcomes(sim: ViberSimulator, http: httpx.AsyncClient) -> None:
    bot, user, config = setup(sim)
    # Unknown user: status 5.
    unknown = await ADAPTER.send(config, message("jc9HsWTZ2Yf2NkRZ8KcNug==", text="hi"), http)
    assert isinstance(unknown, Permanent) and unknown.code == "5"
    # The per-user cap: after `cap` messages without a reply, status 12 → retried later.
    bot.per_user_unreplied_cap = 2
    assert isinstance(await ADAPTER.send(config, message(user.id, text="1"), http), Sent)
    assert isinstance(await ADAPTER.send(config, message(user.id, text="2"), http), Sent)
    capped = await ADAPTER.send(config, message(user.id, text="3"), http)
    assert isinstance(capped, Retriable) and capped.code == "12"
    # A reply from the user resets it.
    sim.customer_writes(bot, user, {"text": "ok"})
    assert isinstance(await ADAPTER.send(config, message(user.id, text="4"), http), Sent)
    # Too long for Viber: refused before the call.
    long = await ADAPTER.send(config, message(user.id, text="x" * 7001), http)
    assert isinstance(long, Permanent)
    # A wrong token: status 2, reconnect.
    wrong = ViberConfig(auth_token="not-the-token", api_base_url="http://viber.test")
    bad = await ADAPTER.send(wrong, message(user.id, text="hi"), http)
    assert isinstance(bad, Permanent) and "auth token" in bad.reason
    # Outside the session, with no free messages and no balance: 23.
    bot.balance, bot.free_bot_initiated = False, 0
    user.session_started = 0.0
    out = await ADAPTER.send(config, message(user.id, text="promo"), http)
    assert isinstance(out, Permanent) and out.code == "23"


async def test_profiles_respect_the_user_details_limit(
    sim: ViberSimulator, http: httpx.AsyncClient
) -> None:
    bot, user, config = setup(sim)
    first = await ADAPTER.fetch_profile(config, user.id, http)
    assert first.name == "Ana"
    await ADAPTER.fetch_profile(config, user.id, http)
    with pytest.raises(ProfileUnavailable) as refused:
        await ADAPTER.fetch_profile(config, user.id, http)
    # Not retried in a minute: the limit is per 12 hours.
    assert refused.value.retriable is False
    assert [c["answer"]["status"] for c in bot.sent if c["method"] == "get_user_details"] == [
        0,
        0,
        12,
    ]


async def test_set_webhook_without_a_reachable_url_fails_with_vibers_reason(
    sim: ViberSimulator, http: httpx.AsyncClient
) -> None:
    bot = sim.ensure_bot(TOKEN)
    config = ViberConfig(auth_token=TOKEN, api_base_url="http://viber.test")
    from tidings.channels.viber.client import ViberError

    with pytest.raises(ViberError) as failed:
        await ADAPTER.register_webhook(config, "http://127.0.0.1:9/webhooks/viber/1", http)
    assert "invalidUrl" in failed.value.message
    assert bot.webhook_url is None


def test_message_cost_inside_and_outside_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    assert ADAPTER.message_cost({}, last_inbound_at=None, now=now) is None  # no price set
    monkeypatch.setenv("TIDINGS_SMS_PRICES", '{"currency": "EUR", "viber": {"*": "0.0085"}}')
    assert ADAPTER.message_cost({}, last_inbound_at=now - timedelta(hours=2), now=now) == (
        Decimal(0),
        "EUR",
    )
    assert ADAPTER.message_cost({}, last_inbound_at=now - timedelta(hours=25), now=now) == (
        Decimal("0.0085"),
        "EUR",
    )
    assert ADAPTER.message_cost({}, last_inbound_at=None, now=now) == (Decimal("0.0085"), "EUR")


def test_billing_note() -> None:
    now = datetime.now(UTC)
    assert ADAPTER.billing_note(last_inbound_at=now - timedelta(hours=1), now=now) == (
        "free session, 23 h left"
    )
    assert ADAPTER.billing_note(last_inbound_at=now - timedelta(minutes=1430), now=now) == (
        "free session, 10 min left"
    )
    assert "billed" in ADAPTER.billing_note(last_inbound_at=None, now=now)
    assert "billed" in ADAPTER.billing_note(last_inbound_at=now - timedelta(hours=30), now=now)
