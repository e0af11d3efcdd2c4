"""Fallback WhatsApp → SMS end to end through the WhatsApp and Twilio simulators (failed,
not delivered in time, window closed without a template, timers surviving a stopped loop), and
channel preference (explained by the API, used by replies)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests import factories
from tests.campaigns.conftest import api_channel, api_customers
from tests.conftest import Owner, Server, eventually, sandbox_headers
from tidings.campaigns import fanout
from tidings.delivery import fallback
from tidings.domain.enums import FallbackState
from tidings.storage.models import Contact, ContactIdentity, Conversation, FallbackTimer

PNID = "100000000000321"
WA_CUSTOMER = "14155550123"
E164 = "+14155550123"


@pytest.fixture
async def wa(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with factories.simulator(server, "whatsapp") as c:
        yield c


@pytest.fixture
async def tw(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with factories.simulator(server, "twilio") as c:
        yield c


async def channels(api: httpx.AsyncClient, server: Server) -> tuple[dict, dict]:
    w = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp",
            "config": {
                "phone_number_id": PNID,
                "access_token": "EAAG-token",
                "app_secret": "wa-app-secret",
                "verify_token": "verify-me",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
                "display_phone_number": "15550783881",
            },
        },
    )
    assert w.status_code == 201, w.text
    t = await api.post(
        "/api/v1/channels",
        json={
            "kind": "twilio",
            "name": "SMS",
            "config": {
                "account_sid": "AC" + secrets.token_hex(16),
                "auth_token": secrets.token_hex(16),
                "from_number": "+14155550100",
                "api_base_url": f"{server.url}/sandbox/twilio",
            },
        },
    )
    assert t.status_code == 201, t.text
    return w.json(), t.json()


async def wa_customer_writes(api: httpx.AsyncClient, wa: httpx.AsyncClient) -> dict[str, Any]:
    r = await wa.post(
        "/_sim/inbound",
        json={"phone_number_id": PNID, "from": WA_CUSTOMER, "name": "Ana", "text": "hello"},
    )
    assert r.status_code == 200, r.text

    async def conv() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    found = await eventually(conv)
    assert len(found) == 1
    result: dict[str, Any] = found[0]
    return result


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (
        await api.get(f"/api/v1/conversations/{conv_id}/messages")
    ).json()["data"]
    return data


async def sms_sent(tw: httpx.AsyncClient) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await tw.get("/_sim/sent")).json()
    return data


async def test_failed_whatsapp_reply_falls_back_to_sms_in_the_same_thread(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    tw: httpx.AsyncClient,
    campaign_workers: None,
) -> None:
    _w, t = await channels(api, server)
    r = await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/fallback",
        json={"to_channel_id": t["id"], "on_failed": True, "after_seconds": 600},
    )
    assert r.status_code == 200 and r.json()["to_channel_id"] == t["id"]
    conv = await wa_customer_writes(api, wa)
    # WhatsApp accepts the send, then reports it failed (131026, as a status webhook).
    fail = await wa.post("/_sim/fail", json={"code": 131026, "mode": "async"})
    assert fail.status_code == 200, fail.text
    reply = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Your order shipped"}
    )
    assert reply.status_code == 201, reply.text
    original = reply.json()

    async def follow_up() -> dict[str, Any] | None:
        msgs = await thread(api, conv["id"])
        return next((m for m in msgs if m["extra"].get("fallback_of") == original["id"]), None)

    sms = await eventually(follow_up, timeout=20)
    assert sms["channel_id"] == t["id"] and sms["body"] == "Your order shipped"
    assert sms["extra"]["fallback_reason"] == "failed"
    msgs = await thread(api, conv["id"])
    assert next(m for m in msgs if m["id"] == original["id"])["status"] == "failed"
    sent = await eventually(lambda: sms_sent(tw))
    assert len(sent) == 1 and dict(sent[0]["params"])["To"] == E164
    async with server.runtime.db.read() as s:
        from tidings.storage.models import Message

        stored = await s.get_one(Message, sms["id"])
    assert stored.cost_estimate == Decimal("0.0079")  # one GSM-7 segment to a US number
    # Exactly one fallback, however often the loop runs.
    await fallback.fire_due(server.runtime)
    assert sum(1 for m in await thread(api, conv["id"]) if m["extra"].get("fallback_of")) == 1


async def test_not_delivered_in_time_falls_back_and_timers_survive_a_stopped_loop(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    tw: httpx.AsyncClient,
) -> None:
    """No fallback loop runs at first (as if the worker were down): the timer is a row that
    waits; once a loop runs, the overdue timer fires."""
    # Stop this server's fallback loop, as if its worker process were down.
    for task in list(server.runtime.background):
        if task.get_name() == "worker-fallback":
            task.cancel()
    _w, t = await channels(api, server)
    await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/fallback",
        json={"to_channel_id": t["id"], "on_failed": True, "after_seconds": 1},
    )
    conv = await wa_customer_writes(api, wa)
    await wa.post("/_sim/config", json={"auto_statuses": ["sent"]})  # never delivered
    reply = (
        await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi"})
    ).json()

    async def sent_status() -> bool:
        msgs = await thread(api, conv["id"])
        return next(m for m in msgs if m["id"] == reply["id"])["status"] == "sent"

    await eventually(sent_status)
    await asyncio.sleep(1.5)
    assert not [m for m in await thread(api, conv["id"]) if m["extra"].get("fallback_of")]
    handled = await fallback.fire_due(server.runtime)
    assert handled == 1
    msgs = await thread(api, conv["id"])
    follow = [m for m in msgs if m["extra"].get("fallback_of") == reply["id"]]
    assert len(follow) == 1 and follow[0]["extra"]["fallback_reason"] == "not_delivered_in_time"
    assert await fallback.fire_due(server.runtime) == 0


async def test_delivered_message_retires_its_timer(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    tw: httpx.AsyncClient,
) -> None:
    _w, t = await channels(api, server)
    await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/fallback",
        json={"to_channel_id": t["id"], "after_seconds": 3600},
    )
    conv = await wa_customer_writes(api, wa)
    reply = (
        await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi"})
    ).json()

    async def read() -> bool:
        msgs = await thread(api, conv["id"])
        return next(m for m in msgs if m["id"] == reply["id"])["status"] == "read"

    await eventually(read)
    # Retired, not fired: by this call or by the fallback loop the server runs, whichever
    # comes first (asserting that this call does it raced with the loop).
    await fallback.fire_due(server.runtime)
    async with server.runtime.db.read() as s:
        timers = (
            await s.execute(
                select(FallbackTimer.state, FallbackTimer.outcome).where(
                    FallbackTimer.message_id == reply["id"]
                )
            )
        ).all()
    assert len(timers) == 1 and timers[0][0] == FallbackState.NOT_NEEDED
    assert timers[0][1] in ("original delivered", "original read")  # whichever it saw first
    assert await sms_sent(tw) == []
    assert not [m for m in await thread(api, conv["id"]) if m["extra"].get("fallback_of")]


async def test_campaign_window_closed_goes_by_sms_and_failed_whatsapp_falls_back(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    tw: httpx.AsyncClient,
    campaign_workers: None,
) -> None:
    w, t = await channels(api, server)
    conv = await wa_customer_writes(api, wa)  # Ana: WhatsApp window open
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Launch",
                "content": {"text": "New store opens Friday"},
                "channel_ids": [w["id"]],
                "fallback": {"to_channel_id": t["id"], "on_failed": True, "on_window_closed": True},
            },
        )
    ).json()
    # Two more customers only known by number (CSV): no WhatsApp window, no template → SMS.
    up = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=b"phone\n+14155550124\n+14155550125\n",
        headers={"Content-Type": "text/csv"},
    )
    assert up.json()["added"] == 2
    await api.patch(
        f"/api/v1/campaigns/{c['id']}", json={"audience": {"contact_ids": [conv["contact_id"]]}}
    )
    preview = (await api.post(f"/api/v1/campaigns/{c['id']}/preview")).json()
    assert preview["totals"]["by_channel"][str(t["id"])]["recipients"] == 2
    assert preview["totals"]["by_channel"][str(w["id"])]["recipients"] == 1
    assert preview["totals"]["sms_segments"] == 2
    assert preview["totals"]["estimated_cost"] == {"USD": "0.0158"}
    # Ana's WhatsApp message will fail after WhatsApp accepts it.
    await wa.post("/_sim/fail", json={"code": 131026, "mode": "async"})
    launched = (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).json()
    assert launched["counts"]["total"] == 3

    async def three_sms() -> list[dict[str, Any]] | None:
        sent = await sms_sent(tw)
        return sent if len(sent) == 3 else None

    sent = await eventually(three_sms, timeout=30)
    assert sorted(dict(s["params"])["To"] for s in sent) == [E164, "+14155550124", "+14155550125"]
    recipients = (await api.get(f"/api/v1/campaigns/{c['id']}/recipients")).json()["data"]
    ana = next(r for r in recipients if r["contact_id"] == conv["contact_id"])
    assert ana["channel_id"] == t["id"] and ana["fallback_message_id"] is not None
    others = [r for r in recipients if r["contact_id"] != conv["contact_id"]]
    assert all(r["channel_reason"].startswith("fallback") for r in others)
    assert all(r["fallback_message_id"] is None for r in others)
    report = (await api.get(f"/api/v1/campaigns/{c['id']}/report")).json()
    # Every recipient went by the SMS fallback: two planned onto it (window closed, no
    # template), Ana after her WhatsApp message failed. (It said 1: only the follow-ups.)
    assert report["fallbacks"] == 3
    # The counts and the per-channel table are one read: the rows sum to the counts.
    for state, n in report["counts"].items():
        assert sum(ch.get(state, 0) for ch in report["per_channel"].values()) == n, state
    # The CSV contacts can be answered on SMS before they write: the number the business
    # gave is their identity on the phone-addressed kinds (SMS here; WhatsApp too).
    async with server.runtime.db.read() as s:
        kinds = {
            (kind, address)
            for kind, address in await s.execute(
                select(ContactIdentity.channel_kind, ContactIdentity.address)
                .join(Contact, Contact.id == ContactIdentity.contact_id)
                .where(Contact.phone_e164 == "+14155550124")
            )
        }
        convs = (
            await s.execute(
                select(Conversation.status, Conversation.last_channel_id).where(
                    Conversation.id.in_([r["conversation_id"] for r in others])
                )
            )
        ).all()
    assert kinds == {("twilio", "+14155550124"), ("whatsapp", "14155550124")}
    # The conversations the campaign opened are "awaiting reply" (resolved, not snoozed) and
    # carry the channel the message went on.
    assert sorted(convs) == [("resolved", t["id"]), ("resolved", t["id"])]
    assert Decimal(report["cost"]) == Decimal("0.0237")  # three one-segment US SMS
    msgs = await thread(api, conv["id"])
    fb = [m for m in msgs if m["extra"].get("fallback_of")]
    assert len(fb) == 1 and fb[0]["extra"]["campaign"]["id"] == c["id"]


async def test_preference_is_explained_and_used_by_replies(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    acme = await api_channel(api, server, "acme")
    beta = await api_channel(api, server, "beta")
    [contact] = await api_customers(api, server, 1, "acme")
    pref = (await api.get(f"/api/v1/contacts/{contact}/preference")).json()
    assert pref["channel_id"] == acme["id"] and pref["source"] == "learned"
    assert "last wrote" in pref["reason"]

    r = await api.put(f"/api/v1/contacts/{contact}/preference", json={"channel_id": beta["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "explicit" and r.json()["channel_id"] == beta["id"]
    assert "agent" in r.json()["reason"]

    conv = (await api.get("/api/v1/conversations")).json()["data"][0]
    reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hey"})
    assert reply.status_code == 201 and reply.json()["channel_id"] == beta["id"]
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:

        async def got() -> list[Any]:
            data: list[Any] = (await sim.get("/_sim/received", params={"account": "beta"})).json()
            return data

        assert [m["text"] for m in await eventually(got)] == ["Hey"]
        assert (await sim.get("/_sim/received", params={"account": "acme"})).json() == []

    cleared = await api.put(f"/api/v1/contacts/{contact}/preference", json={"channel_id": None})
    assert cleared.json()["source"] == "learned"
    bad = await api.put(f"/api/v1/contacts/{contact}/preference", json={"channel_id": 9999})
    assert bad.status_code == 422
    assert (await api.get("/api/v1/contacts/9999/preference")).status_code == 404


async def test_whatsapp_template_with_parameters_from_attributes(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    campaign_workers: None,
) -> None:
    """Outside the window a WhatsApp campaign goes as the approved template, its parameters
    filled from the CSV columns and contact attributes."""
    w, _t = await channels(api, server)
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Tmpl",
                "content": {
                    "text": "unused on WhatsApp",
                    "template": {
                        "name": "promo",
                        "language": "en_US",
                        "params": ["{{name}}", "{{city}}"],
                    },
                },
                "channel_ids": [w["id"]],
            },
        )
    ).json()
    up = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=b"phone,name,city\n+14155550126,Dora,Oslo\n",
        headers={"Content-Type": "text/csv"},
    )
    assert up.json()["added"] == 1
    await api.post(f"/api/v1/campaigns/{c['id']}/launch")

    async def sent() -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (
            await wa.get("/_sim/sent", params={"phone_number_id": PNID})
        ).json()
        return data

    [request] = await eventually(sent, timeout=20)
    assert request["response"]["status"] == 200, request["response"]
    body = request["body"]
    assert body["type"] == "template" and body["to"] == "+14155550126"
    assert body["template"]["name"] == "promo"
    assert body["template"]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Dora"}, {"type": "text", "text": "Oslo"}],
        }
    ]


async def test_two_whatsapp_numbers_share_a_campaign_each_contact_always_on_the_same_one(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    campaign_workers: None,
) -> None:
    """Channels of one kind in a campaign share it: each contact goes from the number its id
    picks (the same one in the preview and the send, and in the next campaign), with the reason
    shown; a contact who prefers a number keeps it."""
    w1, _t = await channels(api, server)
    pnid2 = "100000000000322"
    made = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp 2",
            "config": {
                "phone_number_id": pnid2,
                "access_token": "EAAG-token-2",
                "app_secret": "wa-app-secret-2",
                "verify_token": "verify-me-2",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
                "display_phone_number": "15550783882",
            },
        },
    )
    assert made.status_code == 201, made.text
    w2 = made.json()
    # Ana has written to number 1: she prefers it (learned), whatever her id would pick.
    await wa_customer_writes(api, wa)
    template = {"name": "promo", "language": "en_US", "params": ["{{name}}"]}

    async def campaign(name: str) -> dict[int, tuple[int, str]]:
        c = (
            await api.post(
                "/api/v1/campaigns",
                json={
                    "name": name,
                    "content": {"template": template},
                    "channel_ids": [w1["id"], w2["id"]],
                },
            )
        ).json()
        rows = "".join(f"+1415555{1000 + i},Cust {i}\n" for i in range(8))
        up = await api.post(
            f"/api/v1/campaigns/{c['id']}/audience/csv",
            content=f"phone,name\n{E164},Ana\n{rows}".encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert up.json()["added"] == 9, up.text
        assert (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).status_code == 200

        async def done() -> list[dict[str, Any]] | None:
            data: list[dict[str, Any]] = (
                await api.get(f"/api/v1/campaigns/{c['id']}/recipients", params={"limit": 50})
            ).json()["data"]
            return data if all(r["state"] not in ("pending", "queued") for r in data) else None

        recipients = await eventually(done, timeout=30)
        # The sandbox answers with delivery receipts: sent, or already further on.
        assert {r["state"] for r in recipients} <= {"sent", "delivered", "read"}, recipients
        return {r["contact_id"]: (r["channel_id"], r["channel_reason"]) for r in recipients}

    first = await campaign("Spring")
    ana = next(cid for cid, (_ch, why) in first.items() if why.startswith("preferred"))
    assert first[ana][0] == w1["id"]
    others = {cid: ch for cid, (ch, _why) in first.items() if cid != ana}
    for cid, ch in others.items():
        assert ch == (w1["id"], w2["id"])[cid % 2]  # the contact's id picks the number
        assert first[cid][1].endswith("(one of 2 WhatsApp channels sharing it)")
    assert set(others.values()) == {w1["id"], w2["id"]}

    sent = {
        pnid: {
            s["body"]["to"]
            for s in (await wa.get("/_sim/sent", params={"phone_number_id": pnid})).json()
        }
        for pnid in (PNID, pnid2)
    }
    assert len(sent[PNID]) + len(sent[pnid2]) == 9 and not sent[PNID] & sent[pnid2]

    # The next campaign to the same people: every contact on the same number as before.
    second = await campaign("Summer")
    assert {cid: ch for cid, (ch, _why) in second.items()} == {
        cid: ch for cid, (ch, _why) in first.items()
    }


async def test_a_paused_campaign_holds_its_follow_ups_until_resumed(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    wa: httpx.AsyncClient,
    tw: httpx.AsyncClient,
) -> None:
    """Pause stops everything the campaign sends, its fallback follow-ups included: an overdue
    timer waits while the campaign is paused and fires once after resume."""
    for task in list(server.runtime.background):
        if task.get_name() == "worker-fallback":
            task.cancel()  # this test fires the timers itself
    fanning = server.runtime.spawn(fanout.run(server.runtime), name="test-campaigns")
    try:
        w, t = await channels(api, server)
        conv = await wa_customer_writes(api, wa)  # window open: the campaign goes by WhatsApp
        await wa.post("/_sim/config", json={"auto_statuses": ["sent"]})  # never delivered
        c = (
            await api.post(
                "/api/v1/campaigns",
                json={
                    "name": "Flash sale",
                    "content": {"text": "Half price today"},
                    "channel_ids": [w["id"]],
                    "audience": {"contact_ids": [conv["contact_id"]]},
                    "fallback": {"to_channel_id": t["id"], "after_seconds": 1},
                },
            )
        ).json()
        assert (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).status_code == 200

        async def sent() -> bool:
            rows = (await api.get(f"/api/v1/campaigns/{c['id']}/recipients")).json()["data"]
            return bool(rows) and rows[0]["state"] == "sent"

        await eventually(sent)
        paused = await api.post(f"/api/v1/campaigns/{c['id']}/pause")
        assert paused.status_code == 200, paused.text
        await asyncio.sleep(1.5)  # the timer is overdue now
        assert await fallback.fire_due(server.runtime) == 0
        assert await sms_sent(tw) == []

        assert (await api.post(f"/api/v1/campaigns/{c['id']}/resume")).status_code == 200
        assert await fallback.fire_due(server.runtime) == 1
        sms = await eventually(lambda: sms_sent(tw))
        assert len(sms) == 1 and dict(sms[0]["params"])["To"] == E164
        assert await fallback.fire_due(server.runtime) == 0
    finally:
        fanning.cancel()
