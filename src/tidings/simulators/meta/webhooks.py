"""Meta's webhook sender, as the WhatsApp, Messenger and Instagram simulators play it
(docs/providers/graph-api.md#webhook-signature,
docs/providers/graph-api.md#batching-retries-and-order): ASCII-escaped JSON signed with
`X-Hub-Signature-256`, at-least-once with retries, duplicate copies on demand, a bounded
delivery log and per-kind statistics (`stats.WebhookStats`).

Built on the kit's `WebhookSender` (one pooled client, bounded POSTs in flight) and `TaskSet`;
what is Meta's here is the body encoding, the signature, the retry schedule with its time
budget and "anything but 200 is a failure".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, Field

from tidings.httpclient import post
from tidings.simulators.kit import TaskSet, WebhookSender
from tidings.simulators.meta.stats import WebhookStats

logger = logging.getLogger(__name__)

# The webhook client's pool: never the limit (the `webhook_concurrency` slots are), so no
# delivery fails with httpx.PoolTimeout.
MAX_CONNECTIONS = 1024


class DeliveryKnobs(BaseModel):
    """The webhook sender's knobs, shared by every Meta simulator's `Knobs`."""

    duplicate_deliveries: int = Field(0, ge=0, le=100)
    # Meta does not publish its exact backoff; it retries for up to 7 days
    # (docs/providers/graph-api.md#batching-retries-and-order).
    retry_schedule: list[Annotated[float, Field(ge=0)]] = [
        0.2,
        0.5,
        1.0,
        2.0,
        5.0,
        10.0,
        20.0,
        30.0,
    ]
    retry_for_seconds: float = Field(600.0, ge=0)
    delivery_timeout: float = Field(10.0, gt=0)
    # Meta's bodies show "/" as "\/" (docs/providers/graph-api.md#webhook-signature); signing
    # those bytes catches re-serialisers.
    escape_slashes: bool = True
    # The request and delivery logs keep this many recent entries, so a long sandbox session
    # or a benchmark does not grow without bound.
    history_limit: int = Field(10_000, ge=1)
    # Webhook POSTs in flight at once. An attempt waits for a free slot before its
    # `delivery_timeout` starts, so a burst queues instead of timing out on the HTTP pool
    # (docs/channels/whatsapp.md, "The simulator under a campaign's load").
    webhook_concurrency: int = Field(64, ge=1, le=MAX_CONNECTIONS)


@dataclass
class WebhookDelivery:
    """One webhook POST and its retries."""

    id: int
    account_id: str
    kind: str
    refs: list[str]
    duplicate: bool
    created_at: float
    attempts: int = 0
    first_status: int | None = None
    last_status: int | None = None
    last_error: str | None = None
    state: Literal["pending", "delivered", "given_up"] = "pending"

    @property
    def items(self) -> int:
        """What the statistics count as delivered (a duplicate copy adds nothing)."""
        return 0 if self.duplicate else len(self.refs)


def encode(payload: dict[str, Any], *, escape_slashes: bool) -> bytes:
    # Meta sends (and signs) ASCII-escaped JSON with "/" as "\/"
    # (docs/providers/graph-api.md#webhook-signature). A "/" can only occur inside JSON
    # strings, so escaping every one keeps the JSON valid.
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    if escape_slashes:
        text = text.replace("/", "\\/")
    return text.encode("ascii")


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={signature}",
        "User-Agent": "facebookexternalua",
    }


def trim(log: list[Any], limit: int) -> None:
    """Keep the last `limit` entries of a request or delivery log."""
    if len(log) > limit:
        del log[: len(log) - limit]


Spawn = Callable[[Coroutine[Any, Any, None], str, str], None]


class MetaWebhooks(WebhookSender):
    """Signed webhook POSTs with Meta's retries: `send`, on the kit sender's pooled client (the
    kit's `deliver`, exponential backoff per attempt count, is not Meta's schedule). At most
    `webhook_concurrency` POSTs of kind `status` in flight, and as many again of the other
    kinds, so a customer message never waits behind a campaign's receipts inside the
    simulator (the latency a benchmark reports for it is the receiver's, not this queue's; a
    changed knob takes effect for new attempts, those in flight finish on the old slots).
    `spawn(coro, name, kind)` runs a retry in the background (default: in `tasks`);
    `on_delivered` sees each delivery the receiver accepted."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        knobs: Callable[[], DeliveryKnobs],
        tasks: TaskSet,
        name: str,
        *,
        account_key: str = "account_id",
        spawn: Spawn | None = None,
        on_delivered: Callable[[WebhookDelivery], None] | None = None,
    ) -> None:
        self._knobs = knobs
        super().__init__(http, concurrency=knobs().webhook_concurrency)
        self._status_slots = asyncio.Semaphore(knobs().webhook_concurrency)
        self._slots_size = knobs().webhook_concurrency
        self._tasks = tasks
        self._name = name
        self._account_key = account_key
        self._spawn = spawn or self._spawn_in_tasks
        self._on_delivered = on_delivered
        self._ids = itertools.count(1)
        self.log: list[WebhookDelivery] = []
        # Every webhook attempt's answer and latency, per kind (`GET /_sim/stats`).
        self.stats = WebhookStats()

    def _spawn_in_tasks(self, coro: Coroutine[Any, Any, None], name: str, kind: str) -> None:
        self._tasks.spawn(coro, name)

    def encode(self, payload: dict[str, Any]) -> bytes:
        return encode(payload, escape_slashes=self._knobs().escape_slashes)

    async def send(
        self,
        url: str,
        secret: str,
        account_id: str,
        payload: dict[str, Any],
        kind: str,
        refs: list[str],
    ) -> WebhookDelivery:
        """First attempt awaited (its status is reported to the caller); retries and
        `duplicate_deliveries` extra copies continue in the background."""
        body = self.encode(payload)
        delivery = self._new(account_id, kind, refs, duplicate=False)
        if not await self._attempt(url, secret, body, delivery):
            retry = self._retry(url, secret, body, delivery)
            self._spawn(retry, f"{self._name}-retry-{delivery.id}", kind)
        for _ in range(self._knobs().duplicate_deliveries):
            copy = self._new(account_id, kind, refs, duplicate=True)
            self._tasks.spawn(
                self._background(url, secret, body, copy), f"{self._name}-dup-{copy.id}"
            )
        return delivery

    def _new(
        self, account_id: str, kind: str, refs: list[str], *, duplicate: bool
    ) -> WebhookDelivery:
        delivery = WebhookDelivery(
            next(self._ids), account_id, kind, refs, duplicate, time.monotonic()
        )
        self.log.append(delivery)
        trim(self.log, self._knobs().history_limit)
        return delivery

    async def _background(self, url: str, secret: str, body: bytes, d: WebhookDelivery) -> None:
        if not await self._attempt(url, secret, body, d):
            await self._retry(url, secret, body, d)

    def _slot(self, kind: str) -> asyncio.Semaphore:
        size = self._knobs().webhook_concurrency
        if self._slots_size != size:
            self._slots = asyncio.Semaphore(size)
            self._status_slots = asyncio.Semaphore(size)
            self._slots_size = size
        return self._status_slots if kind == "status" else self._slots

    async def _attempt(self, url: str, secret: str, body: bytes, d: WebhookDelivery) -> bool:
        headers = signed_headers(secret, body)
        started: float | None = None
        try:
            # Wait for a slot first: the timeout covers the POST, not the wait for the pool.
            async with self._slot(d.kind):
                d.attempts += 1
                started = time.perf_counter()
                response = await post(
                    self.http,
                    url,
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(self._knobs().delivery_timeout),
                )
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - started if started is not None else None
            self.stats.failed(d.kind, exc, elapsed)
            d.last_status, d.last_error = None, repr(exc)
            return False
        self.stats.answered(d.kind, response.status_code, time.perf_counter() - started, d.items)
        d.last_status = response.status_code
        if d.first_status is None:
            d.first_status = response.status_code
        # Anything but 200 is a failure to retry
        # (docs/providers/graph-api.md#batching-retries-and-order).
        if response.status_code != 200:
            d.last_error = f"HTTP {response.status_code}"
            return False
        d.state, d.last_error = "delivered", None
        if self._on_delivered is not None:
            self._on_delivered(d)
        return True

    async def _retry(self, url: str, secret: str, body: bytes, d: WebhookDelivery) -> None:
        schedule = self._knobs().retry_schedule
        for attempt in itertools.count():
            if not schedule:
                break
            # Past the schedule's end the last delay repeats, until retry_for_seconds runs out.
            delay = schedule[min(attempt, len(schedule) - 1)]
            if time.monotonic() - d.created_at + delay > self._knobs().retry_for_seconds:
                break
            await asyncio.sleep(delay)
            if await self._attempt(url, secret, body, d):
                return
        d.state = "given_up"
        self.stats.gave_up(d.kind, d.items)
        logger.warning(
            "%s simulator gave up on webhook %s to %s after %d attempts: %s",
            self._name,
            d.id,
            url,
            d.attempts,
            d.last_error,
        )

    def counts(self) -> dict[str, int]:
        counts = {"delivered": 0, "pending": 0, "given_up": 0}
        for d in self.log:
            counts[d.state] += 1
        return counts

    def view(self) -> list[dict[str, Any]]:
        """The delivery log as `/_sim/deliveries` shows it (the account under the product's
        own name: `phone_number_id` on WhatsApp)."""
        out = []
        for d in self.log:
            data = asdict(d)
            data.pop("created_at")
            data[self._account_key] = data.pop("account_id")
            out.append(data)
        return out

    def reset(self) -> None:
        self.log.clear()
        self.stats.reset()
