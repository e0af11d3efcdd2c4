"""The composer's channel picker, the reply options and the send itself take one decision
(actions/gate.py): for every policy case, `GET /ui/conversations/{id}/context` and
`GET /conversations/{id}/channels` give the same reply options, and what they say about a
channel is what `POST …/messages` then does through it (issue #16 item 10, #17 item 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.channels.test_messenger_e2e import (
    CHANNEL,
    PAGE_ID,
    _age_window,
    inbound,
    only_conversation,
    simulator,
    wait_messages,
)
from tests.conftest import Owner, Server, eventually
from tests.factories import create_channel, messenger_channel
from tidings.storage.models import Consent, ContactIdentity, Conversation
from tidings.storage.types import utcnow


@dataclass(frozen=True)
class Case:
    target: str  # the channel kind the agent picks
    human_agent: bool = False
    hours_since_customer: float = 1
    opted_out: bool = False
    identities: tuple[tuple[str, str], ...] = ()  # extra (kind, address) for the contact
    # What all three must say: sent or not, the refusal code, the message tag.
    allowed: bool = True
    code: str | None = None
    tag: str | None = None


CASES = {
    "window_open": Case("messenger"),
    "window_closed": Case(
        "messenger", hours_since_customer=30, allowed=False, code="window_closed"
    ),
    "closed_human_agent_within_7_days": Case(
        "messenger", human_agent=True, hours_since_customer=30, tag="HUMAN_AGENT"
    ),
    "closed_human_agent_beyond_7_days": Case(
        "messenger",
        human_agent=True,
        hours_since_customer=8 * 24,
        allowed=False,
        code="window_closed",
    ),
    "opted_out": Case("messenger", opted_out=True, allowed=False, code="opted_out"),
    "no_identity": Case("whatsapp", allowed=False, code="no_identity"),
    "template_only": Case(
        "whatsapp",
        identities=(("whatsapp", "4915100000010"),),
        allowed=False,
        code="window_closed",
    ),
    "sms": Case("twilio", identities=(("twilio", "+14155550123"),)),
    # WeChat's 48 h customer-service window counts the customer's writing on WeChat only.
    "wechat_never_wrote_there": Case(
        "wechat",
        identities=(("wechat", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"),),
        allowed=False,
        code="window_closed",
    ),
    # Telegram has no window: a bot may write to a chat that has written to it.
    "telegram_no_window": Case(
        "telegram", hours_since_customer=30, identities=(("telegram", "737374"),)
    ),
}


async def _channels(server: Server, api: httpx.AsyncClient, human_agent: bool) -> dict[str, int]:
    messenger = await messenger_channel(api, server, **CHANNEL, human_agent=human_agent)
    made = {"messenger": messenger["id"]}
    for kind, config in (
        (
            "whatsapp",
            {
                "phone_number_id": "106540352242922",
                "access_token": "t",
                "app_secret": "s",
                "verify_token": "v",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
            },
        ),
        (
            "twilio",
            {
                "account_sid": "AC" + "1" * 32,
                "auth_token": "a" * 32,
                "from_number": "+14155550100",
                "api_base_url": f"{server.url}/sandbox/twilio",
            },
        ),
        (
            "wechat",
            {
                "app_id": "wxagreement0001",
                "app_secret": "agreement-secret",
                "token": "agreementtoken",
                "api_base_url": f"{server.url}/sandbox/wechat",
            },
        ),
        (
            "telegram",
            {
                "bot_token": "7000000004:AAH-agreement_token",
                "secret_token": "agreement_secret",
                "api_base_url": f"{server.url}/sandbox/telegram",
            },
        ),
    ):
        made[kind] = (await create_channel(api, kind, config, name=kind))["id"]
    return made


async def _prepare(server: Server, conv_id: int, case: Case) -> None:
    await _age_window(server, conv_id, hours=case.hours_since_customer)
    async with server.runtime.db.write() as s:
        conv = await s.get_one(Conversation, conv_id)
        for kind, address in case.identities:
            s.add(
                ContactIdentity(
                    workspace_id=conv.workspace_id,
                    contact_id=conv.contact_id,
                    channel_kind=kind,
                    address=address,
                    created_at=utcnow(),
                )
            )
        if case.opted_out:
            s.add(
                Consent(
                    workspace_id=conv.workspace_id,
                    contact_id=conv.contact_id,
                    channel_kind=case.target,
                    purpose="marketing",
                    status="opted_out",
                    source="keyword",
                    changed_at=utcnow(),
                )
            )


@pytest.mark.parametrize("name", list(CASES))
async def test_picker_options_and_send_agree(
    name: str, server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    case = CASES[name]
    channels = await _channels(server, api, case.human_agent)
    async with simulator(server) as sim:
        await inbound(sim, text="hello")
    conv = await only_conversation(api)
    await wait_messages(api, conv["id"], 1)
    await _prepare(server, conv["id"], case)
    target = channels[case.target]

    context = await api.get(f"/api/v1/ui/conversations/{conv['id']}/context")
    assert context.status_code == 200, context.text
    [route] = [r for r in context.json()["routes"] if r["channel_id"] == target]
    options = await api.get(f"/api/v1/conversations/{conv['id']}/channels")
    assert options.status_code == 200, options.text
    [option] = [o for o in options.json() if o["channel_id"] == target]
    sent = await api.post(
        f"/api/v1/conversations/{conv['id']}/messages",
        json={"text": "We are on it.", "channel_id": target},
    )
    posted: dict[str, Any] = sent.json()

    # The UI and the API give the same reply options, every channel, every field.
    assert context.json()["routes"] == options.json()
    expected = (case.allowed, case.code)
    assert (route["can_send"], route["code"]) == expected, route
    assert route["tag"] == case.tag
    assert (option["can_send_text"], option["code"]) == expected, option
    assert option["window"]["tag"] == case.tag
    if case.allowed:
        assert sent.status_code == 201, sent.text
        assert (posted["extra"] or {}).get("tag") == case.tag
    else:
        assert sent.status_code == 422, sent.text
        assert posted["error"]["code"] == case.code
        # The same sentence, not merely the same code.
        assert posted["error"]["message"] == route["reason"] == option["reason"]


async def test_retry_takes_the_same_decision_as_the_send(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """A person's failed reply after Meta's 24 h, on a Human Agent channel, can be retried (it
    was refused as window_closed) and goes with the HUMAN_AGENT tag."""
    await messenger_channel(api, server, **CHANNEL, human_agent=True)
    async with simulator(server) as sim:
        await inbound(sim, text="hello")
        conv = await only_conversation(api)
        await wait_messages(api, conv["id"], 1)
        await _age_window(server, conv["id"], hours=30)
        await sim.post("/_sim/fail", json={"code": 190})
        reply = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Sorry for the wait."}
        )
        assert reply.status_code == 201, reply.text
        assert reply.json()["extra"]["tag"] == "HUMAN_AGENT"
        reply_id = reply.json()["id"]

        async def status() -> str:
            [m] = [m for m in await wait_messages(api, conv["id"], 2) if m["id"] == reply_id]
            return str(m["status"])

        async def failed() -> bool:
            return await status() == "failed"

        await eventually(failed)
        retried = await api.post(f"/api/v1/ui/messages/{reply_id}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["extra"]["tag"] == "HUMAN_AGENT"

        async def sent() -> bool:
            return await status() in ("sent", "delivered", "read")

        await eventually(sent)
        requests = (await sim.get("/_sim/sent", params={"account_id": PAGE_ID})).json()
        accepted = [r for r in requests if r["response"]["status"] == 200]
        assert [r["body"]["tag"] for r in accepted] == ["HUMAN_AGENT"], requests
