"""Campaigns end to end over the API channel: snapshot, fan-out, statuses, report, export,
opt-outs, CSV audiences, preview, pause/resume/cancel and the bad-input answers."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy import func, select

from tests.campaigns.conftest import api_channel, api_customers, wait_counts, wait_state
from tests.conftest import Owner, Server, eventually, sandbox_headers
from tidings.domain.enums import ConsentPurpose, ConsentStatus
from tidings.storage.models import Consent, Message


async def test_campaign_reaches_everyone_once_and_reports(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 12)
    opted_out = contacts[0]
    async with server.runtime.db.write() as s:
        s.add(
            Consent(
                workspace_id=owner.workspace_id,
                contact_id=opted_out,
                channel_kind="api",
                purpose=ConsentPurpose.MARKETING,
                status=ConsentStatus.OPTED_OUT,
                source="test",
            )
        )
    resp = await api.post(
        "/api/v1/campaigns",
        json={
            "name": "Spring sale",
            "content": {"text": "Hi {{first_name}}, 20% off this week"},
            "audience": {"contact_ids": contacts},
            "channel_ids": [channel["id"]],
        },
    )
    assert resp.status_code == 201, resp.text
    campaign = resp.json()
    assert campaign["state"] == "draft"
    assert campaign["counts"]["total"] == 0  # nothing is snapshotted before launch

    launched = (await api.post(f"/api/v1/campaigns/{campaign['id']}/launch")).json()
    assert launched["state"] == "running"
    assert launched["counts"]["total"] == 12
    again = await api.post(f"/api/v1/campaigns/{campaign['id']}/launch")
    assert again.status_code == 409

    await wait_state(api, campaign["id"], "completed")
    counts = await wait_counts(api, campaign["id"], read=11, skipped=1)
    assert counts["total"] == 12 and counts["pending"] == 0

    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        received = (await sim.get("/_sim/received", params={"account": "acme"})).json()
    by_to: dict[str, list[str]] = {}
    for m in received:
        by_to.setdefault(m["to"], []).append(m["text"])
    assert len(by_to) == 11 and all(len(v) == 1 for v in by_to.values())
    assert by_to["cust-3"] == ["Hi Cust, 20% off this week"]
    assert "cust-0" not in by_to  # opted out of marketing

    report = (await api.get(f"/api/v1/campaigns/{campaign['id']}/report")).json()
    assert report["counts"]["read"] == 11
    assert report["delivery_rate"] == 1.0 and report["read_rate"] == 1.0
    assert report["failures"] == [{"state": "skipped", "reason": "opted_out", "count": 1}]
    assert report["per_channel"][str(channel["id"])]["read"] == 11
    # One read for the counts and the table: the opted-out recipient (no channel) is a row
    # too, so the table sums to the counts (it left the skipped one out).
    assert report["per_channel"]["none"]["skipped"] == 1
    for state, n in report["counts"].items():
        assert sum(ch.get(state, 0) for ch in report["per_channel"].values()) == n, state

    export = await api.get(f"/api/v1/campaigns/{campaign['id']}/recipients.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 12
    assert sorted(r["state"] for r in rows) == ["read"] * 11 + ["skipped"]
    skipped = next(r for r in rows if r["state"] == "skipped")
    assert skipped["contact_id"] == str(opted_out) and skipped["reason"] == "opted_out"

    # Replies land as normal conversations, tagged with the campaign, and are counted.
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        await sim.post(
            "/_sim/inbound", json={"account": "acme", "from": "cust-5", "text": "Tell me more"}
        )

    async def replies() -> int:
        return int((await api.get(f"/api/v1/campaigns/{campaign['id']}/report")).json()["replies"])

    assert await eventually(replies) == 1
    tagged = (
        await api.get("/api/v1/conversations", params={"label": "campaign:Spring sale"})
    ).json()["data"]
    assert len(tagged) == 11

    async with server.runtime.db.read() as s:
        outbound = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "out")
        )
    assert outbound == 11


async def test_csv_audience_reports_bad_and_duplicate_rows(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    c = (
        await api.post(
            "/api/v1/campaigns", json={"name": "CSV", "content": {"text": "Hello {{city}}"}}
        )
    ).json()
    body = (
        "phone,name,city\n"
        "+49 151 23456789,Ana,Berlin\n"
        "0151 23456780,Ben,Hamburg\n"
        "not a number,Cy,Köln\n"
        "+4915123456789,Ana again,Berlin\n"
        ",Nobody,\n"
    )
    r = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        params={"region": "DE"},
        content=body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["rows"] == 5 and rep["added"] == 2 and rep["contacts_created"] == 2
    assert [(x["row"], x["value"]) for x in rep["invalid"]] == [(4, "not a number"), (6, "")]
    assert rep["duplicates"] == [{"row": 5, "phone": "+4915123456789"}]

    # The same file again: every good row is now a duplicate, nothing is added twice.
    again = (
        await api.post(
            f"/api/v1/campaigns/{c['id']}/audience/csv",
            params={"region": "DE"},
            content=body.encode(),
            headers={"Content-Type": "text/csv"},
        )
    ).json()
    assert again["added"] == 0 and len(again["duplicates"]) == 3

    recipients = (
        await api.get(f"/api/v1/campaigns/{c['id']}/recipients", params={"limit": 50})
    ).json()["data"]
    assert len(recipients) == 10  # every row of both uploads is accounted for
    assert sum(r["state"] == "pending" for r in recipients) == 2
    reasons = sorted(r["reason"] for r in recipients if r["state"] == "skipped")
    assert reasons == ["duplicate_in_audience"] * 4 + ["invalid_number"] * 4

    no_phone = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=b"name,city\nAna,Berlin\n",
        headers={"Content-Type": "text/csv"},
    )
    assert no_phone.status_code == 422
    assert "phone column" in no_phone.json()["error"]["message"]
    bad_region = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        params={"region": "XX"},
        content=body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert bad_region.status_code == 422


async def test_preview_pause_resume_cancel_and_bad_input(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 6)
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Slow",
                "content": {"text": "Hello {{name}}"},
                "audience": {"contact_ids": contacts},
                "channel_ids": [channel["id"]],
                "rate_per_second": 2,
            },
        )
    ).json()
    preview = (await api.post(f"/api/v1/campaigns/{c['id']}/preview")).json()
    assert preview["totals"]["recipients"] == 6
    assert preview["totals"]["by_channel"][str(channel["id"])]["recipients"] == 6
    assert preview["sample"][0]["content"].startswith("Hello Cust ")
    assert preview["sample"][0]["to"].startswith("cust-")
    # Each sampled recipient is named; reach counts who has an address on each channel.
    assert all(e["name"].startswith("Cust ") for e in preview["sample"]), preview["sample"]
    reach = preview["totals"]["reach"]
    assert reach == {str(channel["id"]): {"name": channel["name"], "kind": "api", "recipients": 6}}
    # Before the message is written the plan sends nothing, yet the reach is known (the editor
    # shows it on its audience step).
    made = await api.post(
        "/api/v1/campaigns",
        json={
            "name": "No text yet",
            "audience": {"contact_ids": contacts[:4]},
            "channel_ids": [channel["id"]],
        },
    )
    assert made.status_code == 201, made.text
    bare = made.json()
    empty = (await api.post(f"/api/v1/campaigns/{bare['id']}/preview", params={"sample": 0})).json()
    assert empty["totals"]["by_channel"] == {} and empty["sample"] == []
    assert empty["totals"]["skipped"] == {}, empty  # nothing planned without a message
    assert empty["totals"]["reach"][str(channel["id"])]["recipients"] == 4
    refused = await api.post(f"/api/v1/campaigns/{bare['id']}/launch")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_content"
    assert (await api.get(f"/api/v1/campaigns/{bare['id']}")).json()["state"] == "draft"
    # Preview writes nothing.
    assert (await api.get(f"/api/v1/campaigns/{c['id']}")).json()["counts"]["total"] == 0

    await api.post(f"/api/v1/campaigns/{c['id']}/launch")
    paused = (await api.post(f"/api/v1/campaigns/{c['id']}/pause")).json()
    assert paused["state"] == "paused"
    frozen = paused["counts"]["pending"]
    assert (await api.post(f"/api/v1/campaigns/{c['id']}/pause")).status_code == 200
    # Nothing more is queued while paused: the count read twice stays where it was.
    again = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()["counts"]
    assert again["pending"] <= frozen
    resumed = (await api.post(f"/api/v1/campaigns/{c['id']}/resume")).json()
    assert resumed["state"] == "running"
    cancelled = (await api.post(f"/api/v1/campaigns/{c['id']}/cancel")).json()
    assert cancelled["state"] == "cancelled"
    counts = cancelled["counts"]
    assert counts["pending"] == 0 and counts["total"] == 6
    report = (await api.get(f"/api/v1/campaigns/{c['id']}/report")).json()
    skipped = {f["reason"]: f["count"] for f in report["failures"] if f["state"] == "skipped"}
    assert skipped.get("campaign_cancelled", 0) == counts["skipped"]
    assert (await api.post(f"/api/v1/campaigns/{c['id']}/resume")).status_code == 409
    assert (await api.patch(f"/api/v1/campaigns/{c['id']}", json={"name": "x"})).status_code == 409

    bad = [
        {"name": "", "content": {"text": "x"}},
        # (no content at all is a draft saved before its message: its launch is refused, above)
        {"name": "b", "content": {"text": ""}},
        {"name": "c", "content": {"text": "x"}, "rate_per_second": -1},
        {"name": "d", "content": {"text": "x"}, "quiet_hours": {"start": "25:00", "end": "8"}},
        {"name": "e", "content": {"text": "x"}, "channel_ids": [999]},
        {"name": "f", "content": {"text": "x"}, "fallback": {"to_channel_id": 999}},
        {"name": "g", "content": {"text": "x"}, "audience": {"labels": "vip"}},
        {"name": "h", "content": {"text": "x"}, "unknown": 1},
    ]
    for body in bad:
        r = await api.post("/api/v1/campaigns", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"], body
    dup = await api.post("/api/v1/campaigns", json={"name": "Slow", "content": {"text": "x"}})
    assert dup.status_code == 409
    empty = (
        await api.post("/api/v1/campaigns", json={"name": "Empty", "content": {"text": "x"}})
    ).json()
    r = await api.post(f"/api/v1/campaigns/{empty['id']}/launch")
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_audience"
    assert (await api.get("/api/v1/campaigns/999999")).status_code == 404
    assert (await api.post(f"/api/v1/campaigns/{c['id']}/explode")).status_code == 404
    listed = (await api.get("/api/v1/campaigns")).json()
    assert [x["name"] for x in listed] == ["Empty", "No text yet", "Slow"]


async def test_labels_and_filters_select_the_segment(
    server: Server, owner: Owner, api: httpx.AsyncClient, campaign_workers: None
) -> None:
    channel = await api_channel(api, server)
    contacts = await api_customers(api, server, 5)
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    by_contact = {c["contact_id"]: c["id"] for c in convs}
    for cid in contacts[:3]:
        r = await api.patch(f"/api/v1/conversations/{by_contact[cid]}", json={"labels": ["vip"]})
        assert r.status_code == 200, r.text
    from tidings.storage.models import Contact

    async with server.runtime.db.write() as s:
        for cid in contacts[:2]:
            contact = await s.get_one(Contact, cid)
            contact.attributes = {"city": "Berlin"}
    c = (
        await api.post(
            "/api/v1/campaigns",
            json={
                "name": "VIP Berlin",
                "content": {"text": "Hi {{city}}"},
                "audience": {"labels": ["vip"], "filters": {"city": "Berlin"}},
                "channel_ids": [channel["id"]],
            },
        )
    ).json()
    launched = (await api.post(f"/api/v1/campaigns/{c['id']}/launch")).json()
    assert launched["counts"]["total"] == 2
    await wait_counts(api, c["id"], read=2)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as sim:
        received = (await sim.get("/_sim/received", params={"account": "acme"})).json()
    assert sorted(m["text"] for m in received) == ["Hi Berlin", "Hi Berlin"]
