"""Who a campaign goes to.

Sources (JSON `audience` on the campaign, plus uploaded CSV rows):
- `labels`: contacts with a conversation carrying any of these labels;
- `filters`: contact attributes that must all equal the given values (a segment);
- `all_contacts`: every contact of the workspace (narrowed by `labels`/`filters` if given);
- `contact_ids`: these contacts, added to whatever the above select;
- CSV uploads: one recipient per row, numbers normalised with `phonenumbers` (national forms
  read in the upload's region). A row whose number cannot be read, or that repeats a number
  already in the audience, is kept as a `skipped` recipient with its row number and reason —
  the report lists it; nothing is dropped silently.

Label/filter/contact sources are resolved once, at launch, into recipient rows (the snapshot):
contacts added later do not join a running campaign, and the report names exactly who was in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tidings import csvio
from tidings.actions import campaign_recipients as recipients
from tidings.actions import phone_contacts
from tidings.actions.base import Tx
from tidings.domain.campaigns import RecipientState, SkipReason
from tidings.domain.errors import InvalidInput
from tidings.domain.numbers import normalize
from tidings.storage.db import chunks
from tidings.storage.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Conversation,
    ConversationLabel,
    Label,
)
from tidings.storage.types import utcnow

PHONE_COLUMNS = ("phone", "phone_number", "number", "mobile", "msisdn", "to")
MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_CONTACT_IDS = 100_000
CHUNK = 1000


def validate(spec: Any) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise InvalidInput("audience: an object with labels, filters, contact_ids, all_contacts")
    unknown = set(spec) - {"labels", "filters", "contact_ids", "all_contacts"}
    if unknown:
        raise InvalidInput(f"audience: unknown field(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    labels = spec.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            raise InvalidInput("audience.labels: a list of label names")
        out["labels"] = labels
    filters = spec.get("filters")
    if filters is not None:
        ok = isinstance(filters, dict) and all(
            isinstance(k, str) and isinstance(v, str | int | float | bool)
            for k, v in filters.items()
        )
        if not ok:
            raise InvalidInput("audience.filters: an object of attribute → value")
        out["filters"] = filters
    ids = spec.get("contact_ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise InvalidInput("audience.contact_ids: a list of contact ids")
        if len(ids) > MAX_CONTACT_IDS:
            raise InvalidInput(f"audience.contact_ids: at most {MAX_CONTACT_IDS}; upload a CSV")
        out["contact_ids"] = ids
    if spec.get("all_contacts") is not None:
        if not isinstance(spec["all_contacts"], bool):
            raise InvalidInput("audience.all_contacts: true or false")
        out["all_contacts"] = spec["all_contacts"]
    return out


def _matches(attributes: dict[str, Any] | None, filters: dict[str, Any]) -> bool:
    attrs = attributes or {}
    return all(attrs.get(k) == v for k, v in filters.items())


async def snapshot(tx: Tx, campaign: Campaign) -> int:
    """Resolve the label/filter/contact sources into pending recipient rows. Returns how many
    rows were added (contacts already in the audience, e.g. from a CSV, are not added twice)."""
    s = tx.session
    spec = campaign.audience or {}
    now = utcnow()
    selected: list[int] = []
    segment = bool(spec.get("labels") or spec.get("filters") or spec.get("all_contacts"))
    if segment:
        q = select(Contact.id, Contact.attributes).where(
            Contact.workspace_id == campaign.workspace_id
        )
        if spec.get("labels"):
            q = q.where(
                Contact.id.in_(
                    select(Conversation.contact_id)
                    .join(ConversationLabel, ConversationLabel.conversation_id == Conversation.id)
                    .join(Label, Label.id == ConversationLabel.label_id)
                    .where(
                        Label.workspace_id == campaign.workspace_id,
                        Label.name.in_(spec["labels"]),
                    )
                )
            )
        last = 0
        filters = spec.get("filters") or {}
        while True:
            rows = (
                await s.execute(q.where(Contact.id > last).order_by(Contact.id).limit(CHUNK))
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            selected += [cid for cid, attrs in rows if _matches(attrs, filters)]
    for part in chunks(spec.get("contact_ids") or [], CHUNK):
        selected += (
            await s.scalars(
                select(Contact.id).where(
                    Contact.workspace_id == campaign.workspace_id, Contact.id.in_(list(part))
                )
            )
        ).all()
    added = 0
    for part in chunks(list(dict.fromkeys(selected)), CHUNK):
        added += await recipients.do_add_contacts(tx, campaign, list(part), now)
    return added


@dataclass
class CsvReport:
    rows: int = 0
    added: int = 0
    contacts_created: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "added": self.added,
            "contacts_created": self.contacts_created,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
        }


def parse_csv(raw: bytes) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """(phone column, [(row number, row)]): `csvio.read` with the delimiter sniffed; blank
    lines are not rows."""
    if len(raw) > MAX_CSV_BYTES:
        raise InvalidInput(f"csv: larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
    header, rows = csvio.read(raw, "csv", sniff=True)
    phone_col = next((h for h in PHONE_COLUMNS if h in header), None)
    if phone_col is None:
        raise InvalidInput(f"csv: no phone column; name one of {', '.join(PHONE_COLUMNS)}")
    return phone_col, [(n, row) for n, row in rows if any(row.values())]


async def import_csv(
    tx: Tx, campaign: Campaign, raw: bytes, region: str | None = None
) -> CsvReport:
    """Add one recipient per CSV row (see the module docstring). Other columns become the
    recipient's template variables; `name` also names contacts created here, and known
    contacts that have no name yet."""
    phone_col, rows = parse_csv(raw)
    s = tx.session
    report = CsvReport(rows=len(rows))
    now = utcnow()
    ws = campaign.workspace_id

    def skipped(n: int, value: str, reason: SkipReason, detail: str) -> dict[str, Any]:
        return {
            "workspace_id": ws,
            "campaign_id": campaign.id,
            "contact_id": None,
            "address": value[:300],
            "source_row": n,
            "variables": {},
            "state": RecipientState.SKIPPED,
            "reason": reason,
            "detail": detail,
            "created_at": now,
            "updated_at": now,
        }

    seen: set[str] = set()
    for part in chunks(rows, CHUNK):
        parsed: list[tuple[int, dict[str, str], str]] = []
        new_rows: list[dict[str, Any]] = []
        for n, row in part:
            value = row.get(phone_col, "")
            e164 = normalize(value, region) if value else None
            if e164 is None:
                detail = "empty phone" if not value else f"{value!r} is not a valid phone number"
                report.invalid.append({"row": n, "value": value, "error": detail})
                new_rows.append(skipped(n, value, SkipReason.INVALID_NUMBER, detail))
            elif e164 in seen:
                report.duplicates.append({"row": n, "phone": e164})
                new_rows.append(
                    skipped(n, e164, SkipReason.DUPLICATE, f"{e164} appears earlier in the file")
                )
            else:
                seen.add(e164)
                parsed.append((n, row, e164))
        # The contacts of the file's numbers, found or created (`actions.phone_contacts`).
        known, created = await phone_contacts.do_contacts_by_phone(
            tx, ws, {p: row.get("name") or None for _n, row, p in parsed}
        )
        report.contacts_created += created
        already = set(
            (
                await s.scalars(
                    select(CampaignRecipient.contact_id).where(
                        CampaignRecipient.campaign_id == campaign.id,
                        CampaignRecipient.contact_id.in_(list(known.values())),
                    )
                )
            ).all()
        )
        for n, row, p in parsed:
            cid = known[p]
            if cid in already:
                report.duplicates.append({"row": n, "phone": p})
                new_rows.append(
                    skipped(n, p, SkipReason.DUPLICATE, f"{p} is already in this audience")
                )
                continue
            already.add(cid)
            variables = {k: v for k, v in row.items() if k and k != phone_col and v}
            new_rows.append(
                {
                    "workspace_id": ws,
                    "campaign_id": campaign.id,
                    "contact_id": cid,
                    "address": p,
                    "source_row": n,
                    "variables": variables,
                    "state": RecipientState.PENDING,
                    "reason": None,
                    "detail": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            report.added += 1
        if new_rows:
            await recipients.do_add_rows(tx, new_rows)
    return report
