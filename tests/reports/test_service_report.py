"""The CSAT and SLA report (`GET /api/v1/reports/service`) over real flows with the WhatsApp
simulator, on SQLite and PostgreSQL: two customers miss a 1-second first-response target, one is
answered late; both rate the conversation after it is resolved (4 and 2). The report counts
what the survey and breach tables hold, per day, per agent (by name) and through the filters;
the CSV is one line per day; agents without admin rights are refused."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.conftest import Owner, Server
from tests.service.helpers import (
    conversations,
    customer_writes,
    make_agent,
    sent_to,
    set_members,
    wait_for,
    whatsapp_channel,
)
from tidings.storage.types import utcnow


async def test_csat_and_sla_report(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    await whatsapp_channel(server, api)
    inbox = owner.inbox_id
    bo = await make_agent(server, owner, api, "Bo")
    await set_members(api, inbox, [owner.agent_id, bo.id])
    assert (await api.put(f"/api/v1/inboxes/{inbox}/csat", json={"enabled": True})).is_success
    sla = await api.put(f"/api/v1/inboxes/{inbox}/sla", json={"first_response_seconds": 1})
    assert sla.status_code == 200, sla.text
    await customer_writes(server, "16505558001", "Where is my parcel?")
    await customer_writes(server, "16505558002", "Hello?")

    async def both_breached() -> list[Any] | None:
        convs = await conversations(server)
        return convs if len(convs) == 2 and all(c.sla_state == "breached" for c in convs) else None

    first, second = await wait_for(both_breached)
    # The first is answered late and handed to Bo before it is resolved; the second is
    # resolved without a reply.
    reply = await api.post(f"/api/v1/conversations/{first.id}/messages", json={"text": "Sorry!"})
    assert reply.status_code == 201, reply.text
    for conv, fields in ((first, {"assignee_id": bo.id}), (first, {"status": "resolved"})):
        r = await api.patch(f"/api/v1/conversations/{conv.id}", json=fields)
        assert r.status_code == 200, r.text
    r = await api.patch(f"/api/v1/conversations/{second.id}", json={"status": "resolved"})
    assert r.status_code == 200, r.text
    for wa_id, rating in (("16505558001", "4"), ("16505558002", "2")):

        async def asked(wa_id: str = wa_id) -> bool:
            bodies = await sent_to(server, wa_id)
            return any(b.get("type") == "text" and "rate" in b["text"]["body"] for b in bodies)

        await wait_for(asked)
        await customer_writes(server, wa_id, rating)

    async def rated() -> dict[str, Any] | None:
        got = await api.get("/api/v1/reports/service")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body if body["csat"]["answered"] == 2 else None

    report = await wait_for(rated)
    assert report["csat"] == {
        "answered": 2,
        "average": 3.0,
        "satisfied_share": 0.5,
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 0},
        "asked": 2,
        "skipped": 0,
        "response_rate": 1.0,
    }
    assert report["sla"] == {
        "breaches": 2,
        "conversations": 2,
        "first_response": 2,
        "next_response": 0,
        "answered_late": 1,
        "unanswered": 1,
    }
    by_agent = {a["agent_id"]: a for a in report["agents"]}
    assert by_agent[bo.id]["name"] == "Bo"
    assert (by_agent[bo.id]["answered"], by_agent[bo.id]["average"]) == (1, 4.0)
    today = utcnow().date().isoformat()
    days = {d["day"]: d for d in report["series"]}
    assert len(days) == 30 and days[today]["answered"] == 2 and days[today]["sla_breaches"] == 2
    assert sum(d["sla_breaches"] for d in report["series"]) == 2

    # Filters: Bo's surveys only; the unassigned breaches; a range without any.
    mine = (await api.get("/api/v1/reports/service", params={"agent_id": bo.id})).json()
    assert (mine["csat"]["answered"], mine["csat"]["average"], mine["sla"]["breaches"]) == (
        1,
        4.0,
        0,
    )
    nobody = (await api.get("/api/v1/reports/service", params={"agent_id": 0})).json()
    assert nobody["sla"]["breaches"] == 2 and nobody["csat"]["answered"] == 1
    old = (
        await api.get("/api/v1/reports/service", params={"from": "2020-01-01", "to": "2020-01-31"})
    ).json()
    assert old["csat"]["answered"] == 0 and old["csat"]["average"] is None
    assert old["sla"]["breaches"] == 0

    # CSV: one line per day.
    resp = await api.get("/api/v1/reports/service", params={"format": "csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 30
    assert sum(int(r["csat_answered"]) for r in rows) == 2
    assert sum(int(r["sla_breaches"]) for r in rows) == 2
    line = next(r for r in rows if r["day"] == today)
    assert (line["csat_average"], line["csat_satisfied_share"]) == ("3.0", "0.5")

    # Admins only; bad ranges are a clear 422.
    assert (await bo.http.get("/api/v1/reports/service")).status_code == 403
    bad = await api.get(
        "/api/v1/reports/service", params={"from": "2026-02-01", "to": "2026-01-01"}
    )
    assert bad.status_code == 422
    await bo.http.aclose()
