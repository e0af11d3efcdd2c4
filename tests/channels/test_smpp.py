"""SMPP 3.4 end to end over TCP on loopback: Tidings binds to the sandbox SMSC as a
transceiver, customer messages and delivery receipts arrive as deliver_sm and land in the inbox
through the durable inbound path, replies go out as submit_sm (single, concatenated, UCS-2)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import smpp_channel
from tidings.channels.smpp import pdu as P
from tidings.channels.smpp.config import SmppConfig
from tidings.channels.smpp.session import SmppSession, live_session
from tidings.simulators.smpp import SmscSimulator
from tidings.storage.models import InboundEvent, Message

CUSTOMER = "+447911123456"
SYSTEM_ID = "tidings1"
PASSWORD = "secret12"


def smsc(server: Server) -> SmscSimulator:
    sim = server.app.state.sandbox.smpp
    assert isinstance(sim, SmscSimulator)
    return sim


def config(server: Server, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": smsc(server).port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "source_addr": "14155550111",
        "enquire_link_seconds": 0.3,
        "response_timeout_seconds": 2,
        "reconnect_min_seconds": 0.1,
        "reconnect_max_seconds": 0.4,
        "send_wait_seconds": 3,
    }
    values.update(overrides)
    return values


async def bound_session(server: Server, **overrides: Any) -> SmppSession:
    cfg = SmppConfig.model_validate(config(server, **overrides))

    async def ready() -> SmppSession | None:
        session = live_session(cfg)
        return session if session is not None and session.bound else None

    session: SmppSession = await eventually(ready)
    return session


async def count(server: Server, model: Any, *where: Any) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def customer_writes(server: Server, text: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/smpp"
    ) as control:
        resp = await control.post(
            "/_sim/inbound", json={"system_id": SYSTEM_ID, "from": CUSTOMER, "text": text}
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


async def reply_and_wait(
    api: httpx.AsyncClient, conv_id: int, text: str, status: str = "delivered"
) -> dict[str, Any]:
    resp = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": text})
    assert resp.status_code == 201, resp.text
    message_id = resp.json()["id"]

    async def reached() -> dict[str, Any] | None:
        m = next(m for m in await messages(api, conv_id) if m["id"] == message_id)
        return m if m["status"] == status else None

    result: dict[str, Any] = await eventually(reached)
    return result


async def test_bind_inbound_reply_and_receipt(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await smpp_channel(api, config(server))
    assert channel["config"]["password"] == "••••"
    session = await bound_session(server)
    assert session.binds == 1
    sessions = [(c.system_id, c.mode) for c in smsc(server).connections]
    assert sessions == [(SYSTEM_ID, P.Cmd.BIND_TRANSCEIVER)]

    await customer_writes(server, "Hello <b>SMSC</b> ¿qué tal?")
    conv = await only_conversation(api)
    msgs = await messages(api, conv["id"])
    assert [(m["direction"], m["body"]) for m in msgs] == [("in", "Hello <b>SMSC</b> ¿qué tal?")]
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("smpp", CUSTOMER)
    ]
    assert contact["phone"] == CUSTOMER

    sent = await reply_and_wait(api, conv["id"], "Thanks, on it!")
    submitted = smsc(server).accounts[SYSTEM_ID].submitted
    assert [
        (s["destination_addr"], s["source_addr"], s["text"], s["data_coding"], s["udh"])
        for s in submitted
    ] == [("447911123456", "14155550111", "Thanks, on it!", 0, None)]
    assert submitted[0]["registered_delivery"] == 1
    assert sent["provider_message_id"] == submitted[0]["message_id"]
    # enquire_link flows from Tidings to the SMSC while the session idles.
    await eventually(lambda: _true(smsc(server).enquire_links >= 2))
    assert await count(server, InboundEvent, InboundEvent.state == "failed") == 0
    assert await count(server, Message) == 2


async def _true(value: bool) -> bool:
    return value


async def test_concatenated_gsm_and_ucs2_replies(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await smpp_channel(api, config(server))
    await bound_session(server)
    await customer_writes(server, "hi")
    conv = await only_conversation(api)

    long_gsm = "Your parcel {A-17} is on its way. " * 6  # 204 septets: two parts
    await reply_and_wait(api, conv["id"], long_gsm)
    cyrillic = "Привет! Ваш заказ уже в пути. " * 3  # 90 UCS-2 units: two parts
    await reply_and_wait(api, conv["id"], cyrillic)

    submitted = smsc(server).accounts[SYSTEM_ID].submitted
    assert [(s["data_coding"], s["esm_class"], s["registered_delivery"]) for s in submitted] == [
        (0, 0x40, 0),
        (0, 0x40, 1),
        (8, 0x40, 0),
        (8, 0x40, 1),
    ]
    refs = [s["concat"][0] for s in submitted]
    assert refs[0] == refs[1] and refs[2] == refs[3] and refs[0] != refs[2]
    assert [s["udh"][:6] + s["udh"][8:] for s in submitted] == ["0500030201", "0500030202"] * 2
    assert "".join(s["text"] for s in submitted[:2]) == long_gsm
    assert "".join(s["text"] for s in submitted[2:]) == cyrillic
    thread = smsc(server).conversations(SYSTEM_ID, CUSTOMER)
    assert [m["text"] for m in thread if m["direction"] == "out"] == [long_gsm, cyrillic]


async def test_wrong_password_is_refused_and_retried_with_backoff(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await smpp_channel(api, config(server))
    session = await bound_session(server)
    sim = smsc(server)
    # The SMSC operator changes the password and restarts: the re-bind is refused.
    sim.register(SYSTEM_ID, "another1")
    await sim.stop()
    await sim.start()

    async def refused() -> str | None:
        error = session.last_error
        return error if error and "RINVPASWD" in error else None

    assert await eventually(refused) == "bind refused: ESME_RINVPASWD"
    assert all(c.system_id is None for c in sim.connections)
    # The password is put back at the SMSC: a later attempt binds again.
    sim.register(SYSTEM_ID, PASSWORD)
    await eventually(lambda: _true(session.bound))
    assert session.binds == 2


async def raw_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> tuple[int, int, int, bytes]:
    writer.write(data)
    await writer.drain()
    length, command_id, status, seq = struct.unpack(">IIII", await reader.readexactly(16))
    body = await reader.readexactly(length - 16)
    return command_id, status, seq, body


async def test_smsc_answers_malformed_pdus_and_keeps_the_session(server: Server) -> None:
    sim = smsc(server)
    sim.register("raw", "pw")
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        bind = P.Pdu(P.Cmd.BIND_TRANSCEIVER, 0, 1, P.Bind("raw", "pw").encode()).encode()
        assert (await raw_request(reader, writer, bind))[:3] == (
            P.Cmd.BIND_TRANSCEIVER | P.RESPONSE,
            0,
            1,
        )
        short = struct.pack(">IIII", 12, P.Cmd.ENQUIRE_LINK, 0, 2)
        assert (await raw_request(reader, writer, short))[:3] == (
            P.Cmd.GENERIC_NACK,
            P.Status.RINVCMDLEN,
            2,
        )
        unknown = P.Pdu(0x77, 0, 3).encode()
        assert (await raw_request(reader, writer, unknown))[:3] == (
            P.Cmd.GENERIC_NACK,
            P.Status.RINVCMDID,
            3,
        )
        truncated = P.Pdu(P.Cmd.SUBMIT_SM, 0, 4, b"\x00\x01\x01447").encode()
        assert (await raw_request(reader, writer, truncated))[:3] == (
            P.Cmd.SUBMIT_SM | P.RESPONSE,
            P.Status.RINVSRCADR,
            4,
        )
        sm = P.ShortMessage("14155550111", "447911123456", b"ok").encode()
        bad_length = P.Pdu(P.Cmd.SUBMIT_SM, 0, 5, sm[:-3] + b"\xff" + sm[-2:]).encode()
        assert (await raw_request(reader, writer, bad_length))[:3] == (
            P.Cmd.SUBMIT_SM | P.RESPONSE,
            P.Status.RINVMSGLEN,
            5,
        )
        # Still bound and working after all of that.
        good = P.Pdu(P.Cmd.SUBMIT_SM, 0, 6, sm).encode()
        command_id, status, seq, body = await raw_request(reader, writer, good)
        assert (command_id, status, seq) == (P.Cmd.SUBMIT_SM | P.RESPONSE, 0, 6)
        assert P.read_message_id(body) == sim.accounts["raw"].submitted[0]["message_id"]
        link = P.Pdu(P.Cmd.ENQUIRE_LINK, 0, 7).encode()
        assert (await raw_request(reader, writer, link))[:3] == (
            P.Cmd.ENQUIRE_LINK | P.RESPONSE,
            0,
            7,
        )
    finally:
        writer.close()
    assert [e["error"] for e in sim.errors] == [
        "command_length",
        "command_id",
        "submit_sm",
        "submit_sm",
    ]


async def test_tidings_answers_a_malformed_deliver_sm_and_stays_bound(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await smpp_channel(api, config(server))
    session = await bound_session(server)
    sim = smsc(server)
    conn = next(c for c in sim.connections if c.system_id == SYSTEM_ID)
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    conn.acks[9001] = fut
    await conn.send(P.Pdu(P.Cmd.DELIVER_SM, 0, 9001, b"\x00\x01"))
    assert await asyncio.wait_for(fut, 5) == P.Status.RINVCMDLEN
    # Nothing was stored for it, the bind survived, and a real message still gets through.
    assert await count(server, InboundEvent) == 0
    await customer_writes(server, "still there?")
    conv = await only_conversation(api)
    assert [m["body"] for m in await messages(api, conv["id"])] == ["still there?"]
    assert session.binds == 1 and session.bound


async def test_smsc_restart_reconnects_and_pending_send_goes_out_once(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await smpp_channel(api, config(server))
    session = await bound_session(server)
    await customer_writes(server, "hello")
    conv = await only_conversation(api)
    sim = smsc(server)
    await sim.stop()
    await eventually(lambda: _true(not session.bound))

    resp = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Back soon"}
    )
    message_id = resp.json()["id"]
    await asyncio.sleep(0.5)  # let the reply wait on the down link (and reconnects fail)
    assert sim.accounts[SYSTEM_ID].submitted == []
    await sim.start()

    async def delivered() -> bool:
        m = next(m for m in await messages(api, conv["id"]) if m["id"] == message_id)
        return m["status"] == "delivered"

    await eventually(delivered)
    assert [s["text"] for s in sim.accounts[SYSTEM_ID].submitted] == ["Back soon"]
    assert session.binds == 2


async def test_throttled_submit_is_retried(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await smpp_channel(api, config(server))
    await bound_session(server)
    await customer_writes(server, "hello")
    conv = await only_conversation(api)
    sim = smsc(server)
    sim.throttle = 1
    await reply_and_wait(api, conv["id"], "Throttled once")
    assert sim.throttle == 0
    assert [s["text"] for s in sim.accounts[SYSTEM_ID].submitted] == ["Throttled once"]


async def test_webhook_posts_to_an_smpp_channel_are_refused(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await smpp_channel(api, config(server))
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{server.url}/webhooks/smpp/{channel['id']}", content=b"{}")
    assert resp.status_code == 401
    assert await count(server, InboundEvent) == 0


def test_receipt_parsing_text_and_tlvs() -> None:
    text_only = P.ShortMessage(
        "447911123456",
        "14155550111",
        b"id:1d305b4c sub:001 dlvrd:001 submit date:2506011200 done date:2506011201 "
        b"stat:DELIVRD err:000 text:hello id:nope",
        esm_class=P.ESM_RECEIPT,
    )
    decoded = P.ShortMessage.decode(text_only.encode())
    assert decoded.is_receipt
    assert P.parse_receipt(decoded) == P.Receipt("1d305b4c", "DELIVRD", "000")
    with_tlvs = P.ShortMessage(
        "447911123456",
        "14155550111",
        b"",
        esm_class=P.ESM_RECEIPT,
        tlvs={P.Tag.RECEIPTED_MESSAGE_ID: b"ABC123\x00", P.Tag.MESSAGE_STATE: bytes([5])},
    )
    assert P.parse_receipt(P.ShortMessage.decode(with_tlvs.encode())) == P.Receipt(
        "ABC123", "UNDELIV", None
    )
