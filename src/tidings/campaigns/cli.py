"""`tidings campaign ...`: campaigns from the command line, acting as a workspace owner.

    tidings campaign list
    tidings campaign create NAME --text "Hi {{first_name}}" [--template NAME --language en_US
        --param "{{name}}"] [--label vip] [--filter city=Berlin] [--contact 12] [--all]
        [--channel 3 --channel 5] [--rate 80] [--quiet 21:00-08:00]
        [--fallback-to 5 --fallback-after 600]
    tidings campaign upload ID FILE.csv [--region DE]
    tidings campaign preview ID [--sample 10]
    tidings campaign launch|pause|resume|cancel ID
    tidings campaign watch ID        (a progress bar until the campaign is done)
    tidings campaign report ID
    tidings campaign export ID [-o FILE.csv]

Wiring (tidings/cli.py): `register(sub)` next to the other sub-parsers, and
`"campaign": cmd_campaign` in the handlers. Output is JSON, except `watch`
(a progress bar on stderr) and `export` (CSV).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tidings.access import Principal
from tidings.config import Settings
from tidings.domain.enums import Role
from tidings.domain.errors import TidingsError
from tidings.runtime import Runtime


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("campaign", help="create, launch and follow broadcast campaigns")
    p.add_argument("--as", dest="as_email", help="act as this owner/admin (default: first owner)")
    sub = p.add_subparsers(dest="campaign_command", required=True)
    sub.add_parser("list", help="all campaigns with their counts")
    c = sub.add_parser("create", help="a draft campaign")
    c.add_argument("name")
    c.add_argument("--text")
    c.add_argument("--template")
    c.add_argument("--language", default="en_US")
    c.add_argument("--param", action="append", default=[])
    c.add_argument("--label", action="append", default=[])
    c.add_argument("--filter", action="append", default=[], help="attribute=value")
    c.add_argument("--contact", action="append", type=int, default=[])
    c.add_argument("--all", action="store_true", help="every contact (narrowed by labels/filters)")
    c.add_argument("--channel", action="append", type=int, default=[])
    c.add_argument("--rate", type=float, help="send-rate cap, messages per second")
    c.add_argument("--quiet", help="quiet hours in the recipient's zone, e.g. 21:00-08:00")
    c.add_argument("--fallback-to", type=int)
    c.add_argument("--fallback-after", type=int, help="seconds without delivery")
    u = sub.add_parser("upload", help="add a CSV audience (phone column required)")
    u.add_argument("id", type=int)
    u.add_argument("file", type=Path)
    u.add_argument("--region", help="read national numbers in this region, e.g. DE")
    pv = sub.add_parser("preview", help="who gets what, over which channel, at what cost")
    pv.add_argument("id", type=int)
    pv.add_argument("--sample", type=int, default=10)
    for name in ("launch", "pause", "resume", "cancel", "watch", "report"):
        sub.add_parser(name).add_argument("id", type=int)
    e = sub.add_parser("export", help="the per-recipient report as CSV")
    e.add_argument("id", type=int)
    e.add_argument("-o", "--output", type=Path)


async def _principal(rt: Runtime, email: str | None) -> Principal:
    from tidings.storage.models import Agent

    async with rt.db.read() as s:
        q = select(Agent).where(Agent.role.in_((Role.OWNER, Role.ADMIN)), Agent.active.is_(True))
        if email:
            q = q.where(Agent.email == email)
        agent = await s.scalar(q.order_by(Agent.id).limit(1))
    if agent is None:
        raise TidingsError("no owner or admin found; run `tidings bootstrap` first")
    return Principal(agent.workspace_id, agent.id, Role(agent.role), frozenset())


def _create_fields(args: argparse.Namespace) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if args.text:
        content["text"] = args.text
    if args.template:
        content["template"] = {
            "name": args.template,
            "language": args.language,
            "params": args.param,
        }
    audience: dict[str, Any] = {}
    if args.label:
        audience["labels"] = args.label
    if args.filter:
        pairs = [f.split("=", 1) for f in args.filter]
        if any(len(p) != 2 for p in pairs):
            raise TidingsError("--filter: give attribute=value")
        audience["filters"] = dict(pairs)
    if args.contact:
        audience["contact_ids"] = args.contact
    if args.all:
        audience["all_contacts"] = True
    fields: dict[str, Any] = {"name": args.name, "content": content, "audience": audience}
    if args.channel:
        fields["channel_ids"] = args.channel
    if args.rate is not None:
        fields["rate_per_second"] = args.rate
    if args.quiet:
        start, _, end = args.quiet.partition("-")
        fields["quiet_hours"] = {"start": start, "end": end}
    if args.fallback_to is not None:
        fields["fallback"] = {
            "to_channel_id": args.fallback_to,
            "after_seconds": args.fallback_after,
            "on_failed": True,
            "on_window_closed": True,
        }
    return fields


def _bar(counts: dict[str, int], width: int = 40) -> str:
    total = counts.get("total") or 0
    done = total - counts.get("pending", 0)
    filled = int(width * done / total) if total else width
    parts = " ".join(
        f"{k}={counts[k]}"
        for k in ("queued", "sent", "delivered", "read", "failed", "skipped")
        if counts.get(k)
    )
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {parts}"


async def _run(rt: Runtime, args: argparse.Namespace) -> Any:
    from tidings.actions import campaign_recipients as recipient_state
    from tidings.actions import campaigns as actions
    from tidings.campaigns import report as reporting
    from tidings.storage.models import Campaign

    who = await _principal(rt, args.as_email)
    cmd = args.campaign_command

    async def get(cid: int) -> Campaign:
        async with rt.db.read() as s:
            c = await s.get(Campaign, cid)
        if c is None or c.workspace_id != who.workspace_id:
            raise TidingsError(f"no campaign {cid}")
        return c

    async def with_counts(c: Campaign) -> dict[str, Any]:
        async with rt.db.read() as s:
            return actions.campaign_dict(c, await reporting.counts(s, c.id))

    if cmd == "list":
        async with rt.db.read() as s:
            rows = (
                await s.scalars(
                    select(Campaign)
                    .where(Campaign.workspace_id == who.workspace_id)
                    .order_by(Campaign.id)
                )
            ).all()
        return [await with_counts(c) for c in rows]
    if cmd == "create":
        return await with_counts(await actions.check_create_campaign(rt, who, _create_fields(args)))
    if cmd == "upload":
        return await actions.check_upload_csv(rt, who, args.id, args.file.read_bytes(), args.region)
    if cmd == "preview":
        return await actions.check_preview(rt, who, args.id, args.sample)
    if cmd == "launch":
        return await with_counts(await actions.check_launch(rt, who, args.id))
    if cmd in ("pause", "resume", "cancel"):
        moved = await actions.check_move(rt, who, args.id, cmd)
        shown = await with_counts(moved)
        async with rt.db.read() as s:
            # Held by a pause, and already with a sending worker (those may still arrive).
            shown["outbox"] = await recipient_state.outbox(s, moved.id)
        return shown
    if cmd == "report":
        c = await get(args.id)
        async with rt.db.read() as s:
            return await reporting.report(s, c)
    if cmd == "watch":
        while True:
            c = await get(args.id)
            async with rt.db.read() as s:
                counts = await reporting.counts(s, c.id)
            print(f"\r{c.state:9} {_bar(counts)}", end="", file=sys.stderr, flush=True)
            in_flight = counts.get("queued", 0) + counts.get("pending", 0)
            if c.state in ("completed", "cancelled") and not in_flight:
                print(file=sys.stderr)
                return await with_counts(c)
            await asyncio.sleep(1.0)
    if cmd == "export":
        c = await get(args.id)
        out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
        try:
            async with rt.db.read() as s:
                async for chunk in reporting.export_csv(s, c.id):
                    out.write(chunk)
        finally:
            if args.output:
                out.close()
        return None
    raise TidingsError(f"unknown campaign command {cmd!r}")


def cmd_campaign(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> Any:
        rt = Runtime(settings)
        try:
            return await _run(rt, args)
        finally:
            await rt.db.dispose()
            await rt.http.aclose()

    try:
        result: Any = asyncio.run(go())
    except TidingsError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}), file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0
