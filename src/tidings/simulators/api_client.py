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
import logging
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
from tidings.simulators.kit import DemoChannel, SandboxEntry

log = logging.getLogger(__name__)


@dataclass
class Account:
    secret: str
    tidings_webhook_url: str
    auto_statuses: list[str] = field(default_factory=lambda: ["delivered", "read"])
    thread: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    # Replies already seen, by Tidings' Idempotency-Key: a retried POST is not a second reply.
    seen_keys: set[str] = field(default_factory=set)


class ApiClientSimulator:
    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self.accounts: dict[str, Account] = {}
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = Starlette(
            routes=[
                Route("/_sim/accounts/{account}", self._put_account, methods=["PUT"]),
                Route("/_sim/inbound", self._inbound, methods=["POST"]),
                Route("/_sim/conversations", self._conversations, methods=["GET"]),
                Route("/_sim/received", self._received, methods=["GET"]),
                Route("/accounts/{account}/receive", self._receive, methods=["POST"]),
            ]
        )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    def register(self, account: str, secret: str, tidings_webhook_url: str) -> None:
        existing = self.accounts.get(account)
        if existing is None:
            self.accounts[account] = Account(secret, tidings_webhook_url)
        else:
            existing.secret, existing.tidings_webhook_url = secret, tidings_webhook_url

    async def post_to_tidings(self, account: str, payload: dict[str, Any]) -> int:
        acct = self.accounts[account]
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", **signing.sign_headers(acct.secret, body)}
        for attempt in range(5):
            try:
                resp = await self._http.post(
                    acct.tidings_webhook_url, content=body, headers=headers
                )
                if resp.status_code < 500:
                    return resp.status_code
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2 * 2**attempt)
        return 0

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
        acct.thread.append(
            {
                "id": mid,
                "user": user,
                "direction": "in",
                "text": text,
                "status": "sent",
                "at": time.time(),
            }
        )
        status = await self.post_to_tidings(account, payload)
        return {"id": mid, "status": status}

    async def _put_account(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.register(request.path_params["account"], body["secret"], body["tidings_webhook_url"])
        if "auto_statuses" in body:
            self.accounts[request.path_params["account"]].auto_statuses = list(
                body["auto_statuses"]
            )
        return JSONResponse({"ok": True})

    async def _inbound(self, request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("account") not in self.accounts:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        result = await self.send_as_customer(
            body["account"],
            str(body["from"]),
            str(body.get("text", "")),
            body.get("name"),
            body.get("phone"),
            body.get("id"),
        )
        return JSONResponse(result)

    async def _conversations(self, request: Request) -> JSONResponse:
        acct = self.accounts.get(request.query_params.get("account", ""))
        user = request.query_params.get("user")
        if acct is None:
            return JSONResponse([])
        return JSONResponse([m for m in acct.thread if user is None or m["user"] == user])

    async def _received(self, request: Request) -> JSONResponse:
        acct = self.accounts.get(request.query_params.get("account", ""))
        return JSONResponse(acct.received if acct else [])

    async def _receive(self, request: Request) -> JSONResponse:
        acct = self.accounts.get(request.path_params["account"])
        if acct is None:
            return JSONResponse({"error": "unknown account"}, status_code=404)
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
                {
                    "id": external_id,
                    "user": msg["to"],
                    "direction": "out",
                    "text": msg.get("text"),
                    "status": "received",
                    "at": time.time(),
                }
            )
            if acct.auto_statuses:
                task = asyncio.create_task(
                    self._statuses(request.path_params["account"], external_id)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return JSONResponse({"id": external_id})

    async def _statuses(self, account: str, external_id: str) -> None:
        for status in self.accounts[account].auto_statuses:
            await asyncio.sleep(0.05)
            payload = {
                "statuses": [{"id": external_id, "status": status, "timestamp": int(time.time())}]
            }
            try:
                await self.post_to_tidings(account, payload)
            except Exception:
                log.exception("api simulator could not post a status")


class ApiBinding:
    kind: ClassVar[str] = "api"

    def __init__(self, base_url: str, sim: ApiClientSimulator) -> None:
        self.base_url = base_url
        self.sim = sim

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
        account = self._account(channel)
        acct = self.sim.accounts.get(account or "")
        return [m for m in acct.thread if m["user"] == user] if acct else []


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
