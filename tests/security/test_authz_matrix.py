"""Authorisation matrix: every API route in the OpenAPI document, called on another workspace's
resources, and on another inbox's conversation by an agent, leaks nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.actions.admin import hash_token
from tidings.storage.models import Agent, ApiToken, Inbox, InboxMember, Workspace
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
