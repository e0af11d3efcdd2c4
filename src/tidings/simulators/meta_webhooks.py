"""Meta's webhook sender, as the simulators play it
(docs/protocols/meta-platform.md#webhook-signature,
docs/protocols/meta-platform.md#batching-retries-and-order): ASCII-escaped JSON signed with
`X-Hub-Signature-256`, at-least-once with retries, duplicate copies on demand, and a bounded
delivery log. Used by the Messenger and Instagram simulators."""

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
from typing import Any, Literal

import httpx

from tidings.httpclient import post

logger = logging.getLogger(__name__)


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

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("created_at")
        return data


@dataclass
class SenderKnobs:
    duplicate_deliveries: int = 0
    retry_schedule: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
    retry_for_seconds: float = 600.0
    delivery_timeout: float = 10.0
    escape_slashes: bool = True
    history_limit: int = 10_000
    # POSTs in flight at once; an attempt waits for a slot before its timeout starts, so a
    # burst queues instead of failing on the HTTP pool (docs/channels/whatsapp.md, "The
    # simulator under a campaign's load").
    webhook_concurrency: int = 64


class WebhookSender:
    def __init__(
        self,
        http: httpx.AsyncClient,
        knobs: Callable[[], SenderKnobs],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        name: str,
    ) -> None:
        self._http = http
        self._knobs = knobs
        self._spawn = spawn
        self._name = name
        self._ids = itertools.count(1)
        self.log: list[WebhookDelivery] = []
        self._slots: asyncio.Semaphore | None = None

    def encode(self, payload: dict[str, Any]) -> bytes:
        # Meta sends (and signs) ASCII-escaped JSON with "/" as "\/"
        # (docs/protocols/meta-platform.md#webhook-signature). A "/" can only occur inside JSON
        # strings, so escaping every one keeps the JSON valid.
        text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
        if self._knobs().escape_slashes:
            text = text.replace("/", "\\/")
        return text.encode("ascii")

    async def deliver(
        self,
        url: str,
        secret: str,
        account_id: str,
        payload: dict[str, Any],
        kind: str,
        refs: list[str],
    ) -> WebhookDelivery:
        """First attempt awaited (its status is reported to the caller); retries and
        duplicate copies continue in the background."""
        body = self.encode(payload)
        delivery = self._new(account_id, kind, refs, duplicate=False)
        if not await self._attempt(url, secret, body, delivery):
            self._spawn(
                self._retry(url, secret, body, delivery), f"{self._name}-retry-{delivery.id}"
            )
        for _ in range(self._knobs().duplicate_deliveries):
            copy = self._new(account_id, kind, refs, duplicate=True)
            self._spawn(self._background(url, secret, body, copy), f"{self._name}-dup-{copy.id}")
        return delivery

    def _new(
        self, account_id: str, kind: str, refs: list[str], *, duplicate: bool
    ) -> WebhookDelivery:
        delivery = WebhookDelivery(
            next(self._ids), account_id, kind, refs, duplicate, time.monotonic()
        )
        self.log.append(delivery)
        limit = self._knobs().history_limit
        if len(self.log) > limit:
            del self.log[: len(self.log) - limit]
        return delivery

    async def _background(self, url: str, secret: str, body: bytes, d: WebhookDelivery) -> None:
        if not await self._attempt(url, secret, body, d):
            await self._retry(url, secret, body, d)

    async def _attempt(self, url: str, secret: str, body: bytes, d: WebhookDelivery) -> bool:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature}",
            "User-Agent": "facebookexternalua",
        }
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._knobs().webhook_concurrency)
        try:
            async with self._slots:
                d.attempts += 1
                response = await post(
                    self._http,
                    url,
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(self._knobs().delivery_timeout),
                )
        except httpx.HTTPError as exc:
            d.last_status, d.last_error = None, repr(exc)
            return False
        d.last_status = response.status_code
        if d.first_status is None:
            d.first_status = response.status_code
        # Anything but 200 is a failure to retry
        # (docs/protocols/meta-platform.md#batching-retries-and-order).
        if response.status_code != 200:
            d.last_error = f"HTTP {response.status_code}"
            return False
        d.state, d.last_error = "delivered", None
        return True

    async def _retry(self, url: str, secret: str, body: bytes, d: WebhookDelivery) -> None:
        knobs = self._knobs()
        schedule = knobs.retry_schedule
        for attempt in itertools.count():
            if not schedule:
                break
            delay = schedule[min(attempt, len(schedule) - 1)]
            if time.monotonic() - d.created_at + delay > knobs.retry_for_seconds:
                break
            await asyncio.sleep(delay)
            if await self._attempt(url, secret, body, d):
                return
        d.state = "given_up"
        logger.warning(
            "%s simulator gave up on webhook %s after %d attempts: %s",
            self._name,
            d.id,
            d.attempts,
            d.last_error,
        )

    def counts(self) -> dict[str, int]:
        counts = {"delivered": 0, "pending": 0, "given_up": 0}
        for d in self.log:
            counts[d.state] += 1
        return counts
