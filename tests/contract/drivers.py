"""How the contract suite drives each channel through its simulator.

A driver knows three things about its channel: the config that connects a channel to the
sandbox simulator, how to make the simulated customer write (a text, the same message again,
a message of a type Tidings does not know), and what the simulator received from Tidings.
Everything else — storing, dedupe, signature checks, replies, statuses — the suite checks
through Tidings' public API. To add a channel: write a driver and add it to DRIVERS.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx
import orjson

from tests.conftest import Server, sandbox_headers
from tests.contract.line_driver import LineDriver
from tests.contract.more_drivers import MORE_DRIVERS
from tests.contract.viber_driver import ViberDriver
from tidings import signing


class Driver(Protocol):
    kind: ClassVar[str]
    # The status our reply reaches once the simulated customer has seen it.
    final_status: ClassVar[str]
    # Contract cases this channel plays differently from the obvious reading, by test name,
    # with the reason; shown in the test report (`record_property`), never a silent skip.
    adapted: ClassVar[dict[str, str]]

    def config(self, server: Server) -> dict[str, Any]: ...
    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        """The customer writes `text` (as `message_id` again when given); returns its id."""
        ...

    async def customer_unknown(self, server: Server) -> None:
        """The customer sends something of a type Tidings does not support."""
        ...

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        """A realistic body and headers whose signature is wrong."""
        ...

    def forged_query(self) -> dict[str, str]:
        """Query parameters for the forged request (WeChat signs the query, not a header)."""
        ...

    async def received(self, server: Server) -> list[str]:
        """The texts of our replies as the simulator received them."""
        ...


@runtime_checkable
class NamedCustomer(Protocol):
    """A channel whose provider can tell the customer's name (in the payload or through a
    profile API): the simulated customer, named `name`, writes `text`."""

    async def customer_named(self, server: Server, name: str, text: str) -> None: ...


TimestampUnit = Literal[
    "milliseconds", "seconds", "seconds as a string", "milliseconds as a string"
]


@runtime_checkable
class TimestampUnits(Protocol):
    """A channel whose payload times come in more than one unit (Meta: milliseconds in most
    events, seconds — sometimes a string — in others)."""

    units: ClassVar[tuple[TimestampUnit, ...]]

    async def customer_text_timed(self, server: Server, text: str, unit: TimestampUnit) -> None:
        """The customer writes `text` now, its time written in `unit`."""
        ...


def _client(server: Server, kind: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/{kind}", timeout=20
    )


async def _post(server: Server, kind: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with _client(server, kind) as sim:
        resp = await sim.post(path, json=body)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _get(server: Server, kind: str, path: str, params: dict[str, str]) -> Any:
    async with _client(server, kind) as sim:
        return (await sim.get(path, params=params)).json()


class WhatsAppDriver:
    kind: ClassVar[str] = "whatsapp"
    final_status: ClassVar[str] = "read"
    adapted: ClassVar[dict[str, str]] = {}
    pnid = "106540352242922"
    user = "4915112345678"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "phone_number_id": self.pnid,
            "access_token": "EAAG-contract",
            "app_secret": "contract-app-secret",
            "verify_token": "contract-verify",
            "display_phone_number": "15550783881",
            "api_base_url": f"{server.url}/sandbox/whatsapp",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {"phone_number_id": self.pnid, "from": self.user, "text": text}
        if message_id:
            body["id"] = message_id
        result = await _post(server, self.kind, "/_sim/inbound", body)
        assert result["status"] == 200, result
        return str(result["id"])

    async def customer_unknown(self, server: Server) -> None:
        body = {"phone_number_id": self.pnid, "from": self.user, "type": "unsupported"}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    # Meta documents seconds as a string; every Meta time is read by magnitude, so a time in
    # milliseconds (as Messenger writes them) dates the message right too.
    units: ClassVar[tuple[TimestampUnit, ...]] = ("seconds as a string", "milliseconds as a string")

    async def customer_text_timed(self, server: Server, text: str, unit: TimestampUnit) -> None:
        now = time.time()
        stamp = int(now * 1000) if unit.startswith("milliseconds") else int(now)
        # The simulator writes the time as a string, as WhatsApp does.
        body = {"phone_number_id": self.pnid, "from": self.user, "text": text, "timestamp": stamp}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    async def customer_named(self, server: Server, name: str, text: str) -> None:
        # The name travels in the webhook's `contacts[].profile.name`.
        body = {"phone_number_id": self.pnid, "from": self.user, "name": name, "text": text}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"object": "whatsapp_business_account", "entry": []})
        return body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        sent = await _get(server, self.kind, "/_sim/sent", {"phone_number_id": self.pnid})
        return [r["body"]["text"]["body"] for r in sent if r["body"].get("type") == "text"]


class _MessagingDriver:
    """Messenger and Instagram share the Messenger-platform simulator."""

    kind: ClassVar[str] = ""
    final_status: ClassVar[str] = "read"
    adapted: ClassVar[dict[str, str]] = {}
    account = ""
    user = "6543210987654321"
    object = ""

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {"account_id": self.account, "from": self.user, "text": text}
        if message_id:
            body["id"] = message_id
        result = await _post(server, self.kind, "/_sim/inbound", body)
        assert result["status"] == 200, result
        return str(result["id"])

    async def customer_unknown(self, server: Server) -> None:
        body = {"account_id": self.account, "from": self.user, "type": "unsupported"}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    async def customer_named(self, server: Server, name: str, text: str) -> None:
        # The name lives in the simulator's profile API, never in the webhook (as at Meta).
        body = {"account_id": self.account, "from": self.user, "name": name, "text": text}
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    units: ClassVar[tuple[TimestampUnit, ...]] = (
        "milliseconds",
        "seconds",
        "seconds as a string",
    )

    async def customer_text_timed(self, server: Server, text: str, unit: TimestampUnit) -> None:
        fmt = {"milliseconds": "ms", "seconds": "seconds", "seconds as a string": "seconds_string"}
        body = {
            "account_id": self.account,
            "from": self.user,
            "text": text,
            "timestamp_format": fmt[unit],
        }
        assert (await _post(server, self.kind, "/_sim/inbound", body))["status"] == 200

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        element = {
            "sender": {"id": self.user},
            "recipient": {"id": self.account},
            "timestamp": int(time.time() * 1000),
            "message": {"mid": "m_forged", "text": "forged"},
        }
        body = orjson.dumps(
            {"object": self.object, "entry": [{"id": self.account, "messaging": [element]}]}
        )
        return body, {"X-Hub-Signature-256": "sha256=" + "f" * 64}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        sent = await _get(server, self.kind, "/_sim/sent", {"account_id": self.account})
        return [
            r["body"]["message"]["text"] for r in sent if "text" in r["body"].get("message", {})
        ]


class MessengerDriver(_MessagingDriver):
    kind: ClassVar[str] = "messenger"
    account = "104857600000001"
    object = "page"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "page_id": self.account,
            "page_access_token": "EAAB-contract",
            "app_secret": "contract-app-secret",
            "verify_token": "contract-verify",
            "api_base_url": f"{server.url}/sandbox/messenger",
        }


class InstagramDriver(_MessagingDriver):
    kind: ClassVar[str] = "instagram"
    account = "17841400000000042"
    object = "instagram"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "instagram_account_id": self.account,
            "access_token": "IGQV-contract",
            "app_secret": "contract-app-secret",
            "verify_token": "contract-verify",
            "api_base_url": f"{server.url}/sandbox/instagram",
        }


class ApiDriver:
    kind: ClassVar[str] = "api"
    final_status: ClassVar[str] = "read"
    adapted: ClassVar[dict[str, str]] = {}
    secret = "contract-secret-for-the-api"
    account = "contract"
    user = "cust-42"

    def config(self, server: Server) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "webhook_url": f"{server.url}/sandbox/api/accounts/{self.account}/receive",
        }

    async def customer_text(self, server: Server, text: str, message_id: str | None = None) -> str:
        body: dict[str, Any] = {"account": self.account, "from": self.user, "text": text}
        if message_id:
            body["id"] = message_id
        result = await _post(server, self.kind, "/_sim/inbound", body)
        assert result["status"] == 200, result
        return str(result["id"])

    async def customer_unknown(self, server: Server) -> None:
        # An integrator's message without text (say, a form it cannot express as text).
        payload = orjson.dumps(
            {"messages": [{"id": f"ext-{secrets.token_hex(4)}", "from": {"id": self.user}}]}
        )
        url = f"{server.url}/webhooks/api/{await _channel_id(server, self.kind)}"
        headers = {"Content-Type": "application/json", **signing.sign_headers(self.secret, payload)}
        async with httpx.AsyncClient() as client:
            assert (await client.post(url, content=payload, headers=headers)).status_code == 200

    def forged_request(self) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"messages": [{"id": "x", "from": {"id": "u"}, "text": "forged"}]})
        return body, {**signing.sign_headers("not-the-secret-at-all", body)}

    def forged_query(self) -> dict[str, str]:
        return {}

    async def received(self, server: Server) -> list[str]:
        got = await _get(server, self.kind, "/_sim/received", {"account": self.account})
        return [m["text"] for m in got]


async def _channel_id(server: Server, kind: str) -> int:
    from sqlalchemy import select

    from tidings.storage.models import Channel

    async with server.runtime.db.read() as s:
        found = await s.scalar(select(Channel.id).where(Channel.kind == kind))
    assert found is not None
    return int(found)


# One entry per channel. Other channels join by adding their driver here.
DRIVERS: list[Driver] = [
    WhatsAppDriver(),
    MessengerDriver(),
    InstagramDriver(),
    ApiDriver(),
    *MORE_DRIVERS,
    LineDriver(),
    ViberDriver(),
]
