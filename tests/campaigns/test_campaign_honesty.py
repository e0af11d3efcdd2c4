"""What a campaign says is what happened: `completed` only once every recipient's message left
the outbox, Pause stops sends (queued messages are held, resume releases them, cancel withdraws
them), and the conversations a campaign opens are honest about themselves (awaiting reply,
their channel, the CSV's name, the phone identity agents can answer on)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.campaigns.conftest import api_channel, api_customers, wait_counts, wait_state
from tests.campaigns.test_fallback_preference import channels, sms_sent, thread, tw
from tests.conftest import Owner, Server, eventually, sandbox_headers
from tidings.domain.enums import DeliveryState
from tidings.storage.models import Contact, Conversation, Delivery, Message

__all__ = ["tw"]  # the Twilio simulator fixture


async def received(server: Server, account: str = "acme") -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=f"{server.url}/sandbox/api", headers=sandbox_headers(server)
    ) as sim:
        data: list[dict[str, Any]] = (
            await sim.get("/_sim/received", params={"account": account})
        ).json()
    return data


async def capped_campaign(
    api: httpx.AsyncClient, name: str, contacts: list[int], channel: dict, rate: float
) -> int:
    r = await api.post(
        "/api/v1/campaigns",
        json={
            "name": name,
            "content": {"text": "Hello {{name}}"},
            "audience": {"contact_ids": contacts},
            "channel_ids": [channel["id"]],
            "rate_per_second": rate,
        },
    )
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    launched = await api.post(f"/api/v1/campaigns/{cid}/launch")
    assert launched.status_code == 200, launched.text
    return cid


async def test_completed_only_when_no_message_is_still_queued(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    """At a 2/s cap the fan-out keeps a couple of messages queued ahead of the sends: the last
    recipients were queued (none pending) seconds before their messages left. The campaign
    said `completed` then (57 % done); it must stay `running` until none is queued."""
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 6)
    cid = await capped_campaign(api, "Capped", contacts, channel, 2)
    seen: list[tuple[str, dict[str, int]]] = []

    async def done() -> bool:
        c = (await api.get(f"/api/v1/campaigns/{cid}")).json()
        seen.append((c["state"], c["counts"]))
        return c["state"] == "completed"

    await eventually(done, timeout=30, interval=0.05)
    early = [
        (state, counts)
        for state, counts in seen
        if state == "completed" and (counts["pending"] or counts["queued"])
    ]
    assert early == []
    # It was observed running with every recipient queued or further and some still queued.
    assert any(s == "running" and c["pending"] == 0 and c["queued"] > 0 for s, c in seen)
    assert len(await received(server)) == 6


async def test_pause_holds_queued_messages_and_resume_releases_them(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 10)
    cid = await capped_campaign(api, "Pausable", contacts, channel, 2)

    async def two_out() -> bool:
        return len(await received(server)) >= 2

    await eventually(two_out, timeout=20)
    paused = (await api.post(f"/api/v1/campaigns/{cid}/pause")).json()
    assert paused["state"] == "paused"
    outbox = paused["outbox"]
    assert set(outbox) == {"held", "waiting", "in_flight"} and outbox["waiting"] == 0
    at_pause = len(await received(server))
    await asyncio.sleep(2.5)
    after = len(await received(server))
    # At 2/s a claimed message may be in its provider call when the worker learns of the pause
    # (it looks again at most every 0.25 s): one may still go; the queue ahead of it does not.
    assert after - at_pause <= 1, (at_pause, after, outbox)
    now = (await api.get(f"/api/v1/campaigns/{cid}")).json()
    assert now["outbox"]["in_flight"] == 0 and now["outbox"]["waiting"] == 0
    assert now["outbox"]["held"] == now["counts"]["queued"] > 0
    async with server.runtime.db.read() as s:
        held = await s.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.state == DeliveryState.HELD)
        )
    assert held == now["outbox"]["held"]
    # Still paused a while later: held messages never complete a campaign.
    await asyncio.sleep(0.6)
    assert (await api.get(f"/api/v1/campaigns/{cid}")).json()["state"] == "paused"

    resumed = (await api.post(f"/api/v1/campaigns/{cid}/resume")).json()
    assert resumed["state"] == "running" and resumed["outbox"]["held"] == 0
    await wait_state(api, cid, "completed", timeout=30)
    got = await received(server)
    assert sorted(m["to"] for m in got) == sorted(f"cust-{i}" for i in range(10))  # once each


async def test_deleting_the_channel_fails_what_a_pause_held(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    """Held messages of a deleted channel used to stay `queued` for good (only pending ones
    failed), and their campaign with them."""
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 10)
    cid = await capped_campaign(api, "Orphaned", contacts, channel, 2)

    async def two_out() -> bool:
        return len(await received(server)) >= 2

    await eventually(two_out, timeout=20)
    paused = (await api.post(f"/api/v1/campaigns/{cid}/pause")).json()
    assert paused["state"] == "paused"

    async def held_and_settled() -> bool:
        # The delivery worker learns of the pause within a moment; a send in its provider call
        # when the pause landed finishes first.
        outbox = (await api.get(f"/api/v1/campaigns/{cid}")).json()["outbox"]
        return bool(outbox["held"] > 0 and outbox["in_flight"] == 0)

    await eventually(held_and_settled, timeout=20)

    async def queued() -> int:
        async with server.runtime.db.read() as s:
            return int(
                await s.scalar(
                    select(func.count()).select_from(Message).where(Message.status == "queued")
                )
                or 0
            )

    unsent = await queued()
    assert unsent > 0
    assert (await api.delete(f"/api/v1/channels/{channel['id']}")).status_code == 204
    async with server.runtime.db.read() as s:
        failed = await s.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.status == "failed", Message.error_code == "channel_deleted")
        )
    assert await queued() == 0 and failed == unsent
    counts = (await api.get(f"/api/v1/campaigns/{cid}")).json()["counts"]
    assert counts["queued"] == 0 and counts["failed"] == unsent, counts
    resumed = (await api.post(f"/api/v1/campaigns/{cid}/resume")).json()
    assert resumed["state"] in ("running", "completed")
    await wait_state(api, cid, "completed", timeout=30)


async def test_cancel_withdraws_what_a_pause_held(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 8)
    cid = await capped_campaign(api, "Cancelled", contacts, channel, 2)

    async def one_out() -> bool:
        return len(await received(server)) >= 1

    await eventually(one_out, timeout=20)
    await api.post(f"/api/v1/campaigns/{cid}/pause")

    async def settled() -> dict[str, Any] | None:
        c: dict[str, Any] = (await api.get(f"/api/v1/campaigns/{cid}")).json()
        return c if c["outbox"]["in_flight"] == 0 else None

    await eventually(settled, timeout=10)
    cancelled = (await api.post(f"/api/v1/campaigns/{cid}/cancel")).json()
    counts = cancelled["counts"]
    assert cancelled["outbox"] == {"held": 0, "waiting": 0, "in_flight": 0}
    assert counts["pending"] == 0 and counts["queued"] == 0
    sent_before = len(await received(server))
    await asyncio.sleep(1.0)
    assert len(await received(server)) == sent_before
    report = (await api.get(f"/api/v1/campaigns/{cid}/report")).json()
    skipped = {f["reason"]: f["count"] for f in report["failures"] if f["state"] == "skipped"}
    assert skipped["campaign_cancelled"] == counts["skipped"] == 8 - sent_before
    async with server.runtime.db.read() as s:
        withdrawn = (
            await s.scalars(select(Message.error_reason).where(Message.status == "failed"))
        ).all()
    assert withdrawn and all("Withdrawn" in (w or "") for w in withdrawn)


async def test_campaign_conversations_wait_for_a_reply_with_name_channel_and_identity(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    tw: httpx.AsyncClient,
    campaign_workers: None,
) -> None:
    _w, t = await channels(api, server)
    # A contact known by number only (no name), as an earlier import or API call left it.
    async with server.runtime.db.write() as s:
        s.add(
            Contact(
                workspace_id=owner.workspace_id, name=None, phone_e164="+14155550131", attributes={}
            )
        )
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Hello",
                "content": {"text": "Hi {{first_name}}"},
                "channel_ids": [t["id"]],
            },
        )
    ).json()
    up = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=b"phone,name\n+14155550131,Mara Kim\n+14155550132,Joe Bell\n",
        headers={"Content-Type": "text/csv"},
    )
    assert up.json()["added"] == 2 and up.json()["contacts_created"] == 1
    assert (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).status_code == 200

    async def two_sms() -> bool:
        return len(await sms_sent(tw)) == 2

    await eventually(two_sms, timeout=30)
    await wait_state(api, c["id"], "completed")
    recipients = (await api.get(f"/api/v1/campaigns/{c['id']}/recipients")).json()["data"]
    mara = next(r for r in recipients if r["address"] == "+14155550131")
    conv_id = mara["conversation_id"]
    conv = (await api.get(f"/api/v1/conversations/{conv_id}")).json()
    # Awaiting reply: not in the open list, not snoozed; the SMS channel is its channel.
    assert conv["status"] == "resolved" and conv["last_channel_id"] == t["id"]
    contact = (await api.get(f"/api/v1/contacts/{mara['contact_id']}")).json()
    assert contact["name"] == "Mara Kim"  # the CSV's name, for the contact that had none
    # An agent can answer on SMS before the customer writes: the number is her identity.
    r = await api.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "Any questions?", "channel_id": t["id"]},
    )
    assert r.status_code == 201, r.text

    # Her answer lands under the campaign message and reopens the conversation.
    r = await tw.post(
        "/_sim/inbound", json={"from": "+14155550131", "text": "Yes!", "to": "+14155550100"}
    )
    assert r.status_code == 200, r.text

    async def reopened() -> dict[str, Any] | None:
        got: dict[str, Any] = (await api.get(f"/api/v1/conversations/{conv_id}")).json()
        return got if got["status"] == "open" else None

    await eventually(reopened, timeout=20)
    bodies = [m["body"] for m in await thread(api, conv_id)]
    assert bodies[0] == "Hi Mara" and bodies[-1] == "Yes!"
    async with server.runtime.db.read() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.contact_id == mara["contact_id"])
        )
    assert n == 1
    report = (await api.get(f"/api/v1/campaigns/{c['id']}/report")).json()
    assert report["replies"] == 1
    await wait_counts(api, c["id"], pending=0, queued=0)


async def test_a_withdrawn_campaign_message_cannot_be_retried(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    """Cancel withdraws the messages that never left; the thread shows each as failed
    ("Withdrawn: …") with the Retry button every failed message has. Retry must not send a
    cancelled campaign's message (it did: the customer got it after the cancel, and the
    report still counted the recipient as skipped)."""
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 6)
    cid = await capped_campaign(api, "Withdrawn", contacts, channel, 2)

    async def one_out() -> bool:
        return len(await received(server)) >= 1

    await eventually(one_out, timeout=20)
    await api.post(f"/api/v1/campaigns/{cid}/pause")

    async def settled() -> dict[str, Any] | None:
        c: dict[str, Any] = (await api.get(f"/api/v1/campaigns/{cid}")).json()
        return c if c["outbox"]["in_flight"] == 0 else None

    await eventually(settled, timeout=10)
    assert (await api.post(f"/api/v1/campaigns/{cid}/cancel")).status_code == 200
    async with server.runtime.db.read() as s:
        withdrawn = (await s.scalars(select(Message.id).where(Message.status == "failed"))).all()
    assert withdrawn
    sent_before = len(await received(server))
    retried = await api.post(f"/api/v1/ui/messages/{withdrawn[0]}/retry")
    assert retried.status_code == 409, retried.text
    assert "withdrawn" in retried.json()["error"]["message"].lower()
    await asyncio.sleep(1.0)
    assert len(await received(server)) == sent_before


async def test_a_provider_notice_is_not_a_reply_to_the_campaign(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    """WhatsApp's "the customer changed their user id" notice is a system line in the customer's
    latest conversation — for a campaign recipient, the one the campaign wrote in. The
    customer wrote nothing: the report must not count it as their reply (it did); their next
    message does count."""
    from tests.channels.test_whatsapp_identity_change import (
        FIXTURES,
        NEW_BSUID,
        NUMBER,
        OLD_BSUID,
        post,
        text_from,
    )
    from tests.core.test_whatsapp_e2e import whatsapp_channel

    channel = await whatsapp_channel(server, api)
    now = int(time.time())
    await post(channel, text_from("wamid.C1", now - 60, "hello", NUMBER, OLD_BSUID))

    async def contact_ids() -> list[int] | None:
        data = (await api.get("/api/v1/contacts")).json()["data"]
        return [c["id"] for c in data] or None

    contacts = await eventually(contact_ids)
    c = await api.post(
        "/api/v1/campaigns",
        json={
            "name": "Notice",
            "content": {"text": "Our news"},
            "audience": {"contact_ids": contacts},
            "channel_ids": [channel["id"]],
        },
    )
    assert c.status_code == 201, c.text
    cid = c.json()["id"]
    assert (await api.post(f"/api/v1/campaigns/{cid}/launch")).status_code == 200
    await wait_state(api, cid, "completed")

    async def stored(n: int) -> bool:
        async with server.runtime.db.read() as s:
            got = await s.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "in")
            )
        return got == n

    await post(channel, (FIXTURES / "system_user_changed_user_id.json").read_bytes())
    await eventually(lambda: stored(2))
    report = (await api.get(f"/api/v1/campaigns/{cid}/report")).json()
    assert report["replies"] == 0, report

    await post(channel, text_from("wamid.C3", now, "tell me more", None, NEW_BSUID))
    await eventually(lambda: stored(3))
    report = (await api.get(f"/api/v1/campaigns/{cid}/report")).json()
    assert report["replies"] == 1, report
