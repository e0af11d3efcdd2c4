"""The simulator kit's shared parts that carry a rule of their own: a provider's retry schedule
and per-request timeout in `WebhookSender.deliver`, the `/_sim/config` knobs route (a bad value
is a 400 and changes nothing) and the per-account listings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from tidings.simulators.kit import (
    TaskSet,
    TokenBucket,
    WebhookSender,
    control_routes,
    int_list,
    knobs_handler,
    list_handler,
)


async def test_deliver_follows_a_provider_schedule_and_reports_each_attempt() -> None:
    answers = [503, 500, 204]
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answers[len(seen) - 1])

    sender = WebhookSender(httpx.AsyncClient(transport=httpx.MockTransport(reply)))
    attempts: list[tuple[int, int]] = []
    went = await sender.deliver(
        lambda n: ("http://receiver/hook", b"{}", {"X-Attempt": str(n)}),
        attempts=5,
        base_seconds=60.0,  # not used: the schedule below replaces the exponential backoff
        delays=[0.0, 0.01],
        on_attempt=lambda n, status, _detail: attempts.append((n, status)),
        request_timeout=2.5,
    )
    assert went is True
    assert attempts == [(1, 503), (2, 500), (3, 204)]
    assert [r.headers["X-Attempt"] for r in seen] == ["1", "2", "3"]
    assert {r.extensions["timeout"]["read"] for r in seen} == {2.5}
    await sender.http.aclose()


@dataclass
class Account:
    sent: list[dict[str, Any]] = field(default_factory=list)


class Knobs:
    delay = 0.05
    stat = "DELIVRD"


def _app(knobs: Knobs, accounts: dict[str, Account]) -> httpx.AsyncClient:
    async def echo(request: Request) -> Response:
        return Response(str(int_list(dict(request.query_params), "missing")))

    app = Starlette(
        routes=control_routes(
            {
                "config": (knobs_handler(knobs, {"delay": float, "stat": str}), ["POST"]),
                "sent": (list_handler(accounts, "key", "sent"), ["GET"]),
                "echo": (echo, ["GET"]),
            }
        )
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


async def test_knobs_route_sets_named_knobs_and_refuses_a_bad_value_whole() -> None:
    knobs = Knobs()
    async with _app(knobs, {}) as sim:
        ok = await sim.post("/_sim/config", json={"delay": "0.5"})
        assert ok.status_code == 200 and ok.json() == {"delay": 0.5, "stat": "DELIVRD"}
        bad = await sim.post("/_sim/config", json={"stat": "UNDELIV", "delay": "soon"})
        assert bad.status_code == 400 and "error" in bad.json()
        # Nothing of the refused call was applied.
        assert (knobs.delay, knobs.stat) == (0.5, "DELIVRD")


async def test_listing_names_one_account_and_is_empty_for_an_unknown_one() -> None:
    accounts = {"a": Account([{"id": 1}]), "b": Account([{"id": 2}])}
    async with _app(Knobs(), accounts) as sim:
        assert (await sim.get("/_sim/sent", params={"key": "b"})).json() == [{"id": 2}]
        assert (await sim.get("/_sim/sent", params={"key": "zz"})).json() == []
        assert (await sim.get("/_sim/echo")).text == "None"


def test_int_list_accepts_integers_only() -> None:
    assert int_list({"order": [2, 1, 2]}, "order") == [2, 1, 2]
    assert int_list({}, "order") is None
    for bad in ([1, "2"], "1,2", 3):
        try:
            int_list({"order": bad}, "order")
        except ValueError as exc:
            assert "order" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


async def test_task_set_wait_and_cancel() -> None:
    tasks = TaskSet()
    gate = asyncio.Event()
    tasks.spawn(gate.wait(), "held")
    tasks.spawn(asyncio.sleep(0), "quick")
    assert await tasks.wait(0.5) == 1  # the quick one finished; the held one still runs
    tasks.cancel()
    assert await tasks.wait(0.5) == 0


def test_token_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=0.001, burst=2)  # one token per 1000 s: no refill in this test
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() > 900
    assert TokenBucket(rate=0, burst=0).take() > 0
