"""The workspace's default region for phone numbers: set through the admin API, used when a
channel gives a national number, so "0612345678" over SMPP and "+33612345678" over Twilio are
one contact; TIDINGS_DEFAULT_REGION stays the fallback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.factories import simulator, smpp_channel
from tidings.storage.models import Contact, ContactIdentity


def smpp_config(server: Server) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.app.state.sandbox.smpp.port,
        "system_id": "region1",
        "password": "region1",
        "source_addr": "33700000001",
        "reconnect_min_seconds": 0.1,
        "reconnect_max_seconds": 0.4,
    }


async def count(server: Server, model: Any) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def national_sms(server: Server, text: str) -> None:
    async with simulator(server, "smpp") as sim:
        resp = await sim.post(
            "/_sim/inbound", json={"system_id": "region1", "from": "0612345678", "text": text}
        )
    assert resp.status_code == 200, resp.text


async def contacts(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await api.get("/api/v1/contacts")).json()["data"])


async def test_national_number_read_in_the_workspace_region_meets_its_e164_form(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_DEFAULT_REGION", raising=False)
    resp = await api.patch("/api/v1/admin/workspace", json={"default_region": "fr"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["default_region"] == "FR"

    await smpp_channel(api, smpp_config(server))
    await national_sms(server, "Bonjour")
    [contact] = await eventually(lambda: contacts(api), timeout=20)
    assert contact["phone"] == "+33612345678"

    # The same person over Twilio, in international form: the same contact.
    twilio = await api.post(
        "/api/v1/channels",
        json={
            "kind": "twilio",
            "name": "Twilio",
            "config": {
                "account_sid": "AC" + "ab" * 16,
                "auth_token": "region-auth-token",
                "from_number": "+33700000002",
                "api_base_url": f"{server.url}/sandbox/twilio",
            },
        },
    )
    assert twilio.status_code == 201, twilio.text
    async with simulator(server, "twilio") as sim:
        sent = await sim.post(
            "/_sim/inbound", json={"from": "+33612345678", "to": "+33700000002", "text": "Re"}
        )
    assert sent.status_code == 200, sent.text

    async def two_identities() -> bool:
        return await count(server, ContactIdentity) == 2

    await eventually(two_identities, timeout=20)
    assert await count(server, Contact) == 1
    [contact] = await contacts(api)
    assert sorted((i["channel_kind"], i["address"]) for i in contact["identities"]) == [
        ("smpp", "0612345678"),
        ("twilio", "+33612345678"),
    ]


async def test_without_a_region_a_national_number_is_kept_as_given_and_flagged(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_DEFAULT_REGION", raising=False)
    await smpp_channel(api, smpp_config(server))
    await national_sms(server, "Salut")
    [contact] = await eventually(lambda: contacts(api), timeout=20)
    assert contact["phone"] is None
    async with server.runtime.db.read() as s:
        row = await s.get_one(Contact, contact["id"])
    assert row.attributes["phone_unparsed"] == "0612345678"


async def test_workspace_region_api_validates_and_falls_back_to_the_environment(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_DEFAULT_REGION", "GB")
    got = (await api.get("/api/v1/admin/workspace")).json()
    assert (got["default_region"], got["fallback_region"]) == (None, "GB")

    bad = await api.patch("/api/v1/admin/workspace", json={"default_region": "XX"})
    assert bad.status_code == 422, bad.text
    assert "default_region" in bad.json()["error"]["message"]
    assert (await api.get("/api/v1/admin/workspace")).json()["default_region"] is None

    # The SMS preview reads a national destination in the fallback region...
    preview = await api.post("/api/v1/sms/preview", json={"text": "hi", "to": "07911 123456"})
    assert preview.status_code == 200, preview.text
    assert preview.json()["to"] == "+447911123456"
    # ...and in the workspace's own once set; null goes back to the fallback.
    assert (await api.patch("/api/v1/admin/workspace", json={"default_region": "FR"})).is_success
    preview = await api.post("/api/v1/sms/preview", json={"text": "hi", "to": "06 12 34 56 78"})
    assert preview.json()["to"] == "+33612345678"
    cleared = await api.patch("/api/v1/admin/workspace", json={"default_region": None})
    assert cleared.json()["default_region"] is None


async def test_campaign_csv_reads_national_numbers_in_the_workspace_region(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDINGS_DEFAULT_REGION", raising=False)
    c = (
        await api.post("/api/v1/campaigns", json={"name": "FR", "content": {"text": "Bonjour"}})
    ).json()
    body = b"phone,name\n06 12 34 56 78,Zoe\n"

    async def upload() -> dict[str, Any]:
        r = await api.post(
            f"/api/v1/campaigns/{c['id']}/audience/csv",
            content=body,
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()
        return report

    # No region anywhere: the national number cannot be read.
    first = await upload()
    assert (first["added"], [x["value"] for x in first["invalid"]]) == (0, ["06 12 34 56 78"])
    # With the workspace region set it can, and it is the contact's E.164 number.
    assert (await api.patch("/api/v1/admin/workspace", json={"default_region": "FR"})).is_success
    second = await upload()
    assert (second["added"], second["invalid"]) == (1, [])
    [contact] = await contacts(api)
    assert contact["phone"] == "+33612345678"
