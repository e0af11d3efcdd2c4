"""One CSV module (`tidings/csvio.py`): one formula-injection rule on every export, one reader
for every upload, and instants in exports and campaign answers written as `serialize.ts`
writes them."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from tests.conftest import Owner, Server
from tidings import csvio
from tidings.campaigns import report as reporting
from tidings.domain.errors import InvalidInput
from tidings.storage.models import Campaign, CampaignRecipient, Contact

SRC = Path(__file__).resolve().parents[1] / "src" / "tidings"
# Text a spreadsheet would run: every start OWASP names (=, +, -, @, tab, carriage return).
HOSTILE = ["=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1"]
WHOLE_SECOND = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_gets_a_leading_quote(text: str) -> None:
    assert csvio.cell(text) == "'" + text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("+4915123456789", "+4915123456789"),  # an E.164 number
        (-3, "-3"),  # numbers we computed are numbers
        (-0.25, "-0.25"),
        (Decimal("-1.50"), "-1.50"),
        (None, ""),
        ("Ana", "Ana"),
        ("-5", "'-5"),  # a customer's text that looks like a number is still text
    ],
)
def test_numbers_and_phone_numbers_stay_as_they_are(value: object, shown: str) -> None:
    assert csvio.cell(value) == shown


def test_the_reader_cleans_names_and_cells_and_refuses_bad_files() -> None:
    sample = b"\xef\xbb\xbf Phone ;Name\n+4915123456789; Ana \n+4915123456780;Bo\n"
    header, rows = csvio.read(sample, "f", sniff=True)
    assert header == ["phone", "name"]
    assert rows[0] == (2, {"phone": "+4915123456789", "name": "Ana"})
    # A short row leaves its missing cells out; cells past the header are dropped.
    assert csvio.read(b"phone,name\n1\n2,Bo,extra\n", "f")[1] == [
        (2, {"phone": "1"}),
        (3, {"phone": "2", "name": "Bo"}),
    ]
    with pytest.raises(InvalidInput, match=r"^f: not UTF-8"):
        csvio.read(b"\xff\xfe\x00bad", "f")
    big = b"name\n" + b"x" * (csv.field_size_limit() + 1) + b"\n"
    with pytest.raises(InvalidInput, match=r"^f: line \d+: field larger"):
        csvio.read(big, "f")


def test_no_csv_is_written_or_read_outside_csvio() -> None:
    found = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.name != "csvio.py"
        and "simulators" not in path.parts
        and re.search(r"^import csv$|text/csv;", path.read_text("utf-8"), re.MULTILINE)
    ]
    assert found == []


async def test_every_exporter_applies_the_one_rule(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    phones = [f"+49151234567{i:02d}" for i in range(len(HOSTILE))]
    async with server.runtime.db.write() as s:
        for phone, name in zip(phones, HOSTILE, strict=True):
            s.add(
                Contact(
                    workspace_id=owner.workspace_id,
                    name=name,
                    phone_e164=phone,
                    attributes={"note": name},
                )
            )
    c = (
        await api.post("/api/v1/campaigns", json={"name": "Hostile", "content": {"text": "Hi"}})
    ).json()
    upload = await api.post(
        f"/api/v1/campaigns/{c['id']}/audience/csv",
        content=("phone\n" + "\n".join(phones) + "\n").encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 200 and upload.json()["added"] == len(HOSTILE), upload.text
    async with server.runtime.db.write() as s:
        await s.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == c["id"])
            .values(queued_at=WHOLE_SECOND)
        )
        await s.execute(
            update(Campaign).where(Campaign.id == c["id"]).values(created_at=WHOLE_SECOND)
        )
    quoted = sorted("'" + text for text in HOSTILE)

    contacts = await api.get("/api/v1/contacts.csv")
    assert contacts.headers["content-type"] == csvio.MEDIA_TYPE
    rows = list(csv.DictReader(io.StringIO(contacts.text, newline="")))
    assert sorted(r["name"] for r in rows) == quoted
    assert sorted(r["note"] for r in rows) == quoted
    assert sorted(r["phone"] for r in rows) == phones

    recipients = await api.get(f"/api/v1/campaigns/{c['id']}/recipients.csv")
    assert recipients.headers["content-disposition"] == (
        f'attachment; filename="campaign-{c["id"]}-recipients.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(recipients.text, newline="")))
    assert list(rows[0]) == list(reporting.CSV_COLUMNS)
    assert sorted(r["name"] for r in rows) == quoted
    assert {r["queued_at"] for r in rows} == {"2026-03-01T09:30:00.000000+00:00"}
    # `tidings campaign export` writes the same text.
    async with server.runtime.db.read() as s:
        exported = "".join([chunk async for chunk in reporting.export_csv(s, c["id"])])
    assert exported == recipients.text

    # The campaign's instants and its recipients' in JSON: `serialize.ts`, whole seconds too.
    got = (await api.get(f"/api/v1/campaigns/{c['id']}")).json()
    assert got["created_at"] == "2026-03-01T09:30:00.000000+00:00"
    page = (await api.get(f"/api/v1/campaigns/{c['id']}/recipients")).json()["data"]
    assert {r["queued_at"] for r in page} == {"2026-03-01T09:30:00.000000+00:00"}


async def test_a_malformed_contacts_import_is_refused_by_line(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    body = b"name,phone\n" + b'"' + b"x" * (csv.field_size_limit() + 1) + b'",1\n'
    r = await api.post(
        "/api/v1/contacts/import", content=body, headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("file: line ")
