"""Sign-in, CSRF, security headers and who may see what — over real HTTP, no browser."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tidings.realtime.bus import LiveEvent

PASSWORD = "agent-password-1"


async def signed_in(server: Server, email: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=server.url, timeout=20)
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    resp = await client.post(
        "/login", data={"email": email, "password": password, "csrf": token.group(1)}
    )
    assert resp.status_code == 303, resp.text
    return client


async def customer_conversation(
    server: Server, api: httpx.AsyncClient, account: str, inbox_id: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "api",
        "name": account,
        "config": {
            "secret": "s3cret-for-the-api-channel",
            "webhook_url": f"{server.url}/sandbox/api/accounts/{account}/receive",
        },
    }
    if inbox_id is not None:
        body["inbox_id"] = inbox_id
    assert (await api.post("/api/v1/channels", json=body)).status_code == 201
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        await sim.post(
            "/_sim/inbound", json={"account": account, "from": "c-" + account, "text": "hi"}
        )

    async def find() -> dict[str, Any] | None:
        data = (await api.get("/api/v1/conversations")).json()["data"]
        return next((c for c in data if inbox_id is None or c["inbox_id"] == inbox_id), None)

    conv: dict[str, Any] = await eventually(find)
    return conv


async def test_login_form_needs_its_csrf_token(server: Server, owner: Owner) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        forged = await client.post(
            "/login", data={"email": "owner@example.com", "password": "correct horse battery"}
        )
        assert forged.status_code == 403 and "tidings_session" not in forged.cookies
        page = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        wrong = await client.post(
            "/login",
            data={
                "email": "owner@example.com",
                "password": "correct horse battery",
                "csrf": "x" + token.group(1),
            },
        )
        assert wrong.status_code == 403
        page = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        bad_pw = await client.post(
            "/login",
            data={"email": "owner@example.com", "password": "nope", "csrf": token.group(1)},
        )
        assert bad_pw.status_code == 401 and "Wrong email or password." in bad_pw.text
        # Each rendering of the form carries a fresh token (and cookie).
        token = re.search(r'name="csrf" value="([^"]+)"', bad_pw.text)
        assert token is not None
        ok = await client.post(
            "/login",
            data={
                "email": "owner@example.com",
                "password": "correct horse battery",
                "csrf": token.group(1),
            },
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/inbox"
        assert (await client.get("/inbox")).status_code == 200


async def test_sign_out_needs_the_page_token(server: Server, owner: Owner) -> None:
    client = await signed_in(server, "owner@example.com", "correct horse battery")
    inbox = await client.get("/inbox")
    token = re.search(r'name="csrf" value="([^"]+)"', inbox.text)
    assert token is not None
    forged = await client.post("/logout", data={})
    assert forged.status_code == 403
    assert (await client.get("/api/v1/me")).status_code == 200  # still signed in
    out = await client.post("/logout", data={"csrf": token.group(1)})
    assert out.status_code == 303
    client.cookies.clear()
    assert (await client.get("/api/v1/me")).status_code == 401
    await client.aclose()


async def test_cookie_writes_need_the_csrf_header(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    conv = await customer_conversation(server, api, "csrf")
    client = await signed_in(server, "owner@example.com", "correct horse battery")
    blocked = await client.post(f"/api/v1/ui/conversations/{conv['id']}/notes", json={"text": "x"})
    assert blocked.status_code == 403
    allowed = await client.post(
        f"/api/v1/ui/conversations/{conv['id']}/notes",
        json={"text": "x"},
        headers={"X-Requested-With": "tidings"},
    )
    assert allowed.status_code == 201
    await client.aclose()


async def test_pages_carry_a_strict_csp_and_no_inline_script(server: Server, owner: Owner) -> None:
    client = await signed_in(server, "owner@example.com", "correct horse battery")
    for path in ("/login", "/inbox", "/settings", "/sandbox/phone"):
        resp = await client.get(path)
        assert resp.status_code == 200, path
        csp = resp.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp
            and "unsafe-inline" not in csp
            and "default-src 'none'" in csp
        )
        assert resp.headers["x-content-type-options"] == "nosniff"
        # Every script is a file; no inline handlers or styles.
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", resp.text) == [], path
        assert not re.search(r"\son[a-z]+=", resp.text), path
        assert " style=" not in resp.text, path
    api_json = await client.get("/api/v1/me")
    assert "content-security-policy" not in api_json.headers
    await client.aclose()


async def test_agent_sees_only_their_inboxes(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    made = await api.post("/api/v1/admin/inboxes", json={"name": "Billing", "agent_ids": []})
    assert made.status_code == 201
    billing = made.json()["id"]
    theirs = await customer_conversation(server, api, "support")
    hidden = await customer_conversation(server, api, "billing", inbox_id=billing)
    agent = await api.post(
        "/api/v1/admin/agents",
        json={"email": "ana@example.com", "name": "Ana", "role": "agent", "password": PASSWORD},
    )
    assert agent.status_code == 201
    members = await api.put(
        f"/api/v1/admin/inboxes/{owner.inbox_id}/members",
        json={"agent_ids": [owner.agent_id, agent.json()["id"]]},
    )
    assert members.status_code == 200

    client = await signed_in(server, "ana@example.com", PASSWORD)
    h = {"X-Requested-With": "tidings"}
    listed = (await client.get("/api/v1/ui/conversations?status=any")).json()["data"]
    assert [c["id"] for c in listed] == [theirs["id"]]
    assert [c["id"] for c in (await client.get("/api/v1/conversations")).json()["data"]] == [
        theirs["id"]
    ]
    cid = hidden["id"]
    attempts = [
        await client.get(f"/api/v1/conversations/{cid}"),
        await client.get(f"/api/v1/conversations/{cid}/messages"),
        await client.get(f"/api/v1/ui/conversations/{cid}"),
        await client.get(f"/api/v1/ui/conversations/{cid}/context"),
        await client.post(
            f"/api/v1/ui/conversations/{cid}/notes", json={"text": "peek"}, headers=h
        ),
        await client.post(
            f"/api/v1/ui/conversations/{cid}/presence", json={"state": "viewing"}, headers=h
        ),
        await client.post(f"/api/v1/ui/conversations/{cid}/read", headers=h),
        await client.patch(
            f"/api/v1/ui/conversations/{cid}", json={"status": "resolved"}, headers=h
        ),
        await client.post(f"/api/v1/conversations/{cid}/messages", json={"text": "hi"}, headers=h),
    ]
    assert [r.status_code for r in attempts] == [404] * len(attempts)
    assert (await client.get("/api/v1/ui/search?q=hi")).json()["messages"] == [
        m
        for m in (await client.get("/api/v1/ui/search?q=hi")).json()["messages"]
        if m["conversation_id"] != cid
    ]
    # Nothing changed on the hidden conversation.
    after = (await api.get(f"/api/v1/conversations/{cid}/messages")).json()["data"]
    assert [m["kind"] for m in after] == ["text"]
    assert (await api.get(f"/api/v1/conversations/{cid}")).json()["status"] == "open"
    # Admin surfaces are closed to agents.
    assert (await client.get("/settings")).status_code == 403
    assert (await client.get("/api/v1/admin/agents")).status_code == 403
    assert (
        await client.post("/api/v1/admin/labels", json={"name": "x"}, headers=h)
    ).status_code == 403
    # Once a member, the conversation opens.
    await api.put(
        f"/api/v1/admin/inboxes/{billing}/members", json={"agent_ids": [agent.json()["id"]]}
    )
    assert (await client.get(f"/api/v1/ui/conversations/{cid}")).status_code == 200
    await client.aclose()


async def test_presence_travels_on_the_live_bus(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    conv = await customer_conversation(server, api, "presence")
    seen: list[LiveEvent] = []

    async def listen() -> None:
        async for event in server.runtime.bus.subscribe(None):
            if event.type == "presence":
                seen.append(event)
                return

    import asyncio

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.05)
    resp = await api.post(
        f"/api/v1/ui/conversations/{conv['id']}/presence", json={"state": "replying"}
    )
    assert resp.status_code == 200
    await asyncio.wait_for(task, 5)
    assert len(seen) == 1
    data = seen[0].data
    assert (data["conversation_id"], data["agent_id"], data["state"]) == (
        conv["id"],
        owner.agent_id,
        "replying",
    )
    assert seen[0].inbox_id == conv["inbox_id"]
    bad = await api.post(
        f"/api/v1/ui/conversations/{conv['id']}/presence", json={"state": "dancing"}
    )
    assert bad.status_code == 422
    assert orjson.loads(bad.content)["error"]["code"] == "invalid_input"


async def test_merge_rules(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    conv = await customer_conversation(server, api, "m")
    keep = conv["contact_id"]
    assert (
        await api.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": keep})
    ).status_code == 422
    assert (
        await api.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": 99999})
    ).status_code == 404
    from tidings.storage.models import Contact, Workspace

    async with server.runtime.db.write() as s:
        other_ws = Workspace(name="Other")
        s.add(other_ws)
        await s.flush()
        foreign = Contact(workspace_id=other_ws.id, name="Foreign", attributes={})
        mine = Contact(workspace_id=owner.workspace_id, name="Dup", attributes={})
        s.add_all([foreign, mine])
        await s.flush()
        foreign_id, dup_id = foreign.id, mine.id
    # Another workspace's contact answers like a missing one.
    assert (
        await api.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": foreign_id})
    ).status_code == 404
    merged = await api.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": dup_id})
    assert merged.status_code == 200
    assert (merged.json()["kept"], merged.json()["merged"]) == (keep, dup_id)
    assert (
        await api.post(f"/api/v1/ui/contacts/{keep}/merge", json={"merge_id": dup_id})
    ).status_code == 409
    undo = f"/api/v1/ui/contact_merges/{merged.json()['merge_id']}/undo"
    assert (await api.post(undo)).status_code == 200
    assert (await api.post(undo)).status_code == 409


async def test_templates_are_listed_for_admins(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/api/v1/admin/templates")).json() == []
    await customer_conversation(server, api, "tpl")
    channel_id = (await api.get("/api/v1/channels")).json()[0]["id"]
    from tidings.storage.models import Template

    async with server.runtime.db.write() as s:
        s.add(
            Template(
                workspace_id=owner.workspace_id,
                channel_id=channel_id,
                name="order_update",
                language="en",
                category="UTILITY",
                status="APPROVED",
                components=[{"type": "BODY", "text": "Your order {{1}} is on its way"}],
            )
        )
    rows = (await api.get("/api/v1/admin/templates")).json()
    assert [(r["name"], r["status"], r["channel_name"]) for r in rows] == [
        ("order_update", "APPROVED", "tpl")
    ]
