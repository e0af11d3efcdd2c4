"""At-least-once delivery with idempotent runs: an event seen again does not run its rules
again, and a run a crashed worker left half done resumes after its last recorded action."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from tests.automation.helpers import (
    conversations,
    customer_says,
    runs,
    settled,
    simulator,
    thread,
    whatsapp_channel,
)
from tests.conftest import Owner, Server, eventually
from tidings.storage.models import AutomationEvent, Message, RuleRun
from tidings.storage.types import utcnow


async def test_resume_after_a_crash_and_ignore_a_redelivery(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    sim = simulator(server)
    await customer_says(sim, "hello")
    conv = (await eventually(lambda: conversations(api)))[0]
    await settled(server)
    rule = (
        await api.post(
            "/api/v1/automation/rules",
            json={
                "name": "Two labels",
                "event": "message.received",
                "actions": [
                    {"type": "add_label", "name": "first"},
                    {"type": "add_label", "name": "second"},
                ],
            },
        )
    ).json()

    # The state a worker leaves when it dies after the first action committed (with its
    # record) and before the second: the event leased, the run `running` with one result.
    async with server.runtime.db.write() as s:
        message_id = await s.scalar(select(Message.id).where(Message.conversation_id == conv["id"]))
        long_ago = utcnow() - timedelta(minutes=10)
        event = AutomationEvent(
            workspace_id=owner.workspace_id,
            event="message.received",
            conversation_id=conv["id"],
            message_id=message_id,
            state="pending",
            attempts=1,
            next_attempt_at=utcnow(),
            created_at=long_ago,
        )
        s.add(event)
        await s.flush()
        s.add(
            RuleRun(
                workspace_id=owner.workspace_id,
                rule_id=rule["id"],
                rule_name=rule["name"],
                kind="rule",
                conversation_id=conv["id"],
                event_id=event.id,
                event="message.received",
                dedupe_key=f"rule:{rule['id']}:event:{event.id}",
                state="running",
                results=[{"index": 0, "action": "add_label", "outcome": "ok"}],
                created_at=long_ago,
            )
        )
        event_id = event.id
    server.runtime.wake("automation")
    await settled(server)

    got = (await api.get(f"/api/v1/conversations/{conv['id']}")).json()
    assert got["labels"] == ["second"]  # the first action is not repeated
    logged = await runs(api, conversation_id=conv["id"])
    assert len(logged) == 1
    assert logged[0]["state"] == "done"
    assert [r["index"] for r in logged[0]["results"]] == [0, 1]

    # The same event delivered again (a lease expired after the work was done): nothing new.
    async with server.runtime.db.write() as s:
        await s.execute(
            update(AutomationEvent)
            .where(AutomationEvent.id == event_id)
            .values(state="pending", next_attempt_at=utcnow())
        )
    server.runtime.wake("automation")
    await settled(server)
    assert len(await runs(api, conversation_id=conv["id"])) == 1
    system = [m["body"] for m in await thread(api, conv["id"]) if m["kind"] == "system"]
    assert system == ["Rule 'Two labels' added label second"]
    await sim.aclose()
