"""A Twilio Programmable Messaging simulator that speaks the real protocol
(docs/channels/twilio.md#protocol-facts).

Towards Tidings it plays both of Twilio's roles: the REST endpoint Tidings sends to
(`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, basic auth, form body, validated like
the real one, with the real message resource and error shapes), and the webhook sender that
calls Tidings (inbound SMS/MMS on the number's webhook, status callbacks on `StatusCallback`,
both form-encoded and signed with `X-Twilio-Signature` over the exact URL called, retried on
failure). It also does what Twilio does on its own for long codes
(docs/channels/twilio.md#opt-out-handling): STOP-family keywords block the (sender, recipient) pair
and are answered with a confirmation, so later sends get 21610 until START; HELP gets a help reply;
the keyword is still forwarded to the webhook.

Control routes (JSON) under `/_sim/`:
- `PUT /_sim/accounts/{account_sid}` {auth_token, webhook_url, numbers?, messaging_service_sid?}
- `GET /_sim/accounts`
- `POST /_sim/inbound` {from, text?, media?: [{url, content_type}], to?, account_sid?}
- `POST /_sim/status` {sid, status, error_code?}: push one status callback by hand
- `POST /_sim/fail` {code, mode: "sync"|"callback", status?, count?, to?, retry_after?}
- `GET /_sim/sent?account_sid=`: the send API requests received (form fields as sent)
- `GET /_sim/conversations?account_sid=&user=`: both directions, as the customer's phone sees
- `GET /_sim/optouts?account_sid=`, `GET /_sim/deliveries`, `POST /_sim/config`,
  `POST /_sim/flush`, `POST /_sim/reset`

Sandbox mode mounts `TwilioSimulator().app` under `/sandbox/twilio`. Mounted sub-apps get no
lifespan events, so the owner calls `await sim.aclose()` on shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.twilio.config import TwilioConfig
from tidings.channels.twilio.webhook import compute_signature
from tidings.domain.numbers import region_of
from tidings.domain.phones import to_e164
from tidings.policy import sms
from tidings.runtime import ChannelInfo
from tidings.simulators.kit import (
    DemoChannel,
    SandboxEntry,
    SimulatorBase,
    UrlBinding,
    answering,
    control_error,
    control_routes,
    read_json,
    set_status,
    thread_entry,
    thread_of,
    thread_route,
)

API_VERSION = "2010-04-01"
BODY_LIMIT = 1600  # characters (docs/channels/twilio.md#send-api; 21617 above)
MAX_MEDIA = 10

# Twilio's default keywords for long codes (docs/channels/sms.md#opt-out-keywords;
# current docs add REVOKE and OPTOUT).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Twilio does not publish its exact default reply texts
# (docs/channels/twilio.md#opt-out-handling); these read like Twilio's.
STOP_REPLY = (
    "You have successfully been unsubscribed. You will not receive any more messages from this "
    "number. Reply START to resubscribe."
)
START_REPLY = (
    "You have successfully been re-subscribed to messages from this number. Reply HELP for "
    "help. Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)
HELP_REPLY = "Reply STOP to unsubscribe. Msg&Data Rates May Apply."

# Error wording as Twilio's API returns it; codes in docs/channels/twilio.md#error-codes.
_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number: {to}.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio "
    "phone number for this destination.",
    21608: "The number {to} is unverified. Trial accounts cannot send messages to unverified "
    "numbers.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
    "number: {from_} via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21623: "Number of media files exceeds allowed limit.",
    21635: "'To' number cannot be a landline.",
    21705: "The Messaging Service Sid {service} is invalid.",
}
_HTTP_STATUS = {20003: 401, 20404: 404, 20429: 429}


class TwilioError(Exception):
    def __init__(self, code: int, **fmt: str) -> None:
        template = _MESSAGES.get(code, f"Error {code}")
        try:
            message = template.format(**fmt)
        except (KeyError, IndexError):
            message = template
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = _HTTP_STATUS.get(code, 400)
        self.retry_after: float | None = None

    def response(self) -> JSONResponse:
        # Twilio's JSON error shape (docs/channels/twilio.md#send-api).
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        headers = {"Retry-After": str(int(self.retry_after))} if self.retry_after else None
        return JSONResponse(body, status_code=self.status, headers=headers)


# --- knobs and control bodies ---------------------------------------------------------------


class _Body(BaseModel):
    """A control body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Knobs(_Body):
    auto_statuses: list[Literal["sent", "delivered"]] = ["sent", "delivered"]
    status_delay: float = Field(0.05, ge=0)
    # Twilio's own STOP/START/HELP handling for long codes (off = Advanced Opt-Out disabled).
    keyword_handling: bool = True
    # Twilio does not publish its webhook retry policy
    # (docs/channels/twilio.md#status-callbacks); retry on errors by default.
    retry_schedule: list[float] = [0.2, 0.5, 1.0, 2.0]
    delivery_timeout: float = Field(10.0, gt=0)


class AccountIn(_Body):
    auth_token: str = Field(min_length=1)
    webhook_url: str = Field(min_length=1)
    numbers: list[str] = []
    messaging_service_sid: str | None = None


class MediaIn(_Body):
    url: str = Field(min_length=1)
    content_type: str = "image/jpeg"


class InboundIn(_Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", min_length=1)
    # None sends no Body at all: what Twilio forwards for content Tidings cannot read as SMS
    # text (the contract suite's "unknown type").
    text: str | None = ""
    media: list[MediaIn] = []
    to: str | None = None
    account_sid: str | None = None
    sid: str | None = None
    name: str | None = None


class StatusIn(_Body):
    sid: str
    status: Literal["queued", "sending", "sent", "delivered", "undelivered", "failed", "read"]
    error_code: int | None = None


class FailIn(_Body):
    code: int
    mode: Literal["sync", "callback"] = "sync"
    status: Literal["undelivered", "failed"] = "undelivered"
    count: int = Field(1, ge=1, le=1000)
    to: str | None = None
    retry_after: float | None = None


# --- state ----------------------------------------------------------------------------------


@dataclass
class SimMessage:
    sid: str
    account_sid: str
    from_: str
    to: str
    body: str
    media: list[str]
    direction: str
    status: str
    messaging_service_sid: str | None
    status_callback: str | None
    created: datetime
    error_code: int | None = None

    def resource(self) -> dict[str, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        stamp = format_datetime(self.created)
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": stamp,
            "date_sent": stamp if self.status not in ("queued", "accepted") else None,
            "date_updated": stamp,
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media)),
            "num_segments": str(max(1, sms.analyse(self.body).segments)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "uri": f"{base}.json",
        }


@dataclass
class Account:
    sid: str
    auth_token: str
    webhook_url: str
    numbers: list[str]
    messaging_service_sid: str | None
    messages: dict[str, SimMessage] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    thread: list[dict[str, Any]] = field(default_factory=list)
    # (sender number or Messaging Service sid, recipient) pairs blocked by STOP
    # (docs/channels/twilio.md#opt-out-handling).
    blocked: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Failure:
    spec: FailIn
    left: int


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _keyword(text: str) -> str:
    # Single word, case-insensitive; "STOP PLEASE" is not a keyword
    # (docs/channels/sms.md#opt-out-keywords).
    return text.strip().upper()


_twilio = answering(TwilioError, answer=TwilioError.response)
# A control body that fails its model: 400 with the first error's message.
_validated = answering(
    ValidationError, answer=lambda exc: control_error(str(exc.errors()[0]["msg"]))
)


class TwilioSimulator(SimulatorBase):
    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(http)
        self.accounts: dict[str, Account] = {}
        self.knobs = Knobs()
        self.failures: deque[Failure] = deque()
        self.deliveries: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route(
                    f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json",
                    self._create_message,
                    methods=["POST"],
                ),
                Route(
                    f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{sid}}.json",
                    self._fetch_message,
                    methods=["GET"],
                ),
                *control_routes(
                    {
                        "accounts": (self._r_accounts, ["GET"]),
                        "accounts/{account_sid}": (self._r_put_account, ["PUT"]),
                        "inbound": (self._r_inbound, ["POST"]),
                        "status": (self._r_status, ["POST"]),
                        "fail": (self._r_fail, ["POST"]),
                        "sent": (self._r_sent, ["GET"]),
                        "conversations": (
                            thread_route(self.conversations, "account_sid"),
                            ["GET"],
                        ),
                        "optouts": (self._r_optouts, ["GET"]),
                        "deliveries": (self._r_deliveries, ["GET"]),
                        "config": (self._r_config, ["GET", "POST"]),
                        "flush": (self._r_flush, ["POST"]),
                        "reset": (self._r_reset, ["POST"]),
                    }
                ),
            ]
        )

    # --- accounts -----------------------------------------------------------------------------

    def register(self, account_sid: str, spec: AccountIn) -> Account:
        numbers = [n for n in spec.numbers if n]
        existing = self.accounts.get(account_sid)
        if existing is None:
            existing = Account(
                account_sid, spec.auth_token, spec.webhook_url, numbers, spec.messaging_service_sid
            )
            self.accounts[account_sid] = existing
        else:
            existing.auth_token, existing.webhook_url = spec.auth_token, spec.webhook_url
            existing.numbers = numbers or existing.numbers
            existing.messaging_service_sid = spec.messaging_service_sid
        return existing

    def _account_for_number(self, number: str | None, account_sid: str | None) -> Account:
        if account_sid is not None:
            acct = self.accounts.get(account_sid)
            if acct is None:
                raise LookupError(f"unknown account {account_sid}")
            return acct
        for acct in self.accounts.values():
            if number is None or number in acct.numbers:
                return acct
        raise LookupError(f"no account owns number {number}")

    # --- the REST API -------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Account:
        account = self.accounts.get(request.path_params["account_sid"])
        header = request.headers.get("authorization", "")
        if account is None or not header.lower().startswith("basic "):
            raise TwilioError(20003)
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise TwilioError(20003) from None
        if user != account.sid or not secrets.compare_digest(password, account.auth_token):
            raise TwilioError(20003)
        return account

    @_twilio
    async def _create_message(self, request: Request) -> Response:
        account = self._authenticate(request)
        raw = (await request.body()).decode("utf-8", errors="replace")
        params = parse_qsl(raw, keep_blank_values=True)
        message = self._validate_and_create(account, params)
        return JSONResponse(message.resource(), status_code=201)

    @_twilio
    async def _fetch_message(self, request: Request) -> Response:
        account = self._authenticate(request)
        message = account.messages.get(request.path_params["sid"])
        if message is None:
            return TwilioError(20404).response()
        return JSONResponse(message.resource())

    def _validate_and_create(self, account: Account, params: list[tuple[str, str]]) -> SimMessage:
        fields = dict(params)
        media = [v for k, v in params if k == "MediaUrl"]
        to = fields.get("To", "").strip()
        from_ = fields.get("From", "").strip()
        service = fields.get("MessagingServiceSid", "").strip() or None
        body = fields.get("Body", "")
        if not to:
            raise TwilioError(21604)
        if not from_ and not service:
            raise TwilioError(21603)
        if not body and not media:
            raise TwilioError(21602)
        if len(body) > BODY_LIMIT:
            raise TwilioError(21617)
        if len(media) > MAX_MEDIA:
            raise TwilioError(21623)
        if to_e164(to) != to:
            raise TwilioError(21211, to=to)
        if service is not None and service != account.messaging_service_sid:
            raise TwilioError(21705, service=service)
        if from_ and from_ not in account.numbers:
            raise TwilioError(21606, from_=from_)
        sender = from_ or (account.numbers[0] if account.numbers else "")
        if (service or sender, to) in account.blocked:
            raise TwilioError(21610)
        failure = self._take_failure(to)
        if failure is not None and failure.mode == "sync":
            err = TwilioError(failure.code, to=to, from_=sender, service=service or "")
            err.retry_after = failure.retry_after
            raise err
        message = SimMessage(
            sid=_sid("MM" if media else "SM"),
            account_sid=account.sid,
            from_=sender,
            to=to,
            body=body,
            media=media,
            direction="outbound-api",
            # A Messaging Service answers "accepted" until it has picked a sender
            # (docs/channels/twilio.md#send-api).
            status="accepted" if service else "queued",
            messaging_service_sid=service,
            status_callback=fields.get("StatusCallback") or None,
            created=datetime.now(UTC),
        )
        account.messages[message.sid] = message
        account.sent.append({"sid": message.sid, "params": params})
        account.thread.append(
            thread_entry(message.sid, "out", body, message.status, user=to, media=media)
        )
        self.tasks.spawn(
            self._status_pipeline(account, message, failure), name=f"twilio-status-{message.sid}"
        )
        return message

    def _take_failure(self, to: str) -> FailIn | None:
        for failure in self.failures:
            if failure.spec.to is None or failure.spec.to == to:
                failure.left -= 1
                if failure.left <= 0:
                    self.failures.remove(failure)
                return failure.spec
        return None

    async def _status_pipeline(
        self, account: Account, message: SimMessage, failure: FailIn | None
    ) -> None:
        # No callback for the initial status (docs/channels/twilio.md#status-callbacks); then sent
        # -> delivered, or a failure.
        steps: list[tuple[str, int | None]] = []
        if failure is not None and failure.mode == "callback":
            if failure.status == "undelivered":
                steps.append(("sent", None))
            steps.append((failure.status, failure.code))
        else:
            steps += [(s, None) for s in self.knobs.auto_statuses]
        for status, code in steps:
            await asyncio.sleep(self.knobs.status_delay)
            await self.push_status(account, message, status, code)

    async def push_status(
        self, account: Account, message: SimMessage, status: str, code: int | None = None
    ) -> int:
        message.status = status
        message.error_code = code
        set_status(account.thread, message.sid, status)
        if not message.status_callback:
            return 0
        params = [
            ("MessageSid", message.sid),
            ("SmsSid", message.sid),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("AccountSid", account.sid),
            ("From", message.from_),
            ("To", message.to),
            ("ApiVersion", API_VERSION),
        ]
        if message.messaging_service_sid:
            params.append(("MessagingServiceSid", message.messaging_service_sid))
        if code is not None:
            params.append(("ErrorCode", str(code)))
        return await self._deliver(account, message.status_callback, params)

    # --- webhooks to Tidings ------------------------------------------------------------------

    async def _deliver(self, account: Account, url: str, params: list[tuple[str, str]]) -> int:
        """POST a signed form; retry on connection errors and 5xx. Returns the last status."""
        body = urlencode(params).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": compute_signature(account.auth_token, url, params),
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        last = [0]

        def record(n: int, status: int, _detail: str) -> None:
            last[0] = status
            self.deliveries.append({"url": url, "attempt": n, "status": status, "at": time.time()})

        schedule = self.knobs.retry_schedule
        await self.webhooks.deliver(
            lambda n: (url, body, headers),
            attempts=len(schedule) + 1,
            base_seconds=0,
            delays=schedule,
            ok=lambda status: 200 <= status < 500,
            on_attempt=record,
            request_timeout=self.knobs.delivery_timeout,
        )
        return last[0]

    # --- the customer's side ------------------------------------------------------------------

    async def inbound(self, spec: InboundIn) -> dict[str, Any]:
        sender = to_e164(spec.from_)
        if sender is None:
            raise ValueError("from: not a valid E.164 phone number")
        account = self._account_for_number(spec.to, spec.account_sid)
        to = spec.to or (account.numbers[0] if account.numbers else "")
        sid = spec.sid or _sid("MM" if spec.media else "SM")
        text = spec.text or ""
        params: list[tuple[str, str]] = [
            ("ToCountry", region_of(to) or ""),
            ("SmsMessageSid", sid),
            ("NumMedia", str(len(spec.media))),
            ("SmsSid", sid),
            ("SmsStatus", "received"),
            *([("Body", spec.text)] if spec.text is not None else []),
            ("FromCountry", region_of(sender) or ""),
            ("To", to),
            ("NumSegments", str(max(1, sms.analyse(text).segments))),
            ("MessageSid", sid),
            ("AccountSid", account.sid),
            ("From", sender),
            ("ApiVersion", API_VERSION),
        ]
        if account.messaging_service_sid:
            params.append(("MessagingServiceSid", account.messaging_service_sid))
        for n, item in enumerate(spec.media[:MAX_MEDIA]):
            params += [(f"MediaUrl{n}", item.url), (f"MediaContentType{n}", item.content_type)]
        account.thread.append(
            thread_entry(
                sid, "in", text, "received", user=sender, media=[m.url for m in spec.media]
            )
        )
        auto_reply = self._keywords(account, to, sender, text)
        # Twilio still forwards the keyword to the webhook
        # (docs/channels/twilio.md#opt-out-handling).
        status = await self._deliver(account, account.webhook_url, params)
        return {"sid": sid, "status": status, "auto_reply": auto_reply}

    def _keywords(self, account: Account, to: str, sender: str, text: str) -> str | None:
        if not self.knobs.keyword_handling:
            return None
        word = _keyword(text)
        pair = (account.messaging_service_sid or to, sender)
        if word in STOP_WORDS:
            account.blocked.add(pair)
            reply = STOP_REPLY
        elif word in START_WORDS:
            account.blocked.discard(pair)
            reply = START_REPLY
        elif word in HELP_WORDS:
            reply = HELP_REPLY
        else:
            return None
        account.thread.append(
            thread_entry(
                _sid("SM"), "out", reply, "delivered", user=sender, media=[], automatic=True
            )
        )
        return reply

    def conversations(self, account_sid: str | None, user: str | None) -> list[dict[str, Any]]:
        out = [m for acct in self._chosen(account_sid) for m in thread_of(acct.thread, user)]
        return sorted(out, key=lambda m: float(m["at"]))

    def _chosen(self, account_sid: str | None) -> list[Account]:
        """The account `account_sid` names; every account without one."""
        return [a for a in self.accounts.values() if not account_sid or a.sid == account_sid]

    # --- control routes -----------------------------------------------------------------------

    async def _r_accounts(self, _request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "sid": a.sid,
                    "numbers": a.numbers,
                    "messaging_service_sid": a.messaging_service_sid,
                    "webhook_url": a.webhook_url,
                }
                for a in self.accounts.values()
            ]
        )

    @_validated
    async def _r_put_account(self, request: Request) -> Response:
        spec = AccountIn.model_validate(await read_json(request))
        acct = self.register(request.path_params["account_sid"], spec)
        return JSONResponse({"sid": acct.sid, "numbers": acct.numbers})

    async def _r_inbound(self, request: Request) -> Response:
        try:
            spec = InboundIn.model_validate(await read_json(request))
            return JSONResponse(await self.inbound(spec))
        except ValidationError as exc:
            first = exc.errors()[0]
            return control_error(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        except ValueError as exc:
            return control_error(str(exc))
        except LookupError as exc:
            return control_error(str(exc), 404)

    @_validated
    async def _r_status(self, request: Request) -> Response:
        spec = StatusIn.model_validate(await read_json(request))
        for acct in self.accounts.values():
            message = acct.messages.get(spec.sid)
            if message is not None:
                status = await self.push_status(acct, message, spec.status, spec.error_code)
                return JSONResponse({"delivered": status})
        return control_error(f"unknown message {spec.sid}", 404)

    @_validated
    async def _r_fail(self, request: Request) -> Response:
        spec = FailIn.model_validate(await read_json(request))
        self.failures.append(Failure(spec, spec.count))
        return JSONResponse({"queued": sum(f.left for f in self.failures)})

    async def _r_sent(self, request: Request) -> Response:
        chosen = self._chosen(request.query_params.get("account_sid"))
        return JSONResponse([s for a in chosen for s in a.sent])

    async def _r_optouts(self, request: Request) -> Response:
        return JSONResponse(
            [
                {"sender": sender, "recipient": recipient}
                for a in self._chosen(request.query_params.get("account_sid"))
                for sender, recipient in sorted(a.blocked)
            ]
        )

    async def _r_deliveries(self, _request: Request) -> Response:
        return JSONResponse(self.deliveries)

    @_validated
    async def _r_config(self, request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            self.knobs = Knobs.model_validate({**self.knobs.model_dump(), **body})
        return JSONResponse(self.knobs.model_dump())

    async def _r_flush(self, _request: Request) -> Response:
        """Wait for pending callbacks and retries; how many were still running."""
        return JSONResponse({"still_running": await self.tasks.wait(5.0)})

    async def _r_reset(self, _request: Request) -> Response:
        self.tasks.cancel()
        self.failures.clear()
        self.deliveries.clear()
        self.knobs = Knobs()
        for acct in self.accounts.values():
            acct.messages.clear()
            acct.sent.clear()
            acct.thread.clear()
            acct.blocked.clear()
        return JSONResponse({"ok": True})


class TwilioBinding(UrlBinding[TwilioSimulator, TwilioConfig]):
    """Connects sandbox Twilio channels to the simulator (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "twilio"
    config_type = TwilioConfig

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c = self.config(channel)
        # A Messaging Service channel without a number still gets one to send from.
        number = c.from_number or "+14155550100"
        self.sim.register(
            c.account_sid,
            AccountIn(
                auth_token=c.auth_token,
                webhook_url=webhook_url,
                numbers=[number],
                messaging_service_sid=c.messaging_service_sid,
            ),
        )

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        c = self.config(channel)
        phone = to_e164(user)
        if phone is None:
            return {"error": "type the customer's phone number in E.164, e.g. +14155550123"}
        return await self.sim.inbound(
            InboundIn.model_validate({"from": phone, "text": text, "account_sid": c.account_sid})
        )

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        phone = to_e164(user) or user
        return self.sim.conversations(self.config(channel).account_sid, phone)


SANDBOX = SandboxEntry(
    "twilio",
    lambda base: TwilioSimulator(),
    TwilioBinding,
    (
        DemoChannel(
            "twilio",
            "SMS via Twilio (sandbox)",
            lambda base: {
                "account_sid": f"AC{secrets.token_hex(16)}",
                "auth_token": secrets.token_hex(16),
                "from_number": "+14155550199",
                "api_base_url": base,
            },
        ),
    ),
)
