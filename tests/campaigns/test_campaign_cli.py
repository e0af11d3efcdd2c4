"""`tidings campaign ...` through its argparse registration (as cli.py wires it)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.conftest import Owner, Server
from tidings.campaigns import cli as campaigns_cli
from tidings.storage.models import Campaign
from tidings.storage.types import utcnow


def run(server: Server, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    parser = argparse.ArgumentParser(prog="tidings")
    campaigns_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["campaign", *argv])
    code = campaigns_cli.cmd_campaign(server.settings, args)
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else json.loads(out.err)


async def test_create_upload_preview_list(
    server: Server, owner: Owner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("phone,name\n+4915123456789,Ana\nnope,Ben\n")

    async def cli(*argv: str) -> tuple[int, object]:
        return await asyncio.to_thread(run, server, capsys, *argv)

    code, created = await cli("create", "Newsletter", "--text", "Hi {{name}}", "--rate", "5")
    assert code == 0 and isinstance(created, dict)
    assert created["state"] == "draft" and created["rate_per_second"] == 5.0
    code, report = await cli("upload", str(created["id"]), str(csv_file))
    assert code == 0 and report == {
        "rows": 2,
        "added": 1,
        "contacts_created": 1,
        "invalid": [{"row": 3, "value": "nope", "error": "'nope' is not a valid phone number"}],
        "duplicates": [],
    }
    code, preview = await cli("preview", str(created["id"]))
    assert code == 0 and isinstance(preview, dict)
    # No channel can reach a number-only contact yet: both rows are explained.
    assert preview["totals"]["skipped"] == {"no_reachable_channel": 1, "invalid_number": 1}
    code, listed = await cli("list")
    assert code == 0 and [c["name"] for c in listed] == ["Newsletter"]  # type: ignore[union-attr,index]
    code, error = await cli("launch", "999")
    assert code == 2 and error["error"]["code"] == "not_found"  # type: ignore[index]
    # Scheduled an hour ahead (no CLI flag for it): it stays put, so pausing it is not racy.
    async with server.runtime.db.write() as db:
        await db.execute(
            update(Campaign)
            .where(Campaign.id == created["id"])
            .values(scheduled_at=utcnow() + timedelta(hours=1))
        )
    code, launched = await cli("launch", str(created["id"]))
    assert code == 0 and launched["state"] == "scheduled"  # type: ignore[index]
    # Pause answers with where the queued messages stand (held, or already being sent).
    code, paused = await cli("pause", str(created["id"]))
    assert code == 0 and paused["state"] == "paused"  # type: ignore[index]
    assert paused["outbox"] == {"held": 0, "waiting": 0, "in_flight": 0}  # type: ignore[index]
