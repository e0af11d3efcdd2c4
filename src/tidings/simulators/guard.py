"""Who may use the sandbox: this machine, and then only with this install's secret.

The simulators' `/_sim/` control routes play the customer and the provider: they inject
customer messages into the real inbox and sign payloads with a channel's app secret, and the
phone page (`/phone`) reads simulated threads. A peer address proves nothing behind a reverse
proxy on the same host (every client is 127.0.0.1 there), so those routes need one of:

- the sandbox token (`Settings.sandbox_token`, derived from the secret key and printed by
  `tidings serve` at start) in the `X-Tidings-Sandbox-Token` header, in the `sandbox_token`
  query parameter, or in the cookie that parameter sets for the phone page;
- the session cookie of a signed-in agent of this install (an owner or admin for `/_sim/`;
  any agent may play the customer on the phone page).

The provider-API routes Tidings' own adapters call over real HTTP (`api_base_url` pointing at
`/sandbox/<provider>`) pass through: each simulator checks the provider credential there, as
the provider does, and it only knows the credentials of channels configured in this install.
Its media CDN links are unguessable random ids, as Meta's and WeChat's are.

The sandbox is mounted only when `TIDINGS_SANDBOX` is on (off by default); docs/operations.md
("The sandbox") says how to open it and why it is for a local trial only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.simulators import registry

TOKEN_HEADER = "x-tidings-sandbox-token"  # noqa: S105 (names, not secrets)
TOKEN_PARAM = "sandbox_token"  # noqa: S105
TOKEN_COOKIE = "tidings_sandbox"  # noqa: S105

# The simulators whose provider-API routes answer to provider credentials (see above): every
# one in the registry. Any other first path segment (`phone`) needs the sandbox secret.
PROVIDER_MOUNTS = frozenset(entry.path for entry in registry.SANDBOX)

# Given the session cookie's value, whether it belongs to a signed-in agent of this install,
# and whether that agent is an owner or admin: (signed in, is admin).
SessionCheck = Callable[[str], Awaitable[tuple[bool, bool]]]


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _forged(scope: Scope, request: HTTPConnection) -> Response | None:
    """The refusal of a request the browser's cookies admit but another page could have sent
    (None: it could not). Cookies go along with a form post or a simple fetch from any page of
    the same site, and for SameSite every port of localhost is one site. A change through the
    sandbox must therefore say `Content-Type: application/json` (the phone page does): another
    origin cannot send that without a CORS preflight, which the sandbox never grants."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS") or media == "application/json":
        return None
    return _refuse(
        403,
        "forbidden",
        "a change through the sandbox with its cookies must be sent as application/json "
        f"(or send the {TOKEN_HEADER} header)",
    )


def needs_secret(relative_path: str) -> tuple[bool, bool]:
    """(the path needs the sandbox secret, it is a control route) for a path below `/sandbox`."""
    segments = [s for s in relative_path.split("/") if s]
    control = any(s.startswith("_sim") for s in segments)
    provider = bool(segments) and segments[0] in PROVIDER_MOUNTS
    return control or not provider, control


def sandbox_guard(
    app: ASGIApp,
    token: str,
    *,
    session_cookie: str | None = None,
    check_session: SessionCheck | None = None,
    secure_cookie: bool = False,
) -> ASGIApp:
    """Wrap the sandbox app so that only this machine, holding this install's secret, can
    drive it (the module docstring lists what counts as the secret)."""
    expected = token.encode()

    def matches(value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value).encode(), expected)

    async def refusal(scope: Scope) -> Response | None:
        """How the guard answers the request instead of the sandbox; None lets it through."""
        client = scope.get("client")
        if not _is_loopback(client[0] if client else None):
            return _refuse(403, "forbidden", "the sandbox only answers this machine")
        root = str(scope.get("root_path", ""))
        path = str(scope["path"])
        relative = path[len(root) :] if root and path.startswith(root) else path
        secret_needed, control = needs_secret(relative)
        request = HTTPConnection(scope)
        if not secret_needed or matches(request.headers.get(TOKEN_HEADER)):
            return None
        if matches(request.cookies.get(TOKEN_COOKIE)):
            return _forged(scope, request)
        if matches(request.query_params.get(TOKEN_PARAM)):
            if scope.get("method") != "GET" or control:
                return None
            # The phone page opened from the link `tidings serve` prints: keep the token in a
            # cookie for the page's own requests and drop it from the address bar.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
            redirect = RedirectResponse(
                path + (f"?{urlencode(rest)}" if rest else ""), status_code=303
            )
            redirect.set_cookie(
                TOKEN_COOKIE,
                token,
                path=root or "/",
                httponly=True,
                samesite="strict",
                secure=secure_cookie,
            )
            return redirect
        cookie = request.cookies.get(session_cookie) if session_cookie else None
        if cookie and check_session is not None:
            signed_in, is_admin = await check_session(cookie)
            if signed_in and (is_admin or not control):
                return _forged(scope, request)
            if signed_in:
                return _refuse(
                    403,
                    "forbidden",
                    "the sandbox's control routes are for owners and admins "
                    "(or send the sandbox token)",
                )
        return _refuse(
            401,
            "sandbox_locked",
            "the sandbox needs this install's sandbox token (printed by `tidings serve` at "
            f"start; send it as the {TOKEN_HEADER} header or the {TOKEN_PARAM} query "
            "parameter) or a signed-in agent",
        )

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        answer = await refusal(scope) if scope["type"] in ("http", "websocket") else None
        await (answer or app)(scope, receive, send)

    return guarded
