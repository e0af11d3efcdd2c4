"""The outbound pipeline: policy, order, retries with backoff and Retry-After, permanent
failures in plain words, crash recovery, forward-only statuses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from tests.conftest import Owner, Receiver, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.actions.base import transaction
from tidings.actions.gate import choose_route
from tidings.actions.outbound import do_queue_message
from tidings.channels.base import Retriable
from tidings.delivery import worker as delivery
from tidings.domain.enums import MessageKind
from tidings.storage.models import Conversation, Delivery, Message
from tidings.storage.types import utcnow


async def conversation_with_customer(
    server: Server, api: httpx.AsyncClient, webhook_url: str
) -> tuple[int, int]:
    channel_id = await api_channel(api, webhook_url)
    await post_signed(server, channel_id, {"messages": [msg("in-1", "cust", "hi", 1_750_000_000)]})

    async def conv() -> list:
        return (await api.get("/api/v1/conversations")).json()["data"]

    convs = await eventually(conv)
    return channel_id, int(convs[0]["id"])


async def message(api: httpx.AsyncClient, conv_id: int, message_id: int) -> dict:
    data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
    return next(m for m in data if m["id"] == message_id)


async def test_sends_in_order_after_retries(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    _, conv_id = await conversation_with_customer(server, api, receiver.url)
    # The first attempt meets an outage, the second a rate limit with Retry-After: 1.
    receiver.script += [(500, {}, b"boom"), (429, {"Retry-After": "1"}, b"slow down")]
    ids = []
    for text in ("one", "two", "three"):
        resp = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": text})
        assert resp.status_code == 201
        ids.append(resp.json()["id"])

    async def all_sent() -> bool:
        statuses = [(await message(api, conv_id, i))["status"] for i in ids]
        return statuses == ["sent"] * 3

    await eventually(all_sent, timeout=20)
    texts = [orjson.loads(body)["message"]["text"] for _h, body in receiver.requests]
    # Three failed-then-retried attempts of "one", then each once, in order.
    assert texts == ["one", "one", "one", "two", "three"]
    async with server.runtime.db.read() as s:
        attempts = (await s.scalars(select(Delivery.attempts).order_by(Delivery.id))).all()
    assert list(attempts) == [3, 1, 1]


async def test_permanent_failure_is_explained(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    _, conv_id = await conversation_with_customer(server, api, receiver.url)
    receiver.script.append((400, {}, b"no such user"))
    resp = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "hello"})
    message_id = resp.json()["id"]

    async def failed() -> dict | None:
        m = await message(api, conv_id, message_id)
        return m if m["status"] == "failed" else None

    m = await eventually(failed)
    assert m["error_reason"] == "The receiving system refused the message (400)."
    assert len(receiver.requests) == 1  # permanent: not retried
    channels = (await api.get("/api/v1/channels")).json()
    assert channels[0]["health"]["last_error"] == "The receiving system refused the message (400)."


async def test_gives_up_after_the_retry_window_with_the_last_reason(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outage longer than the retry window fails the message (after at least MIN_ATTEMPTS
    tries), with the provider's last answer as the reason; an outage shorter does not."""
    monkeypatch.setattr(delivery, "RETRY_WINDOW_SECONDS", 1.0)
    monkeypatch.setattr(delivery, "MAX_BACKOFF_SECONDS", 0.2)
    _, conv_id = await conversation_with_customer(server, api, receiver.url)
    receiver.script += [(503, {}, b"maintenance")] * 1000
    resp = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "hello"})
    message_id = resp.json()["id"]

    async def failed() -> dict | None:
        m = await message(api, conv_id, message_id)
        return m if m["status"] == "failed" else None

    m = await eventually(failed, timeout=20)
    tries = len(receiver.requests)
    assert m["error_reason"] == (
        f"Gave up after {tries} attempts: The receiving system answered 503."
    )
    assert tries >= delivery.MIN_ATTEMPTS
    async with server.runtime.db.read() as s:
        row = await s.scalar(select(Delivery).where(Delivery.message_id == message_id))
    assert row is not None and row.attempts == tries
    assert (row.updated_at - row.created_at).total_seconds() >= 1.0


def test_backoff_grows_and_is_capped() -> None:
    retriable = Retriable("down")
    assert delivery.retry_delay(1, retriable) <= 1.25
    assert 0.75 * 8 <= delivery.retry_delay(4, retriable) <= 1.25 * 8
    assert delivery.retry_delay(40, retriable) <= delivery.MAX_BACKOFF_SECONDS * 1.25
    assert delivery.retry_delay(40, Retriable("slow", retry_after=7)) == 7


async def test_a_graceful_stop_records_the_send_under_way(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """Stopping the delivery worker while a provider is still answering: the send finishes and
    its outcome is committed before the worker goes — not left `sending` for its lease to
    expire and the message to go out a second time."""
    _, conv_id = await conversation_with_customer(server, api, receiver.url)
    receiver.delay = 0.8
    resp = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "hello"})
    message_id = resp.json()["id"]

    async def asked() -> bool:
        return len(receiver.requests) == 1

    await eventually(asked)
    worker = next(t for t in server.runtime.background if t.get_name() == "worker-delivery")
    worker.cancel()  # what Runtime.stop does on shutdown
    await asyncio.wait_for(asyncio.gather(worker, return_exceptions=True), 5)
    async with server.runtime.db.read() as s:
        row = await s.scalar(select(Delivery).where(Delivery.message_id == message_id))
        status = await s.scalar(select(Message.status).where(Message.id == message_id))
    assert row is not None and row.state == "done" and row.attempts == 1
    assert status == "sent"
    assert len(receiver.requests) == 1


async def test_policy_refusals_queue_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    _, conv_id = await conversation_with_customer(server, api, receiver.url)
    empty = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "   "})
    assert empty.status_code == 422
    assert empty.json()["error"]["code"] == "empty_message"
    missing = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={})
    assert missing.status_code == 422
    # Neither text nor an attachment: refused with what to give (not pydantic's "Value error").
    assert missing.json()["error"]["message"] == "body: give text, attachment_ids, or both"
    wrong_channel = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": "x", "channel_id": 99999}
    )
    assert wrong_channel.status_code == 422
    assert "channel_id" in wrong_channel.json()["error"]["message"]
    async with server.runtime.db.read() as s:
        assert (await s.scalars(select(Message).where(Message.direction == "out"))).all() == []


async def test_expired_lease_is_sent_exactly_once(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """A worker died after claiming a delivery but before handing it to the provider: the lease
    expires, the row returns to the queue, and it is sent once."""
    _, conv_id = await conversation_with_customer(server, api, receiver.url)
    rt = server.runtime
    async with transaction(rt) as tx:
        conv = await tx.session.get_one(Conversation, conv_id)
        route = await choose_route(tx, conv, None)
        queued = await do_queue_message(
            tx, conv, route, MessageKind.TEXT, "survives", sender_agent_id=None
        )
        # In the same transaction: the claim of a worker that then died before sending.
        await tx.session.execute(
            update(Delivery)
            .where(Delivery.message_id == queued.id)
            .values(
                state="sending",
                claimed_by="dead-worker",
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    message_id = queued.id
    recovered = await delivery.recover_expired_leases(server.runtime)
    server.runtime.wake("delivery")

    async def sent() -> bool:
        return (await message(api, conv_id, message_id))["status"] == "sent"

    await eventually(sent)
    texts = [orjson.loads(body)["message"]["text"] for _h, body in receiver.requests]
    assert recovered == 1
    assert texts.count("survives") == 1


async def test_status_only_moves_forward(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    channel_id, conv_id = await conversation_with_customer(server, api, receiver.url)
    receiver.script.append((200, {"Content-Type": "application/json"}, b'{"id": "ext-77"}'))
    resp = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "track me"})
    message_id = resp.json()["id"]

    async def sent() -> bool:
        return (await message(api, conv_id, message_id))["provider_message_id"] == "ext-77"

    await eventually(sent)
    await post_signed(
        server,
        channel_id,
        {"statuses": [{"id": "ext-77", "status": "read", "timestamp": 1_750_000_010}]},
    )

    async def is_read() -> bool:
        return (await message(api, conv_id, message_id))["status"] == "read"

    await eventually(is_read)
    # A late "delivered" (and a stray "failed") never overwrite "read".
    await post_signed(
        server,
        channel_id,
        {"statuses": [{"id": "ext-77", "status": "delivered", "timestamp": 1_750_000_005}]},
    )
    await post_signed(
        server,
        channel_id,
        {"statuses": [{"id": "ext-77", "status": "failed", "timestamp": 1_750_000_020}]},
    )

    async def processed() -> bool:
        resp = await api.get("/api/v1/inbound_events", params={"state": "pending"})
        return resp.json() == []

    await eventually(processed)
    final = await message(api, conv_id, message_id)
    assert final["status"] == "read"
    assert final["error_reason"] is None


async def test_the_claim_walks_pending_deliveries_in_id_order_and_stops(server: Server) -> None:
    """The claim reads the first n due deliveries in id order through (state, id) and stops
    there; it must not test and sort every pending row (10 ms per claim at 20,000 queued, and
    growing with the queue). Read from the database's own plan."""
    rt = server.runtime
    stmt = delivery.claim_statement(rt, utcnow(), delivery.BUSY_BATCH)
    async with rt.db.read() as s:
        conn = await s.connection()
        if rt.db.is_sqlite:
            sql = str(stmt.compile(conn.engine, compile_kwargs={"literal_binds": True}))
            plan = " | ".join(
                str(r[-1]) for r in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            )
            assert "ix_delivery_claim_order" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of every pending row
        else:
            # PostgreSQL: the index exists; its planner chooses by statistics.
            names = (
                await conn.exec_driver_sql(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'delivery'"
                )
            ).scalars()
            assert "ix_delivery_claim_order" in set(names)
