"""The rollup's batches: one recompute consumes every mark of the conversations it names, marks
above the settled bound wait, and a conversation's burst of marks is one recompute.

The server runs no workers here (the job would race the test's own batches); the marks come
from the real triggers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from tests.conftest import Owner, Server, free_port, make_settings, serving
from tidings.reports import rollup
from tidings.reports.models import ReportConversation, ReportDirty
from tidings.storage.models import Contact, Conversation
from tidings.storage.types import utcnow


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    settings = make_settings(database_url, tmp_path / "data", free_port(), run_workers=False)
    async with serving(settings) as srv:
        yield srv


async def conversations(server: Server, owner: Owner, n: int) -> list[int]:
    """n conversations, each marked by the triggers when created and again when updated."""
    now = utcnow()
    async with server.runtime.db.write() as s:
        ids = []
        for i in range(n):
            contact = Contact(workspace_id=owner.workspace_id, name=f"c{i}", attributes={})
            s.add(contact)
            await s.flush()
            conv = Conversation(
                workspace_id=owner.workspace_id,
                inbox_id=owner.inbox_id,
                contact_id=contact.id,
                status="open",
                priority="none",
                unread_count=0,
                last_activity_at=now,
                created_at=now,
                updated_at=now,
            )
            s.add(conv)
            await s.flush()
            ids.append(conv.id)
    async with server.runtime.db.write() as s:
        await s.execute(update(Conversation).values(status="pending"))
    return ids


async def marks(server: Server) -> list[tuple[int, int]]:
    async with server.runtime.db.read() as s:
        rows = await s.execute(
            select(ReportDirty.id, ReportDirty.conversation_id).order_by(ReportDirty.id)
        )
        return [(i, c) for i, c in rows.all()]


async def reported(server: Server) -> dict[int, str]:
    async with server.runtime.db.read() as s:
        rows = await s.execute(
            select(ReportConversation.conversation_id, ReportConversation.status)
        )
        return {c: st for c, st in rows.all()}


async def test_one_batch_consumes_all_marks_of_its_conversations(
    server: Server, owner: Owner
) -> None:
    await rollup.drain(server.runtime)  # whatever the workspace's bootstrap marked
    first, second = await conversations(server, owner, 2)
    before = await marks(server)
    assert len([m for m in before if m[1] == first]) >= 2  # created, then updated
    # A batch of one mark names the oldest mark's conversation; all of its marks go.
    consumed = await rollup.process_batch(server.runtime, limit=1)
    assert consumed == len([m for m in before if m[1] == first])
    assert {c for _, c in await marks(server)} == {second}
    assert (await reported(server)).get(first) == "pending"
    assert second not in await reported(server)


async def test_marks_above_the_settled_bound_wait(server: Server, owner: Owner) -> None:
    await rollup.drain(server.runtime)
    first, second = await conversations(server, owner, 2)
    bound = max(i for i, c in await marks(server) if c == first)
    # A later change to the first conversation marks it above the bound.
    async with server.runtime.db.write() as s:
        await s.execute(insert(ReportDirty).values(conversation_id=first))
    everything = await marks(server)
    consumed = 0
    while n := await rollup.process_batch(server.runtime, upto=bound):
        consumed += n
    assert await marks(server) == [m for m in everything if m[0] > bound]
    assert consumed == len([m for m in everything if m[0] <= bound])
    assert any(c == first for i, c in everything if i > bound)
    assert first in await reported(server)
    await rollup.drain(server.runtime)
    assert await marks(server) == []
    assert set(await reported(server)) >= {first, second}


async def test_a_batch_past_its_slice_consumes_only_what_it_recomputed(
    server: Server, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite shares its one writer with the ingest loop: a batch stops after its slice (here
    at once, after the first chunk) and leaves the other conversations' marks for the next."""
    if not server.runtime.db.is_sqlite:
        pytest.skip("the slice bounds SQLite's single write lock only")
    await rollup.drain(server.runtime)
    ids = await conversations(server, owner, rollup.RECOMPUTE_CHUNK + 5)
    monkeypatch.setattr(rollup, "SLICE_SECONDS", 0.0)
    consumed = await rollup.process_batch(server.runtime)
    first_chunk = set(sorted(ids)[: rollup.RECOMPUTE_CHUNK])
    assert set(await reported(server)) == first_chunk
    assert {c for _, c in await marks(server)} == set(ids) - first_chunk
    assert consumed > 0
    await rollup.drain(server.runtime)
    assert set(await reported(server)) == set(ids)
    assert await marks(server) == []


async def test_a_batch_stops_for_a_customer_event_on_its_way(
    server: Server, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a customer's event waits to be applied (storage/db.py `PriorityHold`, held), a
    SQLite batch ends after its first chunk however long its slice, consuming only what it
    recomputed."""
    if not server.runtime.db.is_sqlite:
        pytest.skip("the hold serves SQLite's single write lock only")
    await rollup.drain(server.runtime)
    ids = await conversations(server, owner, rollup.RECOMPUTE_CHUNK + 5)
    monkeypatch.setattr(rollup, "SLICE_SECONDS", 3600.0)
    hold = server.runtime.db.priority
    hold.enabled = True  # no ingest loop runs here to end it
    hold.begin()
    consumed = await rollup.process_batch(server.runtime)
    first_chunk = set(sorted(ids)[: rollup.RECOMPUTE_CHUNK])
    assert set(await reported(server)) == first_chunk
    assert consumed > 0
    hold.end(hold.generation)
    await rollup.drain(server.runtime)
    assert set(await reported(server)) == set(ids)
    assert await marks(server) == []
