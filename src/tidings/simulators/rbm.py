"""A Google RCS Business Messaging simulator that speaks the real protocol
(docs/channels/rbm.md#protocol-facts).

Both of Google's roles towards Tidings:
- the RBM API: `POST /v1/phones/{msisdn}/agentMessages?messageId=&agentId=`,
  `POST /v1/phones/{msisdn}/agentEvents?eventId=&agentId=`,
  `GET /v1/phones/{msisdn}/capabilities?requestId=&agentId=`,
  `DELETE /v1/phones/{msisdn}/agentMessages/{messageId}?agentId=` (revoke), with bearer-token
  auth, Google's error shape `{"error": {"code", "message", "status"}}`, 404 NOT_FOUND for
  phones without RCS, duplicate messageIds ignored, offline phones queueing messages;
  and `POST /token`, a service-account token endpoint (JWT bearer grant, RS256 checked
  against the public key registered for the account);
- the webhook sender: Pub/Sub push envelopes with base64 `data`, signed with
  `X-Goog-Signature` = base64(HMAC-SHA512(clientToken, decoded data)), retried with backoff on
  non-2xx, duplicated on demand; DELIVERED and READ events after each delivered message; the
  clientToken/secret verification handshake on request.

Control API (JSON, under `/_sim/`):
- `PUT  /_sim/agents/{agent_id}` {client_token, webhook_url, access_token?,
  service_account_email?, public_key_pem?, auto_receipts?, max_attempts?, retry_base_seconds?}
- `POST /_sim/verify` {agent_id} — run the webhook verification handshake
- `POST /_sim/inbound` {agent_id, from, text? | suggestion{text, postback_data} |
  location{latitude, longitude} | file{mime_type, file_name} | other{...}, message_id?,
  duplicates?} — `message_id` of an earlier message re-publishes it (a Pub/Sub redelivery)
- `POST /_sim/typing` {agent_id, from} — an IS_TYPING event
- `POST /_sim/event` {agent_id, from, event_type: IS_TYPING | SUBSCRIBE | UNSUBSCRIBE}
- `PUT  /_sim/phones/{msisdn}` {rcs_enabled?, online?, features?}
- `POST /_sim/fail` {agent_id, method, code, status, message?, retry_after?, times?}
- `GET  /_sim/sent?agent_id=` · `GET /_sim/conversations?agent_id=&user=` ·
  `GET /_sim/deliveries?agent_id=`
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.google_common import signature
from tidings.channels.rbm import RbmConfig
from tidings.domain.phones import to_e164
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    DemoChannel,
    Failure,
    Outbox,
    SandboxEntry,
    SimulatorBase,
    UrlBinding,
    answering,
    control_error,
    control_routes,
    injected,
    list_handler,
    read_json,
    refusing_bad_input,
    set_status,
    thread_entry,
    thread_route,
)

log = logging.getLogger(__name__)

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CONTENT = ("text", "richCard", "contentInfo", "uploadedRbmFile")
_ACTIONS = (
    "openUrlAction",
    "dialAction",
    "viewLocationAction",
    "createCalendarEventAction",
    "shareLocationAction",
)
DEFAULT_FEATURES = [
    "RICHCARD_STANDALONE",
    "RICHCARD_CAROUSEL",
    "ACTION_CREATE_CALENDAR_EVENT",
    "ACTION_DIAL",
    "ACTION_OPEN_URL",
    "ACTION_SHARE_LOCATION",
    "ACTION_VIEW_LOCATION",
]
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleError(Exception):
    def __init__(self, code: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": _STATUS.get(self.code, "UNKNOWN"),
            }
        }
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else None
        return JSONResponse(body, status_code=self.code, headers=headers)


def _invalid(message: str) -> GoogleError:
    return GoogleError(400, message)


def now() -> str:
    """The time as Google's APIs write it (RFC 3339, microseconds, `Z`)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Phone:
    msisdn: str
    rcs_enabled: bool = True
    online: bool = True
    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    # Agent messages waiting for the phone to come online, per agent.
    queued: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Agent:
    agent_id: str
    client_token: str
    webhook_url: str
    access_tokens: set[str] = field(default_factory=set)
    service_account_email: str | None = None
    public_key_pem: str | None = None
    auto_receipts: list[str] = field(default_factory=lambda: ["DELIVERED", "READ"])
    max_attempts: int = 5
    retry_base_seconds: float = 0.1
    calls: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    message_ids: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    # Pub/Sub pushes waiting to go, one at a time in order (`RbmSimulator._outbox`).
    outbox: Outbox[dict[str, Any]] | None = None


_google = answering(GoogleError, answer=GoogleError.response)


class GoogleSimulator(SimulatorBase):
    """What the RBM and the legacy GBM simulator share: the agents (client token, webhook,
    bearer tokens), signed webhook pushes with retries, the verification handshake."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.agents: dict[str, Agent] = {}

    def register_agent(
        self, agent_id: str, client_token: str, webhook_url: str, **knobs: Any
    ) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = Agent(agent_id, client_token, webhook_url)
            self.agents[agent_id] = agent
        agent.client_token, agent.webhook_url = client_token, webhook_url
        token = knobs.pop("access_token", None)
        if token:
            agent.access_tokens.add(str(token))
        for name, value in knobs.items():
            if value is not None and hasattr(agent, name):
                setattr(agent, name, value)
        return agent

    def bearer(self, request: Request) -> Agent | None:
        """The agent whose access token the request's bearer header carries."""
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        return next((a for a in self.agents.values() if token and token in a.access_tokens), None)

    async def push(self, agent: Agent, body: bytes, signature: str, label: Any) -> None:
        """POST one signed push to the agent's webhook, retried with backoff until a 2xx."""
        headers = {"Content-Type": "application/json", "X-Goog-Signature": signature}

        def record(n: int, status: int, _detail: str) -> None:
            agent.deliveries.append({"id": label, "attempt": n, "status": status})

        # Google retries with backoff for up to 7 days
        # (docs/channels/rbm.md#retries-and-dedupe); compressed here.
        went = await self.webhooks.deliver(
            lambda n: (agent.webhook_url, body, headers),
            attempts=agent.max_attempts,
            base_seconds=agent.retry_base_seconds,
            on_attempt=record,
        )
        if not went:
            log.info("google simulator gave up on push %s", label)

    async def _control(self, request: Request) -> tuple[Agent, dict[str, Any]]:
        body = await read_json(request)
        agent = self.agents.get(str(body.get("agent_id") or ""))
        if agent is None:
            raise LookupError("unknown agent_id; PUT /_sim/agents/{agent_id} first")
        return agent, body

    @refusing_bad_input
    async def _verify(self, request: Request) -> Response:
        """Google's webhook verification (RBM, and GBM before it): POST the clientToken and a
        secret; the endpoint is verified when it answers 200 with the secret as its body."""
        agent, _ = await self._control(request)
        secret = secrets.token_hex(12)
        resp = await self.webhooks.http.post(
            agent.webhook_url, json={"clientToken": agent.client_token, "secret": secret}
        )
        verified = resp.status_code == 200 and resp.text == secret
        return JSONResponse({"status": resp.status_code, "verified": verified})


class RbmSimulator(GoogleSimulator):
    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.phones: dict[str, Phone] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/phones/{msisdn}/agentMessages", self._agent_message, methods=["POST"]),
                Route(
                    "/v1/phones/{msisdn}/agentMessages/{message_id}",
                    self._revoke,
                    methods=["DELETE"],
                ),
                Route("/v1/phones/{msisdn}/agentEvents", self._agent_event, methods=["POST"]),
                Route("/v1/phones/{msisdn}/capabilities", self._capabilities, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
                *control_routes(
                    {
                        "agents/{agent_id}": (self._put_agent, ["PUT"]),
                        "verify": (self._verify, ["POST"]),
                        "inbound": (self._inbound, ["POST"]),
                        "typing": (self._typing, ["POST"]),
                        "event": (self._user_event, ["POST"]),
                        "phones/{msisdn}": (self._put_phone, ["PUT"]),
                        "fail": (self._fail, ["POST"]),
                        "sent": (list_handler(self.agents, "agent_id", "calls"), ["GET"]),
                        "conversations": (thread_route(self.conversation, "agent_id"), ["GET"]),
                        "deliveries": (
                            list_handler(self.agents, "agent_id", "deliveries"),
                            ["GET"],
                        ),
                    }
                ),
            ]
        )

    # ---------------------------------------------------------------------------------------
    # State (also used in-process by the sandbox binding)

    def phone(self, msisdn: str) -> Phone:
        found = self.phones.get(msisdn)
        if found is None:
            found = self.phones[msisdn] = Phone(msisdn)
        return found

    def thread(self, agent: Agent, msisdn: str) -> list[dict[str, Any]]:
        return agent.threads.setdefault(msisdn, [])

    def publish(
        self, agent: Agent, data: dict[str, Any], duplicates: int = 0, **attrs: str
    ) -> None:
        """Queue one Pub/Sub push (plus identical redeliveries) to the agent's webhook."""
        raw = orjson.dumps(data)
        envelope = {
            "message": {
                "attributes": attrs,
                "data": base64.b64encode(raw).decode(),
                "messageId": str(secrets.randbelow(10**16)),
                "publishTime": now(),
            },
            "subscription": f"projects/rbm-{agent.agent_id.split('@')[0]}/subscriptions/rbm-agent",
        }
        item = {
            "body": orjson.dumps(envelope),
            "signature": signature(agent.client_token, raw),
            "data": data,
        }
        self._outbox(agent).put(self.tasks, *[item] * (1 + max(0, duplicates)))

    def _outbox(self, agent: Agent) -> Outbox[dict[str, Any]]:
        if agent.outbox is None:
            # One push per request.
            agent.outbox = Outbox(
                lambda head: self._deliver(agent, head[0]),
                lambda: bool(agent.webhook_url),
                f"rbm-sim-{agent.agent_id}",
            )
        return agent.outbox

    async def _deliver(self, agent: Agent, item: dict[str, Any]) -> None:
        label = item["data"].get("eventId") or item["data"].get("messageId")
        await self.push(agent, item["body"], item["signature"], label)

    def user_message(self, agent: Agent, msisdn: str, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "senderPhoneNumber": msisdn,
            "messageId": str(body.get("message_id") or f"MsSim{secrets.token_hex(10)}"),
            "sendTime": now(),
            "agentId": agent.agent_id,
        }
        shown: str
        if isinstance(body.get("text"), str) and body["text"]:
            data["text"] = shown = body["text"]
        elif isinstance(body.get("suggestion"), dict):
            s = body["suggestion"]
            data["suggestionResponse"] = {
                "postbackData": str(s.get("postback_data") or s.get("text") or ""),
                "text": str(s.get("text") or ""),
                "type": str(s.get("type") or "REPLY"),
            }
            shown = str(s.get("text") or "")
        elif isinstance(body.get("location"), dict):
            loc = body["location"]
            data["location"] = {
                "latitude": float(loc["latitude"]),
                "longitude": float(loc["longitude"]),
            }
            shown = "[location]"
        elif isinstance(body.get("file"), dict):
            f = body["file"]
            name = str(f.get("file_name") or "photo.jpg")
            data["userFile"] = {
                "payload": {
                    "mimeType": str(f.get("mime_type") or "image/jpeg"),
                    "fileSizeBytes": int(f.get("size") or 12345),
                    "fileUri": f"https://rcs-user-content.example/{secrets.token_hex(8)}/{name}",
                    "fileName": name,
                }
            }
            shown = f"[file {name}]"
        elif isinstance(body.get("other"), dict) and body["other"]:
            # Content of a kind Tidings does not know (a newer RBM payload type).
            reserved = set(data)
            data.update({str(k): v for k, v in body["other"].items() if k not in reserved})
            shown = "[unsupported]"
        else:
            raise ValueError("give text, suggestion, location, file or other")
        self.thread(agent, msisdn).append(thread_entry(data["messageId"], "in", shown, "sent"))
        return data

    def _receipts(self, agent: Agent, msisdn: str, message_id: str) -> None:
        set_status(self.thread(agent, msisdn), message_id, "delivered")
        for event_type in agent.auto_receipts:
            self.publish(agent, _event_data(agent, msisdn, event_type, messageId=message_id))

    # ---------------------------------------------------------------------------------------
    # The RBM API

    def _auth(self, request: Request, method: str) -> tuple[Agent, str]:
        owner = self.bearer(request)
        if owner is None:
            raise GoogleError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        agent_id = request.query_params.get("agentId", "")
        if not agent_id:
            raise _invalid("agentId is required")
        if agent_id != owner.agent_id:
            raise GoogleError(403, "The caller does not have permission")
        msisdn = request.path_params["msisdn"]
        if not _E164.match(msisdn):
            raise _invalid(f"Invalid phone number: {msisdn}")
        if method != "agentMessages":
            _injected(owner, method)
        return owner, msisdn

    async def _json(self, request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise _invalid("Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received.")
        return body

    async def _agent_message(self, request: Request) -> Response:
        record: dict[str, Any] = {}
        try:
            agent, msisdn = self._auth(request, "agentMessages")
            body = await self._json(request)
            message_id = request.query_params.get("messageId", "")
            record |= {
                "method": "agentMessages",
                "msisdn": msisdn,
                "message_id": message_id,
                "body": body,
            }
            agent.calls.append(record)
            _injected(agent, "agentMessages")
            if not message_id:
                raise _invalid("messageId is required")
            _check_agent_message(body)
            phone = self.phone(msisdn)
            if not phone.rcs_enabled:
                raise GoogleError(404, "Requested entity was not found.")
        except GoogleError as exc:
            if record:
                record["error"] = exc.code
            return exc.response()
        result = {**body, "name": f"phones/{msisdn}/agentMessages/{message_id}", "sendTime": now()}
        if message_id in agent.message_ids:
            # A reused messageId is ignored (docs/channels/rbm.md#sending-and-agent-events): no
            # second delivery.
            record["duplicate"] = True
            return JSONResponse(result)
        agent.message_ids.add(message_id)
        content = body["contentMessage"]
        shown = content.get("text") or (
            f"[file {content['contentInfo'].get('fileUrl')}]"
            if "contentInfo" in content
            else "[rich card]"
        )
        self.thread(agent, msisdn).append(
            thread_entry(
                message_id,
                "out",
                shown,
                "sent",
                suggestions=[
                    (s.get("reply") or s.get("action") or {}).get("text")
                    for s in content.get("suggestions", [])
                ],
            )
        )
        if phone.online:
            self._later(agent, msisdn, message_id)
        else:
            phone.queued.append((agent.agent_id, {"message_id": message_id}))
        return JSONResponse(result)

    def _later(self, agent: Agent, msisdn: str, message_id: str) -> None:
        async def run() -> None:
            # Let the send's HTTP answer reach the caller before the receipts do.
            await asyncio.sleep(0.05)
            self._receipts(agent, msisdn, message_id)

        self.tasks.spawn(run(), "rbm-receipts")

    @_google
    async def _revoke(self, request: Request) -> Response:
        agent, msisdn = self._auth(request, "revoke")
        message_id = request.path_params["message_id"]
        phone = self.phone(msisdn)
        waiting = [
            q for q in phone.queued if q[0] == agent.agent_id and q[1]["message_id"] == message_id
        ]
        agent.calls.append({"method": "revoke", "msisdn": msisdn, "message_id": message_id})
        if not waiting:
            # Already delivered (or unknown): it can no longer be revoked.
            return GoogleError(404, "Requested entity was not found.").response()
        phone.queued.remove(waiting[0])
        set_status(self.thread(agent, msisdn), message_id, "revoked")
        return JSONResponse({})

    @_google
    async def _agent_event(self, request: Request) -> Response:
        agent, msisdn = self._auth(request, "agentEvents")
        body = await self._json(request)
        event_id = request.query_params.get("eventId", "")
        agent.calls.append(
            {"method": "agentEvents", "msisdn": msisdn, "event_id": event_id, "body": body}
        )
        if not event_id:
            raise _invalid("eventId is required")
        event_type = body.get("eventType")
        if event_type not in ("READ", "IS_TYPING"):
            raise _invalid(f"Invalid value at 'agent_event.event_type' ({event_type!r})")
        if event_type == "READ" and not body.get("messageId"):
            raise _invalid("messageId is required for READ events")
        if not self.phone(msisdn).rcs_enabled:
            raise GoogleError(404, "Requested entity was not found.")
        return JSONResponse(
            {**body, "name": f"phones/{msisdn}/agentEvents/{event_id}", "sendTime": now()}
        )

    @_google
    async def _capabilities(self, request: Request) -> Response:
        agent, msisdn = self._auth(request, "capabilities")
        agent.calls.append({"method": "capabilities", "msisdn": msisdn})
        if not request.query_params.get("requestId"):
            raise _invalid("requestId is required")
        phone = self.phone(msisdn)
        if not phone.rcs_enabled:
            raise GoogleError(404, "Requested entity was not found.")
        return JSONResponse({"features": phone.features})

    async def _token(self, request: Request) -> Response:
        """Google's OAuth token endpoint for the JWT bearer grant, checking the RS256 signature."""
        form = await request.form()

        def refuse(error: str, description: str) -> JSONResponse:
            return JSONResponse({"error": error, "error_description": description}, status_code=400)

        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return refuse("unsupported_grant_type", "Invalid grant_type")
        assertion = str(form.get("assertion") or "")
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = orjson.loads(_unb64(head_b64))
            claims = orjson.loads(_unb64(claims_b64))
            signature = _unb64(sig_b64)
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            return refuse("invalid_grant", "Invalid JWT")
        agent = next(
            (
                a
                for a in self.agents.values()
                if a.service_account_email and a.service_account_email == claims.get("iss")
            ),
            None,
        )
        if header.get("alg") != "RS256" or agent is None or not agent.public_key_pem:
            return refuse("invalid_grant", "Invalid JWT Signature.")
        public = serialization.load_pem_public_key(agent.public_key_pem.encode())
        assert isinstance(public, rsa.RSAPublicKey)
        try:
            public.verify(
                signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return refuse("invalid_grant", "Invalid JWT Signature.")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            return refuse("invalid_grant", "Invalid JWT: Token must be a short-lived token")
        token = f"ya29.sim-{secrets.token_urlsafe(24)}"
        agent.access_tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # ---------------------------------------------------------------------------------------
    # Control API

    async def _put_agent(self, request: Request) -> JSONResponse:
        body = await read_json(request)
        if not body.get("client_token") or not body.get("webhook_url"):
            return control_error("client_token and webhook_url are required")
        knobs = {
            k: body.get(k)
            for k in (
                "access_token",
                "service_account_email",
                "public_key_pem",
                "auto_receipts",
                "max_attempts",
                "retry_base_seconds",
            )
        }
        agent = self.register_agent(
            request.path_params["agent_id"], body["client_token"], body["webhook_url"], **knobs
        )
        return JSONResponse({"agent_id": agent.agent_id})

    def msisdn(self, raw: Any) -> str:
        text = str(raw or "")
        e164 = to_e164(text) or ("+" + "".join(c for c in text if c.isdigit()))
        if not _E164.match(e164):
            raise ValueError(f"not a phone number: {text!r}")
        return e164

    @refusing_bad_input
    async def _inbound(self, request: Request) -> Response:
        agent, body = await self._control(request)
        msisdn = self.msisdn(body.get("from"))
        data = self.user_message(agent, msisdn, body)
        self.phone(msisdn)
        self.publish(agent, data, int(body.get("duplicates") or 0))
        return JSONResponse({"messageId": data["messageId"]})

    @refusing_bad_input
    async def _typing(self, request: Request) -> Response:
        return await self._phone_event(request, "IS_TYPING")

    @refusing_bad_input
    async def _user_event(self, request: Request) -> Response:
        return await self._phone_event(request, None)

    async def _phone_event(self, request: Request, fixed: str | None) -> Response:
        """A user event the customer's phone sends: `event_type` from the body, or `fixed`."""
        agent, body = await self._control(request)
        msisdn = self.msisdn(body.get("from"))
        event_type = fixed or str(body.get("event_type") or "")
        if event_type not in ("IS_TYPING", "SUBSCRIBE", "UNSUBSCRIBE"):
            raise ValueError("event_type: IS_TYPING, SUBSCRIBE or UNSUBSCRIBE")
        event = _event_data(agent, msisdn, event_type)
        self.publish(agent, event)
        return JSONResponse({"eventId": event["eventId"]})

    @refusing_bad_input
    async def _put_phone(self, request: Request) -> Response:
        body = await read_json(request)
        phone = self.phone(self.msisdn(request.path_params["msisdn"]))
        if "rcs_enabled" in body:
            phone.rcs_enabled = bool(body["rcs_enabled"])
        if isinstance(body.get("features"), list):
            phone.features = [str(f) for f in body["features"]]
        if "online" in body:
            phone.online = bool(body["online"])
            if phone.online:
                # Coming online: the phone receives what was queued for it.
                queued, phone.queued = phone.queued, []
                for agent_id, item in queued:
                    if agent_id in self.agents:
                        self._receipts(self.agents[agent_id], phone.msisdn, item["message_id"])
        return JSONResponse(
            {"msisdn": phone.msisdn, "rcs_enabled": phone.rcs_enabled, "online": phone.online}
        )

    @refusing_bad_input
    async def _fail(self, request: Request) -> Response:
        agent, body = await self._control(request)
        code = int(body["code"])
        agent.failures.append(
            Failure(
                str(body.get("method") or "agentMessages"),
                code,
                str(body.get("message") or _STATUS.get(code, "error")),
                int(body["retry_after"]) if body.get("retry_after") is not None else None,
                int(body.get("times") or 1),
            )
        )
        return JSONResponse({"ok": True})

    def conversation(self, agent_id: str, user: Any) -> list[dict[str, Any]]:
        """One phone's thread with the agent ([] for an unknown agent or a non-number)."""
        agent = self.agents.get(agent_id)
        try:
            msisdn = self.msisdn(user)
        except ValueError:
            return []
        return list(agent.threads.get(msisdn, [])) if agent else []


def _event_data(agent: Agent, msisdn: str, event_type: str, **more: str) -> dict[str, Any]:
    """A user event (a receipt of `more["messageId"]`, typing, subscription) as Pub/Sub carries
    it to the agent's webhook."""
    return {
        "senderPhoneNumber": msisdn,
        "eventType": event_type,
        "eventId": f"Ev{secrets.token_hex(10)}",
        **more,
        "sendTime": now(),
        "agentId": agent.agent_id,
    }


def _injected(agent: Agent, method: str) -> None:
    if f := injected(agent.failures, method):
        raise GoogleError(f.code, f.message or "", f.retry_after)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_agent_message(body: dict[str, Any]) -> None:
    content = body.get("contentMessage")
    if not isinstance(content, dict):
        raise _invalid("AgentMessage.contentMessage is required")
    present = [k for k in _CONTENT if k in content]
    if len(present) != 1:
        raise _invalid(
            "AgentContentMessage must have exactly one of text, richCard, contentInfo, "
            f"uploadedRbmFile (got {present or 'none'})"
        )
    if "text" in content and (not isinstance(content["text"], str) or not content["text"]):
        raise _invalid("AgentContentMessage.text must be a non-empty string")
    if "contentInfo" in content:
        url = (
            (content["contentInfo"] or {}).get("fileUrl")
            if isinstance(content["contentInfo"], dict)
            else None
        )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("contentInfo.fileUrl must be a public http(s) URL")
    chips = content.get("suggestions", [])
    if not isinstance(chips, list):
        raise _invalid("suggestions must be a list")
    for index, chip in enumerate(chips):
        kinds = [k for k in ("reply", "action") if isinstance(chip, dict) and k in chip]
        if len(kinds) != 1:
            raise _invalid(f"suggestions[{index}] must have exactly one of reply, action")
        inner = chip[kinds[0]]
        if not isinstance(inner, dict) or not inner.get("text") or not inner.get("postbackData"):
            raise _invalid(f"suggestions[{index}].{kinds[0]} needs text and postbackData")
        if kinds[0] == "action" and sum(1 for a in _ACTIONS if a in inner) != 1:
            raise _invalid(f"suggestions[{index}].action needs exactly one action type")


class RbmBinding(UrlBinding[RbmSimulator, RbmConfig]):
    """Connects sandbox RBM channels to the simulator (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "rbm"
    config_type = RbmConfig

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        config = self.config(channel)
        knobs: dict[str, Any] = {"access_token": config.access_token}
        if config.service_account_json:
            key = orjson.loads(config.service_account_json)
            private = serialization.load_pem_private_key(key["private_key"].encode(), None)
            knobs["service_account_email"] = key["client_email"]
            knobs["public_key_pem"] = (
                private.public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                .decode()
            )
        self.sim.register_agent(config.agent_id, config.webhook_client_token, webhook_url, **knobs)

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        agent = self.sim.agents[self.config(channel).agent_id]
        msisdn = self.sim.msisdn(user)
        data = self.sim.user_message(agent, msisdn, {"text": text})
        self.sim.publish(agent, data)
        return {"messageId": data["messageId"]}

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        return self.sim.conversation(self.config(channel).agent_id, user)


SANDBOX = SandboxEntry(
    "rbm",
    lambda base: RbmSimulator(),
    RbmBinding,
    (
        DemoChannel(
            "rbm",
            "RCS Business Messaging (sandbox)",
            lambda base: {
                "agent_id": f"tidings-demo-{secrets.token_hex(3)}@rbm.goog",
                "webhook_client_token": secrets.token_urlsafe(24),
                "access_token": f"ya29.sandbox-{secrets.token_urlsafe(24)}",
                "api_base_url": base,
            },
        ),
    ),
)
