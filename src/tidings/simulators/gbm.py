"""A small simulator of the retired Google Business Messages API
(docs/channels/gbm.md#protocol-facts), kept so the legacy adapter stays tested. Google shut the
product down on 2024-07-31; new work targets RBM (`simulators.rbm`).

- `POST /v1/conversations/{conversationId}/messages` (bearer auth, Google's error shape,
  reused messageIds ignored, 404 for unknown conversations), answered with the message's
  `name`, then DELIVERED and READ receipts pushed to the webhook;
- webhook pushes signed with `X-Goog-Signature` = base64(HMAC-SHA512(clientToken, raw body)),
  retried on non-2xx, duplicated on demand; the clientToken/secret verification handshake.

Control API: `PUT /_sim/agents/{agent_id}` {client_token, webhook_url, access_token},
`POST /_sim/verify` {agent_id}, `POST /_sim/inbound` {agent_id, conversation_id?, name?, text |
other{...}, duplicates?} (or {agent_id, message_id} to push an earlier request again),
`GET /_sim/sent?agent_id=`, `GET /_sim/conversations?agent_id=&user=`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any, ClassVar

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.gbm import GbmConfig
from tidings.channels.google_common import signature
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    SandboxEntry,
    UrlBinding,
    control_error,
    control_routes,
    list_handler,
    read_json,
    refusing_bad_input,
    thread_entry,
    thread_route,
)
from tidings.simulators.rbm import Agent, GoogleError, GoogleSimulator, now


def _error(code: int, message: str) -> JSONResponse:
    # Google's error shape, as RBM answers it (docs/channels/gbm.md#sending).
    return GoogleError(code, message).response()


class GbmSimulator(GoogleSimulator):
    """GBM agents are RBM's (`rbm.Agent`: client token, webhook, bearer tokens, calls, threads
    by conversation id, messageIds seen)."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        # conversationId -> agent_id
        self.conversations: dict[str, str] = {}
        # What was pushed, by (agent_id, messageId), so a retry can send the identical
        # request again.
        self.pushed: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/conversations/{cid}/messages", self._send, methods=["POST"]),
                *control_routes(
                    {
                        "agents/{agent_id}": (self._put_agent, ["PUT"]),
                        "verify": (self._verify, ["POST"]),
                        "inbound": (self._inbound, ["POST"]),
                        "sent": (list_handler(self.agents, "agent_id", "calls"), ["GET"]),
                        "conversations": (thread_route(self.conversation, "agent_id"), ["GET"]),
                    }
                ),
            ]
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.spawn(coro, "gbm-push")

    async def push_doc(self, agent: Agent, doc: dict[str, Any], duplicates: int = 0) -> None:
        """Push a document signed over its raw body; one at a time, in order, like a single
        webhook queue."""
        body = orjson.dumps(doc)
        async with self._lock:
            for _ in range(1 + duplicates):
                await self.push(agent, body, signature(agent.client_token, body), doc["requestId"])

    def user_message(self, agent: Agent, cid: str, name: str, text: str) -> dict[str, Any]:
        self.conversations[cid] = agent.agent_id
        mid = f"MSG-{secrets.token_hex(8)}"
        agent.threads.setdefault(cid, []).append(thread_entry(mid, "in", text, "sent"))
        return {
            "agent": f"brands/sandbox/agents/{agent.agent_id}",
            "conversationId": cid,
            "customAgentId": "",
            "requestId": f"REQ-{secrets.token_hex(8)}",
            "context": {"userInfo": {"displayName": name, "userDeviceLocale": "en-US"}},
            "message": {
                "messageId": mid,
                "name": f"conversations/{cid}/messages/{mid}",
                "text": text,
                "createTime": now(),
            },
            "sendTime": now(),
        }

    async def _send(self, request: Request) -> Response:
        cid = request.path_params["cid"]
        agent = self.bearer(request)
        if agent is None:
            return _error(401, "Request had invalid authentication credentials.")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "Invalid JSON payload received.")
        record: dict[str, Any] = {"conversation_id": cid, "body": body}
        agent.calls.append(record)
        if self.conversations.get(cid) != agent.agent_id:
            record["error"] = 404
            return _error(404, "Requested entity was not found.")
        if not isinstance(body, dict) or not body.get("messageId"):
            record["error"] = 400
            return _error(400, "messageId is required")
        rep = body.get("representative")
        if not isinstance(rep, dict) or rep.get("representativeType") not in ("BOT", "HUMAN"):
            record["error"] = 400
            return _error(400, "representative.representativeType is required")
        if sum(1 for k in ("text", "image", "richCard") if k in body) != 1:
            record["error"] = 400
            return _error(400, "exactly one of text, image, richCard")
        mid = str(body["messageId"])
        name = f"conversations/{cid}/messages/{mid}"
        if mid not in agent.message_ids:
            # A reused messageId is ignored (docs/channels/gbm.md#sending).
            agent.message_ids.add(mid)
            agent.threads.setdefault(cid, []).append(
                thread_entry(mid, "out", body.get("text") or "[image]", "read")
            )
            for receipt in ("DELIVERED", "READ"):
                self.spawn(
                    self.push_doc(
                        agent,
                        {
                            "conversationId": cid,
                            "requestId": f"REQ-{secrets.token_hex(8)}",
                            "agent": f"brands/sandbox/agents/{agent.agent_id}",
                            "receipts": {
                                "receipts": [{"message": name, "receiptType": receipt}],
                                "createTime": now(),
                            },
                            "sendTime": now(),
                        },
                    )
                )
        return JSONResponse({**body, "name": name})

    async def _put_agent(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        try:
            agent = self.register_agent(
                request.path_params["agent_id"],
                str(body["client_token"]),
                str(body["webhook_url"]),
                access_token=str(body["access_token"]),
            )
        except KeyError as exc:
            return control_error(f"{exc} is required")
        return JSONResponse({"agent_id": agent.agent_id})

    @refusing_bad_input
    async def _inbound(self, request: Request) -> Response:
        agent, body = await self._control(request)
        again = self.pushed.get((agent.agent_id, str(body.get("message_id") or "")))
        if again is not None:
            # Google retrying a request: the identical body, same requestId
            # (docs/channels/gbm.md#webhook).
            self.spawn(self.push_doc(agent, again))
            return JSONResponse(
                {
                    "conversationId": again["conversationId"],
                    "requestId": again["requestId"],
                    "messageId": again["message"]["messageId"],
                }
            )
        other = body.get("other")
        if isinstance(other, dict) and other:
            text = None
        elif isinstance(body.get("text"), str) and body["text"]:
            text = body["text"]
        else:
            return control_error("agent_id and text (or other) are required")
        cid = str(body.get("conversation_id") or f"conv-{secrets.token_hex(6)}")
        doc = self.user_message(agent, cid, str(body.get("name") or "Customer"), text or "")
        if isinstance(other, dict) and text is None:
            # Content of a kind Tidings does not know: no text, another field instead.
            message = doc["message"]
            del message["text"]
            message.update({str(k): v for k, v in other.items() if k not in message})
        self.pushed[(agent.agent_id, doc["message"]["messageId"])] = doc
        self.spawn(self.push_doc(agent, doc, int(body.get("duplicates") or 0)))
        return JSONResponse(
            {
                "conversationId": cid,
                "requestId": doc["requestId"],
                "messageId": doc["message"]["messageId"],
            }
        )

    def conversation(self, agent_id: str, cid: str | None) -> list[dict[str, Any]]:
        agent = self.agents.get(agent_id)
        return list(agent.threads.get(cid or "", [])) if agent else []


class GbmBinding(UrlBinding[GbmSimulator, GbmConfig]):
    """Sandbox binding for legacy GBM channels; the phone page's "user" is the conversation id."""

    kind: ClassVar[str] = "gbm"
    config_type = GbmConfig

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c = self.config(channel)
        self.sim.register_agent(
            c.agent_id,
            c.webhook_client_token,
            webhook_url,
            access_token=c.access_token or "sandbox",
        )

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        agent = self.sim.agents[self.config(channel).agent_id]
        doc = self.sim.user_message(agent, user, name or user, text)
        self.sim.spawn(self.sim.push_doc(agent, doc))
        return {"conversationId": user, "requestId": doc["requestId"]}

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversation(self.config(channel).agent_id, user)


SANDBOX = SandboxEntry("gbm", lambda base: GbmSimulator(), GbmBinding)
