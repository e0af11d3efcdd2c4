"""The sandbox answers only loopback clients.

Its `/_sim/` control routes are unauthenticated by design (they play the customer and the
provider), and some make the server send HTTP requests to URLs they are given. Mounted on a
server reachable from elsewhere, that would let anyone forge customers or use Tidings to reach
other hosts. So unless the caller is on this machine, the sandbox is a 403.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def loopback_only(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if not _is_loopback(client[0] if client else None):
                response = JSONResponse(
                    {
                        "error": {
                            "code": "forbidden",
                            "message": "the sandbox only answers this machine",
                        }
                    },
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded
