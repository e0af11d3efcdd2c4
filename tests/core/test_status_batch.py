"""The one status path (issue 14 item 2): receipts applied as a set by the status lane, one
receipt alone, and the delivery worker's send answers — all through `do_apply_statuses`.

Real database (SQLite, or PostgreSQL with TIDINGS_TEST_DATABASE_URL), real WhatsApp status
webhooks cut by the adapter's `split`, the real ingest worker's `process_batch`."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bench.statuses.world import build, status, store
from sqlalchemy import insert, select, update

from tests.conftest import free_port, make_settings
from tidings.actions.base import transaction
from tidings.actions.outbound import do_record_failures, do_record_sent
from tidings.actions.statuses import FORWARD_RANK, StatusReport, do_apply_statuses
from tidings.channels.base import Permanent, Sent
from tidings.domain.enums import InboundState, MessageStatus, status_moves_forward
from tidings.ingest.rows import MAX_RETRY_LATER
from tidings.ingest.statuses import apply_status_rows
from tidings.ingest.worker import process_batch, replay
from tidings.runtime import Runtime
from tidings.storage.models import (
    CampaignRecipient,
    Delivery,
    InboundEvent,
    Message,
    WebhookDelivery,
    WebhookSubscription,
)
from tidings.storage.types import utcnow

T0 = 1_750_000_000


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    # No workers: the test drives the ingest worker's batches itself.
    settings = make_settings(database_url, tmp_path, free_port(), run_workers=False)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def drain(rt: Runtime) -> None:
    # The worker's own claims (their size is the worker's business, not this test's).
    while await process_batch(rt):
        pass


async def statuses_of(rt: Runtime, ids: list[int]) -> list[str]:
    async with rt.db.read() as s:
        found = dict(
            (await s.execute(select(Message.id, Message.status).where(Message.id.in_(ids)))).all()
        )
    return [found[i] for i in ids]


async def events_by_state(rt: Runtime) -> dict[str, int]:
    async with rt.db.read() as s:
        rows = (await s.execute(select(InboundEvent.state))).scalars().all()
    out: dict[str, int] = {}
    for state in rows:
        out[state] = out.get(state, 0) + 1
    return out


def test_forward_rank_is_the_forward_only_rule() -> None:
    statuses = [*FORWARD_RANK, MessageStatus.RECEIVED]
    for current, new in itertools.product(statuses, statuses):
        by_rank = FORWARD_RANK.get(new, -1) > FORWARD_RANK.get(current, 99)
        assert by_rank == status_moves_forward(current, new), (current, new)


async def test_one_batch_collapses_each_message_to_its_furthest_status(rt: Runtime) -> None:
    world = await build(rt, 4, campaign_every=0)
    await store(
        rt,
        world,
        [
            # read before delivered before sent: read wins
            status(0, "read", T0 + 1),
            status(0, "delivered", T0 + 2),
            status(0, "sent", T0 + 3),
            # a failure after read changes nothing
            status(1, "read", T0 + 1),
            status(1, "failed", T0 + 2),
            # a failure, then the message was delivered after all
            status(2, "failed", T0 + 1),
            status(2, "delivered", T0 + 2),
            # failed alone: with its reason
            status(3, "failed", T0 + 1, error_code=131026),
        ],
    )
    await drain(rt)
    assert await statuses_of(rt, world.message_ids) == ["read", "read", "delivered", "failed"]
    assert await events_by_state(rt) == {"done": 8}
    async with rt.db.read() as s:
        failed = (
            await s.execute(select(Message).where(Message.id == world.message_ids[3]))
        ).scalar_one()
        delivered = (
            await s.execute(select(Message).where(Message.id == world.message_ids[2]))
        ).scalar_one()
    assert failed.error_code == "131026" and failed.error_reason
    assert delivered.status == "delivered"


async def test_across_batches_a_late_receipt_never_moves_a_message_back(rt: Runtime) -> None:
    world = await build(rt, 2, campaign_every=1)
    await store(rt, world, [status(0, "read", T0), status(1, "delivered", T0)])
    await drain(rt)
    async with rt.db.read() as s:
        before = dict((await s.execute(select(Message.id, Message.updated_at))).all())
        recipients_before = dict(
            (await s.execute(select(CampaignRecipient.id, CampaignRecipient.updated_at))).all()
        )
    await store(rt, world, [status(0, "delivered", T0 + 5), status(0, "failed", T0 + 6)])
    await drain(rt)
    assert await statuses_of(rt, world.message_ids) == ["read", "delivered"]
    async with rt.db.read() as s:
        after = dict((await s.execute(select(Message.id, Message.updated_at))).all())
        recipients = dict(
            (await s.execute(select(CampaignRecipient.id, CampaignRecipient.state))).all()
        )
        recipients_after = dict(
            (await s.execute(select(CampaignRecipient.id, CampaignRecipient.updated_at))).all()
        )
    assert after == before  # nothing written for receipts that change nothing
    assert recipients_after == recipients_before
    rid0, rid1 = (world.recipient_ids[m] for m in world.message_ids)
    assert (recipients[rid0], recipients[rid1]) == ("read", "delivered")
    assert await events_by_state(rt) == {"done": 4}


async def test_unknown_message_is_retried_then_failed_with_reason_then_replayed(
    rt: Runtime,
) -> None:
    world = await build(rt, 1, campaign_every=0)
    await store(rt, world, [status("wamid.LATER", "delivered", T0), status(0, "read", T0)])
    await drain(rt)
    async with rt.db.read() as s:
        row = (
            await s.execute(select(InboundEvent).where(InboundEvent.event_key.like("%LATER%")))
        ).scalar_one()
    # Kept for a retry, with the reason; the other receipt of the batch went through.
    assert row.state == InboundState.PENDING and row.attempts == 1
    assert row.next_attempt_at > utcnow() and "wamid.LATER" in (row.error or "")
    assert await statuses_of(rt, world.message_ids) == ["read"]
    # The last retry: failed, visible with the reason.
    async with rt.db.write() as s:
        await s.execute(
            update(InboundEvent)
            .where(InboundEvent.id == row.id)
            .values(attempts=MAX_RETRY_LATER, next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    await drain(rt)
    async with rt.db.read() as s:
        failed = await s.get_one(InboundEvent, row.id)
        assert failed.state == InboundState.FAILED
        assert "no message with provider id wamid.LATER" in (failed.error or "")
    # The message turns up (e.g. restored); a replay applies the receipt.
    async with rt.db.write() as s:
        await s.execute(
            update(Message)
            .where(Message.id == world.message_ids[0])
            .values(provider_message_id="wamid.LATER", status="sent")
        )
    assert await replay(rt, event_ids=[row.id]) == 1
    await drain(rt)
    assert await statuses_of(rt, world.message_ids) == ["delivered"]
    assert await events_by_state(rt) == {"done": 2}


async def test_a_bad_row_is_isolated_and_the_others_apply(rt: Runtime) -> None:
    world = await build(rt, 3, campaign_every=0)
    good = [status(i, "delivered", T0 + i) for i in range(3)]
    bad = status(1, "read", T0)
    del bad["timestamp"]  # parse refuses a status without its time
    await store(rt, world, [good[0], bad, good[1], good[2]])
    await drain(rt)
    assert await statuses_of(rt, world.message_ids) == ["delivered"] * 3
    assert await events_by_state(rt) == {"done": 3, "failed": 1}


async def test_a_set_that_fails_is_applied_row_by_row(rt: Runtime) -> None:
    """Two receipts that overtook their sends name the same new provider id for two messages
    (a provider bug): the set's UPDATE breaks the unique (channel, provider id) index, so the
    rows are applied alone — the first wins, the second then finds that message by its id —
    and the rest of the batch is not held back."""
    world = await build(rt, 4, campaign_every=0, with_provider_ids=False)
    a, b, c, d = world.message_ids
    await store(
        rt,
        world,
        [
            status("wamid.SAME", "sent", T0, ref=a),
            status("wamid.SAME", "delivered", T0 + 1, ref=b),
            status("wamid.C", "read", T0 + 2, ref=c),
            status("wamid.D", "delivered", T0 + 3, ref=d),
        ],
    )
    await drain(rt)
    async with rt.db.read() as s:
        rows = {
            r.id: (r.provider_message_id, r.status)
            for r in (await s.execute(select(Message))).scalars()
        }
    assert rows[a] == ("wamid.SAME", "delivered")
    assert rows[b] == (None, "sent")
    assert rows[c] == ("wamid.C", "read")
    assert rows[d] == ("wamid.D", "delivered")
    assert await events_by_state(rt) == {"done": 4}


async def test_receipt_before_the_send_answer_matches_by_our_id(rt: Runtime) -> None:
    world = await build(rt, 2, campaign_every=1, with_provider_ids=False, status="queued")
    mine, other = world.message_ids
    await store(
        rt,
        world,
        [
            status("wamid.MINE", "read", T0, ref=mine),
            # An id that is no message of ours: nothing to match yet.
            status("wamid.STRAY", "read", T0, ref=other + 1000),
        ],
    )
    await drain(rt)
    async with rt.db.read() as s:
        row = await s.get_one(Message, mine)
        recipient = await s.get_one(CampaignRecipient, world.recipient_ids[mine])
    assert (row.provider_message_id, row.status) == ("wamid.MINE", "read")
    assert recipient.state == "read"
    states = await events_by_state(rt)
    assert states == {"done": 1, "pending": 1}  # the stray one waits for a retry

    # The send answer arrives after the read receipt: the delivery worker's path goes through
    # the same function, so the message stays read and keeps its provider id.
    now = utcnow()
    async with rt.db.write() as s:
        delivery_id = await s.scalar(
            insert(Delivery)
            .values(
                workspace_id=world.workspace_id,
                message_id=mine,
                channel_id=world.channel_id,
                conversation_id=row.conversation_id,
                recipient="16505551234",
                state="sending",
                attempts=1,
                next_attempt_at=now,
                fallback={},
                created_at=now,
                updated_at=now,
            )
            .returning(Delivery.id)
        )
    assert delivery_id is not None
    async with transaction(rt) as tx:
        await do_record_sent(tx, [(delivery_id, mine, Sent("wamid.MINE"))])
        sent_events = [e for e in tx.events if e.type.startswith("message")]
    async with rt.db.read() as s:
        row = await s.get_one(Message, mine)
        delivery = await s.get_one(Delivery, delivery_id)
    assert (row.status, delivery.state) == ("read", "done")
    assert sent_events == []  # nothing changed: no event

    # A permanent failure after read: the delivery fails, the message stays read.
    async with transaction(rt) as tx:
        d = await tx.session.get_one(Delivery, delivery_id)
        m = await tx.session.get_one(Message, mine)
        await do_record_failures(tx, [(d, m, Permanent("refused", "131026"))])
    async with rt.db.read() as s:
        row = await s.get_one(Message, mine)
        delivery = await s.get_one(Delivery, delivery_id)
    assert (row.status, row.error_reason, delivery.state) == ("read", None, "failed")


async def test_send_answer_and_failure_move_queued_messages(rt: Runtime) -> None:
    world = await build(rt, 2, campaign_every=1, with_provider_ids=False, status="queued")
    first, second = world.message_ids
    async with transaction(rt) as tx:
        await do_record_sent(tx, [(0, first, Sent("wamid.FIRST"))])
    async with transaction(rt) as tx:
        m = await tx.session.get_one(Message, second)
        d = Delivery(
            workspace_id=world.workspace_id,
            message_id=second,
            channel_id=world.channel_id,
            conversation_id=m.conversation_id,
            recipient="x",
            state="sending",
            attempts=1,
            fallback={},
        )
        tx.session.add(d)
        await tx.session.flush()
        await do_record_failures(tx, [(d, m, Permanent("The number is not on WhatsApp.", "7"))])
        assert m.status == "failed"  # the caller's object knows
    async with rt.db.read() as s:
        a, b = (await s.get_one(Message, first)), (await s.get_one(Message, second))
        recipients = dict(
            (await s.execute(select(CampaignRecipient.message_id, CampaignRecipient.state))).all()
        )
    assert (a.status, a.provider_message_id) == ("sent", "wamid.FIRST")
    assert (b.status, b.error_code, b.error_reason) == (
        "failed",
        "7",
        "The number is not on WhatsApp.",
    )
    assert recipients == {first: "sent", second: "failed"}


async def test_duplicates_apply_once_and_live_events_are_one_per_conversation(
    rt: Runtime,
) -> None:
    world = await build(rt, 4, campaign_every=0, per_conversation=3)
    ids = world.message_ids  # three in the first conversation, one in the second
    async with rt.db.write() as s:
        s.add(
            WebhookSubscription(
                workspace_id=world.workspace_id,
                url="http://127.0.0.1:9/hook",
                secret_encrypted="x",
                events=["message.updated"],
                active=True,
            )
        )
    reports = [
        StatusReport(
            channel_id=world.channel_id, status=MessageStatus(st), provider_message_id=f"wamid.B{i}"
        )
        for i in range(4)
        for st in ("delivered", "read", "read")  # the read twice: a duplicate
    ]
    async with transaction(rt) as tx:
        applied = await do_apply_statuses(tx, reports)
        live = [(e.type, e.data) for e in tx.events]
    assert sorted(applied.moved) == sorted(ids) and applied.unknown == []
    assert sorted(t for t, _data in live) == ["message.updated", "messages.updated"]
    many = next(data for t, data in live if t == "messages.updated")
    one = next(data for t, data in live if t == "message.updated")
    assert many["conversation_id"] == world.conversation_ids[0]
    assert [(m["id"], m["status"]) for m in many["messages"]] == [(i, "read") for i in ids[:3]]
    assert (one["id"], one["status"], one["conversation_id"]) == (
        ids[3],
        "read",
        world.conversation_ids[1],
    )
    # Integrators keep one `message.updated` per message.
    async with rt.db.read() as s:
        hooks = (await s.execute(select(WebhookDelivery.event_type))).scalars().all()
    assert sorted(hooks) == ["message.updated"] * 4
    # The same reports again: nothing moves, nothing is announced.
    async with transaction(rt) as tx:
        again = await do_apply_statuses(tx, reports)
        assert again.moved == {} and tx.events == []


async def test_many_receipts_in_one_lane_batch(rt: Runtime) -> None:
    """A broadcast's receipts, three per message, some out of order: every message ends read,
    every recipient read, every row done."""
    world = await build(rt, 300, campaign_every=2)
    receipts: list[dict[str, Any]] = []
    for i in range(300):
        order = ["sent", "delivered", "read"] if i % 3 else ["read", "sent", "delivered"]
        receipts += [status(i, st, T0 + k) for k, st in enumerate(order)]
    assert await store(rt, world, receipts) == 900
    await drain(rt)
    assert set(await statuses_of(rt, world.message_ids)) == {"read"}
    async with rt.db.read() as s:
        states = set((await s.execute(select(CampaignRecipient.state))).scalars())
    assert states == {"read"}
    assert await events_by_state(rt) == {"done": 900}


async def test_a_batch_that_dies_before_commit_applies_nothing_and_is_applied_once_later(
    rt: Runtime,
) -> None:
    """The lane's work is one transaction with the claim: a worker that dies mid-batch (here:
    an error after the set was applied, before the commit) leaves rows and messages as they
    were, and the next round applies each status once."""
    world = await build(rt, 3, campaign_every=1)
    await store(rt, world, [status(i, st, T0) for i in range(3) for st in ("delivered", "read")])
    with pytest.raises(RuntimeError, match="worker died"):
        async with transaction(rt) as tx:
            rows = (await tx.session.scalars(select(InboundEvent))).all()
            assert await apply_status_rows(tx, rows, lambda: False) == 6
            raise RuntimeError("worker died")
    assert await statuses_of(rt, world.message_ids) == ["sent"] * 3
    assert await events_by_state(rt) == {"pending": 6}
    await drain(rt)
    assert await statuses_of(rt, world.message_ids) == ["read"] * 3
    async with rt.db.read() as s:
        recipients = (await s.execute(select(CampaignRecipient.state))).scalars().all()
        attempts = (await s.execute(select(InboundEvent.attempts))).scalars().all()
    assert sorted(recipients) == ["read"] * 3
    assert attempts == [1] * 6  # the rolled-back round left no trace
