"""The sandbox is built from one list (`simulators/registry.py`): every entry is mounted and
bound, its demo channels are what `bootstrap --demo` connects, and every channel kind has
exactly one simulator there."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.conftest import Owner, Server, sandbox_headers
from tidings.channels.registry import kinds
from tidings.simulators.registry import SANDBOX
from tidings.simulators.sandbox import create_demo_channels
from tidings.storage.models import AuditLog


def test_one_entry_per_channel_kind() -> None:
    paths = [entry.path for entry in SANDBOX]
    assert len(set(paths)) == len(paths)
    assert all(entry.bind is not None for entry in SANDBOX)
    # Every kind Tidings has is played by one simulator (its path is the kind).
    assert sorted(paths) == kinds()


async def test_every_entry_is_mounted_and_its_demo_channels_are_made(
    server: Server, owner: Owner
) -> None:
    sandbox = server.app.state.sandbox
    assert list(sandbox.simulators) == [entry.path for entry in SANDBOX]
    made = await create_demo_channels(server.runtime, owner.workspace_id, owner.agent_id)
    expected = [(demo.kind, demo.name) for entry in SANDBOX for demo in entry.demo]
    assert [(c["kind"], c["name"]) for c in made] == expected
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as phone:
        listed = (await phone.get("/phone/channels")).json()
    # Each demo channel is bound to its simulator, so the phone page offers it.
    assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in made)
    # ... in process: no set_webhook over HTTP (`bootstrap --demo` runs before the server
    # listens, where it could only fail), so no webhook line in the audit log either.
    async with server.runtime.db.read() as s:
        actions = (await s.scalars(select(AuditLog.action))).all()
    assert "channel.create" in actions
    assert not [a for a in actions if a.startswith("channel.webhook")]
