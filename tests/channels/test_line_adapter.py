"""LINE adapter without a server: signatures (LINE's published vectors), webhook fixtures of
LINE's own shapes (tests/fixtures/line/) into canonical events, and sends against the LINE
simulator in process (reply token, expiry → push once, retry key 409, quota, errors)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tidings.channels.base import (
    OutboundAttachment,
    OutboundMessage,
    Permanent,
    Retriable,
    Sent,
    WebhookRequest,
)
from tidings.channels.line import LineAdapter, LineConfig, webhook
from tidings.channels.media import MediaUnavailable
from tidings.domain.enums import ConsentStatus, MessageKind
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    Ignored,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
)
from tidings.simulators.line import Failure, LineSimulator

FIXTURES = Path(__file__).parent.parent / "fixtures" / "line"
SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
TOKEN = "unit-test-channel-access-token"
USER = "U4af4980629e4c6a3b2f1d0c9e8b7a6f5"
adapter = LineAdapter()


def request(body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest("POST", "https://x/webhooks/line/1", headers, {}, body)


@pytest.mark.parametrize(
    ("secret", "body", "expected"),
    [
        (
            SECRET,
            b'{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}',
            "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=",
        ),
        ("channel_secret", b"bodybodybodybody", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="),
        ("test_secret", b'{"hello":"world"}', "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="),
        ("test_channel_secret", b"i am not jason", "Z8YlPpm0lQOqPipiCHVbiuwIDIzRzD7w5hvHgmwEuEs="),
    ],
)
def test_signature_matches_lines_published_vectors(secret: str, body: bytes, expected: str) -> None:
    assert webhook.signature(secret, body) == expected
    webhook.verify(secret, request(body, {"x-line-signature": expected}))


def test_signature_over_the_raw_bytes_only() -> None:
    raw = (FIXTURES / "text_1to1.json").read_bytes()
    # Vector computed over exactly these 474 bytes (raw UTF-8, not \\u escapes).
    assert len(raw) == 474
    good = "DPTZjYIbFQaZ/W3uufwzmpAmJTdTT4KyGwQ+1Ef7wQY="
    webhook.verify(SECRET, request(raw, {"x-line-signature": good}))
    # The same JSON re-serialised (escaped) no longer matches.
    escaped = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    with pytest.raises(SignatureError):
        webhook.verify(SECRET, request(escaped, {"x-line-signature": good}))
    with pytest.raises(SignatureError):
        webhook.verify(SECRET, request(raw, {}))
    with pytest.raises(SignatureError):
        webhook.verify("another-secret", request(raw, {"x-line-signature": good}))


def events_of(name: str) -> list[Any]:
    raw = (FIXTURES / f"{name}.json").read_bytes()
    out = []
    for event in webhook.split(raw):
        out.extend(webhook.parse(event.payload))
    return out


def test_split_keys_by_webhook_event_id_and_probe_is_empty() -> None:
    [event] = webhook.split((FIXTURES / "text_1to1.json").read_bytes())
    assert event.key == "event:01FZ74A0TDDPYRVKNK77XKC3ZR"
    assert event.occurred_at is not None and event.occurred_at.year == 2021
    assert webhook.split((FIXTURES / "verify_probe.json").read_bytes()) == []
    doc = json.loads((FIXTURES / "follow.json").read_bytes())
    doc["events"] = doc["events"] * 2
    assert len(webhook.split(json.dumps(doc).encode())) == 1
    for bad in (b"i am not jason", b"[]", b'{"events": {}}', b'{"events": [1]}'):
        with pytest.raises(PayloadError):
            webhook.split(bad)


def test_text_with_reply_token() -> None:
    [msg] = events_of("text_1to1")
    assert isinstance(msg, InboundMessage)
    assert msg.kind == MessageKind.TEXT
    assert msg.text == "こんにちは 🍎\nline2"
    assert msg.provider_message_id == "444573844083572737"
    assert msg.sender.address == USER
    assert msg.extra["reply_token"] == "757913772c4646b784d4b7ce46d12671"


def test_group_text_keeps_emoji_mentions_and_quote() -> None:
    [msg] = events_of("text_group_mention")
    assert isinstance(msg, InboundMessage)
    # The group is the conversation; who spoke is kept beside it.
    assert msg.sender.address == "Ca56f94637cc4347f90a25382909b24b9"
    assert msg.extra["speaker"] == USER
    assert msg.text == "@All @Taro Good morning (love)"
    assert msg.extra["emojis"][0]["productId"] == "5ac1bfd5040ab15980c9b435"
    assert [m["type"] for m in msg.extra["mention"]["mentionees"]] == ["all", "user"]
    assert msg.reply_to_provider_id == "510201122334455600"


@pytest.mark.parametrize(
    ("name", "kind", "media_id", "url"),
    [
        ("image_set", "image", "354718705033693861", None),
        ("video_external", "video", None, "https://example.com/original.mp4"),
        ("audio", "audio", "325709", None),
        ("file", "document", "325710", None),
    ],
)
def test_media_messages(name: str, kind: str, media_id: str | None, url: str | None) -> None:
    [msg] = events_of(name)
    assert isinstance(msg, InboundMessage)
    assert msg.kind == MessageKind.MEDIA
    [att] = msg.attachments
    assert (att.kind, att.provider_media_id, att.url) == (kind, media_id, url)
    if name == "file":
        assert (att.filename, att.size) == ("invoice-2024-05.pdf", 2138)


def test_location_and_sticker() -> None:
    [loc] = events_of("location")
    assert isinstance(loc, InboundMessage)
    assert loc.kind == MessageKind.LOCATION
    assert (loc.extra["latitude"], loc.extra["longitude"]) == (35.67966, 139.73669)
    assert loc.text == "my location, 1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282 Japan"
    [sticker] = events_of("sticker")
    assert isinstance(sticker, InboundMessage)
    assert sticker.kind == MessageKind.MEDIA
    assert sticker.extra["sticker"]["package_id"] == "11537"
    assert sticker.extra["sticker"]["sticker_id"] == "52002738"


def test_follow_unfollow_are_consent() -> None:
    [follow] = events_of("follow")
    [unfollow] = events_of("unfollow")
    assert isinstance(follow, InboundMessage) and isinstance(unfollow, InboundMessage)
    assert follow.kind == unfollow.kind == MessageKind.SYSTEM
    assert follow.consent == ConsentStatus.OPTED_IN
    assert unfollow.consent == ConsentStatus.OPTED_OUT
    assert unfollow.sender.address == USER
    assert "reply_token" not in unfollow.extra


def test_postback_unsend_edit_and_group_events() -> None:
    [postback] = events_of("postback")
    assert isinstance(postback, InboundMessage)
    assert postback.kind == MessageKind.INTERACTIVE
    assert postback.text == "action=book&slot=42"
    assert postback.extra["params"] == {"datetime": "2017-12-25T01:00"}
    [unsend] = events_of("unsend")
    assert unsend == MessageDeleted("510201122334455667", unsend.occurred_at)
    [edited] = events_of("message_edited")
    assert isinstance(edited, MessageEdited)
    assert (edited.provider_message_id, edited.text) == ("510201122334455667", "Edited message")
    for name, words in (
        ("join", "added to this group"),
        ("leave", "removed from this group"),
        ("member_joined", "2 members joined"),
        ("member_left", "1 member left"),
    ):
        [line] = events_of(name)
        assert isinstance(line, InboundMessage)
        assert line.kind == MessageKind.SYSTEM
        assert words in (line.text or "")
        assert line.sender.address.startswith(("C", "R"))


def test_unused_and_unknown_events() -> None:
    for name in ("video_play_complete", "beacon", "account_link", "membership"):
        [event] = events_of(name)
        assert isinstance(event, Ignored)
    unknown = (
        b'{"type":"somethingNew","timestamp":1,"webhookEventId":"01X",'
        b'"source":{"type":"user","userId":"' + USER.encode() + b'"}}'
    )
    [event] = webhook.parse(unknown)
    assert isinstance(event, InboundMessage) and event.kind == MessageKind.UNSUPPORTED
    odd = b'{"type":"message","webhookEventId":"01Y","source":{"type":"user","userId":"U1"},'
    [msg] = webhook.parse(odd + b'"message":{"id":"1","type":"hologram"}}')
    assert isinstance(msg, InboundMessage) and msg.kind == MessageKind.UNSUPPORTED


# ---------------------------------------------------------------------------------------------
# Sends against the simulator, in process


@pytest.fixture
async def sim() -> AsyncIterator[LineSimulator]:
    simulator = LineSimulator()
    acct = simulator.ensure_account(TOKEN, SECRET)
    simulator.user(acct, USER, "Ana")
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def http(sim: LineSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://line"
    ) as c:
        yield c


CONFIG = LineConfig(
    channel_secret=SECRET,
    channel_access_token=TOKEN,
    api_base_url="http://line",
    data_api_base_url="http://line",
)


def outbound(text: str = "Hello", *, token: str | None = None, age: float = 0.0, **kw: Any) -> Any:
    context: dict[str, Any] = {}
    if token is not None:
        received = datetime.now(UTC) - timedelta(seconds=age)
        context = {"reply_token": token, "received_at": received.isoformat()}
    return OutboundMessage(
        message_id=kw.pop("message_id", 7),
        conversation_id=3,
        to=USER,
        kind=kw.pop("kind", MessageKind.TEXT),
        text=text,
        reply_context=context,
        **kw,
    )


def issue_token(sim: LineSimulator, token: str) -> None:
    sim.accounts[TOKEN].reply_tokens[token] = [USER, time.monotonic(), False]


async def test_fresh_reply_token_replies_for_free(
    sim: LineSimulator, http: httpx.AsyncClient
) -> None:
    issue_token(sim, "tok1")
    outcome = await adapter.send(CONFIG, outbound(token="tok1"), http)
    assert isinstance(outcome, Sent)
    sent = sim.accounts[TOKEN].sent
    assert [(c["endpoint"], c["status"], c["charged"]) for c in sent] == [("reply", 200, 0)]
    assert sim.accounts[TOKEN].quota_used == 0


async def test_expired_reply_token_falls_back_to_push_once(
    sim: LineSimulator, http: httpx.AsyncClient
) -> None:
    issue_token(sim, "tok2")
    sim.accounts[TOKEN].reply_token_seconds = 0.0  # LINE's minute is over
    outcome = await adapter.send(CONFIG, outbound(token="tok2"), http)
    assert isinstance(outcome, Sent)
    sent = sim.accounts[TOKEN].sent
    assert [(c["endpoint"], c["status"]) for c in sent] == [("reply", 400), ("push", 200)]
    # Texts the customer got: once.
    assert [m["text"] for m in sim.accounts[TOKEN].thread] == ["Hello"]


async def test_old_token_is_not_even_tried(sim: LineSimulator, http: httpx.AsyncClient) -> None:
    issue_token(sim, "tok3")
    outcome = await adapter.send(CONFIG, outbound(token="tok3", age=120), http)
    assert isinstance(outcome, Sent)
    assert [c["endpoint"] for c in sim.accounts[TOKEN].sent] == ["push"]


async def test_retried_push_is_not_sent_twice(sim: LineSimulator, http: httpx.AsyncClient) -> None:
    # LINE accepts the push, but its answer is lost: we see a 500 and retry with the same key.
    sim.accounts[TOKEN].failures["push"] = [Failure(500, "lost", 1, lose_answer=True)]
    first = await adapter.send(CONFIG, outbound("Only once"), http)
    assert isinstance(first, Retriable)
    second = await adapter.send(CONFIG, outbound("Only once"), http)
    assert isinstance(second, Sent)
    acct = sim.accounts[TOKEN]
    assert [(c["endpoint"], c["status"]) for c in acct.sent] == [("push", 200), ("retry", 409)]
    assert [m["text"] for m in acct.thread] == ["Only once"]
    assert acct.quota_used == 1
    # The id is LINE's id of the message that went.
    assert second.provider_message_id == acct.thread[0]["id"]
    # Another message has another key and goes.
    third = await adapter.send(CONFIG, outbound("Next", message_id=8), http)
    assert isinstance(third, Sent)
    assert len(acct.thread) == 2


async def test_monthly_quota_exhausted_fails_with_lines_reason(
    sim: LineSimulator, http: httpx.AsyncClient
) -> None:
    acct = sim.accounts[TOKEN]
    acct.quota, acct.quota_used = 5, 5
    outcome = await adapter.send(CONFIG, outbound(), http)
    assert isinstance(outcome, Permanent)
    assert outcome.code == "monthly_limit"
    assert "You have reached your monthly limit." in outcome.reason
    # A reply token still works: replies are free.
    issue_token(sim, "tok4")
    assert isinstance(await adapter.send(CONFIG, outbound(token="tok4"), http), Sent)
    assert await adapter.check_credentials(CONFIG, http) is not None
    acct.quota = 1000
    assert await adapter.check_credentials(CONFIG, http) is None
    assert await adapter.health_summary(CONFIG, http) == "995 of 1000 push messages left this month"


async def test_errors_become_outcomes(sim: LineSimulator, http: httpx.AsyncClient) -> None:
    bad = CONFIG.model_copy(update={"channel_access_token": "revoked"})
    outcome = await adapter.send(bad, outbound(), http)
    assert isinstance(outcome, Permanent) and "Reconnect" in outcome.reason
    sim.accounts[TOKEN].rate_per_second = 1.0
    sim.accounts[TOKEN].buckets.clear()
    results = [await adapter.send(CONFIG, outbound(message_id=100 + i), http) for i in range(3)]
    assert any(isinstance(r, Retriable) and r.retry_after == 1.0 for r in results)
    too_long = await adapter.send(CONFIG, outbound("😀" * 2501), http)
    assert isinstance(too_long, Permanent) and "5000" in too_long.reason


async def test_rich_sends(sim: LineSimulator, http: httpx.AsyncClient) -> None:
    acct = sim.accounts[TOKEN]
    location = outbound(
        "",
        kind=MessageKind.LOCATION,
        extra={"location": {"latitude": 35.6, "longitude": 139.7, "name": "Office"}},
        message_id=20,
    )
    assert isinstance(await adapter.send(CONFIG, location, http), Sent)
    pictures = outbound(
        "Here you go",
        message_id=21,
        attachments=(OutboundAttachment(kind="image", url="https://cdn.example/a.jpg"),),
        extra={"buttons": [{"text": "Yes", "data": "yes"}, {"text": "No"}]},
    )
    assert isinstance(await adapter.send(CONFIG, pictures, http), Sent)
    sticker = outbound(
        "", message_id=22, extra={"sticker": {"package_id": "446", "sticker_id": "1988"}}
    )
    assert isinstance(await adapter.send(CONFIG, sticker, http), Sent)
    pushed = [c["messages"] for c in acct.sent if c["endpoint"] == "push"]
    assert pushed[0][0]["type"] == "location"
    assert [m["type"] for m in pushed[1]] == ["text", "image"]
    assert [i["action"]["type"] for i in pushed[1][1]["quickReply"]["items"]] == [
        "postback",
        "message",
    ]
    assert pushed[2] == [{"type": "sticker", "packageId": "446", "stickerId": "1988"}]
    uploaded = outbound(
        "x", message_id=23, attachments=(OutboundAttachment(kind="document", url=None),)
    )
    refused = await adapter.send(CONFIG, uploaded, http)
    assert isinstance(refused, Permanent)


async def test_unfollowed_customer_gets_nothing_and_costs_nothing(
    sim: LineSimulator, http: httpx.AsyncClient
) -> None:
    acct = sim.accounts[TOKEN]
    acct.users[USER].following = False
    assert isinstance(await adapter.send(CONFIG, outbound(), http), Sent)
    assert acct.thread == [] and acct.quota_used == 0


async def test_profile_and_media(sim: LineSimulator, http: httpx.AsyncClient) -> None:
    acct = sim.accounts[TOKEN]
    sim.user(acct, USER, "Ana Lima", picture_url="https://profile.line-scdn.net/abc")
    profile = await adapter.fetch_profile(CONFIG, USER, http)
    assert (profile.name, profile.picture_url) == ("Ana Lima", "https://profile.line-scdn.net/abc")
    group = await adapter.fetch_profile(CONFIG, "Ca56f94637cc4347f90a25382909b24b9", http)
    assert group.name == "Group a56f94"
    acct.transcoding_polls = 1
    msg = sim.customer_message(acct, acct.users[USER], {"video": {}})
    with pytest.raises(MediaUnavailable) as preparing:
        await adapter.locate_media(CONFIG, msg["id"], None, http)
    assert preparing.value.retriable
    where = await adapter.locate_media(CONFIG, msg["id"], None, http)
    resp = await http.get(where.url, headers=where.headers)
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
    with pytest.raises(MediaUnavailable) as unknown:
        await adapter.locate_media(CONFIG, "999", None, http)
    assert not unknown.value.retriable


def test_buttons_become_quick_replies() -> None:
    from tidings.channels.interactive import Choice, Choices, Refused

    kind, body, extra = adapter.interactive(
        Choices(
            type="buttons",
            body="Pick a slot",
            buttons=(Choice("am", "Morning"), Choice("pm", "Afternoon")),
        )
    )
    assert (kind, body) == (MessageKind.INTERACTIVE, "Pick a slot")
    assert [i["action"] for i in extra["line_quick_reply"]] == [
        {"type": "postback", "label": "Morning", "data": "am", "displayText": "Morning"},
        {"type": "postback", "label": "Afternoon", "data": "pm", "displayText": "Afternoon"},
    ]
    many = tuple(Choice(str(i), f"Option {i}") for i in range(14))
    with pytest.raises(Refused):
        adapter.interactive(Choices(type="buttons", body="x", buttons=many))
    with pytest.raises(Refused):
        adapter.interactive(Choices(type="buttons", body="x", buttons=(Choice("a", "x" * 21),)))
    with pytest.raises(Refused):
        adapter.interactive(Choices(type="list", body="x"))
