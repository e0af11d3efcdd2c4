"""`tidings serve | worker | migrate | bootstrap | replay-events | reset-password | doctor |
sync-templates | set-webhooks | campaign | reports | sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from tidings.campaigns import cli as campaigns_cli
from tidings.config import Settings, load_settings, secret_key_problem
from tidings.reports import cli as reports_cli
from tidings.runtime import Runtime, one_shot, tune_gc


def _logging(settings: Settings) -> None:
    from tidings import logs

    logs.configure(settings.log_level, settings.log_format)


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from tidings.storage.db import migrate

    migrate(settings.database_url)
    print(json.dumps({"migrated": True, "database": settings.database_url.split("@")[-1]}))
    return 0


def _refuse_to_start(settings: Settings) -> str | None:
    """What stops `serve` and `worker` before anything starts: a short secret key (it signs
    session cookies: a 1-character key let a forged cookie sign in as the owner), unknown
    workers (`TIDINGS_WORKERS`)."""
    from tidings.workers.registry import chosen_workers

    try:
        chosen_workers(settings)
    except ValueError as exc:
        return secret_key_problem(settings) or str(exc)
    return secret_key_problem(settings)


def _announce_sandbox(settings: Settings, base_url: str, *, phone: bool = True) -> None:
    """The sandbox's secret, for the person who started it (stdout, never the log)."""
    from tidings.simulators.guard import TOKEN_HEADER, TOKEN_PARAM

    token = settings.sandbox_token
    lines = ["Sandbox on (a local trial only; see docs/operations.md)."]
    if phone:
        lines.append(f"  Customer phone: {base_url}/phone?{TOKEN_PARAM}={token}")
    lines.append(f"  Simulator control ({base_url}/<provider>/_sim/...): {TOKEN_HEADER}: {token}")
    print("\n".join(lines), flush=True)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from tidings.app import create_app
    from tidings.storage.db import migrate

    if error := _refuse_to_start(settings):
        print(f"tidings: {error}", file=sys.stderr)
        return 2

    if settings.is_sqlite:
        # The embedded setup is one command: bring the schema up to date on start.
        migrate(settings.database_url)
    app = create_app(settings)
    if settings.sandbox:
        _announce_sandbox(settings, f"{settings.public_url}/sandbox")
    tune_gc()
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        log_config=None,  # our handler formats uvicorn's lines too (tidings/logs.py)
        access_log=settings.access_log,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
    return 0


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    from tidings.workers.registry import run_forever

    if error := _refuse_to_start(settings):
        print(f"tidings: {error}", file=sys.stderr)
        return 2
    tune_gc()
    asyncio.run(run_forever(settings))
    return 0


def cmd_bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    from tidings.actions.admin import bootstrap
    from tidings.storage.db import migrate

    migrate(settings.database_url)

    async def go(rt: Runtime) -> dict[str, Any]:
        result = await bootstrap(rt, args.email, args.password, args.workspace)
        if args.demo and settings.sandbox:
            from tidings.simulators.sandbox import create_demo_channels

            result["channels"] = await create_demo_channels(
                rt, result["workspace_id"], result["agent_id"]
            )
        return result

    result = asyncio.run(one_shot(settings, go))
    print(json.dumps(result, indent=2))
    return 0


def cmd_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    """Set an agent's password, or print a one-time reset link (ends their sessions/tokens)."""
    from tidings.actions.passwords import reset_password_cli
    from tidings.domain.errors import InvalidInput, NotFound

    try:
        print(
            asyncio.run(
                one_shot(settings, lambda rt: reset_password_cli(rt, args.email, args.password))
            )
        )
    except (NotFound, InvalidInput) as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from tidings.ingest.worker import replay

    count = asyncio.run(
        one_shot(
            settings, lambda rt: replay(rt, event_ids=args.ids or None, channel_id=args.channel)
        )
    )
    print(json.dumps({"requeued": count}))
    return 0


def _per_channel(
    settings: Settings,
    fn: Callable[[Runtime, int | None], Awaitable[list[dict[str, Any]]]],
    channel: int | None,
) -> int:
    """Run a command over every channel (or one) and print its results; exit 1 if any erred."""
    results = asyncio.run(one_shot(settings, lambda rt: fn(rt, channel)))
    print(json.dumps(results))
    return 1 if any("error" in r for r in results) else 0


def cmd_sync_templates(settings: Settings, args: argparse.Namespace) -> int:
    """Fetch provider templates (WhatsApp message_templates) for every channel, or one."""
    from tidings.actions.templates import sync_all_templates

    return _per_channel(settings, sync_all_templates, args.channel)


def cmd_set_webhooks(settings: Settings, args: argparse.Namespace) -> int:
    """Point the webhook of every channel that Tidings registers itself (Viber) at this
    install's current URL; run after changing TIDINGS_PUBLIC_URL."""
    from tidings.actions.admin import register_webhooks

    return _per_channel(settings, register_webhooks, args.channel)


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    """Run only the provider simulators (for pointing a separate Tidings at them)."""
    import uvicorn

    from tidings.simulators.sandbox import Sandbox, guarded

    if error := secret_key_problem(settings):
        print(f"tidings: {error}", file=sys.stderr)
        return 2
    sandbox = Sandbox(settings)
    host, port = args.host or "127.0.0.1", args.port or 8900
    # The same guard as under `tidings serve`, with the sandbox token only (no sessions here).
    _announce_sandbox(settings, f"http://{host}:{port}", phone=False)
    uvicorn.run(
        guarded(sandbox.app, None, settings),
        host=host,
        port=port,
        log_level=settings.log_level,
        log_config=None,
    )
    return 0


def cmd_doctor(settings: Settings, _args: argparse.Namespace) -> int:
    from tidings.doctor import main as doctor

    return doctor(settings)


def main(argv: list[str] | None = None) -> int:
    # Whatever a tidings process writes is for its own account only
    # (storage/files.py makes the known files private explicitly, this catches the rest).
    os.umask(os.umask(0) | 0o077)
    parser = argparse.ArgumentParser(
        prog="tidings", description="Tidings multichannel shared inbox"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "serve", help="UI, API, webhooks and live stream (and, by default, the workers)"
    )
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    sub.add_parser("worker", help="run only the worker loops (all, or those TIDINGS_WORKERS names)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    p = sub.add_parser("bootstrap", help="create the first workspace and owner if none exists")
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--workspace", default="My workspace")
    p.add_argument("--demo", action="store_true", help="also connect sandbox demo channels")
    p = sub.add_parser(
        "reset-password", help="print a one-time password reset link, or set the password"
    )
    p.add_argument("--email", required=True)
    p.add_argument("--password", help="set this password instead of printing a link")
    p = sub.add_parser("replay-events", help="re-queue failed inbound events after a fix")
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--channel", type=int)
    sub.add_parser("doctor", help="check configuration, database, Redis and channels")
    p = sub.add_parser("sync-templates", help="fetch provider message templates (WhatsApp)")
    p.add_argument("--channel", type=int)
    p = sub.add_parser(
        "set-webhooks", help="set provider webhooks Tidings registers itself (Viber) again"
    )
    p.add_argument("--channel", type=int)
    campaigns_cli.register(sub)
    reports_cli.register(sub)
    p = sub.add_parser("sandbox", help="run only the provider simulators")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    settings = load_settings()
    _logging(settings)
    handlers = {
        "serve": cmd_serve,
        "worker": cmd_worker,
        "migrate": cmd_migrate,
        "bootstrap": cmd_bootstrap,
        "replay-events": cmd_replay,
        "reset-password": cmd_reset_password,
        "sandbox": cmd_sandbox,
        "doctor": cmd_doctor,
        "sync-templates": cmd_sync_templates,
        "set-webhooks": cmd_set_webhooks,
        "campaign": campaigns_cli.cmd_campaign,
        "reports": reports_cli.cmd_reports,
    }
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
