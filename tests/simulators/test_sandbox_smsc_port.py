"""The sandbox SMSC and its demo SMPP channel (issue #16, item 13): when the SMSC's port is
taken it listens on a free one, and the demo channel follows it — when the channel is made and
when the sandbox starts again — so SMPP stays on the customer phone and works; and the phone
page's send answers 400 with the sentence when the sandbox refuses a customer id."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import eventually, free_port, make_settings, sandbox_headers, serving
from tidings.actions.admin import bootstrap
from tidings.simulators.sandbox import create_demo_channels
from tidings.storage.models import Channel, Message


async def _smpp_port(rt: Any, channel_id: int) -> int:
    async with rt.db.read() as s:
        row = await s.get_one(Channel, channel_id)
        port: int = rt.box.decrypt_json(row.config_encrypted)["port"]
    return port


async def test_demo_smpp_channel_follows_the_sandbox_smsc_port(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        monkeypatch.setenv("TIDINGS_SANDBOX_SMPP_PORT", str(busy))
        settings = make_settings(database_url, tmp_path / "data", free_port())

        async with serving(settings) as srv:
            smsc = srv.app.state.sandbox.smpp.port
            assert smsc != busy
            made = await bootstrap(srv.runtime, "o@example.com", "correct horse battery", "T")
            channels = await create_demo_channels(
                srv.runtime, made["workspace_id"], made["agent_id"]
            )
            [smpp] = [c for c in channels if c["kind"] == "smpp"]
            # Made with the configured port, moved to the bound one at once.
            assert await _smpp_port(srv.runtime, smpp["id"]) == smsc

        # The next start finds the port taken again: the SMSC gets another free port, and the
        # channel made in the earlier run (or by `bootstrap --demo`) follows it.
        settings = make_settings(database_url, tmp_path / "data", free_port())
        async with serving(settings) as srv:
            smsc = srv.app.state.sandbox.smpp.port
            assert await _smpp_port(srv.runtime, smpp["id"]) == smsc
            async with httpx.AsyncClient(
                base_url=f"{srv.url}/sandbox", headers=sandbox_headers(srv), timeout=20
            ) as sb:
                listed = (await sb.get("/phone/channels")).json()
                assert smpp["id"] in [c["id"] for c in listed]
                # And it works: a customer's SMS over SMPP reaches the inbox.
                sent = await sb.post(
                    "/phone/send",
                    json={"channel_id": smpp["id"], "user": "+14155550123", "text": "via SMPP"},
                )
                assert sent.status_code == 200, sent.text
                refused = await sb.post(
                    "/phone/send",
                    json={"channel_id": smpp["id"], "user": "not a number", "text": "hello"},
                )
                assert refused.status_code == 400
                assert refused.json() == {"error": "an SMS customer is a phone number"}

            async def arrived() -> bool:
                async with srv.runtime.db.read() as s:
                    n = await s.scalar(
                        select(func.count()).select_from(Message).where(Message.body == "via SMPP")
                    )
                return bool(n)

            assert await eventually(arrived, timeout=20)
