"""The Contacts API (issue 18): directory filters, editing with field errors, CSV import and
export, starting a conversation, and who may do what."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed
from tests.factories import create_channel
from tests.security.test_authz_matrix import make_outsiders
from tidings.storage.models import Contact, ContactIdentity


async def whatsapp_channel(api: httpx.AsyncClient) -> int:
    config = {
        "phone_number_id": "111",
        "access_token": "tok",
        "app_secret": "s3cret",
        "verify_token": "v",
        "api_base_url": "http://127.0.0.1:9",
    }
    return int((await create_channel(api, "whatsapp", config, name="WA"))["id"])


async def customer(server: Server, api: httpx.AsyncClient) -> tuple[int, int]:
    """An API channel and a customer "vip" who wrote on it: (channel id, contact id)."""
    channel_id = await api_channel(api)
    await post_signed(server, channel_id, {"messages": [msg("m1", "vip", "hello", 1_750_000_000)]})

    async def found() -> list:
        return (await api.get("/api/v1/contacts/directory")).json()["data"]

    rows = await eventually(found)
    return channel_id, rows[0]["id"]


async def test_directory_filters_and_edit(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    _channel_id, contact_id = await customer(server, api)
    page = (await api.get("/api/v1/contacts/directory")).json()
    assert page["total"] == 1 and page["data"][0]["consent"] is None
    assert (await api.get("/api/v1/contacts/directory?channel=api")).json()["total"] == 1
    assert (await api.get("/api/v1/contacts/directory?channel=whatsapp")).json()["total"] == 0
    assert (await api.get("/api/v1/contacts/directory?consent=unknown")).json()["total"] == 1
    assert (await api.get("/api/v1/contacts/directory?consent=opted_out")).json()["total"] == 0
    assert (await api.get("/api/v1/contacts/directory?consent=maybe")).status_code == 422
    assert (await api.get("/api/v1/contacts/directory?channel=pigeon")).status_code == 422

    ok = await api.patch(
        f"/api/v1/contacts/{contact_id}",
        json={
            "name": "Vera Ip",
            "email": "Vera@Example.com",
            "phone": "+49 151 12345678",
            "attributes": {"plan": "gold"},
            "notes": "Prefers mornings.",
        },
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["phone"] == "+4915112345678" and body["email"] == "vera@example.com"
    assert body["attributes"] == {"plan": "gold"} and body["notes"] == "Prefers mornings."
    assert (await api.get("/api/v1/contacts/directory?q=Vera")).json()["total"] == 1

    # Bad input: 422 naming the field, and nothing changes (one transaction).
    bad = await api.patch(f"/api/v1/contacts/{contact_id}", json={"name": "Changed", "phone": "12"})
    assert bad.status_code == 422
    assert bad.json()["error"]["message"].startswith("phone:")
    bad_email = await api.patch(f"/api/v1/contacts/{contact_id}", json={"email": "nope"})
    assert bad_email.json()["error"]["message"].startswith("email:")
    unknown = await api.patch(f"/api/v1/contacts/{contact_id}", json={"colour": "red"})
    assert unknown.status_code == 422
    after = (await api.get(f"/api/v1/contacts/{contact_id}/details")).json()
    assert after["name"] == "Vera Ip" and after["phone"] == "+4915112345678"

    # Clearing with null.
    cleared = await api.patch(f"/api/v1/contacts/{contact_id}", json={"notes": None})
    assert cleared.json()["notes"] is None
    assert (await api.patch("/api/v1/contacts/999999", json={"name": "x"})).status_code == 404


async def test_csv_import_and_export(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    data = (
        "name,email,phone,plan\n"
        "Ann,ann@example.com,+33612345678,gold\n"
        "Bob,bob@example.com,not-a-number,silver\n"
        ",,,\n"
    )
    first = await api.post(
        "/api/v1/contacts/import", content=data, headers={"Content-Type": "text/csv"}
    )
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["created"] == 1 and result["updated"] == 0
    assert [e["line"] for e in result["errors"]] == [3, 4]
    assert result["errors"][0]["message"].startswith("phone:")
    # The same phone again updates the contact instead of doubling it.
    again = await api.post(
        "/api/v1/contacts/import",
        files={"file": ("c.csv", b"name,phone,city\nAnnie,+33 6 12 34 56 78,Lyon\n", "text/csv")},
    )
    assert again.json() == {"created": 0, "updated": 1, "errors": []}
    async with server.runtime.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Contact)) == 1
        ann = await s.scalar(select(Contact))
    assert ann is not None and ann.name == "Annie"
    assert ann.attributes == {"plan": "gold", "city": "Lyon"}

    exported = await api.get("/api/v1/contacts.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows == [
        {
            "id": str(ann.id),
            "name": "Annie",
            "email": "ann@example.com",
            "phone": "+33612345678",
            "notes": "",
            "city": "Lyon",
            "plan": "gold",
        }
    ]
    for body in (b"", b"just,some\n1,2\n", b"\xff\xfe\x00bad"):
        refused = await api.post(
            "/api/v1/contacts/import", content=body, headers={"Content-Type": "text/csv"}
        )
        assert refused.status_code == 422, body


async def test_start_conversation(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    api_id, vip = await customer(server, api)
    wa_id = await whatsapp_channel(api)
    made = await api.post("/api/v1/contacts", json={"name": "Cleo", "phone": "+4915112345679"})
    assert made.status_code == 201, made.text
    cleo = made.json()["id"]
    assert (await api.post("/api/v1/contacts", json={"notes": "nobody"})).status_code == 422

    reach = {r["kind"]: r for r in (await api.get(f"/api/v1/contacts/{cleo}/reach")).json()}
    assert reach["whatsapp"]["reachable"] is True
    assert reach["api"]["reachable"] is False and reach["api"]["reason"]

    # No address on the API channel: refused, nothing created.
    refused = await api.post(f"/api/v1/contacts/{cleo}/conversations", json={"channel_id": api_id})
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("channel_id:")

    started = await api.post(f"/api/v1/contacts/{cleo}/conversations", json={"channel_id": wa_id})
    assert started.status_code == 201, started.text
    conv = started.json()
    assert conv["created"] is True
    async with server.runtime.db.read() as s:
        address = await s.scalar(
            select(ContactIdentity.address).where(
                ContactIdentity.contact_id == cleo, ContactIdentity.channel_kind == "whatsapp"
            )
        )
    assert address == "4915112345679"
    # The window never opened: the reply policy asks for a template on WhatsApp.
    options = (await api.get(f"/api/v1/conversations/{conv['conversation_id']}/channels")).json()
    wa = next(o for o in options if o["kind"] == "whatsapp")
    assert wa["can_send_text"] is False and wa["needs_template"] is True
    # Starting again finds the same conversation.
    again = await api.post(f"/api/v1/contacts/{cleo}/conversations", json={"channel_id": wa_id})
    assert again.json() == {**conv, "created": False}

    # The customer who wrote on the API channel: their conversation is found.
    theirs = await api.post(f"/api/v1/contacts/{vip}/conversations", json={"channel_id": api_id})
    assert theirs.status_code == 201 and theirs.json()["created"] is False


async def test_access(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    api_id, vip = await customer(server, api)
    tokens = await make_outsiders(server, owner)
    for who in ("sales_agent", "other_owner"):
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {tokens[who]}"}
        ) as other:
            assert (await other.get("/api/v1/contacts/directory")).json()["total"] == 0
            assert (await other.get(f"/api/v1/contacts/{vip}/details")).status_code == 404
            assert (await other.get(f"/api/v1/contacts/{vip}/reach")).status_code == 404
            patched = await other.patch(f"/api/v1/contacts/{vip}", json={"name": "pwned"})
            assert patched.status_code == 404
            started = await other.post(
                f"/api/v1/contacts/{vip}/conversations", json={"channel_id": api_id}
            )
            assert started.status_code == 404
            exported = await other.get("/api/v1/contacts.csv")
            assert exported.text.strip() == "id,name,email,phone,notes"
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {tokens['sales_agent']}"}
    ) as agent:
        # Importing and adding contacts is for owners and admins.
        imported = await agent.post(
            "/api/v1/contacts/import", content=b"name\nX\n", headers={"Content-Type": "text/csv"}
        )
        assert imported.status_code == 403
        assert (await agent.post("/api/v1/contacts", json={"name": "X"})).status_code == 403
    assert (await api.get(f"/api/v1/contacts/{vip}/details")).json()["name"] != "pwned"
