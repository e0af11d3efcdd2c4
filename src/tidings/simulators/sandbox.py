"""Sandbox mode: every provider simulator mounted under `/sandbox`, plus the customer phone.

Each simulated provider has a binding (`SandboxBinding`) that knows how to register a Tidings
channel with its simulator, send as a customer, and show the customer's side of the thread.
`BINDINGS` is the one list of them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from tidings.config import Settings
from tidings.runtime import ChannelInfo, Runtime
from tidings.simulators.api_client import ApiClientSimulator
from tidings.simulators.gbm import GbmBinding, GbmSimulator
from tidings.simulators.guard import SessionCheck, sandbox_guard
from tidings.simulators.instagram import InstagramBinding, InstagramSimulator
from tidings.simulators.line import LineBinding, LineSimulator
from tidings.simulators.messenger import MessengerBinding, MessengerSimulator
from tidings.simulators.rbm import RbmBinding, RbmSimulator
from tidings.simulators.smpp import (
    SANDBOX_SYSTEM_ID_PREFIX,
    SmppBinding,
    SmscSimulator,
    dials_sandbox_smsc,
    sandbox_port,
)
from tidings.simulators.telegram import TelegramBinding, TelegramSimulator
from tidings.simulators.twilio import TwilioBinding, TwilioSimulator
from tidings.simulators.viber import ViberBinding, ViberSimulator
from tidings.simulators.vonage import VonageBinding, VonageSimulator
from tidings.simulators.wechat import WeChatBinding, WeChatSimulator
from tidings.simulators.whatsapp import WhatsAppSimulator
from tidings.simulators.whatsapp_templates import TemplateIn
from tidings.storage.models import Channel

log = logging.getLogger(__name__)

PHONE_PAGE = Path(__file__).parent / "templates" / "phone.html"


class SandboxBinding(Protocol):
    kind: ClassVar[str]

    def owns(self, channel: ChannelInfo) -> bool: ...
    async def register(self, channel: ChannelInfo, webhook_url: str) -> None: ...
    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]: ...
    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]: ...


@runtime_checkable
class RichCustomer(Protocol):
    """A binding whose customer can also share a location or send a file from the phone page."""

    async def send_location(
        self,
        channel: ChannelInfo,
        user: str,
        name: str | None,
        latitude: float,
        longitude: float,
        label: str | None,
    ) -> dict[str, Any]: ...

    async def send_file(
        self,
        channel: ChannelInfo,
        user: str,
        name: str | None,
        mime_type: str,
        filename: str,
        data: bytes,
        caption: str | None,
    ) -> dict[str, Any]: ...


@runtime_checkable
class TypingView(Protocol):
    """A binding that can tell whether the business is showing "typing…" to this customer."""

    async def typing(self, channel: ChannelInfo, user: str) -> bool: ...


# What the phone page lets a customer send as a file, and how big: enough for a photo or a
# receipt; the channel's own limits are checked by Tidings when the file arrives.
PHONE_FILE_TYPES = ("image/jpeg", "image/png", "image/webp", "application/pdf", "text/plain")
PHONE_FILE_MAX = 5 * 1024 * 1024


# The demo WhatsApp channel's business account (`bootstrap --demo`). The sandbox gives it a few
# approved templates, synced into Tidings when the sandbox starts, so a closed service window
# can be answered out of the box. Other WABAs (tests' own) start empty.
DEMO_WABA = "100000000000900"
DEMO_TEMPLATES: list[dict[str, Any]] = [
    {
        "name": "order_update",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Hi {{1}}, your order {{2}} has shipped. Reply here with any question.",
            }
        ],
    },
    {
        "name": "appointment_reminder",
        "category": "UTILITY",
        "components": [
            {
                "type": "BODY",
                "text": "Reminder: your appointment is on {{1}} at {{2}}. Reply to change it.",
            }
        ],
    },
    {
        "name": "follow_up",
        "category": "MARKETING",
        "components": [
            {
                "type": "BODY",
                "text": "Hello {{1}}, we have an answer to your question. Reply to continue.",
            },
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
        ],
    },
]
# How long ago the phone page's "age" button makes a customer's last message (past 24 h).
AGE_HOURS = 25.0


class WhatsAppBinding:
    kind: ClassVar[str] = "whatsapp"

    def __init__(self, base_url: str, sim: WhatsAppSimulator) -> None:
        self.base_url = base_url
        self.sim = sim
        # Control calls go straight to the simulator app; provider traffic uses real HTTP.
        self.control = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
        )

    def owns(self, channel: ChannelInfo) -> bool:
        return str(getattr(channel.config, "api_base_url", "")).rstrip("/") == self.base_url

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        c: Any = channel.config
        resp = await self.control.put(
            f"/_sim/accounts/{c.phone_number_id}",
            json={
                "access_token": c.access_token,
                "app_secret": c.app_secret,
                "verify_token": c.verify_token,
                "webhook_url": webhook_url,
                "display_phone_number": c.display_phone_number or "15550001111",
                # Template sync lists GET /{waba_id}/message_templates.
                "waba_id": c.waba_id,
            },
        )
        resp.raise_for_status()
        if c.waba_id == DEMO_WABA and not self.sim.template_store.knows(DEMO_WABA):
            for spec in DEMO_TEMPLATES:
                self.sim.template_store.put(TemplateIn(waba_id=DEMO_WABA, language="en", **spec))

    async def age(self, channel: ChannelInfo, user: str, hours: float) -> None:
        """The simulated phone agrees: its 24 h window (131047) follows the same clock."""
        c: Any = channel.config
        digits = "".join(ch for ch in user if ch.isdigit())
        await self.control.post(
            "/_sim/window",
            json={
                "phone_number_id": c.phone_number_id,
                "user": digits,
                "last_inbound_hours_ago": hours,
            },
        )

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        c: Any = channel.config
        digits = "".join(ch for ch in user if ch.isdigit())
        resp = await self.control.post(
            "/_sim/inbound",
            json={
                "phone_number_id": c.phone_number_id,
                "from": digits,
                "name": name or digits,
                "text": text,
            },
        )
        result: dict[str, Any] = resp.json()
        return result

    async def _inbound(self, channel: ChannelInfo, user: str, body: dict[str, Any]) -> Any:
        c: Any = channel.config
        digits = "".join(ch for ch in user if ch.isdigit())
        resp = await self.control.post(
            "/_sim/inbound", json={"phone_number_id": c.phone_number_id, "from": digits, **body}
        )
        return resp.json()

    async def typing(self, channel: ChannelInfo, user: str) -> bool:
        c: Any = channel.config
        digits = "".join(ch for ch in user if ch.isdigit())
        resp = await self.control.get(
            "/_sim/customers", params={"phone_number_id": c.phone_number_id}
        )
        return any(bool(row.get("typing")) for row in resp.json() if row.get("wa_id") == digits)

    async def send_location(
        self,
        channel: ChannelInfo,
        user: str,
        name: str | None,
        latitude: float,
        longitude: float,
        label: str | None,
    ) -> dict[str, Any]:
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        if label:
            location["name"] = label
        result: dict[str, Any] = await self._inbound(
            channel, user, {"name": name or user, "type": "location", "location": location}
        )
        return result

    async def send_file(
        self,
        channel: ChannelInfo,
        user: str,
        name: str | None,
        mime_type: str,
        filename: str,
        data: bytes,
        caption: str | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name or user,
            "type": "image" if mime_type.startswith("image/") else "document",
            "mime_type": mime_type,
            "filename": filename,
            "media_b64": base64.b64encode(data).decode(),
        }
        if caption:
            body["text"] = caption
        result: dict[str, Any] = await self._inbound(channel, user, body)
        return result

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        c: Any = channel.config
        digits = "".join(ch for ch in user if ch.isdigit())
        resp = await self.control.get(
            "/_sim/conversations", params={"phone_number_id": c.phone_number_id, "user": digits}
        )
        data: list[dict[str, Any]] = resp.json()
        return data


class ApiBinding:
    kind: ClassVar[str] = "api"

    def __init__(self, base_url: str, sim: ApiClientSimulator) -> None:
        self.base_url = base_url
        self.sim = sim

    def _account(self, channel: ChannelInfo) -> str | None:
        url = str(getattr(channel.config, "webhook_url", "") or "")
        prefix = f"{self.base_url}/accounts/"
        if url.startswith(prefix) and url.endswith("/receive"):
            return url[len(prefix) : -len("/receive")]
        return None

    def owns(self, channel: ChannelInfo) -> bool:
        return self._account(channel) is not None

    async def register(self, channel: ChannelInfo, webhook_url: str) -> None:
        account = self._account(channel)
        assert account is not None
        self.sim.register(account, str(getattr(channel.config, "secret")), webhook_url)  # noqa: B009

    async def send_as_customer(
        self, channel: ChannelInfo, user: str, name: str | None, text: str
    ) -> dict[str, Any]:
        account = self._account(channel)
        assert account is not None
        return await self.sim.send_as_customer(account, user, text, name)

    async def thread(self, channel: ChannelInfo, user: str) -> list[dict[str, Any]]:
        account = self._account(channel)
        acct = self.sim.accounts.get(account or "")
        return [m for m in acct.thread if m["user"] == user] if acct else []


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = f"{settings.public_url}/sandbox"
        self.whatsapp = WhatsAppSimulator()
        self.api = ApiClientSimulator()
        self.twilio = TwilioSimulator()
        self.messenger = MessengerSimulator(cdn_base_url=f"{base}/messenger")
        self.instagram = InstagramSimulator(cdn_base_url=f"{base}/instagram")
        self.wechat = WeChatSimulator(f"{base}/wechat")
        self.vonage = VonageSimulator()
        self.smpp = SmscSimulator(sandbox_port(), fallback_to_free_port=True)
        self.telegram = TelegramSimulator()
        self.rbm = RbmSimulator()
        self.gbm = GbmSimulator()
        self.line = LineSimulator()
        self.viber = ViberSimulator(f"{base}/viber")
        self.bindings: list[SandboxBinding] = [
            WhatsAppBinding(f"{base}/whatsapp", self.whatsapp),
            ApiBinding(f"{base}/api", self.api),
            TwilioBinding(f"{base}/twilio", self.twilio),
            MessengerBinding(f"{base}/messenger", self.messenger),
            InstagramBinding(f"{base}/instagram", self.instagram),
            WeChatBinding(f"{base}/wechat", self.wechat),
            VonageBinding(f"{base}/vonage", self.vonage),
            SmppBinding(self.smpp),
            TelegramBinding(f"{base}/telegram", self.telegram),
            RbmBinding(f"{base}/rbm", self.rbm),
            GbmBinding(f"{base}/gbm", self.gbm),
            LineBinding(f"{base}/line", self.line),
            ViberBinding(f"{base}/viber", self.viber),
        ]
        self.rt: Runtime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = Starlette(
            routes=[
                Route("/phone", self._phone_page),
                Route("/phone/channels", self._channels),
                Route("/phone/thread", self._thread),
                Route("/phone/send", self._send, methods=["POST"]),
                Route("/phone/typing", self._typing),
                Route("/phone/age", self._age, methods=["POST"]),
                Mount("/whatsapp", self.whatsapp.app),
                Mount("/api", self.api.app),
                Mount("/twilio", self.twilio.app),
                Mount("/messenger", self.messenger.app),
                Mount("/instagram", self.instagram.app),
                Mount("/wechat", self.wechat.app),
                Mount("/vonage", self.vonage.app),
                Mount("/smpp", self.smpp.app),
                Mount("/telegram", self.telegram.app),
                Mount("/rbm", self.rbm.app),
                Mount("/gbm", self.gbm.app),
                Mount("/line", self.line.app),
                Mount("/viber", self.viber.app),
            ]
        )

    def _binding(self, channel: ChannelInfo) -> SandboxBinding | None:
        for binding in self.bindings:
            if binding.kind == channel.kind and binding.owns(channel):
                return binding
        return None

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        # The simulated SMSC listens on loopback before channels bind to it.
        await self.smpp.start()
        rt.channel_hooks.append(self.register)
        async with rt.db.read() as s:
            ids = (await s.scalars(select(Channel.id).where(Channel.active.is_(True)))).all()
        for channel_id in ids:
            info = await rt.channels.get(channel_id)
            if info is not None:
                await self.register(info)

    async def register(self, channel: ChannelInfo) -> None:
        channel = await self._follow_smsc(channel)
        binding = self._binding(channel)
        if binding is not None:
            await binding.register(channel, self.settings.webhook_url(channel.kind, channel.id))
            if getattr(channel.config, "waba_id", None) == DEMO_WABA:
                task = asyncio.create_task(self._sync_demo_templates(channel))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _sync_demo_templates(self, channel: ChannelInfo) -> None:
        """Fetch the demo templates into Tidings through the real template sync (Graph over
        HTTP to this very server, so it waits until the server answers)."""
        from tidings.actions.templates import sync_templates

        assert self.rt is not None
        for attempt in range(20):
            try:
                result = await sync_templates(self.rt, channel)
            except Exception:
                log.warning("sandbox template sync of channel %s failed", channel.id, exc_info=True)
                return
            if "error" not in result:
                return
            await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
        log.warning("sandbox template sync of channel %s: %s", channel.id, result.get("error"))

    async def _follow_smsc(self, channel: ChannelInfo) -> ChannelInfo:
        """A sandbox SMPP channel dials the port the sandbox SMSC actually bound. When 2775
        (TIDINGS_SANDBOX_SMPP_PORT) is taken the SMSC listens on a free port, so a demo
        channel made by `bootstrap --demo` (another process) or in an earlier run points at the
        wrong one: rewrite its port, at start and whenever such a channel is created, and give
        the other channel hooks (the SMPP sessions) the corrected channel."""
        rt = self.rt
        config: Any = channel.config
        if (
            rt is None
            or channel.kind != SmppBinding.kind
            or not dials_sandbox_smsc(config)
            or config.port == self.smpp.port
        ):
            return channel
        async with rt.db.write() as s:
            row = await s.get(Channel, channel.id)
            if row is None:
                return channel
            stored = rt.box.decrypt_json(row.config_encrypted)
            stored["port"] = self.smpp.port
            row.config_encrypted = rt.box.encrypt(stored)
        log.warning(
            "sandbox SMSC listens on port %s: channel %s now dials it (was %s)",
            self.smpp.port,
            channel.id,
            config.port,
        )
        rt.channels.invalidate(channel.id)
        moved = await rt.channels.get(channel.id)
        if moved is None:
            return channel
        for hook in list(rt.channel_hooks):
            if hook != self.register:
                await hook(moved)
        return moved

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.whatsapp.aclose()
        await self.api.aclose()
        await self.twilio.aclose()
        await self.messenger.aclose()
        await self.instagram.aclose()
        await self.wechat.aclose()
        await self.vonage.aclose()
        await self.smpp.aclose()
        await self.telegram.aclose()
        await self.rbm.aclose()
        await self.gbm.aclose()
        await self.line.aclose()
        await self.viber.aclose()

    async def _sandbox_channels(self) -> list[tuple[ChannelInfo, SandboxBinding]]:
        assert self.rt is not None
        async with self.rt.db.read() as s:
            ids = (
                await s.scalars(
                    select(Channel.id).where(Channel.active.is_(True)).order_by(Channel.id)
                )
            ).all()
        out = []
        for channel_id in ids:
            info = await self.rt.channels.get(channel_id)
            binding = self._binding(info) if info else None
            if info is not None and binding is not None:
                out.append((info, binding))
        return out

    async def _find(
        self, request: Request, channel_id: Any
    ) -> tuple[ChannelInfo, SandboxBinding] | None:
        for info, binding in await self._sandbox_channels():
            if str(info.id) == str(channel_id):
                return info, binding
        return None

    async def _phone_page(self, _request: Request) -> Response:
        return HTMLResponse(PHONE_PAGE.read_text())

    async def _channels(self, _request: Request) -> JSONResponse:
        return JSONResponse(
            [
                {
                    "id": i.id,
                    "kind": i.kind,
                    "name": i.name,
                    # What the customer can send from the phone page on this channel.
                    "can": ["text", "location", "file"]
                    if isinstance(b, RichCustomer)
                    else ["text"],
                    "file_types": list(PHONE_FILE_TYPES) if isinstance(b, RichCustomer) else [],
                }
                for i, b in await self._sandbox_channels()
            ]
        )

    async def _thread(self, request: Request) -> JSONResponse:
        found = await self._find(request, request.query_params.get("channel_id"))
        user = request.query_params.get("user", "")
        if found is None or not user:
            return JSONResponse({"error": "channel_id and user are required"}, status_code=400)
        return JSONResponse(await found[1].thread(found[0], user))

    async def _typing(self, request: Request) -> JSONResponse:
        found = await self._find(request, request.query_params.get("channel_id"))
        user = request.query_params.get("user", "")
        if found is None or not user:
            return _bad("channel_id and user are required")
        info, binding = found
        typing = isinstance(binding, TypingView) and await binding.typing(info, user)
        return JSONResponse({"typing": typing})

    async def _age(self, request: Request) -> JSONResponse:
        """Make the customer's last message on a channel AGE_HOURS old, in Tidings and in the
        simulator, so the business sees its service window closed (the phone's "age" button)."""
        from tidings.actions.sandbox_clock import do_age_window

        try:
            body = await request.json()
        except ValueError:
            return _bad("the body must be JSON")
        if not isinstance(body, dict):
            return _bad("the body must be a JSON object")
        found = await self._find(request, body.get("channel_id"))
        user = str(body.get("user") or "").strip()
        if found is None or not user:
            return _bad("channel_id and user are required")
        info, binding = found
        assert self.rt is not None
        digits = "".join(ch for ch in user if ch.isdigit())
        addresses = list(dict.fromkeys([user, digits, f"+{digits}"]))
        aged = await do_age_window(self.rt, info, addresses, AGE_HOURS)
        if aged and isinstance(binding, WhatsAppBinding):
            await binding.age(info, user, AGE_HOURS)
        if not aged:
            return _bad("this customer has not written on this channel yet")
        return JSONResponse({"aged": aged, "hours": AGE_HOURS})

    async def _send(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return _bad("the body must be JSON")
        if not isinstance(body, dict):
            return _bad("the body must be a JSON object")
        found = await self._find(request, body.get("channel_id"))
        text = str(body.get("text") or "").strip()
        user = str(body.get("user") or "").strip()
        name = body.get("name") if isinstance(body.get("name"), str) else None
        rich = body.get("location") is not None or body.get("file") is not None
        if found is None or not user or not (text or rich):
            return _bad("channel_id, user and text (or a location or file) are required")
        info, binding = found
        if not rich:
            return _sent(await binding.send_as_customer(info, user, name, text))
        if not isinstance(binding, RichCustomer):
            return _bad(f"the {info.kind} sandbox customer can only send text from this page")
        if body.get("location") is not None:
            loc = body["location"]
            try:
                lat, lon = float(loc["latitude"]), float(loc["longitude"])
            except (TypeError, KeyError, ValueError):
                return _bad("location needs numeric latitude and longitude")
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                return _bad("latitude must be within ±90 and longitude within ±180")
            label = loc.get("name") if isinstance(loc.get("name"), str) else None
            return _sent(await binding.send_location(info, user, name, lat, lon, label))
        file = body["file"]
        if not isinstance(file, dict):
            return _bad("file must be an object with mime_type, filename and data_b64")
        mime = str(file.get("mime_type") or "")
        if mime not in PHONE_FILE_TYPES:
            return _bad(
                f"file type {mime or 'unknown'} is not one of {', '.join(PHONE_FILE_TYPES)}"
            )
        try:
            data = base64.b64decode(str(file.get("data_b64") or ""), validate=True)
        except (ValueError, binascii.Error):
            return _bad("data_b64 is not valid base64")
        if not data or len(data) > PHONE_FILE_MAX:
            return _bad(f"the file must be 1 byte to {PHONE_FILE_MAX // (1024 * 1024)} MB")
        filename = str(file.get("filename") or "file")[:200]
        return _sent(await binding.send_file(info, user, name, mime, filename, data, text or None))


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def guarded(app: ASGIApp, rt: Runtime | None, settings: Settings | None = None) -> ASGIApp:
    """The sandbox app behind `sandbox_guard`: the sandbox token of the settings opens it, and
    so (with a runtime to look agents up in) does the session of a signed-in agent."""
    from tidings.api.auth import SESSION_COOKIE, agent_from_session, principal_for_agent

    settings = settings or (rt.settings if rt is not None else None)
    assert settings is not None, "guarded() needs a runtime or settings"
    check: SessionCheck | None = None
    if rt is not None:
        runtime = rt

        async def check_session(cookie: str) -> tuple[bool, bool]:
            # The session must be current (not signed out, password unchanged): api/auth.py.
            agent = await agent_from_session(runtime, cookie)
            who = await principal_for_agent(runtime, agent.id) if agent is not None else None
            return who is not None, who is not None and who.is_admin

        check = check_session
    return sandbox_guard(
        app,
        settings.sandbox_token,
        session_cookie=SESSION_COOKIE,
        check_session=check,
        secure_cookie=settings.public_url.startswith("https://"),
    )


def _sent(result: dict[str, Any]) -> JSONResponse:
    """A binding's answer for the phone page. A refusal (`{"error": ...}`, e.g. a customer id
    the channel cannot have) is a 400 with its sentence, so the page shows it; it used to be
    answered 200 and the page showed nothing."""
    error = result.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        return _bad(str(message or error))
    return JSONResponse(result)


async def create_demo_channels(
    rt: Runtime, workspace_id: int, agent_id: int
) -> list[dict[str, Any]]:
    """Connect one WhatsApp and one API channel to the sandbox simulators (idempotent)."""
    from tidings.access import Principal
    from tidings.actions.admin import create_channel
    from tidings.domain.enums import Role

    async with rt.db.read() as s:
        existing = (
            await s.scalars(select(Channel).where(Channel.workspace_id == workspace_id))
        ).all()
    if existing:
        return [{"id": c.id, "kind": c.kind, "name": c.name} for c in existing]
    who = Principal(workspace_id, agent_id, Role.OWNER, frozenset())
    base = f"{rt.settings.public_url}/sandbox"
    made = []
    wa = await create_channel(
        rt,
        who,
        "whatsapp",
        "WhatsApp (sandbox)",
        {
            "phone_number_id": "100000000000001",
            "display_phone_number": "15550001111",
            "access_token": secrets.token_urlsafe(24),
            "app_secret": secrets.token_hex(16),
            "verify_token": secrets.token_urlsafe(12),
            "api_base_url": f"{base}/whatsapp",
            # Its templates: the sandbox's demo set (DEMO_TEMPLATES), synced at start.
            "waba_id": DEMO_WABA,
        },
        None,
    )
    made.append({"id": wa.id, "kind": wa.kind, "name": wa.name})
    api = await create_channel(
        rt,
        who,
        "api",
        "Website chat (API sandbox)",
        {
            "secret": secrets.token_urlsafe(24),
            "webhook_url": f"{base}/api/accounts/demo-{secrets.token_hex(4)}/receive",
        },
        None,
    )
    made.append({"id": api.id, "kind": api.kind, "name": api.name})
    sms = await create_channel(
        rt,
        who,
        "twilio",
        "SMS via Twilio (sandbox)",
        {
            "account_sid": f"AC{secrets.token_hex(16)}",
            "auth_token": secrets.token_hex(16),
            "from_number": "+14155550199",
            "api_base_url": f"{base}/twilio",
        },
        None,
    )
    made.append({"id": sms.id, "kind": sms.kind, "name": sms.name})
    fb = await create_channel(
        rt,
        who,
        "messenger",
        "Messenger (sandbox)",
        {
            "page_id": "100000000000101",
            "page_access_token": secrets.token_urlsafe(24),
            "app_secret": secrets.token_hex(16),
            "verify_token": secrets.token_urlsafe(12),
            "human_agent": True,
            "api_base_url": f"{base}/messenger",
        },
        None,
    )
    made.append({"id": fb.id, "kind": fb.kind, "name": fb.name})
    ig = await create_channel(
        rt,
        who,
        "instagram",
        "Instagram (sandbox)",
        {
            "flavour": "instagram_login",
            "instagram_account_id": "17841400000000001",
            "access_token": secrets.token_urlsafe(24),
            "app_secret": secrets.token_hex(16),
            "verify_token": secrets.token_urlsafe(12),
            "human_agent": True,
            "api_base_url": f"{base}/instagram",
        },
        None,
    )
    made.append({"id": ig.id, "kind": ig.kind, "name": ig.name})
    wechat = await create_channel(
        rt,
        who,
        "wechat",
        "WeChat Official Account (sandbox)",
        {
            "app_id": f"wx{secrets.token_hex(8)}",
            "app_secret": secrets.token_hex(16),
            "token": secrets.token_urlsafe(16),
            # Safe mode: a 43-character EncodingAESKey, as the WeChat console generates.
            "encoding_aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
            "api_base_url": f"{base}/wechat",
        },
        None,
    )
    made.append({"id": wechat.id, "kind": wechat.kind, "name": wechat.name})
    tg = await create_channel(
        rt,
        who,
        "telegram",
        "Telegram (sandbox)",
        {
            "bot_token": f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(26)}",
            "secret_token": secrets.token_urlsafe(24),
            "api_base_url": f"{base}/telegram",
        },
        None,
    )
    made.append({"id": tg.id, "kind": tg.kind, "name": tg.name})
    line = await create_channel(
        rt,
        who,
        "line",
        "LINE Official Account (sandbox)",
        {
            "channel_secret": secrets.token_hex(16),
            "channel_access_token": secrets.token_urlsafe(32),
            "api_base_url": f"{base}/line",
            "data_api_base_url": f"{base}/line",
        },
        None,
    )
    made.append({"id": line.id, "kind": line.kind, "name": line.name})
    viber = await create_channel(
        rt,
        who,
        "viber",
        "Viber (sandbox)",
        {
            "auth_token": f"{secrets.token_hex(8)}-{secrets.token_hex(8)}-{secrets.token_hex(8)}",
            "api_base_url": f"{base}/viber",
            "sender_name": "Tidings Support",
        },
        None,
    )
    made.append({"id": viber.id, "kind": viber.kind, "name": viber.name})
    rbm = await create_channel(
        rt,
        who,
        "rbm",
        "RCS Business Messaging (sandbox)",
        {
            "agent_id": f"tidings-demo-{secrets.token_hex(3)}@rbm.goog",
            "webhook_client_token": secrets.token_urlsafe(24),
            "access_token": f"ya29.sandbox-{secrets.token_urlsafe(24)}",
            "api_base_url": f"{base}/rbm",
        },
        None,
    )
    made.append({"id": rbm.id, "kind": rbm.kind, "name": rbm.name})
    vonage = await create_channel(
        rt,
        who,
        "vonage",
        "SMS via Vonage (sandbox)",
        {
            "api_key": f"sbx{secrets.token_hex(4)}",
            "api_secret": secrets.token_urlsafe(12),
            "signature_secret": secrets.token_urlsafe(24),
            "signature_method": "sha256",
            "from_number": "+14155550100",
            "api_base_url": f"{base}/vonage",
        },
        None,
    )
    made.append({"id": vonage.id, "kind": vonage.kind, "name": vonage.name})
    smpp = await create_channel(
        rt,
        who,
        "smpp",
        "SMS via SMPP (sandbox SMSC)",
        {
            "host": "127.0.0.1",
            "port": sandbox_port(),
            "system_id": f"{SANDBOX_SYSTEM_ID_PREFIX}{secrets.token_hex(3)}",
            "password": secrets.token_hex(4),
            "source_addr": "14155550111",
            "enquire_link_seconds": 15,
        },
        None,
    )
    made.append({"id": smpp.id, "kind": smpp.kind, "name": smpp.name})
    return made
