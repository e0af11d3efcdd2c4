"""The customer lane's set path (`ingest/messages.py`) gives exactly what the per-event path
(`ingest/rows.py`) gives, on the same mixed batch, on a real database — and one bad event in a
batch fails alone."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event, insert, select

from tests.conftest import PG_URL, _asyncpg_dsn, _pg_parts
from tidings.access import Principal
from tidings.actions.admin import bootstrap, create_channel
from tidings.actions.base import Tx, transaction
from tidings.channels.whatsapp import webhook as whatsapp_webhook
from tidings.config import load_settings
from tidings.domain.enums import InboundLane, InboundState, Role
from tidings.ingest.messages import apply_customer_rows
from tidings.ingest.rows import process_rows
from tidings.runtime import Runtime
from tidings.storage.models import (
    Attachment,
    Channel,
    Consent,
    Contact,
    ContactIdentity,
    Conversation,
    ConversationChannel,
    InboundEvent,
    Message,
)

Apply = Callable[[Tx, Sequence[InboundEvent], Callable[[], bool]], Awaitable[int]]
BASE = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PNID = "106540352242922"
SMS_CUSTOMER = "+14155550123"


@asynccontextmanager
async def fresh_database(db_template: str, tmp_path: Path) -> AsyncIterator[str]:
    """Another migrated database, as the `database_url` fixture makes one."""
    if PG_URL:
        base, _ = _pg_parts(PG_URL)
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{db_template}"')
        finally:
            await conn.close()
        try:
            yield f"{base}/{name}"
        finally:
            conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
    else:
        path = tmp_path / f"{uuid.uuid4().hex[:8]}.db"
        shutil.copy(db_template, path)
        yield f"sqlite+aiosqlite:///{path}"


def wa(message: dict[str, Any], wa_id: str, name: str) -> bytes:
    """One WhatsApp Cloud API message webhook (as tests/fixtures/whatsapp/*.json), split."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, **message}],
    }
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1022", "changes": [{"field": "messages", "value": value}]}],
        }
    )
    (piece,) = whatsapp_webhook.split(body)  # stored as the webhook endpoint stores it
    return piece.payload


def text(mid: str, body: str, at: int, **more: Any) -> dict[str, Any]:
    ts = str(int(BASE.timestamp()) + at)
    return {"id": mid, "timestamp": ts, "type": "text", "text": {"body": body}, **more}


def sms(sid: str, body: str, at: int) -> bytes:
    return orjson.dumps(
        {
            "type": "message",
            "received_at": (BASE + timedelta(seconds=at)).isoformat(),
            "params": [
                ["MessageSid", sid],
                ["From", SMS_CUSTOMER],
                ["To", "+14155550100"],
                ["Body", body],
                ["NumMedia", "0"],
            ],
        }
    )


KNOWN = ("33612345678", "Known Customer")
NEW = ("4915112345678", "New Customer")
OTHER = ("447700900123", "Other Customer")

FIRST_ROUND: list[tuple[str, bytes]] = [
    ("wa", wa(text("wamid.k1", "hello, order 17?", 0), *KNOWN)),
]
SECOND_ROUND: list[tuple[str, bytes]] = [
    ("wa", wa(text("wamid.n1", "hi, I am new", 10), *NEW)),
    ("wa", wa(text("wamid.k2", "any news?", 11), *KNOWN)),
    (
        "wa",
        wa(
            {
                "id": "wamid.n2",
                "timestamp": str(int(BASE.timestamp()) + 12),
                "type": "image",
                "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "the box"},
            },
            *NEW,
        ),
    ),
    ("wa", wa(text("wamid.n1", "hi, I am new", 10), *NEW)),  # duplicate within the batch
    ("wa", wa(text("wamid.k1", "hello, order 17?", 0), *KNOWN)),  # stored in an earlier batch
    ("wa", wa(text("wamid.n3", "see above", 13, context={"id": "wamid.n1"}), *NEW)),
    (
        "wa",
        wa(
            {
                "id": "wamid.k3",
                "timestamp": str(int(BASE.timestamp()) + 14),
                "type": "reaction",
                "reaction": {"message_id": "wamid.k1", "emoji": "👍"},
            },
            *KNOWN,
        ),
    ),
    (
        "wa",
        wa(
            {
                "id": "wamid.o1",
                "timestamp": str(int(BASE.timestamp()) + 15),
                "type": "hologram",
                "hologram": {"x": 1},
            },
            *OTHER,
        ),
    ),
    ("sms", sms("SM0001", "hello there", 16)),
    ("sms", sms("SM0002", "STOP", 17)),
    ("wa", wa(text("wamid.n4", "and another thing", 18), *NEW)),
]
# Refused by the database on both stores (an integer far beyond any column's range).
BAD = (
    "wa",
    wa(
        {
            "id": "wamid.bad",
            "timestamp": str(int(BASE.timestamp()) + 19),
            "type": "document",
            "document": {"id": "media-2", "mime_type": "application/pdf", "file_size": "9" * 30},
        },
        *OTHER,
    ),
)


async def run_scenario(
    url: str, data_dir: Path, apply: Apply, batch: list[tuple[str, bytes]]
) -> Any:
    settings = load_settings(database_url=url, data_dir=data_dir, sandbox=False, redis_url=None)
    rt = Runtime(settings)
    await rt.start()
    try:
        boot = await bootstrap(rt, "owner@x.test", "pw-pw-pw-pw")
        who = Principal(boot["workspace_id"], boot["agent_id"], Role.OWNER, frozenset())
        wa_channel = await create_channel(
            rt,
            who,
            "whatsapp",
            "WA",
            {
                "phone_number_id": PNID,
                "access_token": "x",
                "app_secret": "s",
                "verify_token": "v",
                "api_base_url": "http://127.0.0.1:9",
            },
            None,
        )
        sms_channel = await create_channel(
            rt,
            who,
            "twilio",
            "SMS",
            {
                "account_sid": "AC" + "0" * 32,
                "auth_token": "t" * 32,
                "from_number": "+14155550100",
                "api_base_url": "http://127.0.0.1:9",
            },
            None,
        )
        channels = {"wa": wa_channel.id, "sms": sms_channel.id}
        events: list[tuple[str, Any]] = []
        for round_no, rows in enumerate((FIRST_ROUND, batch)):
            async with transaction(rt) as tx:
                await tx.session.execute(
                    insert(InboundEvent),
                    [
                        {
                            "workspace_id": who.workspace_id,
                            "channel_id": channels[kind],
                            "event_key": f"r{round_no}:{n}",
                            "payload": body,
                            "occurred_at": BASE + timedelta(seconds=n),
                            "received_at": BASE,
                            "state": InboundState.PENDING,
                            "attempts": 0,
                            "next_attempt_at": BASE,
                            "lane": InboundLane.CUSTOMER,
                        }
                        for n, (kind, body) in enumerate(rows)
                    ],
                )
            async with transaction(rt) as tx:
                claimed = (
                    await tx.session.scalars(
                        select(InboundEvent)
                        .where(InboundEvent.state == InboundState.PENDING)
                        .order_by(InboundEvent.occurred_at, InboundEvent.id)
                    )
                ).all()
                assert await apply(tx, claimed, lambda: False) == len(claimed)
            events.extend((e.type, _event_key(e.data)) for e in tx.events)
        return await snapshot(rt), events
    finally:
        await rt.stop()


def _event_key(data: dict[str, Any]) -> Any:
    if "provider_message_id" in data:
        return ("message", data["provider_message_id"], data["reply_to_id"] is not None)
    if "unread_count" in data:
        return ("conversation", data["unread_count"], data["last_message_preview"])
    return sorted(data)


async def snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything the batch wrote, with our ids replaced by what they stand for."""
    async with rt.db.read() as s:
        kinds = {c.id: c.kind for c in await s.scalars(select(Channel))}
        identities = (await s.scalars(select(ContactIdentity))).all()
        who = {
            i.contact_id: tuple(
                sorted(
                    f"{j.channel_kind}:{j.address}"
                    for j in identities
                    if j.contact_id == i.contact_id
                )
            )
            for i in identities
        }
        contacts = sorted(
            (who[c.id], c.name, c.phone_e164, c.claimed_phone, sorted((c.attributes or {}).items()))
            for c in await s.scalars(select(Contact))
        )
        convs = (await s.scalars(select(Conversation))).all()
        conv_key = {c.id: (who[c.contact_id], c.inbox_id) for c in convs}
        messages = (await s.scalars(select(Message).order_by(Message.id))).all()
        pmid = {m.id: m.provider_message_id for m in messages}
        return {
            "contacts": contacts,
            "identities": sorted(
                (
                    who[i.contact_id],
                    i.channel_kind,
                    i.address,
                    i.alias,
                    i.display_name,
                    i.profile_due_at is not None,
                )
                for i in identities
            ),
            "conversations": sorted(
                (
                    conv_key[c.id],
                    c.status,
                    c.unread_count,
                    c.last_message_preview,
                    c.last_inbound_at,
                    kinds.get(c.last_channel_id or 0),
                    c.sla_state,
                    c.sla_target,
                )
                for c in convs
            ),
            "messages": [
                (
                    conv_key[m.conversation_id],
                    kinds.get(m.channel_id or 0),
                    m.direction,
                    m.kind,
                    m.body,
                    m.provider_message_id,
                    m.status,
                    m.sent_at if m.provider_message_id else None,  # ours: stamped now
                    pmid.get(m.reply_to_id or 0),
                    sorted(m.extra.items()),
                )
                for m in messages
            ],
            "attachments": sorted(
                (pmid[a.message_id], a.kind, a.mime_type, a.caption, a.provider_media_id, a.state)
                for a in await s.scalars(select(Attachment))
            ),
            "windows": sorted(
                (conv_key[w.conversation_id], kinds[w.channel_id], w.last_inbound_at)
                for w in await s.scalars(select(ConversationChannel))
            ),
            "consent": sorted(
                (who[c.contact_id], c.channel_kind, c.purpose, c.status, c.source)
                for c in await s.scalars(select(Consent))
            ),
            "inbound": sorted(
                (e.event_key, e.state, e.attempts, (e.error or "")[:40])
                for e in await s.scalars(select(InboundEvent))
            ),
            "channels": sorted(
                (kinds[c.id], c.last_inbound_at) for c in await s.scalars(select(Channel))
            ),
        }


async def test_set_path_equals_per_event_path(db_template: str, tmp_path: Path) -> None:
    async with (
        fresh_database(db_template, tmp_path) as a,
        fresh_database(db_template, tmp_path) as b,
    ):
        by_set, set_events = await run_scenario(a, tmp_path, apply_customer_rows, SECOND_ROUND)
        by_event, per_events = await run_scenario(b, tmp_path, process_rows, SECOND_ROUND)
    for name in by_event:
        assert by_set[name] == by_event[name], name
    assert set_events == per_events
    # And the outcomes are the ones the rules ask for, not just equal.
    contacts = by_set["contacts"]
    assert len(contacts) == 4  # known, new (one contact for its four messages), other, SMS
    new_convs = [c for c in by_set["conversations"] if c[0][0] == ("whatsapp:" + NEW[0],)]
    assert len(new_convs) == 1 and new_convs[0][2] == 4  # n1, n2, n3, n4: one conversation
    stored = [m[5] for m in by_set["messages"]]
    assert stored.count("wamid.n1") == 1 and stored.count("wamid.k1") == 1
    replies = {m[5]: m[8] for m in by_set["messages"]}
    assert replies["wamid.n3"] == "wamid.n1"  # a reply to a message earlier in the same batch
    assert replies["wamid.k3"] == "wamid.k1"  # a reaction to a message of an earlier batch
    kinds = {m[5]: m[3] for m in by_set["messages"]}
    assert kinds["wamid.o1"] == "unsupported"
    assert [a[0] for a in by_set["attachments"]] == ["wamid.n2"]
    assert {c[3] for c in by_set["consent"]} == {"opted_out"}
    assert next(e for e in set_events if e[0] == "message.created")[1][1] == "wamid.k1"
    assert sum(1 for e in set_events if e[0] == "message.created") == 11  # one per new message


async def test_one_bad_event_fails_alone(db_template: str, tmp_path: Path) -> None:
    batch = [*SECOND_ROUND[:3], BAD, *SECOND_ROUND[3:]]
    async with (
        fresh_database(db_template, tmp_path) as a,
        fresh_database(db_template, tmp_path) as b,
    ):
        by_set, set_events = await run_scenario(a, tmp_path, apply_customer_rows, batch)
        by_event, per_events = await run_scenario(b, tmp_path, process_rows, batch)
    assert by_set == by_event
    assert set_events == per_events
    states = {key: (state, error) for key, state, _attempts, error in by_set["inbound"]}
    assert states["r1:3"][0] == "failed" and states["r1:3"][1]
    assert sum(1 for s, _e in states.values() if s == "failed") == 1
    assert "wamid.bad" not in [m[5] for m in by_set["messages"]]
    assert len(by_set["messages"]) == 11  # everything else applied


async def test_stops_when_webhooks_wait(db_template: str, tmp_path: Path) -> None:
    """`should_yield()` true: the processor stops soon and says how many it handled; the rest
    stays pending, untouched, and is applied by the next round."""
    calls = 0

    async def apply_then_yield(tx: Tx, rows: Sequence[InboundEvent], _: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return await apply_customer_rows(tx, rows, lambda: False)
        handled = await apply_customer_rows(tx, rows, lambda: True)
        assert 1 <= handled < len(rows)
        assert all(r.state == InboundState.PENDING and r.attempts == 0 for r in rows[handled:])
        return handled + await apply_customer_rows(tx, rows[handled:], lambda: False)

    async with fresh_database(db_template, tmp_path) as a:
        by_set, _events = await run_scenario(a, tmp_path, apply_then_yield, SECOND_ROUND)
    assert len(by_set["messages"]) == 11


async def test_the_channel_row_is_touched_once_at_the_end_of_the_batch(
    db_template: str, tmp_path: Path
) -> None:
    """A batch longer than one run (`messages.RUN`) moves its channel's last_inbound_at once,
    after its last message: the update locks the channel's row until commit, and written after
    the first run it held the row through the rest of the batch, so another worker's batch on
    the same channel waited for all of it (PostgreSQL). Read from the statements sent."""
    batch = [("wa", wa(text(f"wamid.b{n}", f"message {n}", 20 + n), *KNOWN)) for n in range(60)]
    statements: list[list[str]] = []

    async def recorded(tx: Tx, rows: Sequence[InboundEvent], should_yield: Any) -> int:
        sent: list[str] = []
        conn = (await tx.session.connection()).sync_connection
        assert conn is not None

        def record(*args: Any) -> None:
            sent.append(" ".join(str(args[2]).split()))

        event.listen(conn, "before_cursor_execute", record)
        try:
            return await apply_customer_rows(tx, rows, should_yield)
        finally:
            event.remove(conn, "before_cursor_execute", record)
            statements.append(sent)

    async with fresh_database(db_template, tmp_path) as url:
        result, _events = await run_scenario(url, tmp_path, recorded, batch)
    assert len(result["messages"]) == 61  # the first round's one, and all 60
    sent = statements[-1]
    touches = [i for i, sql in enumerate(sent) if sql.startswith("UPDATE channel SET")]
    inserts = [i for i, sql in enumerate(sent) if sql.startswith("INSERT INTO message ")]
    assert len(inserts) >= 2  # more than one run
    assert len(touches) == 1 and touches[0] > inserts[-1], sent
