"""Authorisation matrix: every API route in the OpenAPI document, called on another workspace's
resources, and on another inbox's conversation by an agent, leaks nothing. Then the routes and
events the generic sweep cannot reach: contact merge/undo/suggestions, changes to an owner by
an admin, and live-event scoping (docs/architecture.md, "Authentication and access")."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

import tidings
from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import SECRET, api_channel, msg, post_signed
from tidings.access import EVENT_AUDIENCE, Audience, Principal, can_see_event
from tidings.actions.admin import hash_token
from tidings.domain.enums import Role
from tidings.realtime.bus import LiveEvent
from tidings.storage.models import Agent, ApiToken, Contact, Inbox, InboxMember, Workspace
from tidings.storage.types import utcnow

DENIED = {401, 403, 404, 405, 409, 422}


async def make_outsiders(server: Server, owner: Owner) -> dict[str, str]:
    """A second workspace's owner, and an agent of workspace A who is not in the Support inbox."""
    rt = server.runtime
    async with rt.db.write() as s:
        ws = Workspace(name="Other", created_at=utcnow())
        s.add(ws)
        await s.flush()
        other_owner = Agent(
            workspace_id=ws.id, email="b@example.com", name="B", role="owner", created_at=utcnow()
        )
        sales = Inbox(workspace_id=owner.workspace_id, name="Sales", created_at=utcnow())
        agent = Agent(
            workspace_id=owner.workspace_id,
            email="sales@example.com",
            name="S",
            role="agent",
            created_at=utcnow(),
        )
        s.add_all([other_owner, sales, agent])
        await s.flush()
        s.add(InboxMember(inbox_id=sales.id, agent_id=agent.id))
        for who, token in ((other_owner, "tid_other_owner"), (agent, "tid_sales_agent")):
            s.add(
                ApiToken(
                    workspace_id=who.workspace_id,
                    agent_id=who.id,
                    name="t",
                    token_hash=hash_token(token),
                    created_at=utcnow(),
                )
            )
    return {"other_owner": "tid_other_owner", "sales_agent": "tid_sales_agent"}


def fill(path: str, ids: dict[str, int]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), path)


async def test_no_route_leaks_across_workspaces_or_inboxes(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    await post_signed(
        server,
        channel_id,
        {"messages": [msg("secret-msg", "vip", "the secret text", 1_750_000_000)]},
    )

    async def conv() -> list:
        return (await api.get("/api/v1/conversations")).json()["data"]

    conversation = (await eventually(conv))[0]
    messages = (await api.get(f"/api/v1/conversations/{conversation['id']}/messages")).json()[
        "data"
    ]
    sub = (
        await api.post(
            "/api/v1/webhook_subscriptions",
            json={"url": "http://127.0.0.1:9/x", "events": ["message.created"]},
        )
    ).json()
    ids = {
        "conversation_id": conversation["id"],
        "contact_id": conversation["contact_id"],
        "channel_id": channel_id,
        "message_id": messages[0]["id"],
        "subscription_id": sub["id"],
        "inbox_id": owner.inbox_id,
        "agent_id": owner.agent_id,
    }
    secrets_of_a = ["the secret text", "vip", "secret-msg", "http://127.0.0.1:9/x"]
    tokens = await make_outsiders(server, owner)
    spec = (await api.get("/api/v1/openapi.json")).json()
    checked = 0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for path, operations in spec["paths"].items():
            if path == "/api/v1/events":
                continue  # an endless stream; its filtering is tested in tests/core/test_live.py
            for method in operations:
                if method not in {"get", "post", "put", "patch", "delete"}:
                    continue
                url = fill(path, ids)
                body: Any = {} if method in {"post", "put", "patch"} else None
                for who, token in tokens.items():
                    if who == "sales_agent" and not any(
                        k in path for k in ("conversation", "message", "contact")
                    ):
                        continue  # an agent of workspace A may see workspace-wide things
                    resp = await client.request(
                        method.upper(), url, json=body, headers={"Authorization": f"Bearer {token}"}
                    )
                    checked += 1
                    text = resp.text
                    leaked = [s for s in secrets_of_a if s in text]
                    assert not leaked, (
                        f"{who} {method.upper()} {url} -> {resp.status_code} leaked {leaked}"
                    )
                    if "{" in path:
                        assert resp.status_code in DENIED, (
                            f"{who} {method.upper()} {url} -> {resp.status_code}: {text[:200]}"
                        )
    assert checked > 40
    # The owner still sees everything: the matrix above did not pass by breaking access.
    assert (await api.get(f"/api/v1/conversations/{conversation['id']}")).status_code == 200


# --- contacts, owners and live events (issue 15, items 2, 3 and 11) ---------------------------


async def _agent_with_token(
    server: Server, owner: Owner, email: str, role: str, inbox_id: int | None, token: str
) -> int:
    async with server.runtime.db.write() as s:
        agent = Agent(
            workspace_id=owner.workspace_id, email=email, name=email, role=role, created_at=utcnow()
        )
        s.add(agent)
        await s.flush()
        if inbox_id is not None:
            s.add(InboxMember(inbox_id=inbox_id, agent_id=agent.id))
        s.add(
            ApiToken(
                workspace_id=owner.workspace_id,
                agent_id=agent.id,
                name="t",
                token_hash=hash_token(token),
                created_at=utcnow(),
            )
        )
        return agent.id


async def _sales_inbox(server: Server, owner: Owner) -> int:
    async with server.runtime.db.read() as s:
        return int(
            await s.scalar(
                select(Inbox.id).where(
                    Inbox.workspace_id == owner.workspace_id, Inbox.name == "Sales"
                )
            )
            or 0
        )


async def _channel_in(api: httpx.AsyncClient, inbox_id: int, name: str) -> int:
    resp = await api.post(
        "/api/v1/channels",
        json={"kind": "api", "name": name, "config": {"secret": SECRET}, "inbox_id": inbox_id},
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def _conversation_of(api: httpx.AsyncClient, sender: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        data = (await api.get("/api/v1/conversations", params={"status": "open"})).json()["data"]
        for conv in data:
            contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
            if any(i.get("address") == sender for i in contact.get("identities", [])):
                return dict(conv)
        return None

    found: dict[str, Any] = await eventually(find)
    return found


async def _duplicates(server: Server, api: httpx.AsyncClient, owner: Owner) -> dict[str, Any]:
    """Two duplicate contacts in the Support inbox (same number, one of them named "Alice
    Secret"), and a contact with that number too in the Sales inbox."""
    support = await api_channel(api)
    await post_signed(
        server,
        support,
        {
            "messages": [
                msg("dup-1", "alice-wa", "hi", 1_750_000_000),
                msg("dup-2", "alice-web", "hello", 1_750_000_001),
            ]
        },
    )
    sales_inbox = await _sales_inbox(server, owner)
    sales = await _channel_in(api, sales_inbox, "Sales site")
    await post_signed(server, sales, {"messages": [msg("dup-3", "bob", "yo", 1_750_000_002)]})
    a1 = await _conversation_of(api, "alice-wa")
    a2 = await _conversation_of(api, "alice-web")
    b = await _conversation_of(api, "bob")
    async with server.runtime.db.write() as s:
        for conv in (a1, a2, b):
            contact = await s.get_one(Contact, conv["contact_id"])
            contact.phone_e164 = "+15550001111"
        (await s.get_one(Contact, a2["contact_id"])).name = "Alice Secret"
    return {"a1": a1, "a2": a2, "b": b, "sales_inbox": sales_inbox, "sales_channel": sales}


async def test_contact_merge_needs_both_contacts_visible(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await make_outsiders(server, owner)
    d = await _duplicates(server, api, owner)
    a1, a2, b = d["a1"]["contact_id"], d["a2"]["contact_id"], d["b"]["contact_id"]
    sales = {"Authorization": "Bearer tid_sales_agent"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=sales) as agent:
        # Suggestions show only contacts the agent can see.
        context = await agent.get(f"/api/v1/ui/conversations/{d['b']['id']}/context")
        assert context.status_code == 200
        assert context.json()["merge_suggestions"] == []
        assert "Alice Secret" not in context.text

        # Merging contacts the agent cannot see answers like merging ones that do not exist.
        missing = await agent.post("/api/v1/ui/contacts/999999/merge", json={"merge_id": 999998})
        assert missing.status_code == 404
        for keep, dup in ((a1, a2), (b, a2), (a2, b)):
            resp = await agent.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": dup})
            assert resp.status_code == 404, resp.text
            assert resp.json() == missing.json()
            assert "Alice" not in resp.text and "+1555" not in resp.text

        # The owner sees both and merges; the agent can neither undo it nor tell it exists.
        owner_context = (await api.get(f"/api/v1/ui/conversations/{d['a1']['id']}/context")).json()
        assert [c["id"] for c in owner_context["merge_suggestions"]] == [a2, b]
        merged = await api.post(f"/api/v1/ui/contacts/{a1}/merge", json={"merge_id": a2})
        assert merged.status_code == 200, merged.text
        merge_id = merged.json()["merge_id"]
        no_merge = await agent.post("/api/v1/ui/contact_merges/999999/undo")
        undo = await agent.post(f"/api/v1/ui/contact_merges/{merge_id}/undo")
        assert undo.status_code == no_merge.status_code == 404
        assert undo.json() == no_merge.json()
    # Nothing the agent did changed the contacts.
    assert (await api.get(f"/api/v1/contacts/{a1}")).json()["name"] == "Alice-Wa"
    assert (await api.post(f"/api/v1/ui/contact_merges/{merge_id}/undo")).status_code == 200

    # An agent of the Support inbox sees both contacts and may merge them.
    await _agent_with_token(server, owner, "sup@example.com", "agent", owner.inbox_id, "tid_sup")
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, headers={"Authorization": "Bearer tid_sup"}
    ) as member:
        again = await member.post(f"/api/v1/ui/contacts/{a1}/merge", json={"merge_id": a2})
        assert again.status_code == 200, again.text
        back = await member.post(f"/api/v1/ui/contact_merges/{again.json()['merge_id']}/undo")
        assert back.status_code == 200, back.text


async def test_an_admin_cannot_change_an_owner(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    admin_id = await _agent_with_token(server, owner, "adm@example.com", "admin", None, "tid_adm")
    plain = await _agent_with_token(server, owner, "pl@example.com", "agent", None, "tid_plain")
    tokens = (await api.get("/api/v1/admin/api_tokens")).json()
    owner_token = next(t["id"] for t in tokens if t["agent_id"] == owner.agent_id)
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, headers={"Authorization": "Bearer tid_adm"}
    ) as admin:
        for change in (
            {"password": "admin-chosen-password"},
            {"name": "Pwned"},
            {"role": "agent"},
            {"active": False},
        ):
            resp = await admin.patch(f"/api/v1/admin/agents/{owner.agent_id}", json=change)
            assert resp.status_code == 403, (change, resp.text)
        # No route changes an email: not the owner's either (and nothing changed).
        email = await admin.patch(
            f"/api/v1/admin/agents/{owner.agent_id}", json={"email": "adm@evil.example"}
        )
        assert 400 <= email.status_code < 500 and email.status_code != 404, email.text
        # Nor make an owner, nor take the owner's tokens or reset link.
        promote = await admin.patch(f"/api/v1/admin/agents/{plain}", json={"role": "owner"})
        assert promote.status_code == 403
        create = await admin.post(
            "/api/v1/admin/agents",
            json={"email": "o2@example.com", "name": "O2", "role": "owner", "password": "p" * 12},
        )
        assert create.status_code == 403
        assert (await admin.delete(f"/api/v1/admin/api_tokens/{owner_token}")).status_code == 403
        link = await admin.post(f"/api/v1/admin/agents/{owner.agent_id}/password_reset")
        assert link.status_code == 403
        # What admins may do still works: an agent's password, an admin's own name.
        ok = await admin.patch(f"/api/v1/admin/agents/{plain}", json={"password": "q" * 12})
        assert ok.status_code == 200, ok.text
        assert (
            await admin.patch(f"/api/v1/admin/agents/{admin_id}", json={"name": "Ad"})
        ).status_code == 200
    # The owner is untouched: same name, same role, still active, token still works.
    me = (await api.get("/api/v1/admin/agents")).json()
    row = next(a for a in me if a["id"] == owner.agent_id)
    assert (row["name"], row["role"], row["active"]) == ("owner", "owner", True)
    assert row["email"] != "adm@evil.example"
    # And an owner may do all of it.
    assert (
        await api.patch(f"/api/v1/admin/agents/{plain}", json={"role": "owner"})
    ).status_code == 200


async def _read_until(
    client: httpx.AsyncClient, token: str, seen: list[dict[str, Any]], stop: Any
) -> None:
    async with client.stream(
        "GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status_code == 200
        current: dict[str, Any] = {}
        async for line in resp.aiter_lines():
            if line == "":
                if "event" in current:
                    seen.append(current)
                    if stop(current):
                        return
                current = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(": ")
                current[field] = orjson.loads(value) if field == "data" else value


def test_every_emitted_event_type_has_an_audience() -> None:
    """A new event type must be placed in access.EVENT_AUDIENCE (else only admins get it):
    every `LiveEventType` has an audience and a typed payload (`domain.live_events`), and every
    type emitted in src/ — as a typed payload, an enum member or a bare string — is one."""
    from tidings.access import EVENT_AUDIENCE  # here: the test fails, not the module
    from tidings.domain.enums import LiveEventType
    from tidings.domain.live_events import KINDS

    assert set(LiveEventType) == set(EVENT_AUDIENCE), set(LiveEventType) ^ set(EVENT_AUDIENCE)
    assert sorted(k.type for k in KINDS) == sorted(LiveEventType)
    src = Path(tidings.__file__).parent
    emitted: set[str] = set()
    for path in src.rglob("*.py"):
        text = path.read_text()
        emitted |= set(re.findall(r'emit\(\s*"([a-z_.]+)"', text))
        emitted |= set(re.findall(r'LiveEvent\(\s*"([a-z_.]+)"', text))
        members = re.findall(r"(?:emit|LiveEvent)\(\s*LiveEventType\.([A-Z_]+)", text)
        members += re.findall(r"\blive_events\.([A-Z_]+)\b", text)  # the typed payloads
        emitted |= {LiveEventType[name] for name in members}
    emitted.discard("idle")
    assert {"campaign.updated", "contact.merged", "message.created"} <= emitted
    assert emitted <= set(LiveEventType), emitted - set(LiveEventType)


async def test_live_events_reach_only_agents_who_may_see_them(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await make_outsiders(server, owner)
    d = await _duplicates(server, api, owner)
    await _agent_with_token(server, owner, "sup@example.com", "agent", owner.inbox_id, "tid_sup")
    a1, a2 = d["a1"]["contact_id"], d["a2"]["contact_id"]
    outsider: list[dict[str, Any]] = []
    member: list[dict[str, Any]] = []
    admin: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        readers = [
            asyncio.create_task(
                _read_until(
                    client,
                    "tid_sales_agent",
                    outsider,
                    lambda e: e["event"] == "message.created" and e["data"]["body"] == "marker",
                )
            ),
            asyncio.create_task(
                _read_until(client, "tid_sup", member, lambda e: e["event"] == "contact.merged")
            ),
            asyncio.create_task(
                _read_until(client, owner.token, admin, lambda e: e["event"] == "campaign.updated")
            ),
        ]
        await asyncio.sleep(0.5)
        merged = await api.post(f"/api/v1/ui/contacts/{a1}/merge", json={"merge_id": a2})
        assert merged.status_code == 200
        campaign = await api.post(
            "/api/v1/campaigns", json={"name": "Secret launch", "content": {"text": "x"}}
        )
        assert campaign.status_code == 201, campaign.text
        # Then something the outsider may see: events arrive in order, so once it is there,
        # everything published before it has been filtered.
        await post_signed(
            server, d["sales_channel"], {"messages": [msg("mk", "bob", "marker", 1_750_000_100)]}
        )
        await asyncio.wait_for(asyncio.gather(*readers), 30)
    kinds = {e["event"] for e in outsider}
    assert "contact.merged" not in kinds and "campaign.updated" not in kinds, kinds
    text = orjson.dumps(outsider).decode()
    assert "Alice" not in text and "Secret launch" not in text
    assert all(e["data"].get("inbox_id") in (None, d["sales_inbox"]) for e in outsider)
    # The Support agent hears about the merge; the owner about the campaign.
    assert any(e["event"] == "contact.merged" and e["data"]["merged"] == a2 for e in member)
    assert any(e["data"].get("name") == "Secret launch" for e in admin)


# Who hears a live event, by its audience: (an agent of another inbox, an agent of the event's
# inbox, an admin). Owners and admins of another workspace hear nothing.
HEARS = {
    Audience.WORKSPACE: (True, True, True),
    Audience.INBOX: (False, True, True),
    Audience.ADMINS: (False, False, True),
}


@pytest.mark.parametrize("event_type", sorted(EVENT_AUDIENCE))
def test_every_event_type_reaches_exactly_its_audience(event_type: str) -> None:
    """`can_see_event` over every type in `access.EVENT_AUDIENCE`, the live stream's one rule;
    the two the review found leaking stay pinned to their audience."""
    pinned = {"campaign.updated": Audience.ADMINS, "contact.merged": Audience.INBOX}
    audience = EVENT_AUDIENCE[event_type]
    assert audience is pinned.get(event_type, audience)
    other_inbox = Principal(1, 10, Role.AGENT, frozenset({8}))
    member = Principal(1, 11, Role.AGENT, frozenset({7}))
    admin = Principal(1, 12, Role.ADMIN, frozenset())
    stranger = Principal(2, 13, Role.OWNER, frozenset({7}))
    if audience is Audience.AGENT:
        # Only the agent the event names hears it: not an admin, not the inbox's other agents.
        for named, hears in ((member, (False, True, False)), (admin, (False, False, True))):
            event = LiveEvent(event_type, 1, 7, {"agent_id": named.agent_id}, inbox_ids=(7,))
            heard = tuple(can_see_event(who, event) for who in (other_inbox, member, admin))
            assert heard == hears, (event, heard)
        assert not can_see_event(stranger, LiveEvent(event_type, 1, 7, {"agent_id": 13}))
        return
    # The subject's inbox given either way an emitter may give it.
    for event in (
        LiveEvent(event_type, 1, 7, {}),
        LiveEvent(event_type, 1, None, {}, inbox_ids=(7, 9)),
    ):
        heard = tuple(can_see_event(who, event) for who in (other_inbox, member, admin))
        assert heard == HEARS[audience], (event, heard)
        assert not can_see_event(stranger, event)
    # An inbox event naming no inbox reaches no agent (fails closed), only admins.
    if audience is Audience.INBOX:
        bare = LiveEvent(event_type, 1, None, {})
        assert not can_see_event(member, bare) and can_see_event(admin, bare)


def test_an_unplaced_event_type_reaches_admins_only() -> None:
    event = LiveEvent("something.new", 1, 7, {})
    assert not can_see_event(Principal(1, 11, Role.AGENT, frozenset({7})), event)
    assert can_see_event(Principal(1, 12, Role.ADMIN, frozenset()), event)
