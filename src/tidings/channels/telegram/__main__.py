"""`python -m tidings.channels.telegram` — point a real bot's webhook at Tidings.

    python -m tidings.channels.telegram set-webhook --bot-token 123:AA... \
        --secret-token <the channel's secret_token> --url https://inbox.example.com/webhooks/telegram/7
    python -m tidings.channels.telegram info --bot-token 123:AA... --secret-token ...
    python -m tidings.channels.telegram delete-webhook --bot-token 123:AA... --secret-token ...

Sandbox channels are registered automatically when they are created.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx

from tidings.channels.telegram import client
from tidings.channels.telegram.config import TelegramConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tidings.channels.telegram")
    p.add_argument("command", choices=["set-webhook", "delete-webhook", "info"])
    p.add_argument("--bot-token", required=True)
    p.add_argument("--secret-token", required=True)
    p.add_argument("--url", help="the channel's webhook URL (set-webhook)")
    p.add_argument("--api-base-url", default="https://api.telegram.org")
    p.add_argument("--drop-pending-updates", action="store_true")
    return p


async def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = TelegramConfig(
        bot_token=args.bot_token, secret_token=args.secret_token, api_base_url=args.api_base_url
    )
    async with httpx.AsyncClient() as http:
        try:
            if args.command == "set-webhook":
                if not args.url:
                    print("--url is required for set-webhook", file=sys.stderr)
                    return 2
                await client.set_webhook(
                    config, args.url, http, drop_pending_updates=args.drop_pending_updates
                )
            elif args.command == "delete-webhook":
                await client.delete_webhook(config, http)
            print(json.dumps(await client.get_webhook_info(config, http), indent=2))
        except client.TelegramError as exc:
            print(exc.message, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(run(sys.argv[1:])))
