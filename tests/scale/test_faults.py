"""Fault suite: a provider outage during replies, and a database restart under load."""

from __future__ import annotations

import asyncio
import collections
import glob
import itertools
import os
import time
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import PG_URL, Owner, Receiver, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.storage.models import Message

pytestmark = pytest.mark.slow
OUTAGE_SECONDS = 60.0


async def test_provider_outage_everything_delivered_once_backoff_honoured(
    server: Server, owner: Owner, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    """For 60 s the provider answers 500, 503 and 429 (Retry-After: 7). Replies queued during the
    outage are all delivered after it, exactly once each, with growing gaps between attempts and
    never sooner than a Retry-After asked."""
    channel_id = await api_channel(api, receiver.url)
    now = int(time.time())
    customers = [f"cust{i}" for i in range(5)]
    await post_signed(
        server,
        channel_id,
        {"messages": [msg(f"in{i}", c, "hello", now) for i, c in enumerate(customers)]},
    )

    async def five() -> list:
        data = (await api.get("/api/v1/conversations")).json()["data"]
        return data if len(data) == 5 else []

    convs = await eventually(five)
    outage = [
        (500, {}, b"down"),
        (503, {}, b"maintenance"),
        (429, {"Retry-After": "7"}, b"slow down"),
    ]
    receiver.script.extend(
        outage * 10_000
    )  # far more than will be asked for: ends only when cleared
    started = time.monotonic()
    ids = []
    for i in range(15):
        r = await api.post(
            f"/api/v1/conversations/{convs[i % 5]['id']}/messages", json={"text": f"reply {i}"}
        )
        assert r.status_code == 201
        ids.append(r.json()["id"])
    await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - started))
    receiver.script.clear()  # the provider recovers
    recovered_at = time.monotonic()

    async def all_sent() -> bool:
        rows = []
        for c in convs:
            rows += (await api.get(f"/api/v1/conversations/{c['id']}/messages")).json()["data"]
        mine = {m["id"]: m["status"] for m in rows if m["id"] in ids}
        return len(mine) == 15 and set(mine.values()) == {"sent"}

    await eventually(all_sent, timeout=240, interval=0.5)
    firsts = set(ids[:5])
    per_message: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for at, status, body in receiver.log:
        per_message[orjson.loads(body)["message"]["id"]].append((at, status))
    assert set(per_message) == set(ids)
    accepted = [
        orjson.loads(body)["message"] for _at, status, body in receiver.log if status == 200
    ]
    for conv in convs:
        in_conv = [m["id"] for m in accepted if m["conversation_id"] == conv["id"]]
        assert in_conv == sorted(in_conv), "a conversation's replies left out of order"
    for mid, tries in per_message.items():
        statuses = [status for _at, status in tries]
        # Nothing doubled by us: exactly one accepted delivery per message, and it is the last.
        assert statuses.count(200) == 1 and statuses[-1] == 200, (mid, statuses)
        assert all(at >= recovered_at for at, status in tries if status == 200)
        if mid in firsts:
            # The head of each conversation's queue kept retrying through the outage; the
            # messages behind it waited their turn (per-conversation order).
            assert len(tries) >= 3, f"message {mid} was tried only {len(tries)} times in 60 s"
        # Backoff honoured: never sooner than a Retry-After asked, and gaps grow (±25 % jitter).
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(tries)]
        for (_at, status), gap in zip(tries, gaps, strict=False):
            if status == 429:
                assert gap >= 7.0 * 0.99, f"message {mid}: retried {gap:.1f}s after Retry-After: 7"
        plain = [g for (_at, st), g in zip(tries, gaps, strict=False) if st != 429]
        assert all(later >= earlier * 0.5 for earlier, later in itertools.pairwise(plain)), (
            mid,
            gaps,
        )


def _pg_ctl() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return found[-1] if found else None


@pytest.mark.skipif(
    not PG_URL or not os.environ.get("TIDINGS_SERVICES_DIR"),
    reason="needs the test PostgreSQL from scripts/services",
)
async def test_database_restart_mid_load_recovers_by_itself(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    data_dir = Path(os.environ["TIDINGS_SERVICES_DIR"]) / "pg" / "data"
    pg_ctl = _pg_ctl()
    assert pg_ctl and data_dir.exists()
    channel_id = await api_channel(api)
    acknowledged: list[str] = []
    refused = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal refused
        i = 0
        while not stop.is_set():
            i += 1
            mid = f"load-{i}"
            try:
                r = await post_signed(
                    server,
                    channel_id,
                    {"messages": [msg(mid, f"c{i % 7}", f"m {i}", 1_750_000_000 + i)]},
                )
                if r.status_code == 200:
                    acknowledged.append(mid)
                else:
                    refused += 1
            except httpx.HTTPError:
                refused += 1
            await asyncio.sleep(0.02)

    loader = asyncio.create_task(load())
    await asyncio.sleep(1.0)
    restart = await asyncio.create_subprocess_exec(
        "runuser",
        "-u",
        "postgres",
        "--",
        pg_ctl,
        "-D",
        str(data_dir),
        "-m",
        "fast",
        "-w",
        "-t",
        "60",
        "restart",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert await restart.wait() == 0
    before_recovery = len(acknowledged)
    await asyncio.sleep(3.0)
    stop.set()
    await loader
    assert len(acknowledged) > before_recovery, "no webhook was acknowledged after the restart"

    async def all_stored() -> bool:
        async with server.runtime.db.read() as s:
            stored = set((await s.scalars(select(Message.provider_message_id))).all())
        return set(acknowledged) <= stored

    # Every acknowledged webhook ends up as a message: the ones refused during the restart were
    # not acknowledged, so a provider would retry them.
    await eventually(all_stored, timeout=60)
    async with server.runtime.db.read() as s:
        total = await s.scalar(select(func.count()).select_from(Message))
    assert total == len(set(acknowledged))
    ready = await api.get("/readyz")
    assert ready.status_code == 200
