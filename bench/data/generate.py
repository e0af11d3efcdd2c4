"""Generate a large workspace for read benchmarks: N conversations, K messages each, across
channels, agents, inboxes and labels, loaded with bulk inserts (COPY on PostgreSQL).

    python -m bench.data.generate --url postgresql+asyncpg://... --conversations 1000000 --messages 10

The database is migrated first; it should be empty. Secondary message indexes (and the search
index) are dropped during the load and rebuilt after it, which is how a bulk load should be done.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from tidings.storage.crypto import SecretBox
from tidings.storage.db import migrate

WORDS = [
    "order",
    "parcel",
    "delivery",
    "refund",
    "invoice",
    "payment",
    "card",
    "address",
    "tracking",
    "late",
    "broken",
    "size",
    "colour",
    "blue",
    "red",
    "shoes",
    "jacket",
    "return",
    "exchange",
    "thanks",
    "hello",
    "please",
    "when",
    "where",
    "why",
    "price",
    "discount",
    "code",
    "store",
    "open",
    "hours",
    "weekend",
    "courier",
    "label",
    "box",
    "damaged",
    "missing",
    "item",
    "receipt",
    "warranty",
    "manager",
    "subscription",
    "cancel",
    "renew",
    "account",
    "password",
    "login",
    "app",
    "update",
    "phone",
    "email",
    "number",
    "today",
    "tomorrow",
]
STATUSES = ["open"] * 30 + ["pending"] * 10 + ["snoozed"] * 5 + ["resolved"] * 55
KINDS = ["whatsapp", "api", "twilio", "telegram"]
SMS_CHANNEL = 3
OUT_STATUSES = ["read"] * 60 + ["delivered"] * 25 + ["sent"] * 5 + ["failed"] * 10
# Per-message estimates, as the policy layer records them (WhatsApp service pricing, one SMS segment).
COST = {"whatsapp": Decimal("0.00880"), "twilio": Decimal("0.00790")}
AGENTS = 20
INBOXES = 5
LABELS = 20
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 50_000


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))).capitalize()


def plan(conversations: int, per_conversation: int, seed: int = 7) -> dict[str, Any]:
    return {"conversations": conversations, "messages": per_conversation, "seed": seed}


def base_rows(box: SecretBox) -> dict[str, list[tuple[Any, ...]]]:
    now = EPOCH
    rows: dict[str, list[tuple[Any, ...]]] = {
        "workspace": [(1, "Bench", now)],
        "agent": [
            (
                i,
                1,
                f"agent{i}@bench.test",
                f"Agent {i}",
                None,
                "admin" if i == 1 else "agent",
                "online",
                True,
                now,
            )
            for i in range(1, AGENTS + 1)
        ],
        "inbox": [(i, 1, f"Inbox {i}", now) for i in range(1, INBOXES + 1)],
        "inbox_member": [(1 + (a % INBOXES), a) for a in range(1, AGENTS + 1)],
        "label": [(i, 1, f"label-{i}", "#6b7280") for i in range(1, LABELS + 1)],
        "channel": [],
    }
    for i, kind in enumerate(KINDS, start=1):
        config = box.encrypt({"secret": "x" * 20}) if kind == "api" else box.encrypt({})
        rows["channel"].append(
            (
                i,
                1,
                1 + (i % INBOXES),
                kind,
                f"{kind} bench",
                config,
                True,
                None,
                None,
                None,
                None,
                now,
            )
        )
    return rows


COLUMNS = {
    "workspace": ("id", "name", "created_at"),
    "agent": (
        "id",
        "workspace_id",
        "email",
        "name",
        "password_hash",
        "role",
        "availability",
        "active",
        "created_at",
    ),
    "inbox": ("id", "workspace_id", "name", "created_at"),
    "inbox_member": ("inbox_id", "agent_id"),
    "label": ("id", "workspace_id", "name", "color"),
    "channel": (
        "id",
        "workspace_id",
        "inbox_id",
        "kind",
        "name",
        "config_encrypted",
        "active",
        "last_inbound_at",
        "last_error",
        "last_error_at",
        "token_expires_at",
        "created_at",
    ),
    "contact": (
        "id",
        "workspace_id",
        "name",
        "email",
        "phone_e164",
        "attributes",
        "created_at",
        "updated_at",
    ),
    "contact_identity": (
        "id",
        "workspace_id",
        "contact_id",
        "channel_kind",
        "address",
        "display_name",
        "created_at",
    ),
    "conversation": (
        "id",
        "workspace_id",
        "inbox_id",
        "contact_id",
        "status",
        "assignee_id",
        "team_id",
        "priority",
        "snoozed_until",
        "unread_count",
        "last_activity_at",
        "last_inbound_at",
        "last_message_preview",
        "last_channel_id",
        "created_at",
        "updated_at",
    ),
    "conversation_channel": ("conversation_id", "channel_id", "last_inbound_at"),
    "conversation_label": ("conversation_id", "label_id"),
    "message": (
        "id",
        "workspace_id",
        "conversation_id",
        "channel_id",
        "direction",
        "kind",
        "body",
        "sender_agent_id",
        "provider_message_id",
        "status",
        "error_code",
        "error_reason",
        "sent_at",
        "created_at",
        "updated_at",
        "reply_to_id",
        "cost_estimate",
        "extra",
    ),
}


def conversation_rows(
    spec: dict[str, Any], start: int, stop: int
) -> Iterator[dict[str, tuple[Any, ...]]]:
    """Rows for conversations [start, stop): one contact, identity, conversation and its messages."""
    rng = random.Random(spec["seed"] * 1_000_003 + start)
    per = spec["messages"]
    for cid in range(start, stop):
        channel_id = 1 + cid % len(KINDS)
        kind = KINDS[channel_id - 1]
        started = EPOCH + timedelta(seconds=rng.randint(0, 300 * 86400))
        phone = f"+4915{cid:09d}"
        out: dict[str, Any] = {
            "contact": (
                cid,
                1,
                f"Customer {cid}",
                f"c{cid}@example.test" if cid % 3 == 0 else None,
                phone,
                "{}",
                started,
                started,
            ),
            "contact_identity": (
                cid,
                1,
                cid,
                kind,
                phone if kind in ("whatsapp", "twilio") else f"user-{cid}",
                None,
                started,
            ),
            "labels": [(cid, 1 + rng.randrange(LABELS))] if rng.random() < 0.3 else [],
            "messages": [],
        }
        at = started
        body = ""
        # Reports need variety: outbound outcomes, per-message cost on the paid channels, and
        # about one WhatsApp conversation in ten whose last reply fell back to SMS.
        fell_back = kind == "whatsapp" and rng.random() < 0.1
        for k in range(per):
            at += timedelta(seconds=rng.randint(5, 3600))
            body = sentence(rng)
            direction = "in" if k % 2 == 0 else "out"
            mid = cid * per + k + 1
            on = channel_id
            extra = "{}"
            status = "received"
            if direction == "out":
                status = rng.choice(OUT_STATUSES)
                if fell_back and k == per - 1:
                    on, extra, status = (
                        SMS_CHANNEL,
                        orjson.dumps({"fallback_of": mid - 2}).decode(),
                        "delivered",
                    )
            out["messages"].append(
                (
                    mid,
                    1,
                    cid,
                    on,
                    direction,
                    "text",
                    body,
                    None if direction == "in" else 1 + rng.randrange(AGENTS),
                    f"p{mid}",
                    status,
                    "131026" if status == "failed" else None,
                    "Message undeliverable" if status == "failed" else None,
                    at,
                    at,
                    at,
                    None,
                    COST.get(KINDS[on - 1]) if direction == "out" else None,
                    extra,
                )
            )
        status = rng.choice(STATUSES)
        assignee = None if rng.random() < 0.3 else 1 + rng.randrange(AGENTS)
        out["conversation"] = (
            cid,
            1,
            1 + cid % INBOXES,
            cid,
            status,
            assignee,
            None,
            "none",
            None,
            rng.randint(0, 3),
            at,
            at,
            body[:160],
            channel_id,
            started,
            at,
        )
        out["conversation_channel"] = [(cid, channel_id, at)] + (
            [(cid, SMS_CHANNEL, None)] if fell_back else []
        )
        yield out


def _ts(value: Any) -> Any:
    # SQLite stores our UTC datetimes naive (see storage.types.UTCDateTime).
    if isinstance(value, Decimal):
        return str(value)
    return value.replace(tzinfo=None).isoformat(sep=" ") if isinstance(value, datetime) else value


async def load_postgres(url: str, spec: dict[str, Any], box: SecretBox) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        # No per-row triggers during the bulk load (the reports' change marks, FK checks): the
        # report tables are rebuilt in one pass afterwards (`fill_reports`).
        await conn.execute("SET session_replication_role = replica")
        for table, rows in base_rows(box).items():
            await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
        await conn.execute("DROP INDEX IF EXISTS ix_message_body_fts")
        await conn.execute("DROP INDEX IF EXISTS ix_message_conversation_order")
        total = spec["conversations"]
        for start in range(1, total + 1, CHUNK):
            batch: dict[str, list[tuple[Any, ...]]] = {
                t: []
                for t in (
                    "contact",
                    "contact_identity",
                    "conversation",
                    "conversation_channel",
                    "conversation_label",
                    "message",
                )
            }
            for row in conversation_rows(spec, start, min(total + 1, start + CHUNK)):
                for t in ("contact", "contact_identity", "conversation"):
                    batch[t].append(row[t])
                batch["conversation_channel"] += row["conversation_channel"]
                batch["conversation_label"] += row["labels"]
                batch["message"] += row["messages"]
            for table, rows in batch.items():
                await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
            print(
                f"  loaded {min(total, start + CHUNK - 1):,} / {total:,} conversations", flush=True
            )
        print("  building indexes", flush=True)
        await conn.execute(
            "CREATE INDEX ix_message_conversation_order ON message (conversation_id, sent_at, id)"
        )
        await conn.execute(
            "CREATE INDEX ix_message_body_fts ON message USING gin (to_tsvector('simple', coalesce(body, '')))"
        )
        for table in (
            "contact",
            "contact_identity",
            "conversation",
            "message",
            "channel",
            "agent",
            "inbox",
            "label",
            "workspace",
        ):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def load_sqlite(url: str, spec: dict[str, Any], box: SecretBox) -> None:
    path = url.split(":///", 1)[1]
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    try:
        for table, rows in base_rows(box).items():
            cols = COLUMNS[table]
            db.executemany(
                f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                [tuple(_ts(v) for v in r) for r in rows],
            )
        # Bulk load without the FTS triggers, then rebuild the index in one pass.
        db.execute("DROP TRIGGER IF EXISTS message_fts_insert")
        total = spec["conversations"]
        for start in range(1, total + 1, CHUNK):
            batch: dict[str, list[tuple[Any, ...]]] = {
                t: []
                for t in (
                    "contact",
                    "contact_identity",
                    "conversation",
                    "conversation_channel",
                    "conversation_label",
                    "message",
                )
            }
            for row in conversation_rows(spec, start, min(total + 1, start + CHUNK)):
                for t in ("contact", "contact_identity", "conversation"):
                    batch[t].append(tuple(_ts(v) for v in row[t]))
                batch["conversation_channel"] += [
                    tuple(_ts(v) for v in r) for r in row["conversation_channel"]
                ]
                batch["conversation_label"] += row["labels"]
                batch["message"] += [tuple(_ts(v) for v in m) for m in row["messages"]]
            for table, rows in batch.items():
                cols = COLUMNS[table]
                db.executemany(
                    f"INSERT INTO {table} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                    rows,
                )
            db.commit()
            print(
                f"  loaded {min(total, start + CHUNK - 1):,} / {total:,} conversations", flush=True
            )
        print("  building the FTS5 index", flush=True)
        db.execute("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")
        db.execute(
            "CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN "
            "INSERT INTO message_fts(rowid, body) VALUES (new.id, coalesce(new.body, '')); END"
        )
        db.execute("ANALYZE")
        db.commit()
    finally:
        db.close()


async def fill_reports(url: str) -> float:
    """Compute the report tables (tidings.reports) for the loaded data; returns seconds."""
    from tidings.reports import rollup
    from tidings.storage.db import Database

    started = time.perf_counter()
    db = Database(url)

    def progress(done: int, total: int) -> None:
        if done % 100_000 < 2000 or done == total:
            of = f" / {total:,}" if total > 0 else ""
            print(f"  reports: {done:,}{of} conversations", flush=True)

    try:
        if db.is_sqlite:
            await rollup.rebuild(db, progress=progress)
        else:
            import asyncpg

            from bench.data.reports_fill import fill

            conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                await fill(conn, lambda done, _s: progress(done, -1))
            finally:
                await conn.close()
    finally:
        await db.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        required=True,
        help="database URL (sqlite+aiosqlite:///... or postgresql+asyncpg://...)",
    )
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=10, help="messages per conversation")
    parser.add_argument("--secret-key", default="bench-secret-key-" + "b" * 32)
    args = parser.parse_args()
    spec = plan(args.conversations, args.messages)
    box = SecretBox(args.secret_key)
    started = time.perf_counter()
    migrate(args.url)
    if args.url.startswith("postgresql"):
        asyncio.run(load_postgres(args.url, spec, box))
    else:
        load_sqlite(args.url, spec, box)
    loaded = time.perf_counter() - started
    reports = asyncio.run(fill_reports(args.url))
    elapsed = time.perf_counter() - started
    rows = args.conversations * (args.messages + 4)
    print(
        orjson.dumps(
            {
                "conversations": args.conversations,
                "messages": args.conversations * args.messages,
                "seconds": round(elapsed, 1),
                "load_seconds": round(loaded, 1),
                "reports_seconds": round(reports, 1),
                "rows_per_second": round(rows / elapsed),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
