"""Simulator of an external system on the other end of an API channel (sandbox mode).

It plays the integrator: posts signed customer messages into Tidings, receives agent replies on
its webhook (checking Tidings' signature), and reports delivery/read statuses back.

Control routes (JSON):
- `PUT /_sim/accounts/{account}` {secret, tidings_webhook_url, auto_statuses?}
- `POST /_sim/inbound` {account, from, name?, phone?, text, id?}
- `GET /_sim/conversations?account=&user=` both directions, as the customer would see them
- `GET /_sim/received?account=` replies received from Tidings
- `POST /accounts/{account}/receive` is the webhook URL to configure on the channel.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tidings import signing
from tidings.domain.errors import SignatureError
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    DemoChannel,
    SandboxEntry,
    SimulatorBase,
    UrlBinding,
    control_error,
    control_routes,
    list_handler,
    read_json,
    thread_entry,
    thread_of,
    thread_route,
)


@dataclass
class Account:
    secret: str
    tidings_webhook_url: str
    auto_statuses: list[str] = field(default_factory=lambda: ["delivered", "read"])
    thread: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    # Replies already seen, by Tidings' Idempotency-Key: a retried POST is not a second reply.
    seen_keys: set[str] = field(default_factory=set)


class ApiClientSimulator(SimulatorBase):
    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.accounts: dict[str, Account] = {}
        self.app = Starlette(
            routes=[
                *control_routes(
                    {
                        "accounts/{account}": (self._put_account, ["PUT"]),
                        "inbound": (self._inbound, ["POST"]),
                        "conversations": (thread_route(self.conversations, "account"), ["GET"]),
                        "received": (list_handler(self.accounts, "account", "received"), ["GET"]),
                    }
                ),
                Route("/accounts/{account}/receive", self._receive, methods=["POST"]),
            ]
        )

    def register(self, account: str, secret: str, tidings_webhook_url: str) -> Account:
        acct = self.accounts.setdefault(account, Account(secret, tidings_webhook_url))
        acct.secret, acct.tidings_webhook_url = secret, tidings_webhook_url
        return acct

    async def post_to_tidings(self, account: str, payload: dict[str, Any]) -> int:
        """POST signed, retried on 5xx and unreachable; Tidings' status, or 0 if it never
        answered below 500."""
        acct = self.accounts[account]
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", **signing.sign_headers(acct.secret, body)}
        last = [0]

        def record(n: int, status: int, _detail: str) -> None:
            last[0] = status

        went = await self.webhooks.deliver(
            lambda n: (acct.tidings_webhook_url, body, headers),
            attempts=5,
            base_seconds=0.2,
            ok=lambda status: 0 < status < 500,
            on_attempt=record,
        )
        return last[0] if went else 0

    async def send_as_customer(
        self,
        account: str,
        user: str,
        text: str,
        name: str | None = None,
        phone: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        acct = self.accounts[account]
        mid = message_id or f"ext-{secrets.token_hex(8)}"
        sender: dict[str, Any] = {"id": user}
        if name:
            sender["name"] = name
        if phone:
            sender["phone"] = phone
        payload = {
            "messages": [{"id": mid, "from": sender, "text": text, "timestamp": int(time.time())}]
        }
        acct.thread.append(thread_entry(mid, "in", text, "sent", user=user))
        status = await self.post_to_tidings(account, payload)
        return {"id": mid, "status": status}

    async def _put_account(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        if not body.get("secret") or not body.get("tidings_webhook_url"):
            return control_error("secret and tidings_webhook_url are required")
        acct = self.register(
            request.path_params["account"], body["secret"], body["tidings_webhook_url"]
        )
        if "auto_statuses" in body:
            acct.auto_statuses = list(body["auto_statuses"])
        return JSONResponse({"ok": True})

    async def _inbound(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        if body.get("account") not in self.accounts:
            return control_error("unknown account", 404)
        if "from" not in body:
            return control_error("from is required")
        result = await self.send_as_customer(
            body["account"],
            str(body["from"]),
            str(body.get("text", "")),
            body.get("name"),
            body.get("phone"),
            body.get("id"),
        )
        return JSONResponse(result)

    def conversations(self, account: str, user: str | None) -> list[dict[str, Any]]:
        """Both directions, as the customer sees them (all customers when `user` is None)."""
        acct = self.accounts.get(account)
        return thread_of(acct.thread, user) if acct else []

    async def _receive(self, request: Request) -> JSONResponse:
        acct = self.accounts.get(request.path_params["account"])
        if acct is None:
            return control_error("unknown account", 404)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            signing.verify(acct.secret, headers, body)
        except SignatureError as exc:
            return JSONResponse({"error": exc.message}, status_code=401)
        msg = orjson.loads(body)["message"]
        key = headers.get("idempotency-key") or str(msg["id"])
        external_id = f"api-out-{msg['id']}"
        if key not in acct.seen_keys:
            acct.seen_keys.add(key)
            acct.received.append(msg)
            acct.thread.append(
                thread_entry(external_id, "out", msg.get("text"), "received", user=msg["to"])
            )
            if acct.auto_statuses:
                self.tasks.spawn(
                    self._statuses(request.path_params["account"], external_id), "api-statuses"
                )
        return JSONResponse({"id": external_id})

    async def _statuses(self, account: str, external_id: str) -> None:
        for status in self.accounts[account].auto_statuses:
            await asyncio.sleep(0.05)
            payload = {
                "statuses": [{"id": external_id, "status": status, "timestamp": int(time.time())}]
            }
            await self.post_to_tidings(account, payload)


class ApiBinding(UrlBinding[ApiClientSimulator, Any]):
    """The sandbox's API channels: those whose webhook URL points into this simulator."""

    kind: ClassVar[str] = "api"

    def _account(self, channel: ChannelInfo) -> str | None:
        url = str(getattr(channel.config, "webhook_url", "") or "")
        prefix = f"{self.base_url}/accounts/"
        if url.startswith(prefix) and url.endswith("/receive"):
            return url[len(prefix) : -len("/receive")]
        return None

    def owns(self, channel: ChannelInfo) -> bool:
        return self._account(channel) is not None

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        account = self._account(channel)
        assert account is not None
        self.sim.register(account, str(getattr(channel.config, "secret")), webhook_url)  # noqa: B009

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        account = self._account(channel)
        assert account is not None
        return await self.sim.send_as_customer(account, user, text, name)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversations(self._account(channel) or "", user)


SANDBOX = SandboxEntry(
    "api",
    lambda base: ApiClientSimulator(),
    ApiBinding,
    (
        DemoChannel(
            "api",
            "Website chat (API sandbox)",
            lambda base: {
                "secret": secrets.token_urlsafe(24),
                "webhook_url": f"{base}/accounts/demo-{secrets.token_hex(4)}/receive",
            },
        ),
    ),
)
