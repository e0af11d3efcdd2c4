"""A Vonage (Nexmo) SMS API simulator that speaks the real protocol
(docs/channels/vonage.md#protocol-facts).

Both of Vonage's roles towards Tidings:
- the send endpoint `POST /sms/json` (JSON or form; `api_key` + `api_secret`, or `sig`), with
  Vonage's validation and its answer shape: HTTP 200 and `{"message-count", "messages": [...]}`
  with one element per segment and `status` "0", or the failing element's status and
  `error-text`;
- the webhook sender: inbound SMS (long ones as separate `concat` parts) and one delivery
  receipt per segment, as signed POST-JSON calls (`sig` with the account's signature secret
  and method, `timestamp`, `nonce`), retried until Tidings answers 200 or 204.

Control routes (JSON) under `/_sim/`:
- `PUT /_sim/accounts/{api_key}` {api_secret, signature_secret, signature_method?, number,
  inbound_url, dlr_url, dlr_statuses?}
- `POST /_sim/inbound` {api_key, from, text, duplicates?, message_id?, type? ("binary"),
  part_order?} — a customer texts the number (see `inbound`)
- `POST /_sim/fail` {api_key, status? | http_status?, times?} — the next sends fail so
- `POST /_sim/config` {max_per_second?, dlr_delay?, concat_inbound?}
- `GET /_sim/sent?api_key=` accepted send requests · `GET /_sim/conversations?api_key=&user=`
  both directions as the customer's phone shows them · `GET /_sim/deliveries` webhook attempts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tidings.channels.vonage import signature
from tidings.domain import gsm7
from tidings.policy import sms
from tidings.simulators.kit import (
    Attempt,
    DemoChannel,
    SandboxEntry,
    SimulatorBase,
    UrlBinding,
    check_order,
    control_error,
    control_routes,
    digits,
    in_order,
    int_list,
    knobs_handler,
    list_handler,
    read_json,
    refusing_bad_input,
    thread_entry,
    thread_of,
    thread_route,
)

if TYPE_CHECKING:
    from tidings.runtime import ChannelInfo

log = logging.getLogger(__name__)

MAX_TEXT = 3200  # longer texts get status 12 [U: Vonage's documented practical limit]


@dataclass
class Account:
    api_secret: str
    signature_secret: str
    signature_method: str
    number: str
    inbound_url: str
    dlr_url: str
    dlr_statuses: list[str] = field(default_factory=lambda: ["accepted", "delivered"])
    sent: list[dict[str, Any]] = field(default_factory=list)
    thread: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str | None, int | None]] = field(default_factory=list)
    recent: deque[float] = field(default_factory=deque)


# `POST /_sim/config`: the knobs and how a body's value becomes one.
_KNOBS: dict[str, Callable[[Any], Any]] = {
    "max_per_second": lambda v: float(v) if v is not None else None,
    "dlr_delay": float,
    "concat_inbound": bool,
}


def _segments(text: str) -> list[str]:
    """The text as Vonage cuts it into SMS parts (153 GSM septets / 67 UCS-2 units)."""
    return [p.text for p in sms.analyse(text).parts] or [""]


def _error(status: str, text: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}


class VonageSimulator(SimulatorBase):
    def __init__(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        dlr_delay: float = 0.05,
        retry_base: float = 0.2,
        max_attempts: int = 6,
    ) -> None:
        super().__init__(http)
        self.accounts: dict[str, Account] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.dlr_delay = dlr_delay
        self.retry_base = retry_base
        self.max_attempts = max_attempts
        self.max_per_second: float | None = None
        self.concat_inbound = True
        self.app = Starlette(
            routes=[
                Route("/sms/json", self._r_send, methods=["POST"]),
                *control_routes(
                    {
                        "accounts/{api_key}": (self._r_account, ["PUT"]),
                        "inbound": (self._r_inbound, ["POST"]),
                        "fail": (self._r_fail, ["POST"]),
                        "config": (knobs_handler(self, _KNOBS), ["POST"]),
                        "sent": (list_handler(self.accounts, "api_key", "sent"), ["GET"]),
                        "conversations": (thread_route(self.conversations, "api_key"), ["GET"]),
                        "deliveries": (self._r_deliveries, ["GET"]),
                    }
                ),
            ]
        )

    # -- the customer side -------------------------------------------------------------------

    def register(self, api_key: str, spec: dict[str, Any]) -> Account:
        acct = Account(
            api_secret=str(spec["api_secret"]),
            signature_secret=str(spec["signature_secret"]),
            signature_method=str(spec.get("signature_method") or "md5hash"),
            number=digits(str(spec["number"])) or str(spec["number"]),
            inbound_url=str(spec["inbound_url"]),
            dlr_url=str(spec.get("dlr_url") or spec["inbound_url"]),
        )
        if "dlr_statuses" in spec:
            acct.dlr_statuses = [str(s) for s in spec["dlr_statuses"]]
        old = self.accounts.get(api_key)
        if old is not None:  # keep history across re-registration (sandbox restarts)
            acct.sent, acct.thread = old.sent, old.thread
        self.accounts[api_key] = acct
        return acct

    async def inbound(
        self,
        api_key: str,
        sender: str,
        text: str,
        duplicates: int = 0,
        *,
        message_id: str | None = None,
        kind: str | None = None,
        part_order: list[int] | None = None,
    ) -> dict[str, Any]:
        """A customer texts the number. `message_id` (single-part only) repeats an earlier
        delivery as Vonage's own retry would; `kind="binary"` sends a binary SMS (`data` +
        `udh`, no text); `part_order` (1-based part numbers, repeats allowed) delivers the
        parts one after another in that order, to reproduce out-of-order and repeated parts."""
        acct = self.accounts[api_key]
        msisdn = digits(sender)
        unicode = not gsm7.is_gsm7(text)
        parts = _segments(text) if self.concat_inbound and kind != "binary" else [text]
        if message_id is not None and len(parts) > 1:
            raise ValueError("message_id applies to single-part messages")
        ref = f"{secrets.randbelow(256):02X}"
        ids: list[str] = []
        deliveries: list[dict[str, str]] = []
        for n, part in enumerate(parts, start=1):
            part_id = message_id or secrets.token_hex(8).upper()
            ids.append(part_id)
            params = {
                "msisdn": msisdn,
                "to": acct.number,
                "messageId": part_id,
                "text": part,
                "type": "unicode" if unicode else "text",
                "keyword": (part.split() or [""])[0].upper(),
                "api-key": api_key,
                "message-timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            }
            if kind == "binary":
                # Binary SMS carry hex `data` and `udh` instead of text
                # (docs/channels/vonage.md#inbound-and-receipt-webhooks).
                del params["text"], params["keyword"]
                params.update({"type": "binary", "data": text.encode().hex(), "udh": ""})
            if len(parts) > 1:
                params.update(
                    {
                        "concat": "true",
                        "concat-ref": ref,
                        "concat-total": str(len(parts)),
                        "concat-part": str(n),
                    }
                )
            deliveries.append(params)
        check_order(part_order, len(parts))
        if part_order:
            send = functools.partial(self._deliver, api_key, acct.inbound_url)
            self.tasks.spawn(in_order(send, deliveries, part_order), "vonage-inbound")
        else:
            for params in deliveries:
                for _ in range(1 + max(0, duplicates)):
                    self.tasks.spawn(
                        self._deliver(api_key, acct.inbound_url, params), "vonage-inbound"
                    )
        acct.thread.append(thread_entry(ids[0], "in", text, "sent", user=f"+{msisdn}"))
        return {"message_ids": ids, "parts": len(parts), "concat_ref": ref}

    # -- webhooks to Tidings ---------------------------------------------------------------

    def _signed(self, acct: Account, params: dict[str, str]) -> dict[str, str]:
        signed = dict(params, timestamp=str(int(time.time())), nonce=secrets.token_hex(8))
        signed["sig"] = signature.sign(signed, acct.signature_secret, acct.signature_method)
        return signed

    async def _deliver(self, api_key: str, url: str, params: dict[str, str]) -> None:
        """At-least-once: retried with backoff until 200/204 (Vonage retries for 24 h); each
        attempt signed afresh (new timestamp and nonce)."""

        def attempt(n: int) -> Attempt:
            body = orjson.dumps(self._signed(self.accounts[api_key], params))
            return url, body, {"Content-Type": "application/json"}

        def record(n: int, status: int, _detail: str) -> None:
            entry = {"url": url, "messageId": params.get("messageId"), "attempt": n}
            self.deliveries.append({**entry, "status": status})

        went = await self.webhooks.deliver(
            attempt,
            attempts=self.max_attempts,
            base_seconds=self.retry_base,
            ok=lambda status: status in (200, 204),
            on_attempt=record,
        )
        if not went:
            log.warning("vonage simulator gave up on webhook %s", params.get("messageId"))

    async def _receipts(self, api_key: str, acct: Account, record: dict[str, Any]) -> None:
        for status in acct.dlr_statuses:
            await asyncio.sleep(self.dlr_delay)
            record["status"] = status
            for part_id in record["part_ids"]:
                now = datetime.now(UTC)
                params = {
                    "msisdn": record["to"],
                    "to": record["from"],
                    "network-code": "23410",
                    "messageId": part_id,
                    "price": "0.03330000",
                    "status": status,
                    "scts": now.strftime("%y%m%d%H%M"),
                    "err-code": "0" if status in ("delivered", "accepted", "buffered") else "1",
                    "api-key": api_key,
                    "message-timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
                }
                if record.get("client-ref"):
                    params["client-ref"] = record["client-ref"]
                await self._deliver(api_key, acct.dlr_url, params)

    # -- the send API --------------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, str]:
        body = await request.body()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            doc = orjson.loads(body) if body else {}
            if not isinstance(doc, dict):
                raise ValueError("body must be a JSON object")
            return {str(k): str(v) for k, v in doc.items()}
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        params.update(request.query_params)
        return params

    async def _r_send(self, request: Request) -> Response:
        try:
            params = await self._params(request)
        except (ValueError, UnicodeDecodeError):
            return JSONResponse(_error("3", "Invalid request body"))
        code, doc = self.send(params)
        return JSONResponse(doc, status_code=code)

    def send(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        api_key = params.get("api_key", "")
        if not api_key:
            return 200, _error("2", "Missing api_key")
        acct = self.accounts.get(api_key)
        if acct is None:
            return 200, _error("4", "Bad Credentials")
        if "sig" in params:
            if "api_secret" in params:
                return 200, _error("32", "Signature and API secret are both present")
            if not signature.matches(params, acct.signature_secret, acct.signature_method):
                return 200, _error("14", "Invalid Signature")
        elif params.get("api_secret") != acct.api_secret:
            return 200, _error("4", "Bad Credentials")
        if acct.failures:
            status, http_status = acct.failures.pop(0)
            if http_status is not None:
                return http_status, {"type": "about:blank", "title": "Injected failure"}
            return 200, _error(status or "5", "Injected failure")
        for name in ("from", "to", "text"):
            if not params.get(name):
                return 200, _error("2", f"Missing {name} param")
        to = params["to"]
        if not to.isdigit() or not 7 <= len(to) <= 15:
            return 200, _error("3", "Invalid to param: not an international number")
        kind = params.get("type", "text")
        if kind not in ("text", "unicode", "binary"):
            return 200, _error("3", "Invalid type param")
        text = params["text"]
        if len(text) > MAX_TEXT:
            return 200, _error("12", "Message too long")
        if self.max_per_second is not None:
            now = time.monotonic()
            while acct.recent and acct.recent[0] < now - 1.0:
                acct.recent.popleft()
            if len(acct.recent) >= self.max_per_second:
                return 200, _error("1", "Throughput Rate Exceeded - please wait [ 1000 ] and retry")
            acct.recent.append(now)
        shown = text
        if kind == "text" and not gsm7.is_gsm7(text):
            # What a handset shows when Unicode is sent as type=text: the characters are lost.
            shown = "".join(ch if gsm7.is_gsm7(ch) else "?" for ch in text)
        parts = _segments(shown if kind == "text" else text)
        ids = [secrets.token_hex(8).upper() for _ in parts]
        record = {
            "to": to,
            "from": params["from"],
            "text": text,
            "type": kind,
            "client-ref": params.get("client-ref"),
            "part_ids": ids,
            "status": "submitted",
        }
        acct.sent.append(record)
        acct.thread.append(
            thread_entry(ids[0], "out", shown, "submitted", user=f"+{to}", record=record)
        )
        self.tasks.spawn(self._receipts(api_key, acct, record), "vonage-dlr")
        messages = [
            {
                "to": to,
                "message-id": mid,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "23410",
                **({"client-ref": params["client-ref"]} if params.get("client-ref") else {}),
            }
            for mid in ids
        ]
        return 200, {"message-count": str(len(ids)), "messages": messages}

    # -- control routes ------------------------------------------------------------------------

    async def _r_account(self, request: Request) -> Response:
        spec = await read_json(request)
        required = ("api_secret", "signature_secret", "number", "inbound_url")
        missing = [k for k in required if not spec.get(k)]
        if missing:
            return control_error(f"missing {', '.join(missing)}")
        self.register(request.path_params["api_key"], spec)
        return JSONResponse({"ok": True})

    @refusing_bad_input
    async def _r_inbound(self, request: Request) -> Response:
        spec = await read_json(request)
        api_key = str(spec.get("api_key", ""))
        if api_key not in self.accounts:
            return control_error("unknown api_key", 404)
        sender, text = digits(str(spec.get("from", ""))), str(spec.get("text", ""))
        if not sender or not text:
            return control_error("from and text are required")
        order = int_list(spec, "part_order")
        return JSONResponse(
            await self.inbound(
                api_key,
                sender,
                text,
                int(spec.get("duplicates", 0)),
                message_id=str(spec["message_id"]) if spec.get("message_id") else None,
                kind=str(spec["type"]) if spec.get("type") else None,
                part_order=order,
            )
        )

    async def _r_fail(self, request: Request) -> Response:
        spec = await read_json(request)
        acct = self.accounts.get(str(spec.get("api_key", "")))
        if acct is None:
            return control_error("unknown api_key", 404)
        status = str(spec["status"]) if spec.get("status") is not None else None
        http_status = int(spec["http_status"]) if spec.get("http_status") else None
        acct.failures.extend([(status, http_status)] * int(spec.get("times", 1)))
        return JSONResponse({"queued": len(acct.failures)})

    def conversations(self, api_key: str, user: str | None = None) -> list[dict[str, Any]]:
        acct = self.accounts.get(api_key)
        if acct is None:
            return []
        return [
            {k: v for k, v in m.items() if k != "record"}
            | ({"status": m["record"]["status"]} if "record" in m else {})
            for m in thread_of(acct.thread, f"+{digits(user)}" if user else None)
        ]

    async def _r_deliveries(self, _request: Request) -> Response:
        return JSONResponse(self.deliveries)


class VonageBinding(UrlBinding[VonageSimulator, Any]):
    """Connects sandbox Vonage channels to the simulator (see `simulators.sandbox`)."""

    kind: ClassVar[str] = "vonage"

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c: Any = channel.config
        self.sim.register(
            c.api_key,
            {
                "api_secret": c.api_secret,
                "signature_secret": c.signature_secret,
                "signature_method": c.signature_method,
                "number": c.from_number,
                "inbound_url": webhook_url,
                "dlr_url": webhook_url,
            },
        )

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        c: Any = channel.config
        if not digits(user):
            return {"error": "an SMS customer is a phone number"}
        return await self.sim.inbound(c.api_key, user, text)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        c: Any = channel.config
        return self.sim.conversations(c.api_key, user)


SANDBOX = SandboxEntry(
    "vonage",
    lambda base: VonageSimulator(),
    VonageBinding,
    (
        DemoChannel(
            "vonage",
            "SMS via Vonage (sandbox)",
            lambda base: {
                "api_key": f"sbx{secrets.token_hex(4)}",
                "api_secret": secrets.token_urlsafe(12),
                "signature_secret": secrets.token_urlsafe(24),
                "signature_method": "sha256",
                "from_number": "+14155550100",
                "api_base_url": base,
            },
        ),
    ),
)
