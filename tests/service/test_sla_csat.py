"""SLA timers and CSAT end to end over real HTTP with the WhatsApp simulator, on SQLite and
PostgreSQL: due times set by inbound messages and cleared by agent replies, breaches recorded
when overdue; the CSAT question reaching the customer after a resolve (text in the window, a
template outside it, nothing after an opt-out) and a "5" recorded without reopening."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Owner, Server
from tests.service.helpers import (
    conversations,
    customer_writes,
    sent_to,
    wait_for,
    whatsapp_channel,
)
from tidings.actions.csat import DEFAULT_QUESTION
from tidings.storage.models import Consent, Template


async def conv_json(api: httpx.AsyncClient, conv_id: int) -> dict[str, Any]:
    resp = await api.get(f"/api/v1/conversations/{conv_id}")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def test_sla_due_on_inbound_cleared_by_reply_and_breach_recorded(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    inbox = owner.inbox_id
    resp = await api.put(
        f"/api/v1/inboxes/{inbox}/sla",
        json={"first_response_seconds": 3600, "next_response_seconds": 1800},
    )
    assert resp.status_code == 200
    assert resp.json()["first_response_seconds"] == 3600

    before = datetime.now().astimezone()
    await customer_writes(server, "16505556001", "Where is my parcel?")
    conv = (await wait_for(lambda: conversations(server)))[0]
    c = await conv_json(api, conv.id)
    assert (c["sla_target"], c["sla_state"], c["first_response_at"]) == (
        "first_response",
        "running",
        None,
    )
    due = datetime.fromisoformat(c["sla_due_at"])
    assert before + timedelta(seconds=3590) < due < before + timedelta(seconds=3700)

    reply = await api.post(f"/api/v1/conversations/{conv.id}/messages", json={"text": "On its way"})
    assert reply.status_code == 201, reply.text
    c = await conv_json(api, conv.id)
    assert (c["sla_target"], c["sla_due_at"], c["sla_state"]) == (None, None, None)
    assert c["first_response_at"] is not None

    # The next customer message starts the next-response timer.
    await customer_writes(server, "16505556001", "Thanks, and the invoice?")

    async def next_running() -> dict[str, Any] | None:
        c = await conv_json(api, conv.id)
        return c if c["sla_target"] == "next_response" else None

    c = await wait_for(next_running)
    assert c["sla_state"] == "running"
    due = datetime.fromisoformat(c["sla_due_at"])
    assert before + timedelta(seconds=1790) < due < before + timedelta(seconds=1900)

    # A second customer under a 1-second target: the sweep records the breach.
    await api.put(f"/api/v1/inboxes/{inbox}/sla", json={"first_response_seconds": 1})
    await customer_writes(server, "16505556002", "Hello?")

    async def second() -> Any:
        convs = await conversations(server)
        return convs[1] if len(convs) == 2 and convs[1].sla_state == "breached" else None

    late = await wait_for(second)
    breaches = (await api.get("/api/v1/sla/breaches")).json()["data"]
    assert [(b["conversation_id"], b["target"], b["responded_at"]) for b in breaches] == [
        (late.id, "first_response", None)
    ]
    # The inbox list: SLA filters and the due time for the countdown.
    breached = (await api.get("/api/v1/ui/conversations?sla=breached")).json()["data"]
    running = (await api.get("/api/v1/ui/conversations?sla=running")).json()["data"]
    assert [x["id"] for x in breached] == [late.id]
    assert [x["id"] for x in running] == [conv.id]
    assert running[0]["sla_due_at"] == c["sla_due_at"]
    bad = await api.get("/api/v1/ui/conversations?sla=late")
    assert bad.status_code == 422
    rest = (await api.get("/api/v1/conversations", params={"sla": "breached"})).json()["data"]
    assert [(x["id"], x["sla_state"]) for x in rest] == [(late.id, "breached")]
    assert (await api.get("/api/v1/conversations?sla=late")).status_code == 422

    # The late reply closes the breach (when answered) and stops the timer.
    await api.post(f"/api/v1/conversations/{late.id}/messages", json={"text": "Sorry!"})
    breaches = (await api.get("/api/v1/sla/breaches")).json()["data"]
    assert len(breaches) == 1 and breaches[0]["responded_at"] is not None
    assert (await conv_json(api, late.id))["sla_state"] is None

    wrong = await api.put(
        f"/api/v1/inboxes/{inbox}/sla",
        json={"by_priority": {"critical": {"first_response_seconds": 60}}},
    )
    assert wrong.status_code == 422
    zero = await api.put(f"/api/v1/inboxes/{inbox}/sla", json={"first_response_seconds": 0})
    assert zero.status_code == 422
    assert (await api.get(f"/api/v1/inboxes/{inbox}/sla")).json()["first_response_seconds"] == 1


async def test_sla_priority_override(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    await whatsapp_channel(server, api)
    await api.put(
        f"/api/v1/inboxes/{owner.inbox_id}/sla",
        json={
            "next_response_seconds": 3600,
            "by_priority": {"urgent": {"next_response_seconds": 300}},
        },
    )
    await customer_writes(server, "16505556101", "Hi")
    conv = (await wait_for(lambda: conversations(server)))[0]
    # No first-response target: nothing runs.
    assert (await conv_json(api, conv.id))["sla_state"] is None
    await api.post(f"/api/v1/conversations/{conv.id}/messages", json={"text": "Hello"})
    urgent = await api.patch(f"/api/v1/ui/conversations/{conv.id}", json={"priority": "urgent"})
    assert urgent.status_code == 200, urgent.text
    started = datetime.now().astimezone()
    await customer_writes(server, "16505556101", "It is urgent")

    async def running() -> dict[str, Any] | None:
        c = await conv_json(api, conv.id)
        return c if c["sla_state"] == "running" else None

    c = await wait_for(running)
    assert c["sla_target"] == "next_response"
    due = datetime.fromisoformat(c["sla_due_at"])
    assert started + timedelta(seconds=290) < due < started + timedelta(seconds=400)

    # Lowered to "low" (no override): the running timer moves to the inbox's 3600 s, counted
    # from the same start.
    low = await api.patch(f"/api/v1/ui/conversations/{conv.id}", json={"priority": "low"})
    assert low.status_code == 200
    moved = datetime.fromisoformat((await conv_json(api, conv.id))["sla_due_at"])
    assert moved - due == timedelta(seconds=3300)


async def test_csat_question_after_resolve_and_rating_without_reopening(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    resp = await api.put(f"/api/v1/inboxes/{owner.inbox_id}/csat", json={"enabled": True})
    assert resp.json()["enabled"] is True and resp.json()["question"] == DEFAULT_QUESTION
    await customer_writes(server, "16505557001", "My order is late")
    conv = (await wait_for(lambda: conversations(server)))[0]
    assert (await api.get(f"/api/v1/conversations/{conv.id}/csat")).json() == {"csat": None}

    done = await api.patch(f"/api/v1/conversations/{conv.id}", json={"status": "resolved"})
    assert done.status_code == 200

    async def question() -> list[dict[str, Any]]:
        return [b for b in await sent_to(server, "16505557001") if b.get("type") == "text"]

    asked = await wait_for(question)
    assert [b["text"]["body"] for b in asked] == [DEFAULT_QUESTION]
    survey = (await api.get(f"/api/v1/conversations/{conv.id}/csat")).json()["csat"]
    assert (survey["state"], survey["rating"]) == ("asked", None)

    await customer_writes(server, "16505557001", "5")

    async def answered() -> dict[str, Any] | None:
        s = (await api.get(f"/api/v1/conversations/{conv.id}/csat")).json()["csat"]
        return s if s["state"] == "answered" else None

    survey = await wait_for(answered)
    assert survey["rating"] == 5
    convs = await conversations(server)
    assert len(convs) == 1 and convs[0].status == "resolved"
    thread = (await api.get(f"/api/v1/conversations/{conv.id}/messages")).json()["data"]
    # (The thread orders by provider time, whole seconds for WhatsApp: the "5" may sort just
    # before the question it answers, so find it by content.)
    answers = [m for m in thread if m["direction"] == "in" and m["body"] == "5"]
    assert len(answers) == 1 and survey["answer_message_id"] == answers[0]["id"]
    assert len(thread) == 3  # the question, the first message, the answer
    report = (await api.get("/api/v1/csat")).json()
    assert report["summary"]["count"] == 1 and report["summary"]["average"] == 5.0
    assert report["summary"]["distribution"]["5"] == 1
    assert [r["conversation_id"] for r in report["data"]] == [conv.id]
    future = (await api.get("/api/v1/csat", params={"from": "2999-01-01T00:00:00Z"})).json()
    assert future["summary"]["count"] == 0
    naive = await api.get("/api/v1/csat", params={"from": "2020-01-01T00:00:00"})
    assert naive.status_code == 422

    # A second "5" is not a second rating, and any other text is a new conversation.
    await customer_writes(server, "16505557001", "Thanks again, one more question")

    async def two() -> list[Any] | None:
        convs = await conversations(server)
        return convs if len(convs) == 2 else None

    convs = await wait_for(two)
    assert convs[0].status == "resolved" and convs[1].status == "open"
    assert len((await api.get("/api/v1/csat")).json()["data"]) == 1


async def test_csat_closed_window_template_and_opt_out(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    wa = await whatsapp_channel(server, api)
    await api.put(f"/api/v1/inboxes/{owner.inbox_id}/csat", json={"enabled": True})
    # Wrote 30 hours ago: the 24-hour window is closed, and no template is set: skipped.
    await customer_writes(server, "16505558001", "Old question", hours_ago=30)
    first = (await wait_for(lambda: conversations(server)))[0]
    await api.patch(f"/api/v1/conversations/{first.id}", json={"status": "resolved"})
    survey = (await api.get(f"/api/v1/conversations/{first.id}/csat")).json()["csat"]
    assert (survey["state"], survey["reason"]) == ("skipped", "window_closed")

    async with server.runtime.db.write() as s:
        template = Template(
            workspace_id=owner.workspace_id,
            channel_id=wa["id"],
            name="csat_rating",
            language="en",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "How did we do? Reply 1 to 5."}],
        )
        s.add(template)
        await s.flush()
        template_id = template.id
    bad = await api.put(f"/api/v1/inboxes/{owner.inbox_id}/csat", json={"template_id": 999999})
    assert bad.status_code == 422
    ok = await api.put(f"/api/v1/inboxes/{owner.inbox_id}/csat", json={"template_id": template_id})
    assert ok.json()["template_id"] == template_id

    await customer_writes(server, "16505558002", "Another old one", hours_ago=30)

    async def two() -> list[Any] | None:
        convs = await conversations(server)
        return convs if len(convs) == 2 else None

    second = (await wait_for(two))[1]
    await api.patch(f"/api/v1/conversations/{second.id}", json={"status": "resolved"})

    async def template_sent() -> list[dict[str, Any]]:
        return [b for b in await sent_to(server, "16505558002") if b.get("type") == "template"]

    sent = await wait_for(template_sent)
    assert [b["template"]["name"] for b in sent] == ["csat_rating"]
    survey = (await api.get(f"/api/v1/conversations/{second.id}/csat")).json()["csat"]
    assert survey["state"] == "asked"

    # An opted-out customer is not asked. (WhatsApp has no STOP keyword handling; the
    # opt-out is recorded as a provider opt-out would record it.)
    await customer_writes(server, "16505558003", "Please do not message me any more")

    async def three() -> list[Any] | None:
        convs = await conversations(server)
        return convs if len(convs) == 3 else None

    third = (await wait_for(three))[2]
    async with server.runtime.db.write() as s:
        s.add(
            Consent(
                workspace_id=owner.workspace_id,
                contact_id=third.contact_id,
                channel_kind="whatsapp",
                purpose="service",
                status="opted_out",
                source="provider:131050",
            )
        )
    await api.patch(f"/api/v1/conversations/{third.id}", json={"status": "resolved"})
    survey = (await api.get(f"/api/v1/conversations/{third.id}/csat")).json()["csat"]
    assert (survey["state"], survey["reason"]) == ("skipped", "opted_out")
    assert await sent_to(server, "16505558003") == []


async def test_bad_settings_input_is_a_clear_4xx_and_changes_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    inbox = owner.inbox_id
    cases = [
        ("put", f"/api/v1/inboxes/{inbox}/assignment", {"agent_capacities": {"²": 1}}, 422),
        ("put", f"/api/v1/inboxes/{inbox}/assignment", {"agent_capacities": {"999999": 1}}, 422),
        ("put", f"/api/v1/inboxes/{inbox}/assignment", {"capacity": 10**12}, 422),
        ("put", f"/api/v1/inboxes/{inbox}/assignment", {"mode": "manual", "extra": 1}, 422),
        ("put", f"/api/v1/inboxes/{inbox}/csat", {"question": "Rate us\x00"}, 422),
        ("put", f"/api/v1/inboxes/{inbox}/csat", b'{"question": "Rate \\ud800"}', 422),
        ("put", f"/api/v1/inboxes/{inbox}/csat", {"question": "x" * 1001}, 422),
        ("put", f"/api/v1/inboxes/{inbox}/sla", {"next_response_seconds": "soon"}, 422),
        ("put", "/api/v1/inboxes/999999/sla", {"first_response_seconds": 60}, 404),
        ("get", "/api/v1/inboxes/999999/queue", None, 404),
        ("put", "/api/v1/agents/²/availability", {"availability": "online"}, 422),
        ("put", "/api/v1/agents/999999/availability", {"availability": "online"}, 404),
        ("get", "/api/v1/conversations/999999/csat", None, 404),
    ]
    for method, url, body, status in cases:
        if isinstance(body, bytes):  # JSON a client library refuses to encode
            headers = {"Content-Type": "application/json"}
            resp = await api.request(method.upper(), url, content=body, headers=headers)
        else:
            resp = await api.request(method.upper(), url, json=body)
        assert resp.status_code == status, (url, body, resp.text)
        assert "code" in resp.json()["error"]
    assert (await api.get(f"/api/v1/inboxes/{inbox}/assignment")).json()["mode"] == "off"
    assert (await api.get(f"/api/v1/inboxes/{inbox}/csat")).json()["enabled"] is False
    assert (await api.get(f"/api/v1/inboxes/{inbox}/sla")).json()["next_response_seconds"] is None
