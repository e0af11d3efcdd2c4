"""Automation rules end to end over real HTTP with the WhatsApp simulator: a customer's
message triggers rules whose actions go through the same actions and policy checks as an
agent's; each run is logged and narrated in the thread; rules cannot loop."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from tests.automation.helpers import (
    PNID,
    conversations,
    customer_says,
    runs,
    settled,
    simulator,
    texts_sent,
    thread,
    whatsapp_channel,
)
from tests.conftest import Owner, Receiver, Server, eventually
from tidings import signing
from tidings.automation.engine import MAX_RUNS_PER_HOUR
from tidings.storage.models import Template


async def make_rule(api: httpx.AsyncClient, **rule: object) -> dict:
    resp = await api.post("/api/v1/automation/rules", json=rule)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_refund_message_gets_label_team_and_note(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    team = (await api.post("/api/v1/admin/teams", json={"name": "Billing"})).json()
    rule = await make_rule(
        api,
        name="Refunds",
        event="message.received",
        conditions=[
            {"type": "channel_kind", "values": ["whatsapp"]},
            {"type": "text_matches", "pattern": r"\brefunds?\b"},
        ],
        actions=[
            {"type": "add_label", "name": "refund"},
            {"type": "assign_team", "team_id": team["id"]},
            {"type": "add_note", "text": "Refund request: check the order first."},
        ],
    )
    await make_rule(
        api,
        name="Spanish",
        event="message.received",
        conditions=[{"type": "language", "values": ["es"]}],
        actions=[{"type": "add_label", "name": "spanish"}],
    )
    sim = simulator(server)
    await customer_says(sim, "Hello, I would like a refund for my order please")
    await customer_says(sim, "Hola, quiero saber dónde está mi pedido, por favor", "34600111222")
    await settled(server)

    convs = {c["contact_id"]: c for c in await conversations(api)}
    assert len(convs) == 2
    refund, spanish = sorted(convs.values(), key=lambda c: c["id"])
    assert refund["labels"] == ["refund"]
    assert refund["team_id"] == team["id"]
    assert spanish["labels"] == ["spanish"]
    assert spanish["team_id"] is None

    messages = await thread(api, refund["id"])
    notes = [m for m in messages if m["kind"] == "note"]
    assert [n["body"] for n in notes] == ["Refund request: check the order first."]
    # The rule, not a person, wrote the note; it carries the run that made it.
    assert notes[0]["sender_agent_id"] is None
    assert notes[0]["extra"]["automation"]["rule_id"] == rule["id"]
    system = [m["body"] for m in messages if m["kind"] == "system"]
    assert system == [
        "Rule 'Refunds' added label refund",
        "Rule 'Refunds' assigned team Billing",
        "Rule 'Refunds' added a private note",
    ]
    logged = await runs(api, conversation_id=refund["id"])
    assert len(logged) == 1
    assert logged[0]["rule_name"] == "Refunds"
    assert logged[0]["state"] == "done"
    assert [(r["action"], r["outcome"]) for r in logged[0]["results"]] == [
        ("add_label", "ok"),
        ("assign_team", "ok"),
        ("add_note", "ok"),
    ]
    # Nothing was sent to the customer.
    assert await texts_sent(sim) == []
    await sim.aclose()


async def test_canned_reply_outside_the_window_is_refused_and_logged(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    canned = await api.post(
        "/api/v1/admin/canned_replies", json={"short_code": "thanks", "content": "Thanks!"}
    )
    assert canned.status_code == 201, canned.text
    await make_rule(
        api,
        name="Auto thanks",
        event="message.received",
        actions=[
            {"type": "send_canned_reply", "canned_reply_id": canned.json()["id"]},
            {"type": "add_label", "name": "thanked"},
        ],
    )
    sim = simulator(server)
    # The customer's message was written two days ago (delivered late): WhatsApp's 24-hour
    # customer service window is already closed, so a free-form reply is not allowed.
    await customer_says(sim, "hello?", timestamp=int(time.time()) - 2 * 24 * 3600)
    await settled(server)

    conv = (await conversations(api))[0]
    logged = await runs(api, conversation_id=conv["id"])
    assert len(logged) == 1
    results = logged[0]["results"]
    assert [(r["action"], r["outcome"]) for r in results] == [
        ("send_canned_reply", "refused"),
        ("add_label", "ok"),
    ]
    assert results[0]["code"] == "window_closed"
    assert "service window is closed" in results[0]["detail"]
    messages = await thread(api, conv["id"])
    assert [m["direction"] for m in messages if m["kind"] == "text"] == ["in"]
    system = [m["body"] for m in messages if m["kind"] == "system"]
    assert system[0].startswith(
        "Rule 'Auto thanks': sending canned reply /thanks was refused. The 24-hour WhatsApp"
    )
    assert system[1] == "Rule 'Auto thanks' added label thanked"
    assert conv["labels"] == ["thanked"]
    assert await texts_sent(sim) == []
    await sim.aclose()


async def test_a_rule_that_triggers_itself_runs_once(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await whatsapp_channel(server, api)
    sim = simulator(server)
    await customer_says(sim, "hi")
    conv = (await eventually(lambda: conversations(api)))[0]
    # Every action of this rule updates the conversation, which is the rule's own event.
    rule = await make_rule(
        api,
        name="Echo",
        event="conversation.updated",
        actions=[
            {"type": "add_label", "name": "touched"},
            {"type": "set_priority", "priority": "high"},
        ],
    )
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": "pending"})
    assert resp.status_code == 200, resp.text
    await settled(server)

    logged = await runs(api, rule_id=rule["id"])
    assert len(logged) == 1
    assert logged[0]["state"] == "done"
    system = [m["body"] for m in await thread(api, conv["id"]) if m["kind"] == "system"]
    assert system == ["Rule 'Echo' added label touched", "Rule 'Echo' set priority high"]

    # Changes from outside (here, a person, as a rule's webhook consumer could) are capped:
    # past MAX_RUNS_PER_HOUR runs on one conversation, further runs are logged as skipped.
    for i in range(MAX_RUNS_PER_HOUR + 1):
        status = "open" if i % 2 == 0 else "pending"
        resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": status})
        assert resp.status_code == 200, resp.text
    await settled(server)
    logged = await runs(api, rule_id=rule["id"], limit=200)
    states = [r["state"] for r in logged]
    assert states.count("done") == MAX_RUNS_PER_HOUR
    assert states.count("skipped") == 2
    assert "loop protection" in next(r["error"] for r in logged if r["state"] == "skipped")
    await sim.aclose()


async def test_webhook_action_is_signed(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await whatsapp_channel(server, api)
    rule = await make_rule(
        api,
        name="Tell the CRM",
        event="conversation.created",
        actions=[{"type": "webhook", "url": receiver.url, "secret": "crm-secret-123"}],
    )
    assert rule["actions"] == [{"type": "webhook", "url": receiver.url, "has_secret": True}]
    sim = simulator(server)
    await customer_says(sim, "first message")
    await settled(server)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    signing.verify("crm-secret-123", headers, body)
    payload = orjson.loads(body)
    assert payload["event"] == "automation.rule"
    assert payload["data"]["rule"]["name"] == "Tell the CRM"
    assert payload["data"]["message"]["body"] == "first message"
    conv = (await conversations(api))[0]
    assert payload["data"]["conversation"]["id"] == conv["id"]
    await sim.aclose()


async def test_template_goes_out_where_the_window_is_closed(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await whatsapp_channel(server, api)
    # An approved template of the channel, as template sync records it.
    async with server.runtime.db.write() as s:
        template = Template(
            workspace_id=owner.workspace_id,
            channel_id=channel["id"],
            name="order_update",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            components=[{"type": "BODY", "text": "Hello {{1}}, we are looking into it."}],
        )
        s.add(template)
        await s.flush()
        template_id = template.id
    await make_rule(
        api,
        name="Late reply",
        event="message.received",
        actions=[
            {"type": "send_template", "template_id": template_id, "params": ["there"]},
        ],
    )
    sim = simulator(server)
    await customer_says(sim, "anyone?", timestamp=int(time.time()) - 2 * 24 * 3600)
    await settled(server)

    async def template_requests() -> list:
        sent = (await sim.get("/_sim/sent", params={"phone_number_id": PNID})).json()
        return [r["body"] for r in sent if r["body"].get("type") == "template"]

    bodies = await eventually(template_requests)
    assert len(bodies) == 1
    assert bodies[0]["template"]["name"] == "order_update"
    assert bodies[0]["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "there"}
    ]
    conv = (await conversations(api))[0]
    logged = await runs(api, conversation_id=conv["id"])
    assert [(r["action"], r["outcome"]) for r in logged[0]["results"]] == [("send_template", "ok")]
    out = [m for m in await thread(api, conv["id"]) if m["kind"] == "template"]
    assert [m["body"] for m in out] == ["Hello there, we are looking into it."]
    assert out[0]["sender_agent_id"] is None
    await sim.aclose()


async def test_a_provider_notice_is_not_a_conversation_update(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """WhatsApp's "the customer changed their user id" notice is a system line in the
    customer's latest conversation (a resolved campaign conversation, often). Nobody changed
    the conversation: `conversation.updated` rules must not run for it (they did, e.g. a
    label or a canned reply on a conversation the customer never answered)."""
    from tests.channels.test_whatsapp_identity_change import (
        FIXTURES,
        NUMBER,
        OLD_BSUID,
        post,
        text_from,
    )
    from tests.core.test_whatsapp_e2e import whatsapp_channel as core_whatsapp_channel

    channel = await core_whatsapp_channel(server, api)
    await post(channel, text_from("wamid.N1", int(time.time()) - 60, "hello", NUMBER, OLD_BSUID))
    await settled(server)
    rule = await make_rule(
        api,
        name="On update",
        event="conversation.updated",
        actions=[{"type": "add_label", "name": "updated"}],
    )
    await post(channel, (FIXTURES / "system_user_changed_user_id.json").read_bytes())

    async def noticed() -> bool:
        conv = (await conversations(api))[0]
        return any(m["kind"] == "system" for m in await thread(api, conv["id"]))

    await eventually(noticed)
    await settled(server)
    assert await runs(api, rule_id=rule["id"]) == []
    # A person's change still is one.
    conv = (await conversations(api))[0]
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": "pending"})
    assert resp.status_code == 200, resp.text
    await settled(server)
    assert len(await runs(api, rule_id=rule["id"])) == 1


async def test_a_provider_notice_after_the_answer_does_not_rearm_no_reply(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """A no_reply timer whose message an agent answered looks for a newer customer message to
    wait on. A notice (the customer changed their number) is none: the rule ran on it as if
    the customer had been waiting since."""
    await whatsapp_channel(server, api)
    rule = await make_rule(
        api,
        name="Waiting",
        event="no_reply",
        minutes=0.05,
        actions=[{"type": "add_label", "name": "waiting"}],
    )
    async with simulator(server) as sim:
        await customer_says(sim, "hello?")
        conv = (await eventually(lambda: conversations(api)))[0]
        answered = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi! How can I help?"}
        )
        assert answered.status_code == 201, answered.text
        moved = await sim.post(
            "/_sim/change_user",
            json={"phone_number_id": PNID, "user": "16505551234", "new_wa_id": "16505559999"},
        )
        assert moved.status_code == 200, moved.text

        async def noticed() -> bool:
            return any(m["kind"] == "system" for m in await thread(api, conv["id"]))

        await eventually(noticed)
    await asyncio.sleep(8)  # past the 3 s timer, and a re-armed one
    await settled(server)
    assert await runs(api, rule_id=rule["id"]) == []


async def test_rules_read_the_customers_words_not_a_provider_notice(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """Conditions on the customer's message look past a provider's notice (a system line with
    direction `in`): after "the customer changed their user id", a person's update still
    matches the customer's last words (the notice's text was matched instead)."""
    from tests.channels.test_whatsapp_identity_change import (
        FIXTURES,
        NUMBER,
        OLD_BSUID,
        post,
        text_from,
    )
    from tests.core.test_whatsapp_e2e import whatsapp_channel as core_whatsapp_channel

    channel = await core_whatsapp_channel(server, api)
    await post(
        channel, text_from("wamid.R1", int(time.time()) - 60, "I want a refund", NUMBER, OLD_BSUID)
    )
    await settled(server)
    rule = await make_rule(
        api,
        name="Refund follow-up",
        event="conversation.updated",
        conditions=[{"type": "text_matches", "pattern": r"\brefund\b"}],
        actions=[{"type": "add_label", "name": "refund"}],
    )
    await post(channel, (FIXTURES / "system_user_changed_user_id.json").read_bytes())
    conv = (await conversations(api))[0]

    async def noticed() -> bool:
        return any(m["kind"] == "system" for m in await thread(api, conv["id"]))

    await eventually(noticed)
    await settled(server)
    resp = await api.patch(f"/api/v1/conversations/{conv['id']}", json={"status": "pending"})
    assert resp.status_code == 200, resp.text
    await settled(server)
    [run] = await runs(api, rule_id=rule["id"])
    assert run["state"] in ("done", "succeeded"), run
    labels = (await api.get(f"/api/v1/conversations/{conv['id']}")).json()["labels"]
    assert "refund" in labels
