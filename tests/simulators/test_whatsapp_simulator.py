"""The WhatsApp simulator: Graph validation and errors, windows and limits, and webhook delivery
over real HTTP to a small receiver that checks signatures with the WhatsApp adapter."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.conftest import free_port
from tidings.channels.base import WebhookRequest
from tidings.channels.whatsapp import WhatsAppAdapter, WhatsAppConfig
from tidings.domain.enums import MessageKind, MessageStatus
from tidings.domain.errors import SignatureError
from tidings.domain.events import InboundMessage, StatusUpdate
from tidings.simulators.whatsapp import AccountIn, InboundSpec, WhatsAppSimulator

PNID = "106540352242922"
CUSTOMER = "16505551234"
TOKEN = "EAAG-sim-token"
adapter = WhatsAppAdapter()
config = WhatsAppConfig(
    phone_number_id=PNID, access_token=TOKEN, app_secret="s3cret", verify_token="vt-1"
)


class Receiver:
    """A stand-in for Tidings' webhook endpoint, served by uvicorn on a loopback port."""

    def __init__(self) -> None:
        self.posts: list[WebhookRequest] = []
        self.handshakes = 0
        self.bad_signatures = 0
        # Status codes to answer with, in order; 200 once exhausted (or `always` if set).
        self.answers: deque[int] = deque()
        self.always: int | None = None
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["GET", "POST"])])
        self.url = ""

    async def hook(self, request: Request) -> Response:
        wr = WebhookRequest(
            request.method,
            str(request.url),
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            await request.body(),
        )
        if request.method == "GET":
            self.handshakes += 1
            try:
                reply = adapter.handshake(config, wr)
            except SignatureError:
                return PlainTextResponse("forbidden", status_code=403)
            return Response(reply.body, status_code=reply.status, media_type=reply.media_type)
        try:
            adapter.verify(config, wr)
        except SignatureError:
            self.bad_signatures += 1
            return PlainTextResponse("bad signature", status_code=401)
        self.posts.append(wr)
        status = self.answers.popleft() if self.answers else (self.always or 200)
        return Response(status_code=status)

    def events(self) -> list[Any]:
        return [
            e
            for p in self.posts
            for piece in adapter.split(config, p)
            for e in adapter.parse(config, piece.payload)
        ]

    def keys(self) -> list[list[str]]:
        return [[piece.key for piece in adapter.split(config, p)] for p in self.posts]


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[Receiver]:
    """One uvicorn server per module (starting one costs ~0.2 s); state is reset per test."""
    rec = Receiver()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(rec.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    server.should_exit = True
    await task


@pytest.fixture
async def receiver(served: Receiver) -> Receiver:
    served.posts.clear()
    served.answers.clear()
    served.handshakes = served.bad_signatures = 0
    served.always = None
    return served


@pytest.fixture
async def sim() -> AsyncIterator[WhatsAppSimulator]:
    simulator = WhatsAppSimulator()
    simulator.configure(status_delay=0.0, retry_schedule=[0.05])
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def ctl(sim: WhatsAppSimulator, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's HTTP surface (Graph and /_sim/), in process, with one account."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
    ) as client:
        resp = await client.put(
            f"/_sim/accounts/{PNID}",
            json={
                "access_token": TOKEN,
                "app_secret": "s3cret",
                "verify_token": "vt-1",
                "webhook_url": receiver.url,
                "display_phone_number": "15550783881",
            },
        )
        assert resp.status_code == 200
        yield client


async def inbound(ctl: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    body = {"phone_number_id": PNID, "from": CUSTOMER, "name": "Sheena Nelson", "text": "hi"}
    body.update(spec)
    resp = await ctl.post("/_sim/inbound", json=body)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def send(ctl: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {"Authorization": f"Bearer {TOKEN}"})
    return await ctl.post(f"/v25.0/{PNID}/messages", json=body, headers=headers, **kw)


def text_body(to: str = f"+{CUSTOMER}", body: str = "hello", **extra: Any) -> dict[str, Any]:
    out = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }
    out.update(extra)
    return out


# --- Graph send API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"to": "+16505551234", "type": "text", "text": {"body": "x"}}, 100),
        ({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}, 131008),
        (text_body(to="not-a-number"), 131009),
        (text_body(body=""), 131008),
        (text_body(body="y" * 4097), 100),
        ({**text_body(), "type": "hologram"}, 100),
        ({**text_body(), "type": "image", "image": {"id": "1", "link": "https://x/a.jpg"}}, 100),
        ({**text_body(), "type": "image", "image": {"link": "ftp://x/a.jpg"}}, 131009),
        ({**text_body(), "type": "template", "template": {"name": "t"}}, 131008),
        ({**text_body(), "type": "location", "location": {"name": "x"}}, 131008),
        (
            {
                **text_body(),
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Pick"},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}}
                            for i in range(4)
                        ]
                    },
                },
            },
            131009,
        ),
        ({**text_body(), "recipient": "not-a-bsuid", "to": None}, 131009),
    ],
)
async def test_graph_validates_like_the_real_one(
    ctl: httpx.AsyncClient, body: dict[str, Any], code: int
) -> None:
    await inbound(ctl)
    body = {k: v for k, v in body.items() if v is not None}
    resp = await send(ctl, body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(f"(#{code}) ")
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert len(error["fbtrace_id"]) > 10


async def test_graph_success_shape(ctl: httpx.AsyncClient, sim: WhatsAppSimulator) -> None:
    await inbound(ctl)
    sim.configure(auto_statuses=[])
    resp = await send(ctl, text_body(), params={"unused": "1"})
    assert resp.status_code == 200
    data = resp.json()
    assert data["messaging_product"] == "whatsapp"
    assert data["contacts"] == [{"input": "+16505551234", "wa_id": "16505551234"}]
    [message] = data["messages"]
    assert message["id"].startswith("wamid.")
    # A missing type defaults to text, as on Graph.
    untyped = text_body()
    del untyped["type"]
    assert (await send(ctl, untyped)).status_code == 200
    assert len((await ctl.get("/_sim/sent", params={"phone_number_id": PNID})).json()) == 2


async def test_graph_auth_and_unknown_number(ctl: httpx.AsyncClient) -> None:
    await inbound(ctl)
    wrong = await send(ctl, text_body(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == 190
    missing = await send(ctl, text_body(), headers={})
    assert missing.status_code == 401
    query = await send(ctl, text_body(), headers={}, params={"access_token": TOKEN})
    assert query.status_code == 200
    other = await ctl.post(
        "/v25.0/999/messages", json=text_body(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert other.status_code == 400
    assert other.json()["error"]["code"] == 100
    assert (
        await ctl.post(
            f"/v17.0/{PNID}/messages",
            json=text_body(),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    ).status_code == 200
    assert (
        await ctl.post(
            f"/latest/{PNID}/messages",
            json=text_body(),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    ).status_code == 400
    recorded = (await ctl.get("/_sim/sent")).json()
    assert len(recorded) == 6
    assert all("authorization" not in r["headers"] for r in recorded)
    assert all("access_token" not in r["query"] for r in recorded)


async def test_window_is_enforced_sync_and_templates_pass(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator
) -> None:
    sim.configure(window_mode="sync", auto_statuses=[])
    closed = await send(ctl, text_body())
    assert (closed.status_code, closed.json()["error"]["code"]) == (400, 131047)
    template = {
        **text_body(),
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    del template["text"]
    accepted = await send(ctl, template)
    assert accepted.status_code == 200
    assert accepted.json()["messages"][0]["message_status"] == "accepted"
    await inbound(ctl)
    assert (await send(ctl, text_body())).status_code == 200
    # 25 hours later the window is closed again.
    resp = await ctl.post(
        "/_sim/window",
        json={"phone_number_id": PNID, "user": CUSTOMER, "last_inbound_hours_ago": 25},
    )
    assert resp.json() == {"user": CUSTOMER, "window_open": False}
    assert (await send(ctl, text_body())).json()["error"]["code"] == 131047
    [customer] = (await ctl.get("/_sim/customers", params={"phone_number_id": PNID})).json()
    assert customer["window_open"] is False
    assert customer["name"] == "Sheena Nelson"


async def test_template_registry(ctl: httpx.AsyncClient, sim: WhatsAppSimulator) -> None:
    resp = await ctl.post(
        "/_sim/config",
        json={
            "templates": {
                "order_update": {"languages": ["en_US"]},
                "old_promo": {"status": "PAUSED"},
            },
            "auto_statuses": [],
        },
    )
    assert resp.status_code == 200
    base = {k: v for k, v in text_body().items() if k != "text"} | {"type": "template"}

    async def code_for(name: str, lang: str = "en_US") -> int | None:
        r = await send(ctl, base | {"template": {"name": name, "language": {"code": lang}}})
        return None if r.status_code == 200 else int(r.json()["error"]["code"])

    assert await code_for("order_update") is None
    assert await code_for("order_update", "fr") == 132001
    assert await code_for("nope") == 132001
    assert await code_for("old_promo") == 132015


async def test_throughput_and_injected_failures(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator
) -> None:
    await inbound(ctl)
    sim.configure(auto_statuses=[], throughput_per_second=3)
    codes = [(await send(ctl, text_body())).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 400]
    assert sim.sent()[-1]["response"]["body"]["error"]["code"] == 130429
    sim.configure(throughput_per_second=80)
    assert (
        await ctl.post(
            "/_sim/fail", json={"count": 2, "code": 131000, "http_status": 500, "retry_after": 3}
        )
    ).json() == {"queued": 2}
    first, second, third = [await send(ctl, text_body()) for _ in range(3)]
    assert (first.status_code, first.headers["retry-after"], first.json()["error"]["code"]) == (
        500,
        "3",
        131000,
    )
    assert second.status_code == 500
    assert third.status_code == 200


async def test_mark_read_and_typing(ctl: httpx.AsyncClient) -> None:
    first = await inbound(ctl, text="one")
    second = await inbound(ctl, text="two")
    resp = await send(
        ctl,
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": second["id"],
            "typing_indicator": {"type": "text"},
        },
    )
    assert resp.json() == {"success": True}
    thread = (
        await ctl.get("/_sim/conversations", params={"phone_number_id": PNID, "user": CUSTOMER})
    ).json()
    assert [(m["id"], m["direction"], m["status"]) for m in thread] == [
        (first["id"], "in", "read"),
        (second["id"], "in", "read"),
    ]
    [customer] = (await ctl.get("/_sim/customers", params={"phone_number_id": PNID})).json()
    assert customer["typing"] is True
    unknown = await send(
        ctl, {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.nope"}
    )
    assert unknown.json()["error"]["code"] == 100


# --- webhook delivery over real HTTP ------------------------------------------------------------


async def test_inbound_is_signed_escaped_and_parses(
    ctl: httpx.AsyncClient, receiver: Receiver
) -> None:
    result = await inbound(ctl, text="Grüße https://ex.com/x", context_id="wamid.PREV")
    assert result["status"] == 200
    [post] = receiver.posts
    assert receiver.bad_signatures == 0
    assert post.headers["content-type"] == "application/json"
    # ASCII-escaped with "\/", as Meta signs it (docs/providers/graph-api.md#webhook-signature).
    assert post.body.isascii()
    assert b"https:\\/\\/ex.com\\/x" in post.body
    assert b"Gr\\u00fc\\u00dfe" in post.body
    assert receiver.keys() == [[f"msg:{result['id']}"]]
    [event] = receiver.events()
    assert isinstance(event, InboundMessage)
    assert (event.text, event.sender.phone, event.sender.name) == (
        "Grüße https://ex.com/x",
        "+16505551234",
        "Sheena Nelson",
    )
    assert event.reply_to_provider_id == "wamid.PREV"
    thread = (
        await ctl.get("/_sim/conversations", params={"phone_number_id": PNID, "user": CUSTOMER})
    ).json()
    assert [(m["direction"], m["status"], m["text"]) for m in thread] == [
        ("in", "delivered", "Grüße https://ex.com/x")
    ]


async def test_inbound_types_and_bsuid_only_user(
    ctl: httpx.AsyncClient, receiver: Receiver
) -> None:
    await inbound(
        ctl, type="location", location={"latitude": 1.5, "longitude": 2.5, "name": "Shop"}
    )
    await inbound(ctl, type="image", text="the box")
    await inbound(ctl, type="reaction", reaction={"message_id": "wamid.X", "emoji": "\U0001f44d"})
    await inbound(ctl, type="unsupported")
    resp = await ctl.post(
        "/_sim/inbound",
        json={"phone_number_id": PNID, "user_id": "US.13491208655302741918", "text": "hey"},
    )
    assert resp.json()["status"] == 200
    events = receiver.events()
    assert [e.kind for e in events] == [
        MessageKind.LOCATION,
        MessageKind.MEDIA,
        MessageKind.REACTION,
        MessageKind.UNSUPPORTED,
        MessageKind.TEXT,
    ]
    assert events[1].attachments[0].caption == "the box"
    assert events[2].target_provider_id == "wamid.X"
    assert events[3].extra["type"] == "poll"
    assert (events[4].sender.address, events[4].sender.phone) == ("US.13491208655302741918", None)
    bad = await ctl.post("/_sim/inbound", json={"phone_number_id": PNID, "text": "nobody"})
    assert bad.status_code == 422


async def test_retry_after_500_then_success(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator, receiver: Receiver
) -> None:
    receiver.answers.extend([500])
    result = await inbound(ctl)
    assert result["status"] == 500
    counts = (await ctl.post("/_sim/flush", json={"timeout": 2})).json()
    assert counts == {"delivered": 1, "pending": 0, "given_up": 0}
    assert len(receiver.posts) == 2
    assert receiver.posts[0].body == receiver.posts[1].body
    [log] = (await ctl.get("/_sim/deliveries")).json()
    assert (log["attempts"], log["first_status"], log["last_status"], log["state"]) == (
        2,
        500,
        200,
        "delivered",
    )


async def test_gives_up_after_retry_for_seconds(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator, receiver: Receiver
) -> None:
    sim.configure(retry_schedule=[0.05, 0.2], retry_for_seconds=0.3)
    receiver.always = 503
    await inbound(ctl)
    counts = await sim.flush(2)
    assert counts == {"delivered": 0, "pending": 0, "given_up": 1}
    # Attempts at 0, 0.05 and 0.25 s; another 0.2 s wait would pass the 0.3 s budget.
    assert len(receiver.posts) == 3
    assert sim.delivery_log()[0]["last_error"] == "HTTP 503"


async def test_connection_refused_is_retried(sim: WhatsAppSimulator) -> None:
    await sim.register_account(
        "1",
        AccountIn(
            access_token="t",
            app_secret="s",
            verify_token="v",
            webhook_url=f"http://127.0.0.1:{free_port()}/hook",
        ),
    )
    # A generous budget: on a loaded machine one refused connect can take a good part of it.
    sim.configure(retry_schedule=[0.02], retry_for_seconds=1.0)
    result = await sim.inbound(
        InboundSpec.model_validate({"phone_number_id": "1", "from": CUSTOMER, "text": "x"})
    )
    assert result["status"] is None
    assert await sim.flush(10) == {"delivered": 0, "pending": 0, "given_up": 1}
    [log] = sim.delivery_log()
    assert log["attempts"] >= 2
    # httpx names it ConnectError; on aiohttp's pool (httpx-aiohttp) it is a ConnectTimeout
    # whose message says the connect call failed.
    assert "ConnectError" in log["last_error"] or "Connect call failed" in log["last_error"]


async def test_duplicate_deliveries(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator, receiver: Receiver
) -> None:
    await ctl.post("/_sim/config", json={"duplicate_deliveries": 2})
    result = await inbound(ctl)
    await sim.flush(2)
    assert len(receiver.posts) == 3
    assert len({p.body for p in receiver.posts}) == 1
    assert receiver.keys() == [[f"msg:{result['id']}"]] * 3
    assert sim.delivery_counts() == {"delivered": 3, "pending": 0, "given_up": 0}
    assert [d["duplicate"] for d in sim.delivery_log()] == [False, True, True]


async def test_sent_message_gets_status_webhooks(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator, receiver: Receiver
) -> None:
    await inbound(ctl)
    resp = await send(ctl, text_body(biz_opaque_callback_data="4242"))
    wamid = resp.json()["messages"][0]["id"]
    await sim.flush(2)
    statuses = [e for e in receiver.events() if isinstance(e, StatusUpdate)]
    assert [s.status for s in statuses] == [
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
    ]
    assert {(s.provider_message_id, s.recipient, s.our_message_ref) for s in statuses} == {
        (wamid, CUSTOMER, "4242")
    }
    sent_status = orjson.loads(receiver.posts[1].body)["entry"][0]["changes"][0]["value"][
        "statuses"
    ][0]
    assert sent_status["pricing"] == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }
    assert sent_status["timestamp"].isdigit()
    thread = (
        await ctl.get("/_sim/conversations", params={"phone_number_id": PNID, "user": CUSTOMER})
    ).json()
    assert [(m["direction"], m["status"]) for m in thread] == [("in", "delivered"), ("out", "read")]
    assert [s["status"] for s in thread[1]["statuses"]] == ["sent", "delivered", "read"]


async def test_async_injected_failure_and_manual_status(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator, receiver: Receiver
) -> None:
    await inbound(ctl)
    sim.configure(auto_statuses=[])
    await ctl.post("/_sim/fail", json={"count": 1, "code": 131026, "mode": "async"})
    failed = (await send(ctl, text_body())).json()["messages"][0]["id"]
    ok = (await send(ctl, text_body())).json()["messages"][0]["id"]
    resp = await ctl.post(
        "/_sim/status",
        json={"phone_number_id": PNID, "message_id": ok, "status": "failed", "error_code": 131049},
    )
    assert resp.json()["status"] == 200
    await sim.flush(2)
    statuses = {e.provider_message_id: e for e in receiver.events() if isinstance(e, StatusUpdate)}
    assert statuses[failed].error_code == "131026"
    assert statuses[ok].error_code == "131049"
    missing = await ctl.post(
        "/_sim/status", json={"phone_number_id": PNID, "message_id": "wamid.nope", "status": "read"}
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("split_entries", [False, True])
async def test_batch_is_one_post_with_every_item(
    ctl: httpx.AsyncClient, receiver: Receiver, split_entries: bool
) -> None:
    resp = await ctl.post(
        "/_sim/batch",
        json={
            "phone_number_id": PNID,
            "split_entries": split_entries,
            "messages": [
                {"from": CUSTOMER, "name": "Sheena", "text": "one", "id": "wamid.B1"},
                {"from": "447700900123", "name": "Alex", "text": "two", "id": "wamid.B2"},
                {"from": CUSTOMER, "text": "three", "id": "wamid.B3"},
            ],
            "statuses": [
                {"id": "wamid.OUT1", "status": "delivered", "recipient_id": CUSTOMER},
                {"id": "wamid.OUT2", "status": "failed", "recipient_id": CUSTOMER},
            ],
        },
    )
    assert resp.json()["status"] == 200
    assert len(receiver.posts) == 1
    assert receiver.keys() == [
        [
            "msg:wamid.B1",
            "msg:wamid.B2",
            "msg:wamid.B3",
            "status:wamid.OUT1:delivered",
            "status:wamid.OUT2:failed:131026",
        ]
    ]
    entries = orjson.loads(receiver.posts[0].body)["entry"]
    assert len(entries) == (3 if split_entries else 1)
    names = [e.sender.name for e in receiver.events() if isinstance(e, InboundMessage)]
    assert names == ["Sheena", "Alex", "Sheena"]


async def test_deliver_raw_signs_any_payload(ctl: httpx.AsyncClient, receiver: Receiver) -> None:
    payload = orjson.loads(
        b'{"object":"whatsapp_business_account","entry":[{"id":"1","time":1751247548,"changes":[{"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]}'
    )
    resp = await ctl.post("/_sim/deliver_raw", json={"phone_number_id": PNID, "payload": payload})
    assert resp.json()["status"] == 200
    assert orjson.loads(receiver.posts[0].body) == payload
    assert receiver.keys()[0][0].startswith("change:account_update:")


async def test_account_handshake(ctl: httpx.AsyncClient, receiver: Receiver) -> None:
    account = {
        "access_token": TOKEN,
        "app_secret": "s3cret",
        "verify_token": "vt-1",
        "webhook_url": receiver.url,
        "verify": True,
    }
    good = (await ctl.put(f"/_sim/accounts/{PNID}", json=account)).json()
    assert good["verification"]["verified"] is True
    assert good["verification"]["status"] == 200
    bad = (await ctl.put(f"/_sim/accounts/{PNID}", json=account | {"verify_token": "other"})).json()
    assert bad["verification"] == {"verified": False, "status": 403, "body": "forbidden"}
    assert receiver.handshakes == 2
    assert "app_secret" not in str((await ctl.get("/_sim/accounts")).json())


async def test_control_api_rejects_bad_input(ctl: httpx.AsyncClient) -> None:
    assert (await ctl.post("/_sim/config", json={"no_such_knob": 1})).status_code == 422
    assert (await ctl.post("/_sim/config", json={"window_mode": "sometimes"})).status_code == 422
    assert (
        await ctl.post("/_sim/inbound", json={"phone_number_id": "404", "from": CUSTOMER})
    ).status_code == 404
    assert (await ctl.post("/_sim/inbound", content=b"[")).status_code == 400
    assert (await ctl.get("/_sim/conversations")).status_code == 422


async def test_aclose_cancels_pending_retries(receiver: Receiver) -> None:
    simulator = WhatsAppSimulator()
    await simulator.register_account(
        PNID,
        AccountIn(
            access_token=TOKEN, app_secret="s3cret", verify_token="vt-1", webhook_url=receiver.url
        ),
    )
    simulator.configure(retry_schedule=[30.0])
    receiver.always = 500
    await simulator.inbound(
        InboundSpec.model_validate({"phone_number_id": PNID, "from": CUSTOMER, "text": "x"})
    )
    assert simulator.delivery_counts() == {"delivered": 0, "pending": 1, "given_up": 0}
    await asyncio.wait_for(simulator.aclose(), 1)
    assert len(receiver.posts) == 1


async def test_phone_and_bsuid_are_one_customer(
    ctl: httpx.AsyncClient, sim: WhatsAppSimulator
) -> None:
    sim.configure(auto_statuses=[], window_mode="sync", history_limit=3)
    bsuid = "US.13491208655302741918"
    await ctl.post(
        "/_sim/inbound", json={"phone_number_id": PNID, "user_id": bsuid, "text": "first, no phone"}
    )
    await inbound(ctl, user_id=bsuid, text="now with phone")
    # The window opened by either message covers sends addressed by phone or by BSUID.
    by_phone = await send(ctl, text_body())
    by_bsuid = await send(
        ctl, {k: v for k, v in text_body().items() if k != "to"} | {"recipient": bsuid}
    )
    assert (by_phone.status_code, by_bsuid.status_code) == (200, 200)
    assert by_bsuid.json()["contacts"] == [{"input": bsuid, "wa_id": CUSTOMER, "user_id": bsuid}]
    customers = (await ctl.get("/_sim/customers", params={"phone_number_id": PNID})).json()
    assert [(c["user"], c["wa_id"], c["user_id"]) for c in customers] == [(bsuid, CUSTOMER, bsuid)]
    for user in (CUSTOMER, bsuid):
        thread = (
            await ctl.get("/_sim/conversations", params={"phone_number_id": PNID, "user": user})
        ).json()
        assert [m["direction"] for m in thread] == ["in", "in", "out", "out"]
    for _ in range(3):
        await send(ctl, text_body())
    assert len(sim.sent()) == 3
