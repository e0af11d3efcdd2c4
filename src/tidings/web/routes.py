"""Sign-in, sign-out, the inbox and settings pages (their security headers: `api/guards.py`).

CSRF: the sign-in form carries a random token that must match a cookie set with the form
(double submit: another site can neither read the cookie nor set it); pages for a signed-in
agent carry a token derived from the session (HMAC), which the sign-out form posts back. API
calls from the pages use the `X-Requested-With: tidings` header instead (see api/auth.py).
"""

from __future__ import annotations

import asyncio
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

from tidings.actions.admin import hasher
from tidings.actions.passwords import (
    agent_for_reset,
    check_change_own_password,
    do_reset_with_link,
    do_sign_out,
)
from tidings.api.auth import (
    SESSION_COOKIE,
    agent_from_session,
    principal_for_agent,
    session_claim,
    set_session_cookie,
)
from tidings.domain.enums import Role
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import Agent

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

LOGIN_CSRF_COOKIE = "tidings_login_csrf"

# Login throttling: failures per email within a window, in this process.
THROTTLE_WINDOW = 300.0
THROTTLE_MAX = 10
# At most this many emails are remembered (memory stays bounded however many are tried): past
# windows are dropped first, then the oldest entries.
THROTTLE_EMAILS = 10_000
_failures: dict[str, list[float]] = {}
# And every attempt per client address, through the runtime's rate limiter (shared by every
# process when Redis is configured): a burst of ADDRESS_BURST, then one attempt per
# 1/ADDRESS_RATE seconds; an attempt that would wait longer than ADDRESS_MAX_WAIT gets 429.
# This slows password spraying across many emails, which the per-email count never sees.
# The address is the one uvicorn reports: it honours X-Forwarded-For only from the addresses
# in FORWARDED_ALLOW_IPS (default 127.0.0.1 and ::1, a proxy on the same host; see
# docs/architecture.md, "Authentication and access").
ADDRESS_BURST = 30
ADDRESS_RATE = 0.1
ADDRESS_MAX_WAIT = 1.0
# Unknown emails still cost one password hash, so they answer as slowly as known ones and
# the timing does not tell which accounts exist.
_DUMMY_HASH = hasher.hash("not a password: equalises sign-in timing")


async def _address_throttled(rt: Runtime, request: Request) -> bool:
    address = request.client.host if request.client else "unknown"
    try:
        async with asyncio.timeout(ADDRESS_MAX_WAIT):
            await rt.rate_limiter.acquire(f"login:addr:{address}", ADDRESS_RATE, ADDRESS_BURST)
    except TimeoutError:
        return True
    return False


def _throttled(email: str) -> bool:
    now = time.monotonic()
    recent = [t for t in _failures.get(email, ()) if now - t < THROTTLE_WINDOW]
    if recent:
        _failures[email] = recent
    else:
        _failures.pop(email, None)
    return len(recent) >= THROTTLE_MAX


def _record_failure(email: str) -> None:
    now = time.monotonic()
    _failures.setdefault(email, []).append(now)
    if len(_failures) <= THROTTLE_EMAILS:
        return
    for key in [k for k, times in _failures.items() if now - times[-1] >= THROTTLE_WINDOW]:
        del _failures[key]
    while len(_failures) > THROTTLE_EMAILS:
        del _failures[next(iter(_failures))]


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
    agent = await agent_from_session(rt, cookie)
    if agent is None:
        return None
    return agent, cookie


RESET_GONE = "This link is invalid, already used or expired; ask an admin for a new one."


async def _page(
    request: Request, template: str, status: int = 200, *, admin: bool = False, **extra: object
) -> Response:
    """A signed-in agent's page: the sign-in redirect without a session, the 403 page for an
    agent on an owners-and-admins (`admin`) page, else `template`."""
    found = await _signed_in(request)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    agent, cookie = found
    rt: Runtime = request.app.state.runtime
    csrf = session_csrf(rt, cookie)
    is_admin = agent.role in (Role.OWNER, Role.ADMIN)
    if admin and not is_admin:
        return render("forbidden.html", 403, agent=agent, csrf=csrf, sandbox=False)
    return render(
        template,
        status,
        agent=agent,
        is_admin=is_admin,
        sandbox=rt.settings.sandbox,
        csrf=csrf,
        **extra,
    )


async def _profile_page(request: Request, status: int, error: str | None) -> Response:
    changed = request.query_params.get("changed") == "1" and error is None
    return await _page(request, "profile.html", status, error=error, changed=changed)


def mount_web(app: FastAPI) -> None:

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
        if _throttled(email) or await _address_throttled(rt, request):
            return _login_page(rt, 429, "Too many attempts; wait a few minutes.", email)
        async with rt.db.read() as s:
            agent = await s.scalar(
                select(Agent).where(Agent.email == email, Agent.active.is_(True))
            )
        try:
            # Hash even when there is no such agent (or no password), so both take as long.
            verified: bool = hasher.verify(
                agent.password_hash if agent and agent.password_hash else _DUMMY_HASH, password
            )
        except VerificationError:
            verified = False
        if not verified or agent is None or agent.password_hash is None:
            _record_failure(email)
            return _login_page(rt, 401, "Wrong email or password.", email)
        _failures.pop(email, None)
        response = RedirectResponse("/inbox", status_code=303)
        set_session_cookie(rt, response, agent)
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
        claim = session_claim(rt, cookie)
        if claim is not None and await principal_for_agent(rt, claim[0], claim[1]) is not None:
            # The cookie dies on the server too: a copy of it (stolen, or in another browser
            # of the agent) stops working now, not in 14 days.
            await do_sign_out(rt, claim[0])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/profile", include_in_schema=False)
    async def profile(request: Request) -> Response:
        """The agent's own page: for now, "change my password"."""
        return await _profile_page(request, 200, None)

    @app.post("/profile/password", include_in_schema=False)
    async def profile_password(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        found = await _signed_in(request)
        if found is None:
            return RedirectResponse("/login", status_code=303)
        agent, cookie = found
        form = await request.form()
        sent = str(form.get("csrf", ""))
        if not hmac.compare_digest(sent.encode(), session_csrf(rt, cookie).encode()):
            return Response("CSRF check failed; reload the page.", status_code=403)
        new = str(form.get("new_password", ""))
        if new != str(form.get("new_password_again", "")):
            return await _profile_page(request, 422, "The new passwords differ.")
        who = await principal_for_agent(rt, agent.id)
        assert who is not None
        try:
            changed = await check_change_own_password(
                rt, who, str(form.get("current_password", "")), new
            )
        except InvalidInput as exc:
            return await _profile_page(request, 422, str(exc))
        response = RedirectResponse("/profile?changed=1", status_code=303)
        set_session_cookie(rt, response, changed)
        return response

    @app.get("/reset-password", include_in_schema=False)
    async def reset_form(request: Request, token: str = "") -> Response:
        rt: Runtime = request.app.state.runtime
        agent = await agent_for_reset(rt, token)
        if agent is None:
            return render("reset.html", 410, token="", email=None, error=RESET_GONE)
        return render("reset.html", 200, token=token, email=agent.email, error=None)

    @app.post("/reset-password", include_in_schema=False)
    async def reset_submit(request: Request) -> Response:
        # No CSRF token: the reset token in the form is the secret another site cannot know.
        rt: Runtime = request.app.state.runtime
        form = await request.form()
        token = str(form.get("token", ""))
        agent = await agent_for_reset(rt, token)
        if agent is None:
            return render("reset.html", 410, token="", email=None, error=RESET_GONE)
        new = str(form.get("new_password", ""))
        if new != str(form.get("new_password_again", "")):
            return render(
                "reset.html", 422, token=token, email=agent.email, error="The passwords differ."
            )
        try:
            await do_reset_with_link(rt, token, new)
        except InvalidInput as exc:
            return render("reset.html", 422, token=token, email=agent.email, error=str(exc))
        return RedirectResponse("/login", status_code=303)

    @app.get("/inbox", include_in_schema=False)
    async def inbox(request: Request) -> Response:
        return await _page(request, "inbox.html")

    @app.get("/contacts", include_in_schema=False)
    async def contacts(request: Request) -> Response:
        """Contacts: every agent, each seeing the contacts `access` gives them."""
        return await _page(request, "contacts.html")

    @app.get("/settings", include_in_schema=False)
    async def settings(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        return await _page(request, "settings.html", admin=True, public_url=rt.settings.public_url)

    @app.get("/campaigns", include_in_schema=False)
    async def campaigns(request: Request) -> Response:
        """Broadcasts: list with live progress, editor, preview, report. Admins."""
        return await _page(request, "campaigns.html", admin=True)

    @app.get("/reports", include_in_schema=False)
    async def reports(request: Request) -> Response:
        """Reports: conversations, channels, agents, campaigns; charts and CSV. Admins."""
        return await _page(request, "reports.html", admin=True)
