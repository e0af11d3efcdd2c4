"""Customer messages processed per second by one ingest worker process (issue 14 item 3).

    python -m bench.messages [--events 2000] [--runs 3] [--database-url postgresql+asyncpg://…]

Each run starts from a fresh database with one WhatsApp channel and `--known` customers who
wrote before (their contacts, identities and open conversations exist). Then `--events`
WhatsApp message events are stored as the webhook stores them (the adapter's split, the
group committer): real Cloud API payload shapes — text (most), image with caption, a reply
with `context` to an earlier message — from a mix of known customers and new ones (many of
the new ones write more than once in the run). The worker (`ingest.worker.process_batch`,
100 rows a transaction) then drains the queue, timed in wall and CPU time.

Same data, same run, three ways:
- `set`: the customer lane as shipped (`ingest/messages.py`, runs applied as a set);
- `per-event`: every row through the per-event path (`ingest/rows.py`), the previous design;
- `bare insert`: only a multi-row INSERT of the same messages into existing conversations,
  100 a transaction — the floor for storing them at all.
Medians of `--runs`; the load average is printed (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import func, select

import tidings.ingest.worker as worker
from bench.common import whatsapp_envelope
from tidings.access import Principal
from tidings.actions.admin import bootstrap, create_channel
from tidings.channels.base import WebhookRequest
from tidings.config import load_settings
from tidings.domain.enums import Direction, InboundState, MessageStatus, Role
from tidings.ingest.rows import process_rows
from tidings.runtime import Runtime
from tidings.storage.db import migrate
from tidings.storage.models import Conversation, InboundEvent, Message

PNID = "106540352242922"


def payload(messages: list[dict[str, Any]], contacts: list[dict[str, Any]]) -> bytes:
    """A Cloud API `messages` webhook (shape as in tests/fixtures/whatsapp/*.json)."""
    return orjson.dumps(whatsapp_envelope(PNID, contacts=contacts, messages=messages))


def one_message(i: int, sender: int, ts: int, tag: str) -> bytes:
    wa_id = f"3361{sender:07d}"
    msg: dict[str, Any] = {"from": wa_id, "id": f"wamid.{tag}.{i}", "timestamp": str(ts)}
    if i % 10 == 3:
        msg["type"] = "image"
        msg["image"] = {
            "id": f"media{i}",
            "mime_type": "image/jpeg",
            "sha256": "HgGz/4hNmJ9NKvNzd5YkZzX/KSaaSkLRn5Ob5BCeB9g=",
            "caption": f"photo {i}",
        }
    else:
        msg["type"] = "text"
        msg["text"] = {"body": f"Hello, question number {i} about my order"}
    if i % 20 == 7 and i > 20:
        msg["context"] = {"from": wa_id, "id": f"wamid.{tag}.{i - 20}"}
    contacts = [{"profile": {"name": f"Customer {sender}"}, "wa_id": wa_id}]
    return payload([msg], contacts)


@dataclass
class Result:
    wall: float
    cpu: float


async def store(rt: Runtime, channel: Any, bodies: list[bytes]) -> None:
    now = datetime.now(UTC)
    rows = []
    for body in bodies:
        for e in channel.adapter.split(channel.config, _request(body)):
            rows.append(
                {
                    "workspace_id": channel.workspace_id,
                    "channel_id": channel.id,
                    "event_key": e.key,
                    "payload": e.payload,
                    "occurred_at": e.occurred_at,
                    "received_at": now,
                    "state": InboundState.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "error": None,
                    "lane": e.lane,
                }
            )
    for start in range(0, len(rows), 100):
        await rt.committer.submit(rows[start : start + 100])


def _request(body: bytes) -> WebhookRequest:
    return WebhookRequest("POST", "http://127.0.0.1/", {}, {}, body)


PROFILE: cProfile.Profile | None = None


async def drain(rt: Runtime, profile: bool = False) -> Result:
    cpu, wall = time.process_time(), time.perf_counter()
    if profile and PROFILE is not None:
        PROFILE.enable()
    while await worker.process_batch(rt):
        pass
    if profile and PROFILE is not None:
        PROFILE.disable()
    return Result(time.perf_counter() - wall, time.process_time() - cpu)


async def bare_insert(rt: Runtime, channel_id: int, workspace_id: int, n: int) -> Result:
    """The same number of inbound messages, inserted 100 a transaction, multi-row."""
    async with rt.db.read() as s:
        convs = list(await s.scalars(select(Conversation.id).order_by(Conversation.id)))
    now = datetime.now(UTC)
    rows = [
        {
            "workspace_id": workspace_id,
            "conversation_id": convs[i % len(convs)],
            "channel_id": channel_id,
            "direction": Direction.IN,
            "kind": "text",
            "body": f"Hello, question number {i} about my order",
            "provider_message_id": f"bare.{i}",
            "status": MessageStatus.RECEIVED,
            "sent_at": now,
            "created_at": now,
            "updated_at": now,
            "reply_to_id": None,
            "extra": {},
        }
        for i in range(n)
    ]
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, n, 100):
        async with rt.db.write() as s:
            await s.execute(
                rt.db.insert(Message)
                .values(rows[start : start + 100])
                .on_conflict_do_nothing(index_elements=["channel_id", "provider_message_id"])
                .returning(Message.id)
            )
    return Result(time.perf_counter() - wall, time.process_time() - cpu)


async def one_run(url: str, data_dir: Path, args: argparse.Namespace, mode: str) -> Result:
    settings = load_settings(database_url=url, data_dir=data_dir, sandbox=False, redis_url=None)
    rt = Runtime(settings)
    await rt.start()
    try:
        boot = await bootstrap(rt, "bench@x.test", "pw-pw-pw-pw")
        who = Principal(boot["workspace_id"], boot["agent_id"], Role.OWNER, frozenset())
        config = {
            "phone_number_id": PNID,
            "access_token": "x",
            "app_secret": "bench-app-secret",
            "verify_token": "v",
            # Nothing is sent: a closed local port, never the Internet.
            "api_base_url": "http://127.0.0.1:9",
        }
        row = await create_channel(rt, who, "whatsapp", "bench", config, None)
        channel = await rt.channels.get(row.id)
        assert channel is not None
        ts = int(datetime.now(UTC).timestamp())
        # Customers who wrote before: their contacts and conversations exist.
        await store(rt, channel, [one_message(k, k, ts - 60, "warm") for k in range(args.known)])
        worker.apply_customer_rows = ORIGINAL
        await drain(rt)
        # The measured events: a third from known customers, the rest from new ones, most
        # of whom write two or three times (`--events` / 2 distinct new senders at most).
        new_pool = max(1, args.events // 2)
        senders = [
            (i * 7) % args.known if i % 3 == 0 else args.known + (i * 7919) % new_pool
            for i in range(args.events)
        ]
        await store(rt, channel, [one_message(i, s, ts, "m") for i, s in enumerate(senders)])
        if mode == "bare insert":
            return await bare_insert(rt, channel.id, channel.workspace_id, args.events)
        worker.apply_customer_rows = ORIGINAL if mode == "set" else process_rows
        result = await drain(rt, profile=mode == "set")
        async with rt.db.read() as s:
            pending = await s.scalar(
                select(func.count()).where(InboundEvent.state != InboundState.DONE)
            )
            stored = await s.scalar(select(func.count()).select_from(Message))
        if pending or stored != args.known + args.events:
            raise SystemExit(f"{mode}: {pending} events not done, {stored} messages stored")
        return result
    finally:
        worker.apply_customer_rows = ORIGINAL
        await rt.stop()


ORIGINAL = worker.apply_customer_rows


async def _pg(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_mode(args: argparse.Namespace, mode: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="tidings-bmsg-") as tmp:
        if args.database_url:
            base = args.database_url.rpartition("/")[0]
            name = f"bench_msg_{uuid.uuid4().hex[:10]}"
            asyncio.run(_pg(args.database_url, f'CREATE DATABASE "{name}"'))
            url = f"{base}/{name}"
        else:
            url = f"sqlite+aiosqlite:///{tmp}/t.db"
        try:
            migrate(url)
            return asyncio.run(one_run(url, Path(tmp), args, mode))
        finally:
            if args.database_url:
                asyncio.run(
                    _pg(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--known", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--modes", default="set,per-event,bare insert")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--sort", default="cumulative", help="profile order (pstats key)")
    args = parser.parse_args(argv)
    global PROFILE
    if args.profile:
        PROFILE = cProfile.Profile()
    if not 100 <= args.events <= 20_000 or not 1 <= args.runs <= 5 or args.known < 1:
        parser.error("--events within 100..20000, --runs within 1..5, --known at least 1")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    store = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{store}, {args.events} customer messages, load average {os.getloadavg()[0]:.2f}")
    results: dict[str, list[Result]] = {m: [] for m in modes}
    for run in range(args.runs):
        for mode in modes:  # interleaved: a load spike hits every mode alike
            r = run_mode(args, mode)
            results[mode].append(r)
            print(
                f"run {run + 1} {mode:>11}: {args.events / r.wall:7.0f} messages/s "
                f"({r.cpu * 1000 / args.events:.2f} ms CPU/message)"
            )
    rate = {m: statistics.median(args.events / r.wall for r in rs) for m, rs in results.items()}
    cpu = {
        m: statistics.median(r.cpu * 1000 / args.events for r in rs) for m, rs in results.items()
    }
    print(f"\nmedians of {args.runs} ({store}), load average now {os.getloadavg()[0]:.2f}:")
    for mode in modes:
        line = f"  {mode:>11}: {rate[mode]:7.0f} messages/s, {cpu[mode]:.2f} ms CPU/message"
        if mode != "set" and "set" in rate:
            line += f"  (set / {mode} = {rate['set'] / rate[mode]:.2f})"
        print(line)
    if PROFILE is not None:
        out = io.StringIO()
        pstats.Stats(PROFILE, stream=out).sort_stats(args.sort).print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
