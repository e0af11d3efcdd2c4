"""A world for the status path: a WhatsApp channel, N outbound messages (some of a campaign, with
their recipients), and stored status events cut from real WhatsApp status webhooks by the
adapter's own `split` (the rows the status lane claims). Used by `bench.statuses` and by
tests/core/test_status_batch.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert

from bench.common import whatsapp_envelope
from tidings.access import Principal
from tidings.actions.admin import bootstrap, create_channel
from tidings.channels.whatsapp.webhook import split
from tidings.domain.enums import Direction, InboundState, MessageKind, Role
from tidings.runtime import Runtime
from tidings.storage.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Conversation,
    InboundEvent,
    Message,
    table_of,
)
from tidings.storage.types import utcnow

PNID = "106540352242922"


@dataclass(frozen=True, slots=True)
class World:
    workspace_id: int
    channel_id: int
    inbox_id: int
    campaign_id: int
    message_ids: list[int]  # index i: provider id `wamid.B<i>`
    conversation_ids: list[int]
    recipient_ids: dict[int, int]  # message id → campaign recipient id


def wamid(i: int) -> str:
    return f"wamid.B{i}"


async def build(
    rt: Runtime,
    n: int,
    *,
    campaign_every: int = 2,
    status: str = "sent",
    per_conversation: int = 1,
    with_provider_ids: bool = True,
) -> World:
    """`n` outbound WhatsApp messages, `per_conversation` to a conversation; every
    `campaign_every`-th one (0: none) is a campaign message with its recipient row."""
    boot = await bootstrap(rt, "status-bench@x.test", "pw-pw-pw-pw")
    who = Principal(boot["workspace_id"], boot["agent_id"], Role.OWNER, frozenset())
    ws = boot["workspace_id"]
    channel = await create_channel(
        rt,
        who,
        "whatsapp",
        "bench",
        {
            "phone_number_id": PNID,
            "access_token": "tok",
            "app_secret": "status-bench-secret",
            "verify_token": "v",
            "api_base_url": "http://127.0.0.1:9",
        },
        None,
    )
    now = utcnow()
    convs = (n + per_conversation - 1) // per_conversation
    async with rt.db.write() as s:
        campaign_id = await s.scalar(
            insert(Campaign)
            .values(workspace_id=ws, name="bench", state="running", created_at=now, updated_at=now)
            .returning(Campaign.id)
        )
        assert campaign_id is not None
        contact_ids = list(
            await s.scalars(
                insert(table_of(Contact))
                .returning(table_of(Contact).c.id, sort_by_parameter_order=True)
                .execution_options(),
                [
                    {
                        "workspace_id": ws,
                        "name": f"C{i}",
                        "phone_e164": f"+1650555{i:06d}",
                        "attributes": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(convs)
                ],
            )
        )
        c = table_of(Conversation)
        conversation_ids = list(
            await s.scalars(
                insert(c).returning(c.c.id, sort_by_parameter_order=True),
                [
                    {
                        "workspace_id": ws,
                        "inbox_id": channel.inbox_id,
                        "contact_id": cid,
                        "status": "open",
                        "priority": "none",
                        "unread_count": 0,
                        "last_activity_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for cid in contact_ids
                ],
            )
        )
        m = table_of(Message)
        rows: list[dict[str, Any]] = []
        for i in range(n):
            campaign = campaign_every > 0 and i % campaign_every == 0
            rows.append(
                {
                    "workspace_id": ws,
                    "conversation_id": conversation_ids[i // per_conversation],
                    "channel_id": channel.id,
                    "direction": Direction.OUT,
                    "kind": MessageKind.TEXT,
                    "body": f"Offer {i}",
                    "provider_message_id": wamid(i) if with_provider_ids else None,
                    "status": status,
                    "sent_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "extra": {"campaign": {"id": campaign_id, "name": "bench"}} if campaign else {},
                }
            )
        message_ids = list(
            await s.scalars(insert(m).returning(m.c.id, sort_by_parameter_order=True), rows)
        )
        r = table_of(CampaignRecipient)
        campaign_messages = [
            (i, mid)
            for i, mid in enumerate(message_ids)
            if campaign_every > 0 and i % campaign_every == 0
        ]
        recipient_ids: dict[int, int] = {}
        if campaign_messages:
            ids = list(
                await s.scalars(
                    insert(r).returning(r.c.id, sort_by_parameter_order=True),
                    [
                        {
                            "workspace_id": ws,
                            "campaign_id": campaign_id,
                            "contact_id": contact_ids[i // per_conversation]
                            if i % per_conversation == 0
                            else None,
                            "address": f"1650555{i:06d}",
                            "variables": {},
                            "state": "sent" if status == "sent" else "queued",
                            "channel_id": channel.id,
                            "conversation_id": conversation_ids[i // per_conversation],
                            "message_id": mid,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i, mid in campaign_messages
                    ],
                )
            )
            recipient_ids = {
                mid: rid for (_i, mid), rid in zip(campaign_messages, ids, strict=True)
            }
    return World(
        ws,
        channel.id,
        channel.inbox_id,
        campaign_id,
        message_ids,
        conversation_ids,
        recipient_ids,
    )


def status_webhook(statuses: Sequence[dict[str, Any]]) -> bytes:
    """A WhatsApp status webhook as Meta sends it (the simulator's shape)."""
    return orjson.dumps(whatsapp_envelope(PNID, statuses=list(statuses)))


def status(
    i: int | str,
    state: str,
    at: int,
    *,
    ref: int | None = None,
    error_code: int | None = None,
) -> dict[str, Any]:
    """One `statuses[]` element for our message `wamid.B<i>` (or the given wamid)."""
    element: dict[str, Any] = {
        "id": wamid(i) if isinstance(i, int) else i,
        "status": state,
        "timestamp": str(at),
        "recipient_id": "16505551234",
    }
    if ref is not None:
        element["biz_opaque_callback_data"] = str(ref)
    if state == "failed":
        element["errors"] = [
            {
                "code": error_code or 131026,
                "title": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."},
            }
        ]
    return element


async def store(rt: Runtime, world: World, statuses: Sequence[dict[str, Any]]) -> int:
    """Store the statuses as the webhook path does (split into one event each, status lane).
    Returns how many rows were stored (duplicates by event key are dropped, as the
    acknowledgement path's unique key does)."""
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for start in range(0, len(statuses), 1000):
        for raw in split(status_webhook(statuses[start : start + 1000])):
            rows.setdefault(
                raw.key,
                {
                    "workspace_id": world.workspace_id,
                    "channel_id": world.channel_id,
                    "event_key": raw.key,
                    "payload": raw.payload,
                    "occurred_at": raw.occurred_at or datetime.now(UTC),
                    "received_at": now,
                    "state": InboundState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "lane": raw.lane,
                },
            )
    async with rt.db.write() as s:
        if rows:
            await s.execute(insert(table_of(InboundEvent)), list(rows.values()))
    return len(rows)
