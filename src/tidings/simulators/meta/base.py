"""What the WhatsApp, Messenger and Instagram simulators share as Meta platforms: the Graph
path version, error base and trace ids, the bearer token, the accounts and their
registration, the send endpoint (`POST /{version}/{node}/messages`) and the answer of every
other Graph call with its request log, injected failures and one-second send window, the
webhook subscription handshake, the task set and webhook sender (`webhooks.MetaWebhooks` on
the kit), and the `/_sim/` control routes that read the same on all three (accounts,
conversations, customers, failures, knobs, window, raw deliveries, sent, flush, deliveries,
reset). Each product's own rules (what a send must hold, its error envelope, its webhook
payloads) stay in its module; the sandbox bindings are the kit's `UrlBinding`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from tidings.httpclient import outbound_client
from tidings.simulators.kit import ControlError, Handler, TaskSet, control_error, control_routes
from tidings.simulators.meta.webhooks import (
    MAX_CONNECTIONS,
    DeliveryKnobs,
    MetaWebhooks,
    Spawn,
    WebhookDelivery,
    trim,
)

GRAPH_VERSION = re.compile(r"^v\d+\.\d+$")

K = TypeVar("K", bound=DeliveryKnobs)
A = TypeVar("A", bound="MetaAccount")
S = TypeVar("S", bound="MetaSimulator[Any, Any]")
M = TypeVar("M", bound=BaseModel)


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def bearer(request: Request) -> str | None:
    """The access token: `Authorization: Bearer …` or the `access_token` query parameter."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    return token or request.query_params.get("access_token")


def has_token(token: str | None, account: Any) -> bool:
    """Whether `token` is `account`'s access token (compared in constant time)."""
    return (
        token is not None
        and account is not None
        and hmac.compare_digest(token.encode(), account.access_token.encode())
    )


async def read_form(request: Request) -> FormData | None:
    """A Graph upload's multipart form (one file), None when the body is not one."""
    try:
        return await request.form(max_files=1, max_fields=10)
    except Exception:  # a malformed multipart body
        return None


def form_view(form: FormData | None) -> dict[str, Any]:
    """An upload's form as the request log keeps it: files by name and size."""
    return {
        k: (v if isinstance(v, str) else {"filename": v.filename, "size": v.size})
        for k, v in (form.multi_items() if form is not None else [])
    }


def unknown_object(method: str, node: str) -> str:
    """Graph's message for an id that does not exist (or that the token may not see)."""
    return (
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation."
    )


def retry_after(seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"Retry-After": f"{seconds:g}"}


class GraphError(Exception):
    """A Graph API error answer: its HTTP status and headers, and the body `body()` builds
    (each product writes Graph's error envelope its own way)."""

    def __init__(self, code: int, http_status: int, headers: dict[str, str] | None) -> None:
        super().__init__(code)
        self.code = code
        self.http_status = http_status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        raise NotImplementedError


def control(
    handler: Callable[[S, Request], Coroutine[Any, Any, Any]],
) -> Callable[[S, Request], Coroutine[Any, Any, Response]]:
    """A `/_sim/` route: JSON in and out, control and validation errors as JSON."""

    async def wrapped(self: S, request: Request) -> Response:
        try:
            result = await handler(self, request)
        except ControlError as err:
            return control_error(err.message, err.status)
        except ValidationError as err:
            errors = err.errors(include_url=False, include_context=False, include_input=False)
            return JSONResponse({"error": "invalid request", "details": errors}, status_code=422)
        return JSONResponse(result)

    return wrapped


async def read_body(request: Request) -> dict[str, Any]:
    """A control call's JSON object: {} when empty, 400 when not a JSON object."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


class AccountIn(BaseModel):
    """A business account the simulator serves (`PUT /_sim/accounts/{id}`); with `verify`,
    Meta's subscription handshake runs first."""

    model_config = ConfigDict(extra="forbid")
    access_token: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)
    verify_token: str = Field(min_length=1)
    webhook_url: str = Field(min_length=1)
    verify: bool = False


class FailIn(BaseModel):
    """The next `count` sends fail: with a Graph error `code`, or without one but with
    `http_status`, a bare HTTP error (Graph's generic code 2); `delay_seconds` stalls the
    answer first (for client timeouts)."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(1, ge=1)
    code: int | None = None
    http_status: int | None = Field(None, ge=200, le=599)
    retry_after: float | None = Field(None, ge=0)
    delay_seconds: float = Field(0.0, ge=0)


@dataclass
class MetaAccount:
    """A business account (phone number, Page, Instagram account) and its secrets."""

    account_id: str
    access_token: str
    app_secret: str
    verify_token: str
    webhook_url: str

    def public(self) -> dict[str, Any]:
        raise NotImplementedError


class MetaTasks(TaskSet):
    """The kit's task set, plus counting the running tasks of one kind."""

    def running(self, prefix: str = "") -> int:
        return sum(1 for t in self._tasks if not t.done() and t.get_name().startswith(prefix))


class MetaSimulator(Generic[K, A]):
    """The shared half of a Meta simulator: knobs, accounts (of `account_type`), the request
    log, injected failures, background tasks, the webhook sender and the shared `/_sim/`
    routes. `account_param` names the account in paths and queries (`phone_number_id` on
    WhatsApp); the models are the product's control bodies."""

    account_param: ClassVar[str] = "account_id"
    account_type: type[A]
    account_model: ClassVar[type[AccountIn]]
    fail_model: ClassVar[type[FailIn]]
    window_model: ClassVar[type[BaseModel]]
    raw_model: ClassVar[type[BaseModel]]
    # The background tasks (by name prefix) that count as pending deliveries.
    pending_tasks: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The control bodies that name the account under the product's `account_param`:
        # `/_sim/window` (None closes the customer's window; a number pretends the customer
        # last wrote that long ago) and `/_sim/deliver_raw` (any payload, signed as it is).
        key: dict[str, Any] = {cls.account_param: (str, ...)}
        forbid = ConfigDict(extra="forbid")
        hours_ago = (float | None, None)
        window: dict[str, Any] = {"user": (str, ...), "last_inbound_hours_ago": hours_ago}
        cls.window_model = create_model("WindowIn", __config__=forbid, **key, **window)
        raw: dict[str, Any] = {"payload": (dict[str, Any], ...)}
        cls.raw_model = create_model("RawIn", __config__=forbid, **key, **raw)

    def __init__(
        self,
        name: str,
        knobs: K,
        *,
        http: httpx.AsyncClient | None,
        clock: Callable[[], float] = time.time,
        spawn: Spawn | None = None,
        on_delivered: Callable[[WebhookDelivery], None] | None = None,
    ) -> None:
        self.knobs = knobs
        self.accounts: dict[str, A] = {}
        self.requests: list[dict[str, Any]] = []
        # Injected failures (`/_sim/fail`), one per send, oldest first.
        self._failures: deque[Any] = deque()
        self._send_times: dict[str, deque[float]] = {}
        self._clock = clock
        self.tasks = MetaTasks()
        self._own_http = http is None
        # Webhooks go over real HTTP by default; the sandbox may inject an in-process client.
        # Tidings' own outbound client: httpx's API on aiohttp's pool, because httpx's pool
        # slows down as concurrency grows (130 POSTs/s at 64 in flight here, against ~900 at
        # 1; `docs/benchmarks.md`, "WhatsApp simulator: status webhooks").
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        )
        self._http = http or outbound_client(httpx.Timeout(knobs.delivery_timeout), limits=limits)
        self.webhooks = MetaWebhooks(
            self._http,
            lambda: self.knobs,
            self.tasks,
            name,
            account_key=self.account_param,
            spawn=spawn,
            on_delivered=on_delivered,
        )

    # ---------------------------------------------------------------- lifecycle

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.aclose()

    def _build_app(self, routes: Sequence[BaseRoute]) -> Starlette:
        return Starlette(routes=list(routes), lifespan=self._lifespan)

    async def aclose(self) -> None:
        """Cancel pending deliveries and background work, and close our HTTP client."""
        await self._stop()
        if self._own_http:
            await self._http.aclose()

    async def _stop(self) -> None:
        await self.tasks.aclose()

    async def flush(self, wait_seconds: float = 5.0) -> dict[str, int]:
        """Wait (at most `wait_seconds`) until every delivery and background task is done;
        the counts say what is still pending."""
        await self.tasks.wait(wait_seconds)
        return self.delivery_counts()

    def delivery_counts(self) -> dict[str, int]:
        counts = self.webhooks.counts()
        counts["pending"] += self.tasks.running(self.pending_tasks)
        return counts

    async def reset(self, *, accounts: bool = False) -> None:
        """Forget messages, customers, requests, deliveries and injected failures."""
        await self._stop()
        self.requests.clear()
        self.webhooks.reset()
        self._failures.clear()
        self._send_times.clear()
        if accounts:
            self.accounts.clear()

    def configure(self, **changes: Any) -> K:
        """Change knobs; unknown names or bad values raise pydantic's ValidationError."""
        self.knobs = type(self.knobs).model_validate({**self.knobs.model_dump(), **changes})
        return self.knobs

    async def verify_webhook(self, account_id: str) -> dict[str, Any]:
        """Meta's handshake (docs/providers/graph-api.md#webhook-verification): verified only
        if the body is exactly the challenge."""
        account = self._account(account_id)
        challenge = str(secrets.randbelow(2**31 - 1) + 1)
        params = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": account.verify_token,
        }
        try:
            response = await self._http.get(
                account.webhook_url, params=params, timeout=self.knobs.delivery_timeout
            )
        except httpx.HTTPError as exc:
            return {"verified": False, "status": None, "error": repr(exc)}
        verified = response.status_code == 200 and response.text == challenge
        return {"verified": verified, "status": response.status_code, "body": response.text[:200]}

    def inject_failures(self, spec: FailIn) -> int:
        self._failures.extend([spec] * spec.count)
        return len(self._failures)

    async def _next_failure(self) -> Any:
        """The failure this send gets (after its `delay_seconds`), if one is queued: raised
        when it has a code or HTTP status and the product answers it at once
        (`_failure_error`), else returned."""
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and failure.delay_seconds:
            await asyncio.sleep(failure.delay_seconds)
        if failure is not None and (failure.code is not None or failure.http_status is not None):
            # A bare HTTP error gets Graph's generic code 2 ("service temporarily unavailable").
            error = self._failure_error(failure, failure.code if failure.code is not None else 2)
            if error is not None:
                error.headers = retry_after(failure.retry_after)
                raise error
        return failure

    def _over_rate(self, key: str, per_second: float) -> bool:
        """A sliding one-second window of sends per `key`: True (and the send not counted)
        when it is full."""
        now = time.monotonic()
        window = self._send_times.setdefault(key, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= per_second:
            return True
        window.append(now)
        return False

    def _log_request(self, request: Request, status: int, result: Any, **entry: Any) -> None:
        """One Graph call in the request log (`/_sim/sent`), its access token left out."""
        query = {k: v for k, v in request.query_params.items() if k != "access_token"}
        self.requests.append(
            {
                "at": self._clock(),
                "path": request.url.path,
                "query": query,
                **entry,
                "response": {"status": status, "body": result},
            }
        )
        trim(self.requests, self.knobs.history_limit)

    async def _graph_messages(self, request: Request) -> Response:
        """`POST /{version}/{node}/messages`: the product's `_send`, answered with its result
        or Graph error, and logged."""
        version = request.path_params["version"]
        node = request.path_params["node"]
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        logged = body if body is not None else raw.decode("utf-8", "replace")
        return await self._graph_answer(
            request,
            lambda: self._send(node, request, body),
            f"Unknown path components: /{version}/{node}/messages",
            {**self._log_fields(request, node), "body": logged},
        )

    def _account(self, account_id: str) -> A:
        account = self.accounts.get(account_id)
        if account is None:
            raise ControlError(404, f"no account for {self.account_param} {account_id!r}")
        return account

    async def register_account(self, account_id: str, spec: Any) -> dict[str, Any]:
        """Create or update an account; with `verify`, run Meta's GET handshake."""
        account = self.account_type(
            account_id,
            spec.access_token,
            spec.app_secret,
            spec.verify_token,
            spec.webhook_url,
            **self._account_extra(account_id, spec),
        )
        self.accounts[account_id] = account
        result: dict[str, Any] = {"account": account.public()}
        if spec.verify:
            result["verification"] = await self.verify_webhook(account_id)
        return result

    async def _deliver(
        self, account: A, payload: dict[str, Any], kind: str, refs: list[str]
    ) -> WebhookDelivery:
        """First attempt awaited (its status is reported to the caller); retries and
        `duplicate_deliveries` extra copies continue in the background."""
        return await self.webhooks.send(
            account.webhook_url, account.app_secret, account.account_id, payload, kind, refs
        )

    async def _post(
        self, account: A, payload: dict[str, Any], kind: str, refs: list[str]
    ) -> dict[str, Any]:
        """`_deliver`, answered as the control API reports a webhook."""
        delivery = await self._deliver(account, payload, kind, refs)
        return {"status": delivery.first_status, "delivery": delivery.id}

    async def deliver_raw(self, account_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._post(self._account(account_id), payload, "raw", [])

    def set_window(self, spec: Any) -> dict[str, Any]:
        account_id = getattr(spec, self.account_param)
        customer = self._find_customer(account_id, spec.user)
        if customer is None:
            raise ControlError(404, f"no customer {spec.user!r} on {account_id}")
        if spec.last_inbound_hours_ago is None:
            customer.last_inbound = None
        else:
            customer.last_inbound = self._clock() - spec.last_inbound_hours_ago * 3600
        return self._window_view(customer)

    async def _graph_answer(
        self,
        request: Request,
        call: Callable[[], Awaitable[dict[str, Any]]],
        bad_path: str,
        log: dict[str, Any] | None = None,
    ) -> Response:
        """A Graph call: `call()`'s result or its Graph error (`bad_path` the error for an
        unknown version), logged with the `log` fields when given."""
        headers: dict[str, str] = {}
        try:
            if not GRAPH_VERSION.match(request.path_params["version"]):
                raise self._bad_path(bad_path)
            status, result = 200, await call()
        except GraphError as err:
            status, result, headers = err.http_status, err.body(), err.headers
        if log is not None:
            self._log_request(request, status, result, **log)
        return JSONResponse(result, status_code=status, headers=headers)

    # ---------------------------------------------------------------- product hooks

    def _account_extra(self, account_id: str, spec: Any) -> dict[str, Any]:
        """The product's own account fields from its `account_model` body."""
        return {}

    def _find_customer(self, account_id: str, user: str) -> Any:
        raise NotImplementedError

    def _window_view(self, customer: Any) -> dict[str, Any]:
        raise NotImplementedError

    def sent(self, account_id: str | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def _send(self, node: str, request: Request, body: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _bad_path(self, message: str) -> GraphError:
        raise NotImplementedError

    def _failure_error(self, failure: Any, code: int) -> GraphError | None:
        """The Graph error an injected failure answers with (None: the send goes through)."""
        raise NotImplementedError

    def _log_fields(self, request: Request, node: str) -> dict[str, Any]:
        """What the request log says of a send besides path, query and body."""
        return {"node": node}

    def conversations(self, account_id: str, user: str | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def customer_list(self, account_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    # ---------------------------------------------------------------- shared /_sim routes

    def _control_routes(self, own: dict[str, tuple[Handler, Sequence[str]]]) -> list[BaseRoute]:
        """The shared `/_sim/` routes and the product's own (`own`, by path under /_sim)."""
        shared: dict[str, tuple[Handler, Sequence[str]]] = {
            "accounts": (self._r_accounts, ["GET"]),
            f"accounts/{{{self.account_param}}}": (self._r_put_account, ["PUT"]),
            "conversations": (self._r_conversations, ["GET"]),
            "customers": (self._r_customers, ["GET"]),
            "fail": (self._r_fail, ["POST"]),
            "config": (self._r_config, ["GET", "POST"]),
            "window": (self._r_window, ["POST"]),
            "deliver_raw": (self._r_deliver_raw, ["POST"]),
            "sent": (self._r_sent, ["GET"]),
            "flush": (self._r_flush, ["POST"]),
            "deliveries": (self._r_deliveries, ["GET"]),
            "reset": (self._r_reset, ["POST"]),
        }
        return list(control_routes({**shared, **own}))

    def _calls(self, model: type[M], method: Callable[[M], Awaitable[Any]]) -> Handler:
        """A `/_sim/` route whose body, validated by `model`, goes to `method`."""

        async def handle(_: Any, request: Request) -> Any:
            return await method(model.model_validate(await read_body(request)))

        return functools.partial(control(handle), self)

    def _required(self, request: Request) -> str:
        value = request.query_params.get(self.account_param)
        if not value:
            raise ControlError(422, f"{self.account_param} is required")
        return value

    @control
    async def _r_accounts(self, request: Request) -> Any:
        return [a.public() for a in self.accounts.values()]

    @control
    async def _r_put_account(self, request: Request) -> Any:
        spec = self.account_model.model_validate(await read_body(request))
        return await self.register_account(request.path_params[self.account_param], spec)

    @control
    async def _r_conversations(self, request: Request) -> Any:
        return self.conversations(self._required(request), request.query_params.get("user"))

    @control
    async def _r_customers(self, request: Request) -> Any:
        return self.customer_list(self._required(request))

    @control
    async def _r_fail(self, request: Request) -> Any:
        spec = self.fail_model.model_validate(await read_body(request))
        return {"queued": self.inject_failures(spec)}

    @control
    async def _r_config(self, request: Request) -> Any:
        if request.method == "POST":
            self.configure(**await read_body(request))
        return self.knobs.model_dump()

    @control
    async def _r_window(self, request: Request) -> Any:
        return self.set_window(self.window_model.model_validate(await read_body(request)))

    @control
    async def _r_deliver_raw(self, request: Request) -> Any:
        spec = self.raw_model.model_validate(await read_body(request)).model_dump()
        return await self.deliver_raw(spec[self.account_param], spec["payload"])

    @control
    async def _r_sent(self, request: Request) -> Any:
        return self.sent(request.query_params.get(self.account_param))

    @control
    async def _r_flush(self, request: Request) -> Any:
        data = await read_body(request)
        raw = data.get("timeout", request.query_params.get("timeout", 5.0))
        try:
            timeout = min(max(float(raw), 0.0), 120.0)
        except (TypeError, ValueError) as exc:
            raise ControlError(422, "timeout must be a number of seconds") from exc
        return await self.flush(timeout)

    @control
    async def _r_deliveries(self, request: Request) -> Any:
        return self.webhooks.view()

    @control
    async def _r_reset(self, request: Request) -> Any:
        data = await read_body(request)
        await self.reset(accounts=bool(data.get("accounts", False)))
        return {"ok": True}
