"""Sign-in, sign-out, the inbox and settings pages, and the security headers of every page.

CSRF: the sign-in form carries a random token that must match a cookie set with the form
(double submit: another site can neither read the cookie nor set it); pages for a signed-in
agent carry a token derived from the session (HMAC), which the sign-out form posts back. API
calls from the pages use the `X-Requested-With: tidings` header instead (see api/auth.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from argon2.exceptions import VerificationError
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.actions.admin import hasher
from tidings.api.auth import SESSION_COOKIE, SESSION_MAX_AGE, agent_from_session, session_value
from tidings.domain.enums import Role
from tidings.runtime import Runtime
from tidings.storage.models import Agent

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

LOGIN_CSRF_COOKIE = "tidings_login_csrf"

# No inline script or style anywhere: customer text that slipped into markup could not run.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
# Nothing is exempt: the OpenAPI explorer is served from a pinned package with a static start-up
# script (api/docs.py), so it lives under the same rules.
CSP_EXEMPT_PREFIXES: tuple[str, ...] = ()

# Login throttling: failures per email within a window, in this process.
THROTTLE_WINDOW = 300.0
THROTTLE_MAX = 10
_failures: dict[str, list[float]] = {}


class SecurityHeaders:
    """Adds the CSP and friends to every HTML response (pages, the sandbox phone, errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(CSP_EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    present = {k.lower() for k, _ in headers}
                    headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _throttled(email: str) -> bool:
    now = time.monotonic()
    recent = [t for t in _failures.get(email, []) if now - t < THROTTLE_WINDOW]
    _failures[email] = recent
    return len(recent) >= THROTTLE_MAX


def session_csrf(rt: Runtime, session_cookie: str) -> str:
    """The CSRF token of a signed-in page: bound to the session, so it dies with it."""
    key = hashlib.sha256(b"tidings.csrf|" + rt.settings.secret_key.encode()).digest()
    return hmac.new(key, session_cookie.encode(), hashlib.sha256).hexdigest()


def render(name: str, status: int = 200, **context: object) -> HTMLResponse:
    response = HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _login_page(rt: Runtime, status: int, error: str | None, email: str) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render(
        "login.html", status, error=error, email=email, sandbox=rt.settings.sandbox, csrf=token
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=rt.settings.public_url.startswith("https://"),
    )
    return response


async def _signed_in(request: Request) -> tuple[Agent, str] | None:
    rt: Runtime = request.app.state.runtime
    cookie = request.cookies.get(SESSION_COOKIE) or ""
    agent_id = agent_from_session(rt, cookie)
    if agent_id is None:
        return None
    async with rt.db.read() as s:
        agent = await s.get(Agent, agent_id)
    if agent is None or not agent.active:
        return None
    return agent, cookie


def mount_web(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/inbox", status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return _login_page(request.app.state.runtime, 200, None, "")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        form = await request.form()
        email = str(form.get("email", "")).strip().lower()
        password = str(form.get("password", ""))
        sent = str(form.get("csrf", ""))
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return _login_page(rt, 403, "The form expired; please sign in again.", email)
        if _throttled(email):
            return _login_page(rt, 429, "Too many attempts; wait a few minutes.", email)
        async with rt.db.read() as s:
            agent = await s.scalar(
                select(Agent).where(Agent.email == email, Agent.active.is_(True))
            )
        ok = False
        if agent is not None and agent.password_hash:
            try:
                ok = hasher.verify(agent.password_hash, password)
            except VerificationError:
                ok = False
        if not ok or agent is None:
            _failures.setdefault(email, []).append(time.monotonic())
            return _login_page(rt, 401, "Wrong email or password.", email)
        _failures.pop(email, None)
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_value(rt, agent.id),
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=rt.settings.public_url.startswith("https://"),
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        cookie = request.cookies.get(SESSION_COOKIE) or ""
        form = await request.form()
        sent = str(form.get("csrf", ""))
        if cookie and not hmac.compare_digest(sent.encode(), session_csrf(rt, cookie).encode()):
            return Response("CSRF check failed; use the Sign out button.", status_code=403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/inbox", include_in_schema=False)
    async def inbox(request: Request) -> Response:
        found = await _signed_in(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        agent, cookie = found
        rt: Runtime = request.app.state.runtime
        return render(
            "inbox.html",
            agent=agent,
            is_admin=agent.role in (Role.OWNER, Role.ADMIN),
            sandbox=rt.settings.sandbox,
            csrf=session_csrf(rt, cookie),
        )

    async def admin_page(request: Request, template: str, **extra: object) -> Response:
        """An owners-and-admins page: sign-in redirect, 403 page for agents, else `template`."""
        found = await _signed_in(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        agent, cookie = found
        rt: Runtime = request.app.state.runtime
        if agent.role not in (Role.OWNER, Role.ADMIN):
            return render(
                "forbidden.html", 403, agent=agent, csrf=session_csrf(rt, cookie), sandbox=False
            )
        return render(
            template,
            200,
            agent=agent,
            is_admin=True,
            sandbox=rt.settings.sandbox,
            csrf=session_csrf(rt, cookie),
            **extra,
        )

    @app.get("/settings", include_in_schema=False)
    async def settings(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        return await admin_page(request, "settings.html", public_url=rt.settings.public_url)

    @app.get("/campaigns", include_in_schema=False)
    async def campaigns(request: Request) -> Response:
        """Broadcasts (issue 6): list with live progress, editor, preview, report. Admins."""
        return await admin_page(request, "campaigns.html")

    @app.get("/reports", include_in_schema=False)
    async def reports(request: Request) -> Response:
        """Reports (issue 8): conversations, channels, agents, campaigns; charts and CSV. Admins."""
        return await admin_page(request, "reports.html")
