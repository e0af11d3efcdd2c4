"""Sandbox mode: every provider simulator mounted under `/sandbox`, plus the customer phone.

Each simulated provider has a binding (`SandboxBinding`) that knows how to register a Tidings
channel with its simulator, send as a customer, and show the customer's side of the thread.
`registry.SANDBOX` is the one list of simulators (one line per channel, demo channels
included); their bindings are built from it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from tidings.config import Settings
from tidings.runtime import ChannelInfo, Runtime
from tidings.simulators import registry
from tidings.simulators.guard import SessionCheck, sandbox_guard
from tidings.simulators.kit import PhoneFile, PhoneLocation, TaskSet, answering, control_error
from tidings.simulators.smpp import SmppBinding, SmscSimulator, dials_sandbox_smsc
from tidings.simulators.whatsapp import DEMO_WABA
from tidings.storage.models import Channel

log = logging.getLogger(__name__)

PHONE_PAGE = Path(__file__).parent / "templates" / "phone.html"
# How long ago the phone page's "age" button makes a customer's last message (past 24 h).
AGE_HOURS = 25.0


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
        self, channel: ChannelInfo, user: str, name: str | None, place: PhoneLocation
    ) -> dict[str, Any]: ...

    async def send_file(
        self, channel: ChannelInfo, user: str, name: str | None, file: PhoneFile
    ) -> dict[str, Any]: ...


@runtime_checkable
class WindowClock(Protocol):
    """A binding whose simulator keeps its own service-window clock (WhatsApp's 24 h), which the
    phone's "age" button moves back with Tidings'."""

    async def age(self, channel: ChannelInfo, user: str, hours: float) -> None: ...


@runtime_checkable
class TypingView(Protocol):
    """A binding that can tell whether the business is showing "typing…" to this customer."""

    async def typing(self, channel: ChannelInfo, user: str) -> bool: ...


# What the phone page lets a customer send as a file, and how big: enough for a photo or a
# receipt; the channel's own limits are checked by Tidings when the file arrives.
PHONE_FILE_TYPES = ("image/jpeg", "image/png", "image/webp", "application/pdf", "text/plain")
PHONE_FILE_MAX = 5 * 1024 * 1024


class Refused(Exception):
    """A phone-page request that cannot be done: a 400 with this sentence."""


_refusing = answering(Refused, answer=lambda exc: control_error(str(exc)))


class Sandbox:
    """Every simulator of `registry.SANDBOX` mounted at `/sandbox/{path}`, their bindings,
    and the customer phone page."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = f"{settings.public_url}/sandbox"
        self.simulators: dict[str, Any] = {
            entry.path: entry.make(f"{base}/{entry.path}") for entry in registry.SANDBOX
        }
        self.bindings: list[SandboxBinding] = [
            entry.bind(f"{base}/{entry.path}", self.simulators[entry.path])
            for entry in registry.SANDBOX
            if entry.bind is not None
        ]
        # The SMSC listens on its own TCP port; the SMPP channel hook follows it.
        self.smpp: SmscSimulator = self.simulators["smpp"]
        self.rt: Runtime | None = None
        self.tasks = TaskSet()
        self.app = Starlette(
            routes=[
                Route("/phone", self._phone_page),
                Route("/phone/channels", self._channels),
                Route("/phone/thread", self._thread),
                Route("/phone/send", self._send, methods=["POST"]),
                Route("/phone/typing", self._typing),
                Route("/phone/age", self._age, methods=["POST"]),
                *(Mount(f"/{path}", simulator.app) for path, simulator in self.simulators.items()),
            ]
        )

    def _binding(self, channel: ChannelInfo) -> SandboxBinding | None:
        for binding in self.bindings:
            if binding.kind == channel.kind and binding.owns(channel):
                return binding
        return None

    async def start(self, rt: Runtime) -> None:
        self.rt = rt
        # Simulators with a listener of their own (the SMSC on loopback) start before
        # channels bind to them.
        for simulator in self.simulators.values():
            start = getattr(simulator, "start", None)
            if start is not None:
                await start()
        rt.channel_hooks.append(self.register)
        for info in await self._active_channels():
            await self.register(info)

    async def register(self, channel: ChannelInfo) -> None:
        channel = await self._follow_smsc(channel)
        binding = self._binding(channel)
        if binding is not None:
            await binding.register(channel, self.settings.webhook_url(channel.kind, channel.id))
            if getattr(channel.config, "waba_id", None) == DEMO_WABA:
                self.tasks.spawn(self._sync_demo_templates(channel), "sandbox-template-sync")

    async def _sync_demo_templates(self, channel: ChannelInfo) -> None:
        """Fetch the demo templates into Tidings through the real template sync (Graph over
        HTTP to this very server, so it waits until the server answers)."""
        from tidings.actions.templates import ProviderError, sync_templates

        assert self.rt is not None
        last = ""
        for attempt in range(20):
            try:
                result = await sync_templates(self.rt, channel)
            except ProviderError as exc:
                # At start the server is not listening yet (it connects its channels first):
                # "Could not reach WhatsApp" until it is. Try again.
                last = str(exc)
            else:
                if "error" not in result:
                    return
                last = str(result.get("error"))
            await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
        log.warning("sandbox template sync of channel %s: %s", channel.id, last)

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
        self.tasks.cancel()
        for simulator in self.simulators.values():
            await simulator.aclose()

    async def _active_channels(self) -> list[ChannelInfo]:
        assert self.rt is not None
        async with self.rt.db.read() as s:
            ids = (
                await s.scalars(
                    select(Channel.id).where(Channel.active.is_(True)).order_by(Channel.id)
                )
            ).all()
        infos = [await self.rt.channels.get(channel_id) for channel_id in ids]
        return [info for info in infos if info is not None]

    async def _sandbox_channels(self) -> list[tuple[ChannelInfo, SandboxBinding]]:
        pairs = [(info, self._binding(info)) for info in await self._active_channels()]
        return [(info, binding) for info, binding in pairs if binding is not None]

    async def _find(
        self, channel_id: Any, complete: str | bool, need: str = "channel_id and user"
    ) -> tuple[ChannelInfo, SandboxBinding]:
        """The sandbox channel `channel_id` names, when the request is `complete` (has a user
        and what else it needs); else a refusal that says what is `need`ed."""
        if complete:
            for info, binding in await self._sandbox_channels():
                if str(info.id) == str(channel_id):
                    return info, binding
        raise Refused(f"{need} are required")

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

    @_refusing
    async def _thread(self, request: Request) -> Response:
        user = request.query_params.get("user", "")
        info, binding = await self._find(request.query_params.get("channel_id"), user)
        return JSONResponse(await binding.thread(info, user))

    @_refusing
    async def _typing(self, request: Request) -> Response:
        user = request.query_params.get("user", "")
        info, binding = await self._find(request.query_params.get("channel_id"), user)
        typing = isinstance(binding, TypingView) and await binding.typing(info, user)
        return JSONResponse({"typing": typing})

    @_refusing
    async def _age(self, request: Request) -> Response:
        """Make the customer's last message on a channel AGE_HOURS old, in Tidings and in the
        simulator, so the business sees its service window closed (the phone's "age" button)."""
        from tidings.actions.sandbox_clock import do_age_window

        body = await _json_object(request)
        user = str(body.get("user") or "").strip()
        info, binding = await self._find(body.get("channel_id"), user)
        assert self.rt is not None
        digits = "".join(ch for ch in user if ch.isdigit())
        addresses = list(dict.fromkeys([user, digits, f"+{digits}"]))
        aged = await do_age_window(self.rt, info, addresses, AGE_HOURS)
        if aged and isinstance(binding, WindowClock):
            await binding.age(info, user, AGE_HOURS)
        if not aged:
            return control_error("this customer has not written on this channel yet")
        return JSONResponse({"aged": aged, "hours": AGE_HOURS})

    @_refusing
    async def _send(self, request: Request) -> Response:
        body = await _json_object(request)
        text = str(body.get("text") or "").strip()
        user = str(body.get("user") or "").strip()
        name = body.get("name") if isinstance(body.get("name"), str) else None
        rich = body.get("location") is not None or body.get("file") is not None
        info, binding = await self._find(
            body.get("channel_id"),
            user and (text or rich),
            "channel_id, user and text (or a location or file)",
        )
        if not rich:
            return _sent(await binding.send_as_customer(info, user, name, text))
        if not isinstance(binding, RichCustomer):
            return control_error(
                f"the {info.kind} sandbox customer can only send text from this page"
            )
        if body.get("location") is not None:
            loc = body["location"]
            try:
                lat, lon = float(loc["latitude"]), float(loc["longitude"])
            except (TypeError, KeyError, ValueError):
                return control_error("location needs numeric latitude and longitude")
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                return control_error("latitude must be within ±90 and longitude within ±180")
            label = loc.get("name") if isinstance(loc.get("name"), str) else None
            place = PhoneLocation(lat, lon, label)
            return _sent(await binding.send_location(info, user, name, place))
        file = body["file"]
        if not isinstance(file, dict):
            return control_error("file must be an object with mime_type, filename and data_b64")
        mime = str(file.get("mime_type") or "")
        if mime not in PHONE_FILE_TYPES:
            return control_error(
                f"file type {mime or 'unknown'} is not one of {', '.join(PHONE_FILE_TYPES)}"
            )
        try:
            data = base64.b64decode(str(file.get("data_b64") or ""), validate=True)
        except (ValueError, binascii.Error):
            return control_error("data_b64 is not valid base64")
        if not data or len(data) > PHONE_FILE_MAX:
            return control_error(f"the file must be 1 byte to {PHONE_FILE_MAX // (1024 * 1024)} MB")
        filename = str(file.get("filename") or "file")[:200]
        upload = PhoneFile(mime, filename, data, text or None)
        return _sent(await binding.send_file(info, user, name, upload))


async def _json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object; a refusal that says why there is none."""
    try:
        body = await request.json()
    except ValueError:
        raise Refused("the body must be JSON") from None
    if not isinstance(body, dict):
        raise Refused("the body must be a JSON object")
    return body


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
        return control_error(str(message or error))
    return JSONResponse(result)


async def create_demo_channels(
    rt: Runtime, workspace_id: int, agent_id: int
) -> list[dict[str, Any]]:
    """Connect the demo channels of every simulator in `registry.SANDBOX` (idempotent: a
    workspace that has channels gets none)."""
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
    for entry in registry.SANDBOX:
        for demo in entry.demo:
            # The binding registers each demo channel with its simulator in process (at start
            # and through `rt.channel_hooks`); a set_webhook over HTTP would fail while
            # `bootstrap --demo` runs before the server listens.
            channel = await create_channel(
                rt,
                who,
                demo.kind,
                demo.name,
                demo.config(f"{base}/{entry.path}"),
                None,
                set_webhook=False,
            )
            made.append({"id": channel.id, "kind": channel.kind, "name": channel.name})
    return made
