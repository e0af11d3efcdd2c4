"""Vonage SMS end to end over real HTTP: signed inbound SMS and delivery receipts from the
simulator into Tidings, agent replies out through the send API, statuses back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import vonage_channel
from tidings.channels.vonage import signature
from tidings.storage.models import InboundEvent, Message

API_KEY = "abcd1234"
SIG_SECRET = "sig-secret-for-vonage-tests"
CUSTOMER = "+447911123456"
CHANNEL = {"api_key": API_KEY, "api_secret": "api-secret-1", "signature_secret": SIG_SECRET}


async def count(server: Server, model: Any, *where: Any) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def customer_writes(server: Server, text: str, **extra: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/vonage"
    ) as sim:
        resp = await sim.post(
            "/_sim/inbound", json={"api_key": API_KEY, "from": CUSTOMER, "text": text, **extra}
        )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def only_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def convs() -> list[dict[str, Any]]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    found = await eventually(convs)
    assert len(found) == 1
    return found[0]


async def messages(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]


@pytest.mark.parametrize("method", ["md5hash", "sha256"])
async def test_sms_in_reply_out_receipts_back(
    server: Server, owner: Owner, api: httpx.AsyncClient, method: str
) -> None:
    channel = await vonage_channel(api, server, **CHANNEL, signature_method=method)
    assert (
        channel["config"]["api_secret"] == "••••"
        and channel["config"]["signature_secret"] == "••••"
    )

    # Pushed twice, as a Vonage retry would.
    await customer_writes(server, "Hello <b>shop</b>", duplicates=1)
    conv = await only_conversation(api)
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("vonage", CUSTOMER)
    ]
    assert contact["phone"] == CUSTOMER
    msgs = await messages(api, conv["id"])
    assert [(m["direction"], m["body"]) for m in msgs] == [("in", "Hello <b>shop</b>")]

    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Grüße — 你好!"}
    )
    assert reply.status_code == 201, reply.text
    message_id = reply.json()["id"]

    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/vonage"
    ) as sim:

        async def sent() -> list[dict[str, Any]]:
            return (await sim.get("/_sim/sent", params={"api_key": API_KEY})).json()

        requests = await eventually(sent)
        assert len(requests) == 1
        req = requests[0]
        assert (req["to"], req["from"], req["text"], req["type"], req["client-ref"]) == (
            "447911123456",
            "14155550100",
            "Grüße — 你好!",
            "unicode",
            f"tidings-{message_id}",
        )

        async def delivered() -> str | None:
            status = next(
                m["status"] for m in await messages(api, conv["id"]) if m["id"] == message_id
            )
            return status if status == "delivered" else None

        assert await eventually(delivered) == "delivered"
        thread = (
            await sim.get("/_sim/conversations", params={"api_key": API_KEY, "user": CUSTOMER})
        ).json()
        assert [(m["direction"], m["text"]) for m in thread] == [
            ("in", "Hello <b>shop</b>"),
            ("out", "Grüße — 你好!"),
        ]
        deliveries = (await sim.get("/_sim/deliveries")).json()
    # Every webhook (2 inbound pushes, accepted + delivered receipts) acknowledged first time.
    assert len(deliveries) == 4 and {d["status"] for d in deliveries} == {204}
    assert await count(server, Message) == 2
    assert await count(server, InboundEvent, InboundEvent.state == "failed") == 0


async def test_long_reply_parts_all_map_to_one_message(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await vonage_channel(api, server, **CHANNEL)
    await customer_writes(server, "hi")
    conv = await only_conversation(api)
    text = "All good, see {details}. " * 9  # GSM-7 with extension chars, 225 chars: 2 parts
    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": text})
    message_id = reply.json()["id"]

    async def delivered() -> bool:
        status = next(m["status"] for m in await messages(api, conv["id"]) if m["id"] == message_id)
        return status == "delivered"

    await eventually(delivered)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/vonage"
    ) as sim:
        req = (await sim.get("/_sim/sent", params={"api_key": API_KEY})).json()[0]

        async def receipts() -> int:
            rows = (await sim.get("/_sim/deliveries")).json()
            return len([d for d in rows if d["messageId"] in req["part_ids"]])

        assert req["type"] == "text" and len(req["part_ids"]) == 2
        assert await eventually(lambda: _at_least(receipts, 4))  # accepted + delivered, per part

    async def settled() -> bool:
        return await count(server, InboundEvent, InboundEvent.state == "pending") == 0

    await eventually(settled)
    # Four receipts, all applied to the one message through its client-ref; none left failing.
    assert await count(server, InboundEvent, InboundEvent.event_key.like("dlr:%")) == 4
    assert await count(server, InboundEvent, InboundEvent.state == "failed") == 0


async def _at_least(check: Any, n: int) -> bool:
    return bool(await check() >= n)


async def test_send_errors_become_plain_outcomes(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await vonage_channel(api, server, **CHANNEL)
    await customer_writes(server, "hi")
    conv = await only_conversation(api)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/vonage"
    ) as sim:
        # Throttled once (status 1: retriable), then the account runs out of credit (9: permanent).
        await sim.post("/_sim/fail", json={"api_key": API_KEY, "status": "1"})
        await sim.post("/_sim/fail", json={"api_key": API_KEY, "status": "9"})
        reply = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Your order shipped"}
        )
        message_id = reply.json()["id"]

        async def failed() -> dict[str, Any] | None:
            m = next(m for m in await messages(api, conv["id"]) if m["id"] == message_id)
            return m if m["status"] == "failed" else None

        m = await eventually(failed)
        assert m["error_code"] == "9"
        assert (
            m["error_reason"] == "The Vonage account has no credit left; top it up to send again."
        )
        assert (await sim.get("/_sim/sent", params={"api_key": API_KEY})).json() == []


def _signed(
    params: dict[str, str], secret: str, method: str = "sha256", ts: int | None = None
) -> dict[str, str]:
    full = dict(params, timestamp=str(ts if ts is not None else int(time.time())), nonce="n0nce")
    full["sig"] = signature.sign(full, secret, method)
    return full


async def test_bad_signatures_are_rejected_and_nothing_stored(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await vonage_channel(api, server, **CHANNEL)
    url = f"{server.url}/webhooks/vonage/{channel['id']}"
    base = {
        "msisdn": "447911123456",
        "to": "14155550100",
        "messageId": "0A00001",
        "text": "hi",
        "type": "text",
    }
    good = _signed(base, SIG_SECRET)
    tampered = dict(good, text="send me the refund")
    wrong_key = _signed(base, "not-the-secret")
    stale = _signed(base, SIG_SECRET, ts=int(time.time()) - 2 * 86400)
    unsigned = dict(base, timestamp=str(int(time.time())))
    wrong_method = _signed(base, SIG_SECRET, method="md5hash")
    async with httpx.AsyncClient() as client:
        codes = [
            (
                await client.post(
                    url, content=orjson.dumps(p), headers={"Content-Type": "application/json"}
                )
            ).status_code
            for p in (tampered, wrong_key, stale, unsigned, wrong_method)
        ]
        garbage = await client.post(
            url, content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert codes == [401] * 5
    assert garbage.status_code == 401
    assert garbage.json()["error"]["code"] == "bad_signature"
    assert await count(server, InboundEvent) == 0
    assert await count(server, Message) == 0

    # The correctly signed form-encoded call is accepted (Vonage's "POST" method).
    async with httpx.AsyncClient() as client:
        ok = await client.post(url, data=good)
    assert ok.status_code == 204
    assert await count(server, InboundEvent) == 1


async def test_stop_blocks_replies_until_start(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await vonage_channel(api, server, **CHANNEL)
    await customer_writes(server, "hi")
    conv = await only_conversation(api)
    await customer_writes(server, " stop ")

    async def stop_stored() -> bool:
        # The keyword is applied in the same transaction that stores the message.
        return any(m["body"] == " stop " for m in await messages(api, conv["id"]))

    await eventually(stop_stored)
    resp = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "?"})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "opted_out"
    await customer_writes(server, "START")

    async def allowed() -> bool:
        resp = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "ok"})
        return resp.status_code == 201

    assert await eventually(allowed)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/vonage"
    ) as sim:

        async def sent_ok() -> list[str] | None:
            rows = (await sim.get("/_sim/sent", params={"api_key": API_KEY})).json()
            texts = [r["text"] for r in rows]
            return texts if "ok" in texts else None

        texts = await eventually(sent_ok)
    # The reply written while opted out never reached Vonage.
    assert "?" not in texts


def test_docs_say_long_inbound_texts_arrive_joined() -> None:
    """docs/channels/vonage.md said long inbound texts show as separate messages while sms.md
    and the code join them (test_sms_multipart): the channel page must say what happens."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "channels"
    vonage = " ".join((docs / "vonage.md").read_text().split())
    sms = " ".join((docs / "sms.md").read_text().split())
    assert "separate messages" not in vonage
    assert "stores **one** message with the text joined" in vonage
    assert "stores **one** message with the parts' text joined" in sms
