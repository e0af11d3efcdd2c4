"""`python -m tidings.channels.line` — point a real LINE channel's webhook at Tidings.

    python -m tidings.channels.line set-webhook --channel-access-token ... \
        --url https://inbox.example.com/webhooks/line/7
    python -m tidings.channels.line info --channel-access-token ...
    python -m tidings.channels.line test --channel-access-token ...

The same as "Webhook URL" and "Verify" in the LINE Developers Console (docs/channels/line.md);
"Use webhook" is switched on in the Console. `info` also prints the push quota left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx

from tidings.channels.line import client
from tidings.channels.line.config import LineConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tidings.channels.line")
    p.add_argument("command", choices=["set-webhook", "info", "test"])
    p.add_argument("--channel-access-token", required=True)
    p.add_argument("--url", help="the channel's webhook URL (set-webhook)")
    p.add_argument("--api-base-url", default="https://api.line.me")
    return p


async def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    # The secret is not needed to call the API; the model wants one.
    config = LineConfig(
        channel_secret="-",  # noqa: S106 (a placeholder, not a secret)
        channel_access_token=args.channel_access_token,
        api_base_url=args.api_base_url,
    )
    async with httpx.AsyncClient() as http:
        try:
            if args.command == "set-webhook":
                if not args.url:
                    print("--url is required for set-webhook", file=sys.stderr)
                    return 2
                await client.set_webhook(config, args.url, http)
            if args.command == "test":
                print(json.dumps(await client.test_webhook(config, http), indent=2))
                return 0
            info = await client.webhook_info(config, http)
            info["quota"] = (await client.quota(config, http)).sentence()
            print(json.dumps(info, indent=2))
        except client.LineApiError as exc:
            print(exc.reason, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(run(sys.argv[1:])))
