"""LINE multicast over real HTTP: a campaign's same message goes to LINE friends in calls of
up to 500 user ids (docs/channels/line.md, "Multicast"), a call whose answer was lost is not
sent twice (retry key, 409), and a refused call fails every recipient with LINE's reason so the
campaign's fallback channel takes over."""

from __future__ import annotations

import math
from typing import Any

import httpx
from sqlalchemy import insert, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import line_channel, twilio_channel
from tidings.campaigns import fanout
from tidings.delivery import worker as delivery_worker
from tidings.storage.models import Contact, ContactIdentity, Message

TOKEN = "multicast-line-token"
SECRET = "multicast-line-secret"
CHANNEL = {"name": "LINE", "channel_secret": SECRET, "channel_access_token": TOKEN}


def user_id(i: int) -> str:
    return f"U{i:032x}"


async def friends(
    server: Server, owner: Owner, sim: httpx.AsyncClient, n: int, *, phones: bool = False
) -> list[str]:
    """n LINE friends known to Tidings as contacts (as an import would give them) and to the
    simulator as people following the account."""
    users = [user_id(i + 1) for i in range(n)]
    async with server.runtime.db.write() as s:
        for i, uid in enumerate(users):
            contact_id = await s.scalar(
                insert(Contact)
                .values(
                    workspace_id=owner.workspace_id,
                    name=f"Friend {i}",
                    phone_e164=f"+1415555{i:04d}" if phones else None,
                    attributes={},
                )
                .returning(Contact.id)
            )
            await s.execute(
                insert(ContactIdentity).values(
                    workspace_id=owner.workspace_id,
                    contact_id=contact_id,
                    channel_kind="line",
                    address=uid,
                )
            )
    r = await sim.post("/line/_sim/friends", json={"token": TOKEN, "user_ids": users})
    assert r.status_code == 200, r.text
    return users


async def launch(api: httpx.AsyncClient, body: dict[str, Any]) -> int:
    created = await api.post("/api/v1/campaigns", json={"audience": {"all_contacts": True}, **body})
    assert created.status_code == 201, created.text
    cid = int(created.json()["id"])
    launched = await api.post(f"/api/v1/campaigns/{cid}/launch")
    assert launched.status_code == 200, launched.text
    return cid


def stop_delivery(server: Server) -> None:
    for task in list(server.runtime.background):
        if task.get_name() == "worker-delivery":
            task.cancel()


async def calls(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await sim.get("/line/_sim/sent", params={"token": TOKEN})).json())


async def test_a_campaign_goes_in_calls_of_500_and_every_friend_gets_it_once(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    n = 1100
    line = await line_channel(api, server, **CHANNEL)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=30
    ) as sim:
        users = await friends(server, owner, sim, n)
        # The whole campaign is queued first, then one delivery worker sends it: the calls'
        # sizes then depend on the grouping alone, not on how fan-out and sending interleave.
        stop_delivery(server)
        cid = await launch(
            api, {"name": "Sale", "content": {"text": "20% off"}, "channel_ids": [line["id"]]}
        )

        async def queued() -> bool:
            # The fan-out keeps at most MAX_OUTSTANDING of a campaign in the outbox.
            counts = (await api.get(f"/api/v1/campaigns/{cid}")).json()["counts"]
            return bool(counts["queued"] >= min(n, fanout.MAX_OUTSTANDING))

        await eventually(queued, timeout=60)
        server.runtime.spawn(delivery_worker.run(server.runtime), name="test-delivery")

        async def all_sent() -> bool:
            async with server.runtime.db.read() as s:
                statuses = (
                    await s.scalars(select(Message.status).where(Message.direction == "out"))
                ).all()
            return len(statuses) == n and set(statuses) == {"sent"}

        await eventually(all_sent, timeout=60)
        made = await calls(sim)
        assert {c["endpoint"] for c in made} == {"multicast"}
        assert len(made) == math.ceil(n / 500)
        assert all(len(c["to"]) <= 500 for c in made)
        assert sorted(u for c in made for u in c["to"]) == sorted(users)
        thread = (await sim.get("/line/_sim/conversations", params={"token": TOKEN})).json()
        got = sorted(m["user"] for m in thread if m["direction"] == "out")
        assert got == sorted(users)  # each friend's phone shows it, once
        assert {m["text"] for m in thread} == {"20% off"}
        quota = (await sim.post("/line/_sim/config", json={"token": TOKEN})).json()
        assert quota["quota_used"] == n  # counted per recipient
    async with server.runtime.db.read() as s:
        ids = (
            await s.scalars(select(Message.provider_message_id).where(Message.direction == "out"))
        ).all()
    assert len(set(ids)) == n and all(str(i).startswith("multicast:") for i in ids)


async def test_a_lost_answer_is_retried_with_the_same_key_and_sent_once(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    line = await line_channel(api, server, **CHANNEL)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=30
    ) as sim:
        users = await friends(server, owner, sim, 3)
        stop_delivery(server)
        # LINE carries out the first call but its answer is lost on the way back.
        failing = await sim.post(
            "/line/_sim/fail",
            json={"token": TOKEN, "endpoint": "multicast", "status": 500, "lose_answer": True},
        )
        assert failing.status_code == 200
        cid = await launch(
            api, {"name": "Hello", "content": {"text": "Hello all"}, "channel_ids": [line["id"]]}
        )

        async def queued() -> bool:
            counts = (await api.get(f"/api/v1/campaigns/{cid}")).json()["counts"]
            return counts["pending"] == 0

        await eventually(queued, timeout=30)
        server.runtime.spawn(delivery_worker.run(server.runtime), name="test-delivery")

        async def all_sent() -> list[str] | None:
            async with server.runtime.db.read() as s:
                rows = (
                    await s.scalars(select(Message.status).where(Message.direction == "out"))
                ).all()
            return list(rows) if len(rows) == 3 and set(rows) == {"sent"} else None

        await eventually(all_sent, timeout=30)
        made = await calls(sim)
        assert [(c["endpoint"], c["status"]) for c in made] == [
            ("multicast", 200),
            ("retry", 409),
        ]
        assert made[0]["key"] == made[1]["key"]
        thread = (await sim.get("/line/_sim/conversations", params={"token": TOKEN})).json()
        assert sorted(m["user"] for m in thread) == sorted(users)  # once each


async def test_quota_spent_fails_every_recipient_with_lines_reason_and_falls_back(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    line = await line_channel(api, server, **CHANNEL)
    sms = await twilio_channel(api, server)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=30
    ) as sim:
        await friends(server, owner, sim, 3, phones=True)
        # Two pushes left this month: a multicast to three is refused as a whole.
        await sim.post("/line/_sim/config", json={"token": TOKEN, "quota": 2, "quota_used": 0})
        await launch(
            api,
            {
                "name": "Spring",
                "content": {"text": "Spring sale"},
                "channel_ids": [line["id"]],
                "fallback": {"to_channel_id": sms["id"], "on_failed": True, "after_seconds": 600},
            },
        )

        async def three_sms() -> list[Any] | None:
            sent = (await sim.get("/twilio/_sim/sent")).json()
            return sent if len(sent) == 3 else None

        texts = await eventually(three_sms, timeout=30)
        assert {dict(t["params"])["Body"] for t in texts} == {"Spring sale"}
        made = await calls(sim)
        assert [(c["endpoint"], c["status"]) for c in made] == [("multicast", 429)]
        thread = (await sim.get("/line/_sim/conversations", params={"token": TOKEN})).json()
        assert thread == []
    async with server.runtime.db.read() as s:
        failed = (
            await s.scalars(
                select(Message).where(Message.channel_id == line["id"], Message.status == "failed")
            )
        ).all()
    assert len(failed) == 3
    assert all("monthly limit" in (m.error_reason or "") for m in failed)


async def test_personalised_or_capped_campaigns_go_one_by_one(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    line = await line_channel(api, server, **CHANNEL)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=30
    ) as sim:
        await friends(server, owner, sim, 3)
        # Each friend's own name: three different messages.
        await launch(
            api,
            {"name": "Named", "content": {"text": "Hi {{name}}"}, "channel_ids": [line["id"]]},
        )
        # A capped campaign trickles: a multicast would spend its budget at once.
        await launch(
            api,
            {
                "name": "Capped",
                "content": {"text": "slowly"},
                "channel_ids": [line["id"]],
                "rate_per_second": 5,
            },
        )

        async def pushed() -> list[Any] | None:
            made = await calls(sim)
            return made if len(made) == 6 else None

        made = await eventually(pushed, timeout=30)
        assert {(c["endpoint"], c["status"]) for c in made} == {("push", 200)}
        thread = (await sim.get("/line/_sim/conversations", params={"token": TOKEN})).json()
        assert sorted(m["text"] for m in thread) == sorted(
            [f"Hi Friend {i}" for i in range(3)] + ["slowly"] * 3
        )
