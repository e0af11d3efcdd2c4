"""What every provider simulator needs, once: background tasks, a webhook sender, a per-account
outbox, `/_sim` control routes, and closing.

A simulator is a Starlette `app` plus `aclose()` (mounted apps get no lifespan events, so the
sandbox closes them). The parts here carry no provider rule: signatures, body shapes, retry
schedules and knobs stay in each provider's module.

- `TaskSet`: background tasks with held references; a task that fails is logged, never lost
  silently; `aclose` cancels and awaits them all.
- `WebhookSender`: one pooled HTTP client per simulator, at most `concurrency` POSTs in flight
  (a burst queues instead of failing on the pool), and `deliver`: one webhook with retries and
  exponential backoff, each attempt reported to the caller (the simulators' delivery logs).
- `Outbox`: a per-account queue of webhooks drained by one worker task that sleeps until
  `kick`ed — the loop the LINE, Viber and Telegram simulators each wrote.
- `thread_entry`: one message of a thread for `/_sim/conversations` and the phone page;
  `thread_of`, `set_status` read and update such a thread.
- `digits`, `check_order`, `in_order`: an SMS customer's address and the parts of a long SMS
  delivered in a given order (Vonage, SMPP).
- `control_routes`, `read_json`, `control_error`, `ControlError`: the `/_sim/...` control
  API's plumbing; `answering`: a handler's provider or control errors as their answers
  (`refusing_bad_input`: a bad control body's as a 400); `Failure`, `injected`: the provider
  errors `/_sim/fail` queues.
- `SandboxEntry`: how the sandbox builds, mounts and binds a simulator and which demo
  channels it connects (`simulators/registry.py` lists one per channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskSet:
    """Background tasks of one simulator, held until done (asyncio keeps only weak references
    to tasks) and cancelled together by `aclose`."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Cancel every task without waiting (a control `reset`)."""
        for task in list(self._tasks):
            task.cancel()

    async def wait(self, seconds: float) -> int:
        """Wait up to `seconds` until every task is done (those started meanwhile too); how
        many still run."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return len(self._tasks)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def is_2xx(status: int) -> bool:
    return 200 <= status < 300


# What one attempt sends: (url, body, headers), or None to stop (the webhook URL was removed).
Attempt = tuple[str, bytes, Mapping[str, str]] | None


class WebhookSender:
    """A simulator's webhook POSTs: one pooled client (given, or its own), at most
    `concurrency` in flight."""

    def __init__(
        self, http: httpx.AsyncClient | None = None, *, concurrency: int = 64, timeout: float = 10.0
    ) -> None:
        self._own = http is None
        self.http = http or httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=concurrency)
        )
        self._slots = asyncio.Semaphore(concurrency)

    async def exchange(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        request_timeout: float | None = None,
    ) -> tuple[int, str]:
        """(status, what happened): the reason phrase, or the transport error's class name
        with status 0. `request_timeout` overrides the client's for this request."""
        extra: dict[str, Any] = {} if request_timeout is None else {"timeout": request_timeout}
        async with self._slots:
            try:
                resp = await self.http.post(url, content=body, headers=dict(headers), **extra)
            except httpx.HTTPError as exc:
                log.info("simulator webhook to %s failed: %s", url, type(exc).__name__)
                return 0, type(exc).__name__
            return resp.status_code, resp.reason_phrase

    async def deliver(
        self,
        attempt: Callable[[int], Attempt],
        *,
        attempts: int,
        base_seconds: float,
        ok: Callable[[int], bool] = is_2xx,
        on_attempt: Callable[[int, int, str], None] | None = None,
        delays: Sequence[float] | None = None,
        request_timeout: float | None = None,
    ) -> bool:
        """Send one webhook up to `attempts` times, waiting `base_seconds * 2**(n-1)` after the
        n-th failure (or `delays[n-1]`: a provider's own schedule). `attempt(n)` builds the n-th
        request (a provider may mark retries); `on_attempt(n, status, detail)` records it
        (`exchange`'s detail). True once the receiver accepted it."""
        for n in range(1, max(1, attempts) + 1):
            request = attempt(n)
            if request is None:
                return False
            url, body, headers = request
            status, detail = await self.exchange(url, body, headers, request_timeout)
            if on_attempt is not None:
                on_attempt(n, status, detail)
            if ok(status):
                return True
            if n < attempts:
                await asyncio.sleep(delays[n - 1] if delays else base_seconds * 2 ** (n - 1))
        return False

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()


@dataclass
class Outbox(Generic[T]):
    """One account's webhooks waiting to go, drained in order by one worker task while
    `active()` holds (a webhook URL is set). `send` sends the head of the pending list, up to
    `batch` items in one request (LINE sends several events per request; Viber one callback)."""

    send: Callable[[list[T]], Awaitable[Any]]
    active: Callable[[], bool]
    name: str
    batch: int = 1
    pending: list[T] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[Any] | None = None

    def put(self, tasks: TaskSet, *items: T) -> None:
        self.pending.extend(items)
        self.kick(tasks)

    def kick(self, tasks: TaskSet) -> None:
        self.wake.set()
        if self.active() and (self.worker is None or self.worker.done()):
            self.worker = tasks.spawn(self._loop(), self.name)

    async def _loop(self) -> None:
        while self.active():
            if not self.pending:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                continue
            head = self.pending[: self.batch]
            await self.send(head)
            # Remove what went, unless the list was reset meanwhile.
            if self.pending and self.pending[0] is head[0]:
                del self.pending[: len(head)]


Handler = Callable[[Request], Awaitable[Response]]


def control_routes(routes: Mapping[str, tuple[Handler, Sequence[str]]]) -> list[Route]:
    """The `/_sim/...` control API: {path under /_sim: (handler, methods)}."""
    return [
        Route(f"/_sim/{path.lstrip('/')}", handler, methods=list(methods))
        for path, (handler, methods) in routes.items()
    ]


async def read_json(request: Request) -> dict[str, Any]:
    """A control call's JSON object ({} when the body is not one)."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def control_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class ControlError(Exception):
    """A `/_sim/...` call that cannot be done: `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def response(self) -> JSONResponse:
        return control_error(self.message, self.status)


Owner = TypeVar("Owner")
Method = Callable[[Owner, Request], Awaitable[Response]]


def answering(
    *errors: type[Exception], answer: Callable[[Any], Response]
) -> Callable[[Method[Owner]], Method[Owner]]:
    """A handler method whose `errors`, raised anywhere in it, are answered by `answer(error)`
    (a provider error's own response, a control error) instead of each handler's try/except."""

    def wrap(handler: Method[Owner]) -> Method[Owner]:
        @functools.wraps(handler)
        async def handle(owner: Owner, request: Request) -> Response:
            try:
                return await handler(owner, request)
            except errors as exc:
                return answer(exc)

        return handle

    return wrap


# A control handler whose body names no known account (LookupError; KeyError: a missing field)
# or carries a bad value (ValueError, TypeError): a 400 with the error's words.
refusing_bad_input = answering(
    LookupError, ValueError, TypeError, answer=lambda exc: control_error(str(exc))
)


@dataclass(frozen=True)
class DemoChannel:
    """A channel `tidings bootstrap --demo` connects to the sandbox: (kind, name, config);
    `config` gets the simulator's base URL (`{public}/sandbox/{path}`)."""

    kind: str
    name: str
    config: Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class PhoneLocation:
    """A location the phone page's customer shares (`sandbox.RichCustomer.send_location`)."""

    latitude: float
    longitude: float
    label: str | None


@dataclass(frozen=True)
class PhoneFile:
    """A file the phone page's customer sends (`sandbox.RichCustomer.send_file`), with the
    typed words as its caption."""

    mime_type: str
    filename: str
    data: bytes
    caption: str | None


@dataclass(frozen=True)
class SandboxEntry:
    """One simulator in the sandbox: mounted at `/sandbox/{path}`, built by `make(base_url)`,
    tied to Tidings channels by `bind(base_url, simulator)` (a `sandbox.SandboxBinding`; None:
    no phone-page binding), with the demo workspace's channels on it."""

    path: str
    make: Callable[[str], Any]
    bind: Callable[[str, Any], Any] | None = None
    demo: tuple[DemoChannel, ...] = ()


class SimulatorBase:
    """A simulator's background `tasks` and `webhooks` sender, closed together by `aclose`
    (subclasses build `app`)."""

    def __init__(self, http: httpx.AsyncClient | None = None) -> None:
        self.tasks = TaskSet()
        self.webhooks = WebhookSender(http)

    async def aclose(self) -> None:
        await self.tasks.aclose()
        await self.webhooks.aclose()


S = TypeVar("S")
C = TypeVar("C")


class UrlBinding(Generic[S, C]):
    """A sandbox binding (`sandbox.SandboxBinding`) that owns the channels whose `api_base_url`
    is its simulator's base URL; `config` is the channel's config, of `config_type`."""

    config_type: type[C]

    def __init__(self, base_url: str, sim: S) -> None:
        self.base_url = base_url.rstrip("/")
        self.sim = sim

    def owns(self, channel: Any) -> bool:
        return str(getattr(channel.config, "api_base_url", "")).rstrip("/") == self.base_url

    def config(self, channel: Any) -> C:
        assert isinstance(channel.config, self.config_type)
        return channel.config


def knobs_handler(target: Any, casts: Mapping[str, Callable[[Any], Any]]) -> Handler:
    """A `/_sim/config` route: sets each knob the body names as an attribute of `target`
    (converted by its cast; a ValueError/TypeError is a 400 and changes nothing) and answers
    every knob's value."""

    async def handle(request: Request) -> Response:
        spec = await read_json(request)
        try:
            values = {name: cast(spec[name]) for name, cast in casts.items() if name in spec}
        except (ValueError, TypeError) as exc:
            return control_error(f"bad knob value: {exc}")
        for name, value in values.items():
            setattr(target, name, value)
        return JSONResponse({name: getattr(target, name) for name in casts})

    return handle


def int_list(spec: Mapping[str, Any], name: str) -> list[int] | None:
    """An optional list of integers in a control body (a part order); ValueError otherwise."""
    value = spec.get(name)
    if value is not None and not (
        isinstance(value, list) and all(isinstance(n, int) for n in value)
    ):
        raise ValueError(f"{name}: a list of part numbers")
    return value


def thread_entry(
    mid: str, direction: str, text: Any, status: str, *, at: float | None = None, **more: Any
) -> dict[str, Any]:
    """One message of a simulator's thread, as its `/_sim/conversations` lists it and the phone
    page shows it: id, "in" or "out", the words shown, status, when (now unless `at`), then
    the provider's own fields (`user` where one list holds several customers)."""
    return {
        "id": mid,
        "direction": direction,
        "text": text,
        "status": status,
        "at": time.time() if at is None else at,
        **more,
    }


def thread_of(thread: list[dict[str, Any]], user: str | None) -> list[dict[str, Any]]:
    """The entries of a thread list that belong to `user` (all of them when None)."""
    return [m for m in thread if user is None or m["user"] == user]


def set_status(thread: list[dict[str, Any]], mid: str, status: str) -> None:
    """Show a new status on the thread entry of message `mid`."""
    for entry in thread:
        if entry["id"] == mid:
            entry["status"] = status


def digits(value: str) -> str:
    """The digits of a phone number as written (an SMS address: no `+`, no spaces)."""
    return "".join(ch for ch in value if ch.isdigit())


def check_order(order: Sequence[int] | None, count: int) -> None:
    """A control body's `part_order` (1-based part numbers, repeats allowed) must name parts
    1..`count`; ValueError otherwise."""
    if order and any(not 1 <= n <= count for n in order):
        raise ValueError(f"part_order: part numbers are 1..{count}")


async def in_order(
    send: Callable[[T], Awaitable[Any]], parts: Sequence[T], order: Sequence[int]
) -> None:
    """Send the parts one after another in `order` (1-based, repeats allowed): out-of-order and
    repeated parts of a long SMS, as a network delivers them."""
    for n in order:
        await send(parts[n - 1])


def list_handler(
    owners: Mapping[str, Any], param: str, attr: str, missing: ControlError | None = None
) -> Handler:
    """A `/_sim/...` listing (`sent`, `deliveries`...): the `attr` list of the owner (account,
    bot, agent) that the query parameter `param` names; [] for an unknown one, or the
    `missing` error where the provider's control API refuses it."""

    async def handle(request: Request) -> Response:
        owner = owners.get(request.query_params.get(param, ""))
        if owner is None and missing is not None:
            return missing.response()
        return JSONResponse(getattr(owner, attr) if owner else [])

    return handle


@dataclass
class TokenBucket:
    """A provider's rate limit as a token bucket (`rate` tokens a second, at most `burst`,
    full at first); `take` returns 0 when it took a token, else the seconds until one is free."""

    rate: float
    burst: float
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else math.inf


def thread_route(
    lookup: Callable[[str, str | None], list[dict[str, Any]]], owner: str, user: str = "user"
) -> Handler:
    """A `/_sim/conversations` route: `lookup(owner, user)` for the owner (account, agent...)
    that the query parameter `owner` names ("" when absent) and the optional customer that the
    query parameter `user` names (`user_id`, `chat_id`, `openid`...)."""

    async def handle(request: Request) -> Response:
        q = request.query_params
        return JSONResponse(lookup(q.get(owner, ""), q.get(user)))

    return handle


@dataclass
class Failure:
    """A provider error injected by `/_sim/fail`: the next `times` calls of `method` (an API
    method or path) fail with `code`, `message` and, where the provider says so, `retry_after`."""

    method: str
    code: int
    message: str | None = None
    retry_after: int | None = None
    times: int = 1


def injected(failures: Sequence[Failure], method: str) -> Failure | None:
    """The oldest injected failure of `method` with calls left, used up by one (None: none)."""
    for failure in failures:
        if failure.times > 0 and failure.method == method:
            failure.times -= 1
            return failure
    return None
