"""Sign-in, sign-out and the inbox page."""

from __future__ import annotations

import time
from pathlib import Path

from argon2.exceptions import VerificationError
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from tidings.actions.admin import hasher
from tidings.api.auth import SESSION_COOKIE, SESSION_MAX_AGE, agent_from_session, session_value
from tidings.runtime import Runtime
from tidings.storage.models import Agent

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

# Login throttling: failures per email within a window, in this process.
THROTTLE_WINDOW = 300.0
THROTTLE_MAX = 10
_failures: dict[str, list[float]] = {}


def _throttled(email: str) -> bool:
    now = time.monotonic()
    recent = [t for t in _failures.get(email, []) if now - t < THROTTLE_WINDOW]
    _failures[email] = recent
    return len(recent) >= THROTTLE_MAX


def render(name: str, status: int = 200, **context: object) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status)


def mount_web(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/inbox", status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return render(
            "login.html", error=None, email="", sandbox=request.app.state.runtime.settings.sandbox
        )

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        form = await request.form()
        email = str(form.get("email", "")).strip().lower()
        password = str(form.get("password", ""))
        if _throttled(email):
            return render(
                "login.html",
                429,
                error="Too many attempts; wait a few minutes.",
                email=email,
                sandbox=rt.settings.sandbox,
            )
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
            return render(
                "login.html",
                401,
                error="Wrong email or password.",
                email=email,
                sandbox=rt.settings.sandbox,
            )
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_value(rt, agent.id),
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=rt.settings.public_url.startswith("https://"),
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/inbox", include_in_schema=False)
    async def inbox(request: Request) -> Response:
        rt: Runtime = request.app.state.runtime
        agent_id = agent_from_session(rt, request.cookies.get(SESSION_COOKIE))
        if agent_id is None:
            return RedirectResponse("/login", status_code=303)
        async with rt.db.read() as s:
            agent = await s.get(Agent, agent_id)
        if agent is None:
            return RedirectResponse("/login", status_code=303)
        return render("inbox.html", agent=agent, sandbox=rt.settings.sandbox)
