"""WhatsApp adapter: handshake, signature, split, parse, error mapping and send.

Webhook fixtures in tests/fixtures/whatsapp/ follow the shapes in
docs/channels/whatsapp.md#inbound-payloads; sends go to the WhatsApp simulator in-process over
httpx.ASGITransport.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tidings.channels.base import (
    ChannelAdapter,
    OutboundAttachment,
    OutboundMessage,
    Permanent,
    Retriable,
    Sent,
    WebhookRequest,
)
from tidings.channels.whatsapp import WhatsAppAdapter, WhatsAppConfig
from tidings.channels.whatsapp.errors import failure_reason, outcome_for
from tidings.domain.enums import MessageKind, MessageStatus
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.events import (
    Ignored,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    StatusUpdate,
    TemplateStatus,
)
from tidings.simulators.whatsapp import AccountIn, FailIn, InboundSpec, WhatsAppSimulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "whatsapp"
OURS = "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA"

adapter = WhatsAppAdapter()
config = WhatsAppConfig(
    phone_number_id="106540352242922",
    access_token="EAAG-test-token",
    app_secret="app-secret-1",
    verify_token="verify-me",
)


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def signed(body: bytes, key: str = "app-secret-1", **headers: str) -> WebhookRequest:
    sig = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    all_headers = {"content-type": "application/json", "x-hub-signature-256": f"sha256={sig}"}
    all_headers.update(headers)
    return WebhookRequest("POST", "https://t.example/webhooks/whatsapp/1", all_headers, {}, body)


def parse_one(name: str) -> Any:
    """Split a fixture (must yield exactly one piece) and parse it to exactly one event."""
    pieces = adapter.split(config, signed(fixture(name)))
    assert len(pieces) == 1
    events = adapter.parse(config, pieces[0].payload)
    assert len(events) == 1
    return events[0]


def test_adapter_satisfies_the_protocol() -> None:
    typed: ChannelAdapter = adapter
    assert typed.kind == "whatsapp"
    assert typed.capabilities.max_webhook_bytes == 3 * 1024 * 1024
    assert typed.capabilities.text_max_length == 4096
    assert typed.capabilities.service_window_hours == 24
    assert typed.capabilities.receipts == ("sent", "delivered", "read")
    assert typed.capabilities.media_types["image/jpeg"] == 5 * 1024 * 1024
    assert WhatsAppAdapter.secret_fields == {"access_token", "app_secret", "verify_token"}
    assert WhatsAppAdapter.config_model is WhatsAppConfig


def test_config_defaults_and_validation() -> None:
    assert config.api_base_url == "https://graph.facebook.com"
    assert config.api_version == "v25.0"
    trailing = config.model_copy(update={"api_base_url": "http://sim/"})
    assert WhatsAppConfig.model_validate(trailing.model_dump()).api_base_url == "http://sim"
    with pytest.raises(ValueError):
        WhatsAppConfig.model_validate({**config.model_dump(), "api_version": "25"})
    with pytest.raises(ValueError):
        WhatsAppConfig.model_validate({**config.model_dump(), "access_token": ""})


# --- handshake -------------------------------------------------------------------------------


def handshake_request(**query: str) -> WebhookRequest:
    return WebhookRequest("GET", "https://t.example/webhooks/whatsapp/1", {}, query, b"")


def test_handshake_echoes_the_challenge() -> None:
    reply = adapter.handshake(
        config,
        handshake_request(
            **{
                "hub.mode": "subscribe",
                "hub.challenge": "1158201444",
                "hub.verify_token": "verify-me",
            }
        ),
    )
    assert (reply.status, reply.body) == (200, b"1158201444")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "verify-me"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "verify-mé"},
        {},
    ],
)
def test_handshake_refuses_wrong_token_or_mode(query: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        adapter.handshake(config, handshake_request(**query))


def test_handshake_without_challenge_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        adapter.handshake(
            config, handshake_request(**{"hub.mode": "subscribe", "hub.verify_token": "verify-me"})
        )


# --- signature -------------------------------------------------------------------------------


def test_signature_good() -> None:
    adapter.verify(config, signed(fixture("text")))


def test_signature_accepts_uppercase_hex() -> None:
    body = fixture("text")
    sig = hmac.new(b"app-secret-1", body, hashlib.sha256).hexdigest().upper()
    adapter.verify(config, signed(body, **{"x-hub-signature-256": f"sha256={sig}"}))


def test_signature_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        adapter.verify(config, signed(fixture("text"), key="other-secret"))


def test_signature_tampered_body() -> None:
    request = signed(fixture("text"))
    tampered = request.body.replace(b"another color", b"another colour")
    assert tampered != request.body
    with pytest.raises(SignatureError):
        adapter.verify(config, WebhookRequest("POST", request.url, request.headers, {}, tampered))


def test_signature_missing() -> None:
    request = WebhookRequest("POST", "u", {"content-type": "application/json"}, {}, b"{}")
    with pytest.raises(SignatureError, match="no X-Hub-Signature-256"):
        adapter.verify(config, request)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha1=" + "0" * 40,
        "sha256=",
        "sha256=zz" + "0" * 62,
        "sha256=" + "0" * 63,
        "sha256=é" * 9,
    ],
)
def test_signature_malformed(header: str) -> None:
    with pytest.raises(SignatureError):
        adapter.verify(config, signed(b"{}", **{"x-hub-signature-256": header}))


def test_signature_is_checked_on_raw_bytes_not_reserialised_json() -> None:
    # Meta signs its ASCII-escaped serialisation with "\/"; re-serialising would change it.
    body = b'{"object":"whatsapp_business_account","entry":[],"u":"https:\\/\\/x\\u00e4"}'
    adapter.verify(config, signed(body))
    reserialised = orjson.dumps(orjson.loads(body))
    assert reserialised != body
    with pytest.raises(SignatureError):
        adapter.verify(
            config,
            WebhookRequest("POST", "u", signed(body).headers, {}, reserialised),
        )


# --- split -----------------------------------------------------------------------------------


BATCH_KEYS = [
    "msg:wamid.BATCH-A-1",
    "msg:wamid.BATCH-B-1",
    "msg:wamid.BATCH-A-2",
    "status:wamid.OUT-1:delivered",
    "status:wamid.OUT-1:read",
    "msg:wamid.BATCH-B-2",
    "status:wamid.OUT-2:sent",
    "status:wamid.OUT-3:failed:131026",
]


def test_split_batched_payload_yields_every_event_across_entries() -> None:
    pieces = adapter.split(config, signed(fixture("batch")))
    assert [p.key for p in pieces] == BATCH_KEYS
    assert pieces[0].occurred_at == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    # Each piece carries only its own user's contact, not the whole batch's.
    first = orjson.loads(pieces[1].payload)
    assert first["contacts"] == [{"profile": {"name": "Alex Kim"}, "wa_id": "447700900123"}]
    assert first["metadata"]["phone_number_id"] == "106540352242922"
    assert first["waba_id"] == "102290129340398"
    assert orjson.loads(pieces[5].payload)["waba_id"] == "102290129340399"


def test_split_keys_are_stable_across_retries() -> None:
    first = adapter.split(config, signed(fixture("batch")))
    second = adapter.split(config, signed(fixture("batch")))
    assert [p.key for p in first] == [p.key for p in second]
    assert [p.payload for p in first] == [p.payload for p in second]
    # Same content serialised differently (Meta's escaped form) still gives the same keys.
    escaped = orjson.dumps(orjson.loads(fixture("batch")))
    assert [p.key for p in adapter.split(config, signed(escaped))] == BATCH_KEYS


def test_split_pieces_parse_to_the_expected_events() -> None:
    pieces = adapter.split(config, signed(fixture("batch")))
    events = [e for p in pieces for e in adapter.parse(config, p.payload)]
    inbound = [e for e in events if isinstance(e, InboundMessage)]
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert len(inbound) == 4
    assert len(statuses) == 4
    assert [m.sender.name for m in inbound] == [
        "Sheena Nelson",
        "Alex Kim",
        "Sheena Nelson",
        "Alex Kim",
    ]
    assert [s.status for s in statuses] == [
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.SENT,
        MessageStatus.FAILED,
    ]


def test_split_statuses_batched_in_one_change_yield_one_event_each() -> None:
    # A campaign's receipts as Meta may batch them: several messages' statuses in one
    # value.statuses[] (docs/channels/whatsapp.md, "Batched webhooks").
    pieces = adapter.split(config, signed(fixture("status_batch")))
    assert [p.key.split(":", 2)[2] for p in pieces] == [
        "sent",
        "sent",
        "delivered",
        "sent",
        "read",
        "failed:131049",
    ]
    assert len({p.key for p in pieces}) == 6
    events = [e for p in pieces for e in adapter.parse(config, p.payload)]
    assert all(isinstance(e, StatusUpdate) for e in events)
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert [(s.our_message_ref, s.status) for s in statuses] == [
        ("5001", MessageStatus.SENT),
        ("5002", MessageStatus.SENT),
        ("5001", MessageStatus.DELIVERED),
        ("5003", MessageStatus.SENT),
        ("5002", MessageStatus.READ),
        ("5004", MessageStatus.FAILED),
    ]
    assert statuses[-1].error_code == "131049"


def test_split_failed_status_key_includes_the_error_code() -> None:
    body = orjson.loads(fixture("status_failed"))
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    key_a = adapter.split(config, signed(orjson.dumps(body)))[0].key
    status["errors"][0]["code"] = 131026
    key_b = adapter.split(config, signed(orjson.dumps(body)))[0].key
    assert key_a.endswith(":failed:131047")
    assert key_b.endswith(":failed:131026")
    del status["errors"]
    assert adapter.split(config, signed(orjson.dumps(body)))[0].key.endswith(":failed:none")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"object":"page","entry":[]}',
        b'{"object":"whatsapp_business_account"}',
        b'{"object":"whatsapp_business_account","entry":{}}',
    ],
)
def test_split_rejects_what_is_not_a_whatsapp_webhook(body: bytes) -> None:
    with pytest.raises(PayloadError):
        adapter.split(config, signed(body))


def test_split_keeps_malformed_parts_as_failing_pieces() -> None:
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "1", "changes": ["junk", {"field": "messages", "value": {"messages": [7]}}]}
            ],
        }
    )
    pieces = adapter.split(config, signed(body))
    assert len(pieces) == 2
    assert all(p.key.startswith("bad:") for p in pieces)
    for piece in pieces:
        with pytest.raises(PayloadError):
            adapter.parse(config, piece.payload)


def test_split_other_fields_and_errors_become_one_piece_each() -> None:
    [template] = adapter.split(config, signed(fixture("template_status")))
    assert template.key.startswith("change:message_template_status_update:")
    assert template.occurred_at == datetime.fromtimestamp(1751247548, tz=UTC)
    [error] = adapter.split(config, signed(fixture("value_errors")))
    assert error.key.startswith("error:")
    assert adapter.split(config, signed(fixture("value_errors")))[0].key == error.key


def test_split_a_thousand_message_batch_is_linear() -> None:
    contacts = [{"profile": {"name": f"u{i}"}, "wa_id": f"1555000{i:04d}"} for i in range(1000)]
    messages = [
        {
            "from": f"1555000{i:04d}",
            "id": f"wamid.{i}",
            "timestamp": "1749416383",
            "type": "text",
            "text": {"body": "x"},
        }
        for i in range(1000)
    ]
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {"field": "messages", "value": {"contacts": contacts, "messages": messages}}
                    ],
                }
            ],
        }
    )
    pieces = adapter.split(config, signed(body))
    assert len({p.key for p in pieces}) == 1000
    assert max(len(p.payload) for p in pieces) < 400
    last = adapter.parse(config, pieces[-1].payload)[0]
    assert isinstance(last, InboundMessage)
    assert last.sender.name == "u999"


# --- parse: messages -------------------------------------------------------------------------


def test_parse_text() -> None:
    event = parse_one("text")
    assert isinstance(event, InboundMessage)
    assert (
        event.provider_message_id
        == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    )
    assert event.kind is MessageKind.TEXT
    assert event.text == "Does it come in another color?"
    assert event.sender.address == "16505551234"
    assert event.sender.phone == "+16505551234"
    assert event.sender.name == "Sheena Nelson"
    assert event.sender.aliases == ("US.13491208655302741918",)
    assert event.occurred_at == datetime.fromtimestamp(1749416383, tz=UTC)
    assert event.reply_to_provider_id is None
    assert event.echo is False


def test_parse_reply_and_forwarded_context() -> None:
    reply = parse_one("text_reply")
    assert reply.reply_to_provider_id == OURS
    forwarded = parse_one("text_forwarded")
    assert forwarded.reply_to_provider_id is None
    assert forwarded.extra == {"forwarded": True}


@pytest.mark.parametrize(
    ("name", "kind", "mime", "caption", "filename"),
    [
        ("image", "image", "image/jpeg", "This is the damaged box", None),
        ("audio", "audio", "audio/ogg; codecs=opus", None, None),
        ("video", "video", "video/mp4", "unboxing", None),
        ("document", "document", "application/pdf", "Invoice attached", "invoice-4471.pdf"),
        ("sticker", "sticker", "image/webp", None, None),
    ],
)
def test_parse_media(
    name: str, kind: str, mime: str, caption: str | None, filename: str | None
) -> None:
    event = parse_one(name)
    assert event.kind is MessageKind.MEDIA
    assert event.text == caption
    [att] = event.attachments
    assert (att.kind, att.mime_type, att.caption, att.filename) == (kind, mime, caption, filename)
    assert att.provider_media_id and att.provider_media_id.isdigit()
    assert "sha256" in event.extra


def test_parse_media_details() -> None:
    assert parse_one("audio").extra["voice"] is True
    image = parse_one("image").attachments[0]
    assert image.url is not None and image.url.startswith("https://lookaside.fbsbx.com/")


def test_parse_location() -> None:
    event = parse_one("location")
    assert event.kind is MessageKind.LOCATION
    assert event.text == "Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025"
    assert event.extra["latitude"] == pytest.approx(37.4611978)
    assert event.extra["longitude"] == pytest.approx(-122.2164385)
    assert event.extra["url"] == "https://maps.google.com/?cid=1421"


def test_parse_contacts() -> None:
    event = parse_one("contacts")
    assert event.kind is MessageKind.CONTACT_CARD
    assert event.text == "Chandler Bing"
    assert event.extra["contacts"][0]["phones"][0]["wa_id"] == "15555555555"


def test_parse_interactive_replies() -> None:
    button = parse_one("interactive_button_reply")
    assert button.kind is MessageKind.INTERACTIVE
    assert button.text == "Change"
    assert button.extra == {"type": "button_reply", "id": "change-button", "title": "Change"}
    assert button.reply_to_provider_id == OURS
    listed = parse_one("interactive_list_reply")
    assert listed.text == "Priority Mail Express"
    assert listed.extra["id"] == "priority_express"
    assert listed.extra["description"] == "Next Day to 2 Days"


def test_parse_template_quick_reply_button() -> None:
    event = parse_one("button")
    assert event.kind is MessageKind.INTERACTIVE
    assert event.text == "Track my order"
    assert event.extra == {"type": "button", "payload": "TRACK_42"}
    assert event.reply_to_provider_id == OURS


def test_parse_reaction_and_its_removal() -> None:
    added = parse_one("reaction")
    assert added.kind is MessageKind.REACTION
    assert added.text == "\U0001f62e"
    assert added.target_provider_id == OURS
    removed = parse_one("reaction_removed")
    assert removed.kind is MessageKind.REACTION
    assert removed.text == ""
    assert removed.target_provider_id == OURS


def test_parse_system() -> None:
    event = parse_one("system")
    assert event.kind is MessageKind.SYSTEM
    assert event.text == "User A changed from 16505551234 to 16505559999"
    assert event.extra == {"type": "user_changed_number", "new_wa_id": "16505559999"}
    # The customer moves from the old number (and the BSUID beside it) to the new number.
    assert event.moved_from == ("16505551234", "US.13491208655302741918")
    assert (event.sender.address, event.sender.phone) == ("16505559999", "+16505559999")
    assert event.sender.phone_verified


def test_parse_user_changed_user_id_without_from_or_contacts() -> None:
    event = parse_one("system_user_changed_user_id")
    assert isinstance(event, InboundMessage)
    assert event.kind is MessageKind.SYSTEM
    assert event.text is not None and event.text.startswith("User Sheena Nelson changed from")
    assert event.moved_from == ("US.13491208655302741918",)
    assert event.sender.address == "US.20873365410287759341"
    assert event.sender.phone is None and not event.sender.phone_verified
    assert event.extra == {"type": "user_changed_user_id", "new_user_id": event.sender.address}


def test_parse_user_changed_number_2026_shape() -> None:
    event = parse_one("system_user_changed_number")
    assert event.moved_from == ("16505551234", "US.13491208655302741918")
    assert event.sender.address == "12195555358"
    assert event.sender.aliases == ("US.20873365410287759341",)
    assert event.sender.phone == "+12195555358" and event.sender.phone_verified


def test_parse_system_naming_no_user_is_ignored_not_failed() -> None:
    doc = orjson.loads(fixture("system_user_changed_user_id"))
    system = doc["entry"][0]["changes"][0]["value"]["messages"][0]["system"]
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["system"] = {
        "body": system["body"],
        "type": "customer_identity_changed",
    }
    pieces = adapter.split(config, signed(orjson.dumps(doc)))
    [event] = adapter.parse(config, pieces[0].payload)
    assert isinstance(event, Ignored)


def test_parse_unsupported_names_the_inner_type() -> None:
    event = parse_one("unsupported")
    assert event.kind is MessageKind.UNSUPPORTED
    assert event.text is None
    assert event.extra["type"] == "poll"
    assert event.extra["error_code"] == 131051
    assert "does not support" in event.extra["error_reason"]


def test_parse_unknown_type_never_raises() -> None:
    event = parse_one("unknown_type")
    assert event.kind is MessageKind.UNSUPPORTED
    assert event.extra == {"type": "hologram", "hologram": {"shape": "cube"}}


def test_parse_order() -> None:
    event = parse_one("order")
    assert event.kind is MessageKind.TEXT
    assert event.text is not None
    assert event.text.startswith("Please deliver before noon\nOrder of 2 item(s)")
    assert event.extra["type"] == "order"


def test_parse_referral() -> None:
    event = parse_one("referral")
    assert event.text == "hi"
    assert event.extra["referral"]["source_type"] == "ad"


def test_parse_bsuid_only_sender() -> None:
    event = parse_one("bsuid_only")
    assert event.sender.address == "US.13491208655302741918"
    assert event.sender.phone is None
    assert event.sender.name == "Sheena"
    assert event.sender.aliases == ()


def test_parse_echo_is_marked_as_echo() -> None:
    event = parse_one("echo")
    assert isinstance(event, InboundMessage)
    assert event.echo is True
    assert event.sender.address == "16505551234"
    assert event.text == "Typed on the phone app"


def test_parse_refuses_a_message_without_sender_or_timestamp() -> None:
    for drop in ("from", "timestamp"):
        body = orjson.loads(fixture("text"))
        value = body["entry"][0]["changes"][0]["value"]
        del value["messages"][0][drop]
        value["contacts"] = []
        [piece] = adapter.split(config, signed(orjson.dumps(body)))
        with pytest.raises(PayloadError):
            adapter.parse(config, piece.payload)


# --- parse: statuses, errors, other fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_sent", MessageStatus.SENT),
        ("status_delivered", MessageStatus.DELIVERED),
        ("status_read", MessageStatus.READ),
        ("status_played", MessageStatus.READ),
    ],
)
def test_parse_status(name: str, status: MessageStatus) -> None:
    event = parse_one(name)
    assert isinstance(event, StatusUpdate)
    assert event.provider_message_id == OURS
    assert event.status is status
    assert event.recipient == "16505551234"
    assert event.error_code is None
    expected_ref = None if name == "status_played" else "4242"
    assert event.our_message_ref == expected_ref


def test_parse_failed_status_explains_in_plain_words() -> None:
    event = parse_one("status_failed")
    assert isinstance(event, StatusUpdate)
    assert event.status is MessageStatus.FAILED
    assert event.error_code == "131047"
    assert event.our_message_ref == "4243"
    assert event.error_reason is not None
    assert event.error_reason.startswith("The 24-hour customer service window has closed")
    assert "Re-engagement message" in event.error_reason


def test_parse_unknown_status_is_ignored() -> None:
    body = fixture("status_sent").replace(b'"sent"', b'"deleted"')
    [piece] = adapter.split(config, signed(body))
    [event] = adapter.parse(config, piece.payload)
    assert isinstance(event, Ignored)


def test_parse_value_errors_are_ignored_and_template_updates_parsed() -> None:
    error = parse_one("value_errors")
    assert isinstance(error, Ignored)
    assert "106540352242922" in error.reason
    assert "100 MB" in error.reason
    template = parse_one("template_status")
    assert template == TemplateStatus(
        name="abandoned_cart",
        language="en",
        status="REJECTED",
        provider_template_id="1689556908129835",
        category="MARKETING",
        reason="Variables are not properly formatted.",
    )


def test_parse_revoke_and_edit_of_coexistence_numbers() -> None:
    revoked = parse_one("revoke")
    assert isinstance(revoked, MessageDeleted)
    assert revoked.provider_message_id == "wamid.ORIGINAL1"
    edited = parse_one("edit")
    assert isinstance(edited, MessageEdited)
    assert (edited.provider_message_id, edited.text) == ("wamid.ORIGINAL1", "Blue, please")


# --- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "retriable", "retry_after"),
    [
        (130429, True, 1.0),
        (131056, True, 6.0),
        (4, True, 60.0),
        (80007, True, 60.0),
        (131016, True, 30.0),
        (131000, True, 30.0),
        (131057, True, 60.0),
        (3, True, 30.0),
        (131047, False, None),
        (131026, False, None),
        (100, False, None),
        (131008, False, None),
        (131009, False, None),
        (131051, False, None),
        (132000, False, None),
        (132001, False, None),
        (190, False, None),
        (0, False, None),
        (10, False, None),
        (250, False, None),
        (368, False, None),
        (131031, False, None),
        (131050, False, None),
        (131030, False, None),
        (131049, False, None),
    ],
)
def test_error_mapping(code: int, retriable: bool, retry_after: float | None) -> None:
    outcome = outcome_for(code, http_status=400, title="t", details="d")
    assert isinstance(outcome, Retriable if retriable else Permanent)
    assert outcome.code == str(code)
    assert outcome.reason.endswith(".")
    assert "(#" not in outcome.reason
    if isinstance(outcome, Retriable):
        assert outcome.retry_after == retry_after


def test_error_sentences_an_agent_can_act_on() -> None:
    assert outcome_for(131047).reason == (
        "The 24-hour customer service window has closed; send an approved template instead."
    )
    assert outcome_for(190).reason == (
        "The WhatsApp access token has expired or is invalid; reconnect the channel."
    )
    assert outcome_for(131026).reason.startswith(
        "The message could not be delivered: the number may not be on WhatsApp"
    )
    # Codes whose meaning is in the details keep them.
    invalid = outcome_for(100, details="Param text['body'] is too long")
    assert (
        invalid.reason
        == "WhatsApp rejected the message as invalid: Param text['body'] is too long."
    )


def test_error_mapping_header_wins_and_unknown_codes() -> None:
    assert outcome_for(130429, retry_after=12.0) == Retriable(
        outcome_for(130429).reason, retry_after=12.0, code="130429"
    )
    unknown = outcome_for(999999, http_status=400, title="(#999999) Strange", details="why")
    assert isinstance(unknown, Permanent)
    assert unknown.reason == "WhatsApp refused the message: (#999999) Strange — why."
    assert isinstance(outcome_for(999999, http_status=503), Retriable)
    assert isinstance(outcome_for(None, http_status=502), Retriable)
    assert isinstance(outcome_for(None, http_status=404), Permanent)
    assert (
        failure_reason(424242, "Odd", "Odd")
        == "WhatsApp could not deliver the message: Odd (code 424242)."
    )


# --- send, against the simulator in process --------------------------------------------------

CUSTOMER = "16505551234"


class Hooks:
    """Stands in for Tidings' webhook endpoint: records what the simulator delivers."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        return httpx.Response(200)

    def events(self) -> list[Any]:
        out = []
        for body in self.bodies:
            adapter.verify(config, signed(body))
            for piece in adapter.split(config, signed(body)):
                out.extend(adapter.parse(config, piece.payload))
        return out


@pytest.fixture
async def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
async def sim(hooks: Hooks) -> AsyncIterator[WhatsAppSimulator]:
    simulator = WhatsAppSimulator(
        http=httpx.AsyncClient(transport=httpx.MockTransport(hooks.handler))
    )
    simulator.configure(auto_statuses=[], status_delay=0.0)
    await simulator.register_account(
        config.phone_number_id,
        AccountIn(
            access_token=config.access_token,
            app_secret=config.app_secret,
            verify_token=config.verify_token,
            webhook_url="http://tidings.test/webhooks/whatsapp/1",
        ),
    )
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def graph(sim: WhatsAppSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
    ) as client:
        yield client


sim_config = config.model_copy(update={"api_base_url": "http://sim"})


def text(body: str | None = "Hello from Tidings", **kw: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "message_id": 42,
        "conversation_id": 7,
        "to": CUSTOMER,
        "kind": MessageKind.TEXT,
        "text": body,
    }
    fields.update(kw)
    return OutboundMessage(**fields)


async def open_window(sim: WhatsAppSimulator, user: str = CUSTOMER) -> str:
    result = await sim.inbound(
        InboundSpec.model_validate(
            {"phone_number_id": config.phone_number_id, "from": user, "text": "hi"}
        )
    )
    assert result["status"] == 200
    return str(result["id"])


async def test_send_text_success(sim: WhatsAppSimulator, graph: httpx.AsyncClient) -> None:
    await open_window(sim)
    outcome = await adapter.send(sim_config, text(), graph)
    assert isinstance(outcome, Sent)
    assert outcome.provider_message_id.startswith("wamid.")
    [request] = sim.sent(config.phone_number_id)
    assert request["path"] == "/v25.0/106540352242922/messages"
    assert request["body"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"body": "Hello from Tidings", "preview_url": False},
        "biz_opaque_callback_data": "42",
    }
    assert "authorization" not in request["headers"]
    assert request["response"]["status"] == 200
    assert request["response"]["body"]["messages"][0]["id"] == outcome.provider_message_id


async def test_send_window_closed_sync_is_permanent(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    sim.configure(window_mode="sync")
    outcome = await adapter.send(sim_config, text(), graph)
    assert outcome == Permanent(
        "The 24-hour customer service window has closed; send an approved template instead.",
        code="131047",
    )
    envelope = sim.sent()[0]["response"]["body"]["error"]
    assert envelope["code"] == 131047
    assert envelope["message"] == "(#131047) Re-engagement message"
    assert envelope["fbtrace_id"]


async def test_send_window_closed_async_fails_by_status_webhook(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient, hooks: Hooks
) -> None:
    outcome = await adapter.send(sim_config, text(), graph)
    assert isinstance(outcome, Sent)
    counts = await sim.flush(2)
    assert counts == {"delivered": 1, "pending": 0, "given_up": 0}
    [status] = hooks.events()
    assert isinstance(status, StatusUpdate)
    assert status.provider_message_id == outcome.provider_message_id
    assert status.status is MessageStatus.FAILED
    assert status.error_code == "131047"
    assert status.our_message_ref == "42"


async def test_send_template_is_allowed_outside_the_window(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    template = {"name": "order_confirmation", "language": {"code": "en_US"}, "components": []}
    outcome = await adapter.send(
        sim_config, text(None, kind=MessageKind.TEMPLATE, template=template), graph
    )
    assert isinstance(outcome, Sent)
    body = sim.sent()[0]["body"]
    assert (body["type"], body["template"]) == ("template", template)


async def test_send_rate_limited_is_retriable_with_retry_after(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    await open_window(sim)
    sim.inject_failures(FailIn(code=130429, retry_after=7))
    outcome = await adapter.send(sim_config, text(), graph)
    assert isinstance(outcome, Retriable)
    assert (outcome.code, outcome.retry_after) == ("130429", 7.0)
    # The simulator's own throughput limit, without a header: the code's default wait.
    sim.configure(throughput_per_second=2)
    outcomes = [await adapter.send(sim_config, text(), graph) for _ in range(3)]
    assert [type(o) for o in outcomes] == [Sent, Sent, Retriable]
    assert outcomes[2] == Retriable(outcomes[2].reason, retry_after=1.0, code="130429")  # type: ignore[union-attr]


async def test_send_pair_rate_limit_waits_six_seconds(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    await open_window(sim)
    sim.configure(pair_burst=1)
    first = await adapter.send(sim_config, text(), graph)
    second = await adapter.send(sim_config, text(), graph)
    assert isinstance(first, Sent)
    assert isinstance(second, Retriable)
    assert (second.code, second.retry_after) == ("131056", 6.0)


async def test_send_server_error_is_retriable(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    await open_window(sim)
    sim.inject_failures(FailIn(http_status=500, count=2))
    first = await adapter.send(sim_config, text(), graph)
    second = await adapter.send(sim_config, text(), graph)
    third = await adapter.send(sim_config, text(), graph)
    assert isinstance(first, Retriable) and isinstance(second, Retriable)
    assert sim.sent()[-3]["response"]["status"] == 500
    assert isinstance(third, Sent)


async def test_send_bad_token_is_permanent(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    wrong = sim_config.model_copy(update={"access_token": "expired"})
    outcome = await adapter.send(wrong, text(), graph)
    assert outcome == Permanent(
        "The WhatsApp access token has expired or is invalid; reconnect the channel.", code="190"
    )
    assert sim.sent()[0]["response"]["status"] == 401


async def test_send_invalid_message_is_permanent_with_details(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    await open_window(sim)
    outcome = await adapter.send(sim_config, text("x" * 4097), graph)
    assert isinstance(outcome, Permanent)
    assert outcome.code == "100"
    assert "4096" in outcome.reason


async def test_send_reply_media_reaction_and_bsuid_bodies(
    sim: WhatsAppSimulator, graph: httpx.AsyncClient
) -> None:
    inbound_id = await open_window(sim)
    bsuid = "US.13491208655302741918"
    await sim.inbound(
        InboundSpec.model_validate(
            {"phone_number_id": config.phone_number_id, "user_id": bsuid, "text": "hi"}
        )
    )
    messages = [
        text("Quoted", reply_to_provider_id=inbound_id),
        OutboundMessage(
            43,
            7,
            CUSTOMER,
            MessageKind.MEDIA,
            text="Your receipt",
            attachments=(OutboundAttachment("image", provider_media_id="1037543291543636"),),
        ),
        OutboundMessage(
            44,
            7,
            CUSTOMER,
            MessageKind.MEDIA,
            attachments=(OutboundAttachment("file", url="https://ex.com/a.pdf", filename="a.pdf"),),
        ),
        OutboundMessage(
            45,
            7,
            CUSTOMER,
            MessageKind.REACTION,
            text="\U0001f600",
            reply_to_provider_id=inbound_id,
        ),
        text("To a username", to=bsuid),
    ]
    outcomes = [await adapter.send(sim_config, m, graph) for m in messages]
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    bodies = [r["body"] for r in sim.sent()]
    assert bodies[0]["context"] == {"message_id": inbound_id}
    assert bodies[1]["image"] == {"id": "1037543291543636", "caption": "Your receipt"}
    assert bodies[2]["type"] == "document"
    assert bodies[2]["document"] == {"link": "https://ex.com/a.pdf", "filename": "a.pdf"}
    assert bodies[3]["reaction"] == {"message_id": inbound_id, "emoji": "\U0001f600"}
    assert "context" not in bodies[3]
    assert bodies[4]["recipient"] == bsuid
    assert "to" not in bodies[4]


async def test_send_refuses_what_whatsapp_cannot_carry(graph: httpx.AsyncClient) -> None:
    note = OutboundMessage(1, 1, CUSTOMER, MessageKind.NOTE, text="internal")
    assert isinstance(await adapter.send(sim_config, note, graph), Permanent)
    bare = OutboundMessage(1, 1, CUSTOMER, MessageKind.MEDIA)
    assert isinstance(await adapter.send(sim_config, bare, graph), Permanent)


def transport_client(handler: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("raise_or_respond", "expected"),
    [
        (httpx.ReadTimeout("slow"), Retriable),
        (httpx.ConnectError("refused"), Retriable),
        (httpx.Response(502, text="<html>Bad gateway</html>"), Retriable),
        (httpx.Response(200, json={"messaging_product": "whatsapp"}), Permanent),
        (
            httpx.Response(400, json={"error": {"code": 999999, "message": "(#999999) New"}}),
            Permanent,
        ),
        (
            httpx.Response(503, json={"error": {"code": 999999, "message": "(#999999) New"}}),
            Retriable,
        ),
    ],
)
async def test_send_transport_failures(raise_or_respond: Any, expected: type) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(raise_or_respond, Exception):
            raise raise_or_respond
        return raise_or_respond  # type: ignore[no-any-return]

    async with transport_client(handler) as client:
        outcome = await adapter.send(config, text(), client)
    assert isinstance(outcome, expected)
    assert len(seen) == 1
    assert seen[0].headers["authorization"] == "Bearer EAAG-test-token"
    assert seen[0].url == "https://graph.facebook.com/v25.0/106540352242922/messages"
    # Every call carries a timeout.
    assert seen[0].extensions["timeout"]["read"] == 20.0


async def test_send_honours_http_date_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"},
            json={"error": {"code": 131056, "message": "(#131056) pair"}},
        )

    async with transport_client(handler) as client:
        outcome = await adapter.send(config, text(), client)
    assert isinstance(outcome, Retriable)
    assert outcome.retry_after is not None and outcome.retry_after > 10**8
