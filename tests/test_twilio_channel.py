"""Twilio SMS end to end over real HTTP against the Twilio simulator: inbound SMS/MMS, replies
with status callbacks, signatures, STOP/START/HELP and the consent registry, provider errors,
the SMS preview endpoint, and one contact across WhatsApp and SMS."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import simulator, twilio_channel
from tidings.channels.twilio.webhook import compute_signature
from tidings.storage.models import Consent, InboundEvent, Message

CUSTOMER = "+14155550123"
OUR_NUMBER = "+14155550100"


@pytest.fixture
async def sim(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with simulator(server, "twilio") as client:
        yield client


async def customer_says(sim: httpx.AsyncClient, text: str, **extra: Any) -> dict[str, Any]:
    resp = await sim.post(
        "/_sim/inbound", json={"from": CUSTOMER, "text": text, "to": OUR_NUMBER, **extra}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == 200
    return resp.json()


async def messages_of(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]


async def one_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def convs() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    found = await eventually(convs)
    assert len(found) == 1
    return found[0]


async def wait_messages(api: httpx.AsyncClient, conv_id: int, count: int) -> list[dict[str, Any]]:
    async def check() -> list[Any] | None:
        msgs = await messages_of(api, conv_id)
        return msgs if len(msgs) >= count else None

    msgs = await eventually(check)
    assert len(msgs) == count, msgs
    return msgs


async def wait_status(
    api: httpx.AsyncClient, conv_id: int, message_id: int, status: str
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        msg = next(m for m in await messages_of(api, conv_id) if m["id"] == message_id)
        return msg if msg["status"] == status else None

    return await eventually(check)  # type: ignore[no-any-return]


async def test_inbound_reply_and_status_callbacks(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    channel = await twilio_channel(api, server, from_number=OUR_NUMBER)
    await customer_says(sim, "Hi, is my order shipped? 📦")
    conv = await one_conversation(api)
    (inbound,) = await wait_messages(api, conv["id"], 1)
    assert (inbound["direction"], inbound["body"], inbound["kind"]) == (
        "in",
        "Hi, is my order shipped? 📦",
        "text",
    )
    assert inbound["provider_message_id"].startswith("SM")
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert contact["phone"] == CUSTOMER
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("twilio", CUSTOMER)
    ]

    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes — today!"}
    )
    assert reply.status_code == 201, reply.text

    async def sent() -> list[Any]:
        return (await sim.get("/_sim/sent", params={"account_sid": channel["_sid"]})).json()

    (request,) = await eventually(sent)
    assert dict(request["params"]) == {
        "To": CUSTOMER,
        "From": OUR_NUMBER,
        "Body": "Yes — today!",
        "StatusCallback": channel["webhook_url"],
    }
    delivered = await wait_status(api, conv["id"], reply.json()["id"], "delivered")
    assert delivered["provider_message_id"] == request["sid"]
    # The customer's phone shows both directions.
    thread = (await sim.get("/_sim/conversations", params={"user": CUSTOMER})).json()
    assert [(m["direction"], m["text"], m["status"]) for m in thread] == [
        ("in", "Hi, is my order shipped? 📦", "received"),
        ("out", "Yes — today!", "delivered"),
    ]


async def test_inbound_mms_keeps_media(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await twilio_channel(api, server, from_number=OUR_NUMBER)
    media = [
        {
            "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
            "content_type": "image/png",
        },
        {
            "url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
            "content_type": "video/mp4",
        },
    ]
    result = await customer_says(sim, "photos", media=media)
    assert result["sid"].startswith("MM")
    conv = await one_conversation(api)
    (msg,) = await wait_messages(api, conv["id"], 1)
    assert (msg["kind"], msg["body"]) == ("media", "photos")
    assert [a["kind"] for a in msg["attachments"]] == ["image", "video"]
    assert [a["mime_type"] for a in msg["attachments"]] == ["image/png", "video/mp4"]


async def test_bad_signature_is_rejected_and_nothing_stored(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await twilio_channel(api, server, from_number=OUR_NUMBER)
    url = channel["webhook_url"]
    params = [
        ("MessageSid", "SM" + "1" * 32),
        ("From", CUSTOMER),
        ("To", OUR_NUMBER),
        ("Body", "hi"),
    ]
    body = urlencode(params)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient() as client:
        wrong_key = await client.post(
            url,
            content=body,
            headers={**form, "X-Twilio-Signature": compute_signature("nope", url, params)},
        )
        wrong_url = await client.post(
            url,
            content=body,
            headers={
                **form,
                "X-Twilio-Signature": compute_signature(channel["_secret"], url + "x", params),
            },
        )
        tampered = await client.post(
            url,
            content=body.replace("hi", "hacked"),
            headers={
                **form,
                "X-Twilio-Signature": compute_signature(channel["_secret"], url, params),
            },
        )
        missing = await client.post(url, content=body, headers=form)
        good = await client.post(
            url,
            content=body,
            headers={
                **form,
                "X-Twilio-Signature": compute_signature(channel["_secret"], url, params),
            },
        )
    assert [r.status_code for r in (wrong_key, wrong_url, tampered, missing)] == [
        401,
        401,
        401,
        401,
    ]
    assert wrong_key.json()["error"]["code"] == "bad_signature"
    # The right signature is acknowledged with empty TwiML.
    assert good.status_code == 200
    assert good.headers["content-type"].startswith("text/xml")
    assert good.text.endswith("<Response/>")
    async with server.runtime.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(InboundEvent)) == 1


async def consents(server: Server) -> list[tuple[str, str, str, str]]:
    async with server.runtime.db.read() as s:
        rows = (await s.scalars(select(Consent).order_by(Consent.purpose))).all()
        return [(c.channel_kind, c.purpose, c.status, c.source) for c in rows]


async def test_stop_blocks_replies_until_start(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    channel = await twilio_channel(api, server, from_number=OUR_NUMBER)
    await customer_says(sim, "hello")
    conv = await one_conversation(api)
    await customer_says(sim, "  stop ")
    msgs = await wait_messages(api, conv["id"], 3)
    assert [(m["kind"], m["body"]) for m in msgs[:2]] == [("text", "hello"), ("text", "  stop ")]
    assert msgs[2]["kind"] == "system" and msgs[2]["body"].startswith("Customer opted out of SMS")
    assert await consents(server) == [
        ("twilio", "marketing", "opted_out", "keyword:STOP"),
        ("twilio", "service", "opted_out", "keyword:STOP"),
    ]
    # Twilio itself blocked the pair and confirmed to the customer.
    assert (await sim.get("/_sim/optouts")).json() == [
        {"sender": OUR_NUMBER, "recipient": CUSTOMER}
    ]

    refused = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Wait!"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "opted_out"
    # "STOP PLEASE" is not a keyword, and a second STOP changes nothing.
    await customer_says(sim, "STOP please")
    await customer_says(sim, "STOP")
    msgs = await wait_messages(api, conv["id"], 5)
    assert [m["kind"] for m in msgs] == ["text", "text", "system", "text", "text"]

    await customer_says(sim, "Start")
    msgs = await wait_messages(api, conv["id"], 7)
    assert msgs[6]["kind"] == "system" and "opted back in" in msgs[6]["body"]
    assert {row[2] for row in await consents(server)} == {"opted_in"}
    assert (await sim.get("/_sim/optouts")).json() == []
    allowed = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Welcome back"}
    )
    assert allowed.status_code == 201, allowed.text
    await wait_status(api, conv["id"], allowed.json()["id"], "delivered")
    sent = (await sim.get("/_sim/sent", params={"account_sid": channel["_sid"]})).json()
    assert [dict(s["params"])["Body"] for s in sent] == ["Welcome back"]


async def test_help_gets_the_configured_reply(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_SMS_HELP_REPLY", "Acme support: reply STOP to opt out.")
    monkeypatch.setenv("TIDINGS_OPT_OUT_KEYWORDS", '{"help": ["HELP", "INFO", "AIDE"]}')
    channel = await twilio_channel(api, server, from_number=OUR_NUMBER)
    await customer_says(sim, "aide")
    conv = await one_conversation(api)
    msgs = await wait_messages(api, conv["id"], 2)
    assert [(m["direction"], m["body"]) for m in msgs] == [
        ("in", "aide"),
        ("out", "Acme support: reply STOP to opt out."),
    ]
    await wait_status(api, conv["id"], msgs[1]["id"], "delivered")
    sent = (await sim.get("/_sim/sent", params={"account_sid": channel["_sid"]})).json()
    assert [dict(s["params"])["Body"] for s in sent] == ["Acme support: reply STOP to opt out."]
    # The customer's question stays unread for the agents.
    assert (await api.get(f"/api/v1/conversations/{conv['id']}")).json()["unread_count"] == 1


async def test_provider_opt_out_21610_fails_and_records_consent(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await twilio_channel(api, server, from_number=OUR_NUMBER)
    await customer_says(sim, "hello")
    conv = await one_conversation(api)
    # The customer opted out before Tidings was connected: only Twilio knows.
    assert (await sim.post("/_sim/fail", json={"code": 21610, "mode": "sync"})).status_code == 200
    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi"})
    assert reply.status_code == 201
    failed = await wait_status(api, conv["id"], reply.json()["id"], "failed")
    assert failed["error_code"] == "21610"
    assert failed["error_reason"].startswith("The customer replied STOP to this number")
    assert {(row[2], row[3]) for row in await consents(server)} == {("opted_out", "provider:21610")}
    msgs = await messages_of(api, conv["id"])
    assert [m["kind"] for m in msgs] == ["text", "text", "system"]
    again = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi?"})
    assert again.status_code == 422 and again.json()["error"]["code"] == "opted_out"


async def test_undelivered_callback_and_rate_limit_retry(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    channel = await twilio_channel(api, server, from_number=OUR_NUMBER)
    await customer_says(sim, "hello")
    conv = await one_conversation(api)
    await sim.post("/_sim/fail", json={"code": 30003, "mode": "callback", "status": "undelivered"})
    first = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "one"})
    failed = await wait_status(api, conv["id"], first.json()["id"], "failed")
    assert (
        failed["error_reason"]
        == "The recipient's phone is unreachable (switched off or out of coverage). (Twilio 30003)"
    )

    await sim.post("/_sim/fail", json={"code": 20429, "mode": "sync", "retry_after": 1})
    second = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "two"})
    await wait_status(api, conv["id"], second.json()["id"], "delivered")
    sent = (await sim.get("/_sim/sent", params={"account_sid": channel["_sid"]})).json()
    # The 429 was not recorded as a message: "two" went through once, on the retry.
    assert [dict(s["params"])["Body"] for s in sent] == ["one", "two"]


async def test_simulator_validates_like_twilio(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    channel = await twilio_channel(api, server, from_number=OUR_NUMBER)
    path = f"/2010-04-01/Accounts/{channel['_sid']}/Messages.json"
    auth = (channel["_sid"], channel["_secret"])
    bad_auth = await sim.post(
        path,
        data={"To": CUSTOMER, "From": OUR_NUMBER, "Body": "x"},
        auth=(channel["_sid"], "wrong"),
    )
    assert bad_auth.status_code == 401
    assert bad_auth.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    cases = [
        ({"From": OUR_NUMBER, "Body": "x"}, 21604),
        ({"To": CUSTOMER, "Body": "x"}, 21603),
        ({"To": CUSTOMER, "From": OUR_NUMBER}, 21602),
        ({"To": "+1415", "From": OUR_NUMBER, "Body": "x"}, 21211),
        ({"To": CUSTOMER, "From": "+14155550111", "Body": "x"}, 21606),
        ({"To": CUSTOMER, "From": OUR_NUMBER, "Body": "x" * 1601}, 21617),
    ]
    for data, code in cases:
        resp = await sim.post(path, data=data, auth=auth)
        assert (resp.status_code, resp.json()["code"]) == (400, code), data
    ok = await sim.post(
        path, data={"To": CUSTOMER, "From": OUR_NUMBER, "Body": "a" * 161}, auth=auth
    )
    assert ok.status_code == 201
    doc = ok.json()
    assert doc["sid"].startswith("SM") and len(doc["sid"]) == 34
    assert (doc["status"], doc["num_segments"], doc["direction"], doc["api_version"]) == (
        "queued",
        "2",
        "outbound-api",
        "2010-04-01",
    )
    assert doc["uri"] == f"/2010-04-01/Accounts/{channel['_sid']}/Messages/{doc['sid']}.json"


async def test_too_many_segments_is_refused(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_SMS_MAX_SEGMENTS", "2")
    await twilio_channel(api, server, from_number=OUR_NUMBER)
    await customer_says(sim, "hello")
    conv = await one_conversation(api)
    refused = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "你" * 135}
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "too_many_segments"
    assert "3 UCS-2 SMS parts" in refused.json()["error"]["message"]
    async with server.runtime.db.read() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "out")
            )
            == 0
        )


async def test_sms_preview_endpoint(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_SMS_PRICES", raising=False)
    r = await api.post("/api/v1/sms/preview", json={"text": "a" * 161, "to": "+1 415 555 0123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {
        k: body[k]
        for k in ("encoding", "segments", "characters", "ucs2_characters", "to", "per_segment")
    } == {
        "encoding": "GSM-7",
        "segments": 2,
        "characters": 161,
        "ucs2_characters": [],
        "to": CUSTOMER,
        "per_segment": 153,
    }
    assert body["estimated_cost"] == {
        "amount": "0.0158",
        "currency": "USD",
        "per_segment": "0.0079",
        "channel_kind": "twilio",
        "region": "US",
    }
    assert [p["units"] for p in body["parts"]] == [153, 8]

    r = await api.post("/api/v1/sms/preview", json={"text": "It’s 😀 ok"})
    assert (r.json()["encoding"], r.json()["ucs2_characters"], r.json()["estimated_cost"]) == (
        "UCS-2",
        ["’", "😀"],
        None,
    )
    r = await api.post("/api/v1/sms/preview", json={"text": "It’s here", "smart_encoding": True})
    assert (r.json()["encoding"], r.json()["text"], r.json()["smart_encoded"]) == (
        "GSM-7",
        "It's here",
        True,
    )

    monkeypatch.setenv("TIDINGS_SMS_PRICES", '{"currency": "EUR", "twilio": {"DE": "0.07"}}')
    r = await api.post("/api/v1/sms/preview", json={"text": "hi", "to": "+4915123456789"})
    assert (
        r.json()["estimated_cost"]["amount"] == "0.07"
        and r.json()["estimated_cost"]["currency"] == "EUR"
    )

    bad_to = await api.post("/api/v1/sms/preview", json={"text": "hi", "to": "12ab"})
    assert bad_to.status_code == 422 and bad_to.json()["error"]["message"].startswith("to:")
    no_text = await api.post("/api/v1/sms/preview", json={"to": CUSTOMER})
    assert no_text.status_code == 422 and no_text.json()["error"]["message"].startswith("text:")
    wrong_type = await api.post("/api/v1/sms/preview", json={"text": 5})
    assert wrong_type.status_code == 422 and "text" in wrong_type.json()["error"]["message"]
    api_channel = await api.post(
        "/api/v1/channels", json={"kind": "api", "name": "Web", "config": {"secret": "s" * 20}}
    )
    not_sms = await api.post(
        "/api/v1/sms/preview", json={"text": "hi", "channel_id": api_channel.json()["id"]}
    )
    assert not_sms.status_code == 422 and not_sms.json()["error"]["message"].startswith(
        "channel_id:"
    )
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.post("/api/v1/sms/preview", json={"text": "hi"})).status_code == 401


async def test_whatsapp_and_sms_identities_meet_on_one_contact(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    wa = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp",
            "config": {
                "phone_number_id": "100000000000001",
                "display_phone_number": "15550001111",
                "access_token": secrets.token_urlsafe(24),
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(12),
                "api_base_url": f"{server.url}/sandbox/whatsapp",
            },
        },
    )
    assert wa.status_code == 201, wa.text
    await twilio_channel(api, server, from_number=OUR_NUMBER)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp"
    ) as wa_sim:
        resp = await wa_sim.post(
            "/_sim/inbound",
            json={
                "phone_number_id": "100000000000001",
                "from": CUSTOMER[1:],
                "name": "Ana",
                "text": "on WhatsApp",
            },
        )
        assert resp.status_code == 200, resp.text
    conv = await one_conversation(api)
    await wait_messages(api, conv["id"], 1)
    await customer_says(sim, "and by SMS")
    await wait_messages(api, conv["id"], 2)
    contacts = (await api.get("/api/v1/contacts")).json()["data"]
    assert len(contacts) == 1
    assert contacts[0]["phone"] == CUSTOMER
    assert sorted((i["channel_kind"], i["address"]) for i in contacts[0]["identities"]) == [
        ("twilio", CUSTOMER),
        ("whatsapp", CUSTOMER[1:]),
    ]
