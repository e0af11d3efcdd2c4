"""Telegram end to end over real HTTP: the Bot API simulator pushes updates to a running Tidings
(secret token header), agent replies go out through sendMessage/sendPhoto/sendDocument, and the
Bot API's errors (flood control, blocked bot, unknown chat, revoked token) become outcomes."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually
from tests.factories import simulator, telegram_channel
from tidings.channels.base import OutboundAttachment, OutboundMessage, Permanent, Retriable, Sent
from tidings.channels.telegram import TelegramAdapter, TelegramConfig, client
from tidings.domain.enums import MessageKind
from tidings.storage.models import InboundEvent, Message

TOKEN = "7012345678:AAH-sandbox_token_for_tests"
SECRET = "s3cret_for-the-telegram-webhook"
CHAT = 424242
CHANNEL = {"bot_token": TOKEN, "secret_token": SECRET}


def sim_client(server: Server) -> httpx.AsyncClient:
    return simulator(server, "telegram", timeout=10)


async def conversations(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await api.get("/api/v1/conversations")).json()["data"])


async def messages(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"])


async def counts(server: Server) -> tuple[int, int]:
    async with server.runtime.db.read() as s:
        events = await s.scalar(select(func.count()).select_from(InboundEvent))
        msgs = await s.scalar(select(func.count()).select_from(Message))
    return int(events or 0), int(msgs or 0)


async def test_text_in_duplicate_ignored_reply_out(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await telegram_channel(api, server, **CHANNEL)
    assert channel["config"]["bot_token"] == "••••"
    assert channel["config"]["secret_token"] == "••••"
    async with sim_client(server) as sim:
        # Creating the channel called setWebhook with our URL and secret token.
        info = (await sim.get(f"/bot{TOKEN}/getWebhookInfo")).json()
        assert info["ok"] is True
        assert info["result"]["url"] == f"{server.url}/webhooks/telegram/{channel['id']}"
        sent = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
        assert sent[0]["method"] == "setWebhook"
        assert sent[0]["params"]["secret_token"] == SECRET

        resp = await sim.post(
            "/_sim/inbound",
            json={
                "token": TOKEN,
                "chat_id": CHAT,
                "first_name": "Ana",
                "last_name": "Lima",
                "text": "Olá <script>x</script>",
                "duplicates": 1,  # Telegram delivers the same update twice
            },
        )
        assert resp.status_code == 200, resp.text
        update_id = resp.json()["update_id"]

        async def delivered_twice() -> bool:
            got = (await sim.get("/_sim/deliveries", params={"token": TOKEN})).json()
            return [d["status"] for d in got if d["update_id"] == update_id] == [200, 200]

        await eventually(delivered_twice)
        convs = await eventually(lambda: conversations(api))
        assert len(convs) == 1
        conv = convs[0]
        msgs = await eventually(lambda: messages(api, conv["id"]))
        assert [(m["direction"], m["kind"], m["body"]) for m in msgs] == [
            ("in", "text", "Olá <script>x</script>")
        ]
        assert msgs[0]["provider_message_id"] == f"{CHAT}:1"
        assert await counts(server) == (1, 1)  # one stored event, one message
        contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
        assert contact["name"] == "Ana Lima"
        assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
            ("telegram", str(CHAT))
        ]

        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Oi!"})
        assert reply.status_code == 201, reply.text
        reply_id = reply.json()["id"]

        async def reply_sent() -> dict[str, Any] | None:
            msg = next(m for m in await messages(api, conv["id"]) if m["id"] == reply_id)
            return msg if msg["status"] == "sent" else None

        out = await eventually(reply_sent)
        assert out["provider_message_id"] == f"{CHAT}:2"
        calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
        sends = [c for c in calls if c["method"] == "sendMessage"]
        assert sends == [
            {"method": "sendMessage", "params": {"chat_id": CHAT, "text": "Oi!"}, "ok": True}
        ]
        thread = (
            await sim.get("/_sim/conversations", params={"token": TOKEN, "chat_id": CHAT})
        ).json()
        assert [(m["direction"], m["text"]) for m in thread] == [
            ("in", "Olá <script>x</script>"),
            ("out", "Oi!"),
        ]


async def test_media_location_contact_edit_and_button(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await telegram_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        base = {"token": TOKEN, "chat_id": CHAT, "first_name": "Ana"}
        for extra in (
            {"text": "first"},
            {"photo": True, "caption": "my receipt"},
            {"document": {"file_name": "invoice.pdf", "mime_type": "application/pdf"}},
            {"voice": True},
            {"sticker": "🔥"},
            {"location": {"latitude": 38.72, "longitude": -9.14}},
            {"contact": {"phone_number": "+351912345678", "first_name": "Rui"}},
        ):
            resp = await sim.post("/_sim/inbound", json={**base, **extra})
            assert resp.status_code == 200, resp.text
        resp = await sim.post(
            "/_sim/edit",
            json={"token": TOKEN, "chat_id": CHAT, "message_id": 1, "text": "first (fixed)"},
        )
        assert resp.status_code == 200, resp.text
        resp = await sim.post(
            "/_sim/callback", json={"token": TOKEN, "chat_id": CHAT, "message_id": 1, "data": "yes"}
        )
        assert resp.status_code == 200, resp.text

        convs = await eventually(lambda: conversations(api))

        async def all_eight_and_edited() -> list[dict[str, Any]] | None:
            got = await messages(api, convs[0]["id"])
            done = len(got) == 8 and got[0]["body"] == "first (fixed)"
            return got if done else None

        msgs = await eventually(all_eight_and_edited)
    by_kind = [(m["kind"], m["body"]) for m in msgs]
    assert by_kind == [
        ("text", "first (fixed)"),
        ("media", "my receipt"),
        ("media", None),
        ("media", None),
        ("media", None),
        ("location", None),
        ("contact_card", None),
        ("interactive", "yes"),
    ]
    assert [a["kind"] for m in msgs for a in m["attachments"]] == [
        "image",
        "document",
        "audio",
        "sticker",
    ]
    assert msgs[2]["attachments"][0]["filename"] == "invoice.pdf"
    assert msgs[4]["extra"] == {"emoji": "🔥"}
    assert msgs[5]["extra"] == {"latitude": 38.72, "longitude": -9.14}
    assert msgs[6]["extra"]["contact"]["phone_number"] == "+351912345678"
    # The edit changed the stored message in place and kept the earlier text.
    assert [e["previous"] for e in msgs[0]["extra"]["edits"]] == ["first"]
    assert msgs[7]["reply_to_id"] == msgs[0]["id"]


async def test_wrong_or_missing_secret_token_is_rejected_and_nothing_stored(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await telegram_channel(api, server, **CHANNEL)
    url = f"{server.url}/webhooks/telegram/{channel['id']}"
    update = orjson.dumps(
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "chat": {"id": 5, "type": "private"},
                "date": 1750000000,
                "text": "hi",
            },
        }
    )
    async with httpx.AsyncClient() as http:
        wrong = await http.post(
            url, content=update, headers={"X-Telegram-Bot-Api-Secret-Token": "not-it"}
        )
        prefix = await http.post(
            url, content=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]}
        )
        missing = await http.post(url, content=update)
        garbage = await http.post(
            url, content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
        )
    assert [r.status_code for r in (wrong, prefix, missing, garbage)] == [401, 401, 401, 401]
    assert wrong.json()["error"]["code"] == "bad_signature"
    assert await counts(server) == (0, 0)


async def test_simulator_retries_a_failing_webhook_then_gives_up(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await telegram_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim.put(f"/_sim/bots/{TOKEN}", json={"max_attempts": 3, "retry_base_seconds": 0.01})
        # Re-point the webhook with a secret Tidings does not know: every delivery gets 401.
        resp = await sim.post(
            f"/bot{TOKEN}/setWebhook",
            data={
                "url": f"{server.url}/webhooks/telegram/{channel['id']}",
                "secret_token": "some-other-secret",
            },
        )
        assert resp.json() == {"ok": True, "result": True, "description": "Webhook was set"}
        sent = await sim.post("/_sim/inbound", json={"token": TOKEN, "chat_id": 7, "text": "hi"})
        update_id = sent.json()["update_id"]

        async def three_attempts() -> list[int] | None:
            got = (await sim.get("/_sim/deliveries", params={"token": TOKEN})).json()
            statuses = [d["status"] for d in got if d["update_id"] == update_id]
            return statuses if len(statuses) == 3 else None

        assert await eventually(three_attempts) == [401, 401, 401]
        info = (await sim.get(f"/bot{TOKEN}/getWebhookInfo")).json()["result"]
        assert info["last_error_message"] == "Wrong response from the webhook: 401 Unauthorized"
    assert await counts(server) == (0, 0)


async def start_chat(sim: httpx.AsyncClient, api: httpx.AsyncClient) -> dict[str, Any]:
    await sim.post("/_sim/inbound", json={"token": TOKEN, "chat_id": CHAT, "text": "hello"})
    convs = await eventually(lambda: conversations(api))
    return convs[0]


async def test_flood_control_429_is_retried_after_retry_after(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await telegram_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        # One message per second per chat, no burst: the second reply hits flood control.
        await sim.put(f"/_sim/bots/{TOKEN}", json={"per_chat_burst": 1, "per_chat_per_second": 1})
        conv = await start_chat(sim, api)
        ids = []
        for text in ("one", "two"):
            r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": text})
            ids.append(r.json()["id"])

        async def both_sent() -> bool:
            got = {m["id"]: m["status"] for m in await messages(api, conv["id"])}
            return all(got[i] == "sent" for i in ids)

        await eventually(both_sent, timeout=15)
        calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
    sends = [
        (c["params"]["text"], c.get("error_code")) for c in calls if c["method"] == "sendMessage"
    ]
    assert sends == [("one", None), ("two", 429), ("two", None)]


async def test_blocked_bot_fails_with_a_plain_reason(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await telegram_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        conv = await start_chat(sim, api)
        resp = await sim.post("/_sim/block", json={"token": TOKEN, "chat_id": CHAT})
        assert resp.json() == {"blocked": True}
        r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "hi?"})
        reply_id = r.json()["id"]

        async def failed() -> dict[str, Any] | None:
            msg = next(m for m in await messages(api, conv["id"]) if m["id"] == reply_id)
            return msg if msg["status"] == "failed" else None

        msg = await eventually(failed)
        calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
    assert msg["error_reason"] == "The customer has blocked this Telegram bot."
    assert msg["error_code"] == "403"
    assert [c.get("error_code") for c in calls if c["method"] == "sendMessage"] == [403]
    # The my_chat_member "kicked" update was stored but made no message.
    async with server.runtime.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(InboundEvent)) == 2
    assert [m["body"] for m in await messages(api, conv["id"])] == ["hello", "hi?"]


async def test_bad_config_is_a_422_naming_the_field(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "telegram",
            "name": "Bot",
            "config": {"bot_token": TOKEN, "secret_token": "has spaces!"},
        },
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["message"].startswith("config.secret_token:")


async def test_adapter_sends_media_by_url_and_maps_errors(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await telegram_channel(api, server, **CHANNEL)
    adapter = TelegramAdapter()
    config = TelegramConfig(
        bot_token=TOKEN, secret_token=SECRET, api_base_url=f"{server.url}/sandbox/telegram"
    )
    async with sim_client(server) as sim, httpx.AsyncClient() as http:
        await start_chat(sim, api)
        photo = OutboundMessage(
            message_id=1,
            conversation_id=1,
            to=str(CHAT),
            kind=MessageKind.MEDIA,
            text="Your receipt",
            attachments=(
                OutboundAttachment(kind="image", url="https://cdn.example/r.png"),
                OutboundAttachment(kind="document", url="https://cdn.example/terms.pdf"),
            ),
            extra={"buttons": [{"text": "Thanks", "data": "ty"}]},
        )
        outcome = await adapter.send(config, photo, http)
        assert outcome == Sent(f"{CHAT}:2")
        calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
        markup = {"inline_keyboard": [[{"text": "Thanks", "callback_data": "ty"}]]}
        assert [(c["method"], c["params"]) for c in calls if c["method"] != "setWebhook"] == [
            (
                "sendPhoto",
                {
                    "chat_id": CHAT,
                    "photo": "https://cdn.example/r.png",
                    "caption": "Your receipt",
                    "reply_markup": markup,
                },
            ),
            (
                "sendDocument",
                {
                    "chat_id": CHAT,
                    "document": "https://cdn.example/terms.pdf",
                    "reply_markup": markup,
                },
            ),
        ]

        def text_to(to: str) -> OutboundMessage:
            return OutboundMessage(
                message_id=2, conversation_id=1, to=to, kind=MessageKind.TEXT, text="x"
            )

        unknown = await adapter.send(config, text_to("999"), http)
        assert isinstance(unknown, Permanent) and unknown.code == "400"
        assert "does not know this chat" in unknown.reason

        bad_url = OutboundMessage(
            message_id=3,
            conversation_id=1,
            to=str(CHAT),
            kind=MessageKind.MEDIA,
            attachments=(OutboundAttachment(kind="image", url="ftp://x/y.png"),),
        )
        refused = await adapter.send(config, bad_url, http)
        assert isinstance(refused, Permanent)
        assert refused.reason.startswith("Telegram could not use the attachment's URL")

        await sim.post(
            "/_sim/fail", json={"token": TOKEN, "method": "sendMessage", "error_code": 502}
        )
        assert isinstance(await adapter.send(config, text_to(str(CHAT)), http), Retriable)

        revoked = config.model_copy(update={"bot_token": "7012345678:revoked"})
        outcome = await adapter.send(revoked, text_to(str(CHAT)), http)
        assert isinstance(outcome, Permanent) and outcome.code == "401"
        assert "@BotFather" in outcome.reason

        # The typing indicator and getMe helpers speak the same API.
        await client.send_chat_action(config, str(CHAT), "typing", http)
        assert (await client.get_me(config, http))["is_bot"] is True
        await client.delete_webhook(config, http)
        assert (await client.get_webhook_info(config, http))["url"] == ""


async def test_set_webhook_command_for_real_bots(
    server: Server, owner: Owner, api: httpx.AsyncClient, capsys: Any
) -> None:
    from tidings.channels.telegram.__main__ import run

    channel = await telegram_channel(api, server, **CHANNEL)
    base = ["--bot-token", TOKEN, "--secret-token", SECRET, "--api-base-url"]
    base.append(f"{server.url}/sandbox/telegram")
    assert await run(["delete-webhook", *base]) == 0
    assert orjson.loads(capsys.readouterr().out)["url"] == ""
    url = f"{server.url}/webhooks/telegram/{channel['id']}"
    assert await run(["set-webhook", *base, "--url", url]) == 0
    assert orjson.loads(capsys.readouterr().out)["url"] == url
    wrong = ["--bot-token", "1:wrong", *base[2:]]
    assert await run(["info", *wrong]) == 1
    assert "Unauthorized" in capsys.readouterr().err
