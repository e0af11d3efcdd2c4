"""Reports end to end through the WhatsApp and Twilio simulators: the rollups equal a direct
recount of the raw tables after inbound, replies, a failed reply that falls back to SMS, an
opt-out and a resolution; duplicated webhooks, replayed events, re-processed marks and a
crashed batch do not count anything twice; filters, CSV exports and who may read reports."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from tests import factories
from tests.campaigns.conftest import api_channel, api_customers, wait_counts
from tests.campaigns.test_fallback_preference import (
    E164,
    PNID,
    WA_CUSTOMER,
    channels,
    thread,
)
from tests.conftest import Owner, Server, eventually
from tidings.actions.admin import hash_token
from tidings.ingest import worker as ingest
from tidings.reports import rollup
from tidings.reports.models import (
    MEASURES,
    ReportConversation,
    ReportConversationDay,
    ReportDaily,
    ReportDirty,
)
from tidings.storage.models import (
    Agent,
    ApiToken,
    Conversation,
    InboundEvent,
    Message,
    Workspace,
)
from tidings.storage.types import utcnow


@pytest.fixture
async def wa(server: Server) -> Any:
    async with factories.simulator(server, "whatsapp") as c:
        yield c


@pytest.fixture
async def tw(server: Server) -> Any:
    async with factories.simulator(server, "twilio") as c:
        yield c


async def settled(server: Server) -> None:
    """Wait until the rollup job has applied every mark (the job runs in the test server)."""

    async def done() -> bool:
        return await rollup.pending(server.runtime) == 0

    await eventually(done, timeout=20)


async def recount(server: Server, workspace_id: int) -> dict[int, dict[str, Any]]:
    """Per channel, straight from `message` (not through any report code)."""
    out: dict[int, dict[str, Any]] = defaultdict(
        lambda: {
            "messages_in": 0,
            "messages_out": 0,
            "delivered": 0,
            "read": 0,
            "failed": 0,
            "cost": Decimal(0),
        }
    )
    async with server.runtime.db.read() as s:
        rows = await s.execute(
            select(
                Message.channel_id,
                Message.direction,
                Message.status,
                func.count(),
                func.sum(Message.cost_estimate),
            )
            .where(Message.workspace_id == workspace_id, Message.kind.notin_(("note", "system")))
            .group_by(Message.channel_id, Message.direction, Message.status)
        )
        for channel_id, direction, status, n, cost in rows:
            c = out[channel_id or 0]
            if direction == "in":
                c["messages_in"] += n
                continue
            c["messages_out"] += n
            c["delivered"] += n if status in ("delivered", "read") else 0
            c["read"] += n if status == "read" else 0
            c["failed"] += n if status == "failed" else 0
            c["cost"] += Decimal(cost or 0)
    return dict(out)


async def rollup_totals(server: Server) -> dict[str, Any]:
    async with server.runtime.db.read() as s:
        daily = (
            await s.execute(select(*[func.sum(getattr(ReportDaily, m)) for m in MEASURES]))
        ).one()
        per_conv = (
            await s.execute(
                select(*[func.sum(getattr(ReportConversationDay, m)) for m in MEASURES])
            )
        ).one()
    a = {m: Decimal(v or 0) for m, v in zip(MEASURES, daily, strict=True)}
    b = {m: Decimal(v or 0) for m, v in zip(MEASURES, per_conv, strict=True)}
    assert a == b  # the rollup is exactly the sum of the contributions
    return a


async def test_rollups_match_a_recount_and_nothing_counts_twice(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    tw: httpx.AsyncClient,
) -> None:
    w, t = await channels(api, server)
    r = await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/fallback",
        json={"to_channel_id": t["id"], "on_failed": True, "after_seconds": 600},
    )
    assert r.status_code == 200, r.text
    # Every webhook arrives three times: the pipeline deduplicates, the reports must too.
    r = await wa.post("/_sim/config", json={"duplicate_deliveries": 2})
    assert r.status_code == 200, r.text
    r = await wa.post(
        "/_sim/inbound",
        json={"phone_number_id": PNID, "from": WA_CUSTOMER, "name": "Ana", "text": "hello"},
    )
    assert r.status_code == 200, r.text

    async def conv() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    conv_id = (await eventually(conv))[0]["id"]
    first = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "Hi Ana"})
    assert first.status_code == 201, first.text

    async def read() -> bool:
        msgs = await thread(api, conv_id)
        return any(m["id"] == first.json()["id"] and m["status"] == "read" for m in msgs)

    await eventually(read, timeout=20)
    # The next reply fails on WhatsApp (131026, reported by a status webhook) → SMS fallback.
    fail = await wa.post("/_sim/fail", json={"code": 131026, "mode": "async"})
    assert fail.status_code == 200, fail.text
    second = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"text": "Your order shipped"}
    )
    assert second.status_code == 201, second.text

    async def fell_back() -> bool:
        return any(
            m["extra"].get("fallback_of") == second.json()["id"] for m in await thread(api, conv_id)
        )

    await eventually(fell_back, timeout=20)
    # The customer opts out of SMS (Twilio forwards STOP), then the agent resolves.
    r = await tw.post("/_sim/inbound", json={"from": E164, "text": "STOP", "to": "+14155550100"})
    assert r.status_code == 200, r.text

    async def opted_out() -> bool:
        msgs = (await api.get("/api/v1/conversations")).json()["data"]
        total = 0
        for c in msgs:
            total += sum(1 for m in await thread(api, c["id"]) if m["body"] == "STOP")
        return total == 1

    await eventually(opted_out, timeout=20)
    r = await api.patch(f"/api/v1/conversations/{conv_id}", json={"status": "resolved"})
    assert r.status_code == 200, r.text
    await settled(server)

    expected = await recount(server, owner.workspace_id)
    assert expected[w["id"]]["failed"] == 1 and expected[w["id"]]["read"] >= 1
    assert expected[t["id"]]["messages_out"] == 1
    assert expected[t["id"]]["cost"] == Decimal("0.0079")
    report = (await api.get("/api/v1/reports/channels")).json()
    got = {c["channel_id"] or 0: c for c in report["channels"]}
    for channel_id, want in expected.items():
        row = got[channel_id]
        for key in ("messages_in", "messages_out", "delivered", "read", "failed"):
            assert row[key] == want[key], (channel_id, key)
        assert Decimal(row["cost"]) == want["cost"]
    assert got[w["id"]]["fallbacks"] == {"failed": 1, "not_delivered_in_time": 0, "refused": 0}
    assert report["totals"]["fallbacks"] == 1
    assert report["opt_outs"] == [{"channel_kind": "twilio", "contacts": 1}]
    # Ana was reached on both channels and answered (STOP) on SMS only.
    assert report["customers"] == {
        "multi_channel": 1,
        "fastest_channel": [{"channel_id": t["id"], "name": "SMS", "customers": 1}],
    }

    async with server.runtime.db.read() as s:
        n_convs = await s.scalar(select(func.count()).select_from(Conversation))
        n_resolved = await s.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.status == "resolved")
        )
        msgs = (
            await s.execute(
                select(Message.direction, Message.sender_agent_id, Message.sent_at)
                .where(Message.conversation_id == conv_id, Message.kind.notin_(("note", "system")))
                .order_by(Message.sent_at, Message.id)
            )
        ).all()
        stats = await s.get_one(ReportConversation, conv_id)
    first_in = next(m.sent_at for m in msgs if m.direction == "in")
    first_reply = next(
        m.sent_at for m in msgs if m.direction == "out" and m.sender_agent_id is not None
    )
    assert stats.first_response_seconds == round(max(0.0, (first_reply - first_in).total_seconds()))
    conversations = (await api.get("/api/v1/reports/conversations")).json()
    assert conversations["totals"]["new"] == n_convs
    assert conversations["totals"]["resolved"] == n_resolved == 1
    assert conversations["first_response"]["conversations"] == 1
    assert conversations["first_response"]["median_seconds"] == stats.first_response_seconds
    assert conversations["resolution"]["conversations"] == 1
    before = await rollup_totals(server)
    assert before["messages_out"] == sum(c["messages_out"] for c in expected.values())

    # Replaying every stored inbound event through the ingest worker changes nothing.
    async with server.runtime.db.read() as s:
        event_ids = list((await s.scalars(select(InboundEvent.id))).all())
    assert event_ids
    await ingest.replay(server.runtime, event_ids=event_ids)

    async def replayed() -> bool:
        async with server.runtime.db.read() as s:
            waiting = await s.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.state == "pending")
            )
        return waiting == 0

    await eventually(replayed, timeout=20)
    # Every conversation marked again (a retried batch), twice over: still the same figures.
    async with server.runtime.db.write() as s:
        ids = list((await s.scalars(select(Conversation.id))).all())
        await s.execute(insert(ReportDirty), [{"conversation_id": i} for i in ids * 2])
    await settled(server)
    assert await rollup_totals(server) == before
    # A batch that dies after recomputing leaves its marks and writes nothing.
    async with server.runtime.db.write() as s:
        await s.execute(insert(ReportDirty), [{"conversation_id": i} for i in ids])

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with server.runtime.db.write() as s:
            await rollup.recompute(s, server.runtime.db, ids)
            raise Crash
    await settled(server)
    assert await rollup_totals(server) == before
    assert await recount(server, owner.workspace_id) == expected


async def make_outsiders(server: Server, owner: Owner) -> dict[str, str]:
    """An agent of the owner's workspace, and the owner of another workspace."""
    async with server.runtime.db.write() as s:
        ws = Workspace(name="Other", created_at=utcnow())
        s.add(ws)
        await s.flush()
        other = Agent(workspace_id=ws.id, email="o@x.test", name="O", role="owner")
        agent = Agent(workspace_id=owner.workspace_id, email="a@x.test", name="A", role="agent")
        s.add_all([other, agent])
        await s.flush()
        for who, token in ((other, "tid_reports_other"), (agent, "tid_reports_agent")):
            s.add(
                ApiToken(
                    workspace_id=who.workspace_id,
                    agent_id=who.id,
                    name="t",
                    token_hash=hash_token(token),
                    created_at=utcnow(),
                )
            )
    return {"other": "tid_reports_other", "agent": "tid_reports_agent"}


async def customers_write(server: Server, api: httpx.AsyncClient, who: list[str]) -> list[int]:
    sim = factories.simulator(server, "api")
    for i, name in enumerate(who):
        r = await sim.post(
            "/_sim/inbound",
            json={"account": "acme", "from": f"cust-{i}", "name": name, "text": "hi"},
        )
        assert r.json()["status"] == 200, r.text
    await sim.aclose()

    async def convs() -> list[int] | None:
        data = (await api.get("/api/v1/conversations")).json()["data"]
        return sorted(c["id"] for c in data) if len(data) == len(who) else None

    result: list[int] = await eventually(convs)
    return result


REPORTS = ("conversations", "channels", "agents", "campaigns")


async def test_filters_exports_and_access(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await api_channel(api, server)
    ids = await customers_write(server, api, ["Ana", '=HYPERLINK("x")', "Cleo"])
    # Ana's conversation: assigned, labelled, answered and resolved.
    r = await api.patch(
        f"/api/v1/conversations/{ids[0]}",
        json={"assignee_id": owner.agent_id, "labels": ["vip"], "status": "resolved"},
    )
    assert r.status_code == 200, r.text
    r = await api.post(f"/api/v1/conversations/{ids[1]}/messages", json={"text": "Hello"})
    assert r.status_code == 201, r.text
    await settled(server)

    async def report(name: str, **params: Any) -> dict[str, Any]:
        resp = await api.get(f"/api/v1/reports/{name}", params=params)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    everything = await report("conversations")
    assert everything["totals"] == {"new": 3, "resolved": 1, "backlog": 2}
    # Only Cleo waits: Ana's conversation is resolved, the second one was answered.
    assert everything["waiting_now"]["conversations"] == 1
    mine = await report("conversations", agent_id=owner.agent_id)
    assert mine["totals"]["new"] == 1
    unassigned = await report("conversations", agent_id=0)
    assert unassigned["totals"]["new"] == 2
    async with server.runtime.db.read() as s:
        from tidings.storage.models import Label

        vip = await s.scalar(select(Label.id).where(Label.name == "vip"))
    labelled = await report("conversations", label_id=vip)
    assert labelled["totals"] == {"new": 1, "resolved": 1, "backlog": 0}
    assert (await report("channels", label_id=vip))["channels"][0]["messages_in"] == 1
    assert (await report("conversations", channel_id=channel["id"]))["totals"]["new"] == 3
    assert (await report("conversations", channel_id=channel["id"] + 999))["totals"]["new"] == 0
    assert (await report("conversations", inbox_id=owner.inbox_id + 999))["totals"]["new"] == 0
    # A range before today holds nothing, and its backlog starts where it stood.
    past = await report("conversations", **{"from": "2020-01-01", "to": "2020-01-31"})
    assert past["totals"] == {"new": 0, "resolved": 0, "backlog": 0}
    assert len(past["series"]) == 31
    chans = await report("channels")
    assert chans["channels"][0]["messages_in"] == 3 and chans["channels"][0]["messages_out"] == 1
    agents = await report("agents")
    me = next(a for a in agents["agents"] if a["agent_id"] == owner.agent_id)
    assert me["conversations"] == 1 and me["resolved"] == 1 and me["open_now"] == 0
    assert agents["teams"] == []  # no teams in this workspace yet
    r = await api.post("/api/v1/admin/teams", json={"name": "Support"})
    assert r.status_code == 201, r.text
    teams = (await report("agents"))["teams"]
    assert [(t["team_id"], t["conversations"], t["resolved"]) for t in teams] == [(None, 3, 1)]
    assert (await report("campaigns"))["campaigns"] == []

    # CSV: one line per day / channel / conversation, formula-looking names defused.
    resp = await api.get("/api/v1/reports/conversations", params={"format": "csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    days = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(days) == 30 and sum(int(d["new"]) for d in days) == 3
    # Each day's own timings: the day's conversations add up to the range's.
    for key in ("first_response", "resolution"):
        assert (
            sum(int(d[f"{key}_conversations"]) for d in days) == (everything[key]["conversations"])
        )
    today = next(d for d in days if int(d["new"]))
    assert today["first_response_median_seconds"] != ""
    assert all(d["first_response_median_seconds"] == "" for d in days if not int(d["new"]))
    resp = await api.get("/api/v1/reports/channels", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    # One line per day and channel, with the day, the channel's name and the currency.
    assert [
        (r["day"], r["channel_id"], r["name"], r["messages_in"], r["currency"]) for r in rows
    ] == [(today["day"], str(channel["id"]), channel["name"], "3", chans["currency"])]
    # Agents: one line per day and agent, then per team, named; each day's figures are that
    # day's (they add up to the range's), and a range without work has no lines.
    agents = await report("agents")
    resp = await api.get("/api/v1/reports/agents", params={"format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    mine = next(a for a in agents["agents"] if a["agent_id"] == owner.agent_id)
    assert [
        (r["day"], r["group"], r["id"], r["name"], r["conversations"], r["resolved"]) for r in rows
    ] == [
        (today["day"], "agent", str(owner.agent_id), mine["name"], "1", "1"),
        (today["day"], "agent", "", "unassigned", "2", "0"),
        (today["day"], "team", "", "no team", "3", "1"),
    ]
    assert rows[0]["resolution_conversations"] == str(mine["resolution"]["conversations"]) == "1"
    assert rows[0]["resolution_median_seconds"] != ""
    assert rows[1]["resolution_median_seconds"] == "" and rows[1]["resolved"] == "0"
    for group in ("agent", "team"):
        assert sum(int(r["conversations"]) for r in rows if r["group"] == group) == sum(
            a["conversations"] for a in agents[f"{group}s"]
        )
    past = await api.get(
        "/api/v1/reports/agents", params={"format": "csv", "from": "2020-01-01", "to": "2020-01-31"}
    )
    assert list(csv.DictReader(io.StringIO(past.text))) == []
    resp = await api.get("/api/v1/reports/export/conversations.csv")
    assert resp.status_code == 200
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert sorted(int(r["conversation_id"]) for r in rows) == ids
    by_id = {int(r["conversation_id"]): r for r in rows}
    assert by_id[ids[0]]["labels"] == "vip" and by_id[ids[0]]["status"] == "resolved"
    assert by_id[ids[1]]["contact_name"] == '\'=HYPERLINK("x")'
    assert by_id[ids[1]]["replies"] == "1" and by_id[ids[1]]["first_response_seconds"] != ""
    assert by_id[ids[2]]["first_channel"] == channel["name"]
    labelled_rows = list(
        csv.DictReader(
            io.StringIO(
                (
                    await api.get(
                        "/api/v1/reports/export/conversations.csv", params={"label_id": vip}
                    )
                ).text
            )
        )
    )
    assert [int(r["conversation_id"]) for r in labelled_rows] == [ids[0]]

    # Bad input: a clear 4xx, never a 500.
    for params in (
        {"from": "2026-02-01", "to": "2026-01-01"},
        {"from": "yesterday"},
        {"from": "2020-01-01", "to": "2026-01-01"},
        {"format": "xml"},
        {"inbox_id": str(10**30)},
        {"agent_id": "-1"},
    ):
        for path in ("/api/v1/reports/conversations", "/api/v1/reports/export/conversations.csv"):
            if "format" in params and "export" in path:
                continue  # the export is always CSV
            resp = await api.get(path, params=params)
            assert resp.status_code in (400, 422), (params, resp.text)
            assert "error" in resp.json()

    # Agents may not read reports; another workspace sees none of this one's data.
    tokens = await make_outsiders(server, owner)
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as anon:
        for name in REPORTS:
            assert (await anon.get(f"/api/v1/reports/{name}")).status_code == 401
            resp = await anon.get(
                f"/api/v1/reports/{name}", headers={"Authorization": f"Bearer {tokens['agent']}"}
            )
            assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
        resp = await anon.get(
            "/api/v1/reports/export/conversations.csv",
            headers={"Authorization": f"Bearer {tokens['agent']}"},
        )
        assert resp.status_code == 403
        other = {"Authorization": f"Bearer {tokens['other']}"}
        theirs = (await anon.get("/api/v1/reports/conversations", headers=other)).json()
        assert theirs["totals"] == {"new": 0, "resolved": 0, "backlog": 0}
        assert (await anon.get("/api/v1/reports/channels", headers=other)).json()["channels"] == []
        export = await anon.get("/api/v1/reports/export/conversations.csv", headers=other)
        assert len(list(csv.DictReader(io.StringIO(export.text)))) == 0


async def test_business_hours_variant_counts_only_open_time(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """An inbox that is never open (no hours on any day): a reply two hours after the customer
    wrote is two hours plainly, and no business time at all."""
    from tests.ui.helpers import whatsapp_channel, whatsapp_says

    await whatsapp_channel(api, server)
    r = await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/business_hours",
        json={"timezone": "Europe/Paris", "weekly": {}},
    )
    assert r.status_code == 200, r.text
    await whatsapp_says(server, "14155550199", "Dee", "anyone there?", hours_ago=2)

    async def conv() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    conv_id = (await eventually(conv))[0]["id"]
    r = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={"text": "Yes!"})
    assert r.status_code == 201, r.text
    await settled(server)
    plain = (await api.get("/api/v1/reports/conversations")).json()
    business = (
        await api.get("/api/v1/reports/conversations", params={"business_hours": "true"})
    ).json()
    assert 7100 <= plain["first_response"]["median_seconds"] <= 7300
    assert plain["reply"]["median_seconds"] == plain["first_response"]["median_seconds"]
    assert business["business_hours"] is True
    assert business["first_response"] == {"median_seconds": 0, "p90_seconds": 0, "conversations": 1}
    agents = (await api.get("/api/v1/reports/agents", params={"business_hours": "true"})).json()
    assert [a["first_response"]["median_seconds"] for a in agents["agents"]] == [0]


async def test_campaigns_side_by_side(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 3)
    ids = []
    for name, audience in (("Spring", contacts), ("Summer", contacts[:2])):
        r = await api.post(
            "/api/v1/campaigns",
            json={
                "name": name,
                "content": {"text": f"{name} sale"},
                "audience": {"contact_ids": audience},
                "channel_ids": [channel["id"]],
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        assert (await api.post(f"/api/v1/campaigns/{ids[-1]}/launch")).status_code == 200
    await wait_counts(api, ids[0], read=3)
    await wait_counts(api, ids[1], read=2)
    report = (await api.get("/api/v1/reports/campaigns")).json()
    got = {c["name"]: c for c in report["campaigns"]}
    assert set(got) == {"Spring", "Summer"}
    for cid, name in zip(ids, ("Spring", "Summer"), strict=True):
        own = (await api.get(f"/api/v1/campaigns/{cid}/report")).json()
        assert got[name]["counts"] == own["counts"]
        assert got[name]["delivery_rate"] == own["delivery_rate"] == 1.0
    resp = await api.get("/api/v1/reports/campaigns", params={"format": "csv"})
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(resp.text))}
    assert (rows["Spring"]["recipients"], rows["Spring"]["read"]) == ("3", "3")
    assert (rows["Summer"]["recipients"], rows["Summer"]["read"]) == ("2", "2")
    # Out of the range: none.
    past = await api.get(
        "/api/v1/reports/campaigns", params={"from": "2020-01-01", "to": "2020-02-01"}
    )
    assert past.json()["campaigns"] == []


async def test_conversations_a_campaign_opens_are_not_new_until_answered(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    tw: httpx.AsyncClient,
    campaign_workers: None,
) -> None:
    """A broadcast to two numbers opens two conversations: not the customers' new ones (they
    counted as 2 new). One answers: that one is new, on the day of the answer."""
    _w, t = await channels(api, server)
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={"name": "Promo", "content": {"text": "Sale!"}, "channel_ids": [t["id"]]},
        )
    ).json()
    up = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=b"phone\n+14155550141\n+14155550142\n",
        headers={"Content-Type": "text/csv"},
    )
    assert up.json()["added"] == 2
    assert (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).status_code == 200
    await wait_counts(api, c["id"], pending=0, queued=0)
    await settled(server)
    totals = (await api.get("/api/v1/reports/conversations")).json()["totals"]
    assert totals == {"new": 0, "resolved": 0, "backlog": 0}
    channel_row = {
        ch["channel_id"]: ch
        for ch in (await api.get("/api/v1/reports/channels")).json()["channels"]
    }[t["id"]]
    assert channel_row["messages_out"] == 2 and channel_row["conversations_new"] == 0

    r = await tw.post(
        "/_sim/inbound", json={"from": "+14155550141", "text": "Tell me more", "to": "+14155550100"}
    )
    assert r.status_code == 200, r.text

    async def answered() -> bool:
        rep = (await api.get(f"/api/v1/campaigns/{c['id']}/report")).json()
        return bool(rep["replies"] == 1)

    await eventually(answered, timeout=20)
    await settled(server)
    totals = (await api.get("/api/v1/reports/conversations")).json()["totals"]
    assert totals == {"new": 1, "resolved": 0, "backlog": 1}
    await rollup_totals(server)  # the rollup is still the sum of the contributions
