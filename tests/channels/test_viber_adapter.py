"""The Viber adapter over Viber's own callback shapes (tests/fixtures/viber/, from the examples
in Viber's REST Bot API reference and its SDKs' tests): signatures, dedupe keys and lanes, every
event type, the 64-bit message_token, and the send error table."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from tidings.channels.base import Permanent, Retriable, WebhookRequest
from tidings.channels.viber import ViberAdapter, ViberConfig, errors, webhook
from tidings.channels.viber.client import keyboard
from tidings.domain.enums import ConsentStatus, InboundLane, MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import Ignored, InboundMessage, ReceiptWatermark, StatusUpdate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "viber"
ADAPTER = ViberAdapter()


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def request(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {} if signature is None else {"x-viber-content-signature": signature}
    return WebhookRequest("POST", "https://x/webhooks/viber/1", headers, {}, body)


def test_signature_vectors() -> None:
    # Published in Viber's Python, Node and Java SDK tests.
    token = "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3"
    body = b'{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}'
    expected = "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef"
    assert webhook.signature(token, body) == expected
    webhook.verify(token, request(body, expected))
    webhook.verify(token, request(body, expected.upper()))
    # Computed over the raw bytes of a real-shaped message with Cyrillic and an emoji.
    body2 = fixture("message_text_unicode")
    token2 = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
    sig2 = "8ec7fbc39ad26150fba12dee96e18d6e3f53f5653fe1f1cbd5126813b63f3f4b"
    webhook.verify(token2, request(body2, sig2))
    for bad in (None, "", "0" * 64, sig2[:-2], expected):
        with pytest.raises(SignatureError):
            webhook.verify(token2, request(body2, bad))


def test_split_keys_lanes_and_the_probe() -> None:
    assert ADAPTER.split({}, request(fixture("webhook"), None)) == []
    [msg] = webhook.split(fixture("message_text_unicode"))
    assert msg.key == "message:5466297578174182639"
    assert msg.lane == InboundLane.CUSTOMER
    [seen] = webhook.split(fixture("seen"))
    assert seen.key == "seen:5466297467809468529:3SQNc4FPUQmysaM/AQEhXg=="
    assert seen.lane == InboundLane.STATUS
    [delivered] = webhook.split(fixture("delivered"))
    # Same token as the message above but another event: a different key.
    assert delivered.key != msg.key
    assert delivered.lane == InboundLane.STATUS
    with pytest.raises(ValueError):
        webhook.split(b"{not json")
    with pytest.raises(PayloadError):
        webhook.split(b'{"no":"event"}')
    with pytest.raises(PayloadError):
        webhook.split(b"[1,2]")


def test_big_message_token_is_kept_exactly() -> None:
    [event] = webhook.parse(fixture("message_text_unicode"))
    assert isinstance(event, InboundMessage)
    assert event.provider_message_id == "5466297578174182639"
    assert int(event.provider_message_id) > 2**53
    assert str(int(float(5466297578174182639))) != event.provider_message_id
    assert event.text == "Привіт 🍎"
    assert event.sender.address == "3SQNc4FPUQmysaM/AQEhXg=="
    assert event.sender.name == "John McClane"
    # A float token is refused rather than rounded.
    assert webhook.token_of(5.466297578174183e18) is None
    assert webhook.token_of(True) is None


def one(name: str) -> InboundMessage:
    [event] = webhook.parse(fixture(name))
    assert isinstance(event, InboundMessage), event
    return event


def test_every_message_type() -> None:
    text = one("message_text")
    assert (text.kind, text.text) == (MessageKind.TEXT, "a message to the service")
    assert text.extra["tracking_data"] == "ticket:8812"
    assert text.consent == ConsentStatus.OPTED_IN

    pic = one("message_picture")
    assert pic.kind == MessageKind.MEDIA
    [att] = pic.attachments
    assert (att.kind, att.filename, att.size, att.caption) == (
        "image",
        "IMG_2024.jpg",
        182342,
        "photo caption",
    )
    assert att.url is not None and att.url.endswith("/cd34.jpg")

    video = one("message_video")
    assert video.attachments[0].kind == "video"
    assert video.extra["duration"] == 12

    file = one("message_file")
    # `size` (Python SDK) as well as `file_size` (reference).
    assert (file.attachments[0].kind, file.attachments[0].size) == ("document", 2138)
    assert file.attachments[0].filename == "contract.pdf"

    sticker = one("message_sticker")
    assert sticker.attachments[0].kind == "sticker"
    assert sticker.extra["sticker_id"] == 46105

    contact = one("message_contact")
    assert contact.kind == MessageKind.CONTACT_CARD
    assert contact.extra["contact"]["name"] == "Itamar"
    assert contact.extra["contact"]["phone_number"] == "+972511123123"
    # Someone else's card is not the sender's number.
    assert contact.sender.phone is None

    url = one("message_url")
    assert (url.kind, url.text) == (MessageKind.TEXT, "https://example.com/article?id=7")

    loc = one("message_location")
    assert loc.kind == MessageKind.LOCATION
    assert (loc.extra["latitude"], loc.extra["longitude"]) == (50.76891, 6.11499)

    rich = one("message_rich_media")
    assert rich.text == "Our menu"

    unknown = one("message_unknown")
    assert unknown.kind == MessageKind.UNSUPPORTED
    assert unknown.extra["type"] == "hologram"


def test_subscription_events_are_consent() -> None:
    sub = one("subscribed")
    assert (sub.kind, sub.consent) == (MessageKind.SYSTEM, ConsentStatus.OPTED_IN)
    assert sub.sender.name == "John McClane"
    unsub = one("unsubscribed")
    assert (unsub.kind, unsub.consent) == (MessageKind.SYSTEM, ConsentStatus.OPTED_OUT)
    assert unsub.sender.address == "3SQNc4FPUQmysaM/AQEhXg=="
    started = one("conversation_started")
    assert started.kind == MessageKind.SYSTEM
    assert started.consent is None  # opening the chat is not subscribing
    assert started.extra == {
        "event": "conversation_started",
        "context": "utm=campaign7",
        "subscribed": False,
    }


def test_receipts() -> None:
    [delivered] = webhook.parse(fixture("delivered"))
    assert delivered == StatusUpdate(
        "5466297578174182639",
        MessageStatus.DELIVERED,
        delivered.occurred_at,  # type: ignore[union-attr]
        recipient="3SQNc4FPUQmysaM/AQEhXg==",
    )
    seen, mark = webhook.parse(fixture("seen"))
    assert isinstance(seen, StatusUpdate) and seen.status == MessageStatus.READ
    assert isinstance(mark, ReceiptWatermark) and mark.recipient == "3SQNc4FPUQmysaM/AQEhXg=="
    [failed] = webhook.parse(fixture("failed"))
    assert isinstance(failed, StatusUpdate) and failed.status == MessageStatus.FAILED
    assert failed.error_reason is not None and "failure description" in failed.error_reason
    [probe] = webhook.parse(fixture("webhook"))
    assert isinstance(probe, Ignored)


def test_error_table() -> None:
    six = errors.outcome(200, {"status": 6, "status_message": "Not subscribed"})
    assert isinstance(six, Permanent)
    assert six.code == "6" and six.recipient_opted_out
    assert "Not subscribed" in six.reason
    limited = errors.outcome(200, {"status": 12, "status_message": "Too many requests"})
    assert isinstance(limited, Retriable)
    token = errors.outcome(200, {"status": 2, "status_message": "invalidAuthToken"})
    assert isinstance(token, Permanent) and "auth token" in token.reason
    assert isinstance(errors.outcome(503, None), Retriable)
    odd = errors.outcome(200, {"status": 999, "status_message": "strange"})
    assert isinstance(odd, Permanent) and "strange" in odd.reason


def test_keyboard_and_config() -> None:
    kb = keyboard([{"text": "Orders", "data": "menu:orders"}, {"text": "Site", "url": "https://a"}])
    assert kb is not None
    assert [(b["ActionType"], b["ActionBody"]) for b in kb["Buttons"]] == [
        ("reply", "menu:orders"),
        ("open-url", "https://a"),
    ]
    assert keyboard([]) is None
    config = ViberConfig(auth_token="abc-def-ghi-123")
    assert config.api_base_url == "https://chatapi.viber.com"
    with pytest.raises(ValueError):
        ViberConfig(auth_token="abc-def-ghi-123", sender_name="x" * 29)


def test_signed_fixture_through_the_adapter() -> None:
    body = fixture("subscribed")
    token = "a-token-for-tests-0001"
    sig = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    ADAPTER.verify({"auth_token": token}, request(body, sig))
    [raw] = ADAPTER.split({"auth_token": token}, request(body, sig))
    assert raw.key == "subscribed:4912661846655238145"
