"""Twilio webhook pieces that need no server: X-Twilio-Signature against Twilio's
vectors (docs/channels/twilio.md#request-signature; the same as twilio-python's tests), and
parsing inbound SMS/MMS and status callbacks into canonical events."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from tidings.channels.base import WebhookRequest
from tidings.channels.twilio import errors, webhook
from tidings.domain.enums import MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import Ignored, InboundMessage, StatusUpdate

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
    ("Caller", "+14158675309"),
]


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        (URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", PARAMS, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        (
            URL,
            [
                ("Sid", "CA123"),
                ("SidAccount", "AC123"),
                ("Digits", "5678"),
                ("Digits", "1234"),
                ("Digits", "1234"),
            ],
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        ),
        (
            URL,
            [(k, "+12349013030" if k in ("From", "Caller") else v) for k, v in PARAMS],
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
        ),
    ],
)
def test_signature_vectors(url: str, params: list[tuple[str, str]], expected: str) -> None:
    assert webhook.compute_signature(TOKEN, url, params) == expected
    assert webhook.is_valid(TOKEN, url, params, expected)
    assert not webhook.is_valid("54321", url, params, expected)


def test_port_variants_are_accepted_either_way() -> None:
    # Signed with :443, received without it (and the reverse).
    assert webhook.is_valid(TOKEN, URL, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")
    assert webhook.is_valid(
        TOKEN,
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        PARAMS,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
    )
    assert not webhook.is_valid(TOKEN, URL, PARAMS[:-1], "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_json_body_signature_vector() -> None:
    body = b'{"property": "value", "boolean": true}'
    sha = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{URL}&bodySHA256={sha}"
    assert webhook.is_valid(TOKEN, url, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body)
    assert not webhook.is_valid(TOKEN, url, [], "a9nBmqA0ju/hNViExpshrM61xv4=", body + b" ")


def _request(params: list[tuple[str, str]], token: str = TOKEN, url: str = URL) -> WebhookRequest:
    body = urlencode(params).encode()
    sig = webhook.compute_signature(token, url, params)
    return WebhookRequest("POST", url, {"x-twilio-signature": sig}, {}, body)


def test_verify_rejects_missing_or_wrong_signature() -> None:
    params = [("MessageSid", "SM1"), ("Body", "hi")]
    webhook.verify(TOKEN, _request(params))
    with pytest.raises(SignatureError):
        webhook.verify(TOKEN, _request(params, token="other"))
    unsigned = WebhookRequest("POST", URL, {}, {}, urlencode(params).encode())
    with pytest.raises(SignatureError):
        webhook.verify(TOKEN, unsigned)


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_inbound_mms_parses_to_one_message_with_media() -> None:
    params = [
        ("MessageSid", "MM" + "a" * 32),
        ("SmsSid", "MM" + "a" * 32),
        ("AccountSid", "AC" + "b" * 32),
        ("From", "+14155550123"),
        ("To", "+14155550100"),
        ("Body", "look"),
        ("NumMedia", "2"),
        ("MediaUrl0", "https://api.twilio.com/media/1"),
        ("MediaContentType0", "image/jpeg"),
        ("MediaUrl1", "https://api.twilio.com/media/2"),
        ("MediaContentType1", "application/pdf"),
        ("SmsStatus", "received"),
    ]
    raws = webhook.split(_request(params), NOW)
    assert [r.key for r in raws] == ["msg:MM" + "a" * 32]
    (event,) = webhook.parse(raws[0].payload)
    assert isinstance(event, InboundMessage)
    assert event.sender.address == event.sender.phone == "+14155550123"
    assert (event.kind, event.text, event.occurred_at) == (MessageKind.MEDIA, "look", NOW)
    assert [(a.kind, a.mime_type, a.url) for a in event.attachments] == [
        ("image", "image/jpeg", "https://api.twilio.com/media/1"),
        ("file", "application/pdf", "https://api.twilio.com/media/2"),
    ]


def test_status_callbacks() -> None:
    sid = "SM" + "c" * 32
    delivered = webhook.split(_request([("MessageSid", sid), ("MessageStatus", "delivered")]), NOW)
    assert delivered[0].key == f"status:{sid}:delivered"
    (ev,) = webhook.parse(delivered[0].payload)
    assert isinstance(ev, StatusUpdate) and ev.status == MessageStatus.DELIVERED
    failed = webhook.split(
        _request([("MessageSid", sid), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")]),
        NOW,
    )
    (ev,) = webhook.parse(failed[0].payload)
    assert isinstance(ev, StatusUpdate)
    assert (ev.status, ev.error_code) == (MessageStatus.FAILED, "30003")
    assert (
        ev.error_reason
        == "The recipient's phone is unreachable (switched off or out of coverage). (Twilio 30003)"
    )
    queued = webhook.split(_request([("MessageSid", sid), ("MessageStatus", "sending")]), NOW)
    assert isinstance(webhook.parse(queued[0].payload)[0], Ignored)
    with pytest.raises(PayloadError):
        webhook.split(_request([("Body", "no sid")]), NOW)


def test_error_outcomes() -> None:
    opted = errors.outcome(21610, 400, "Attempt to send to unsubscribed recipient", None)
    assert opted.__class__.__name__ == "Permanent" and opted.recipient_opted_out  # type: ignore[union-attr]
    limited = errors.outcome(20429, 429, "Too Many Requests", 7.0)
    assert limited.__class__.__name__ == "Retriable" and limited.retry_after == 7.0  # type: ignore[union-attr]
    assert errors.outcome(None, 503, None, None).__class__.__name__ == "Retriable"
    unknown = errors.outcome(99999, 400, "Weird", None)
    assert unknown.reason == "Twilio error 99999: Weird"
