"""Two checks on every HTTP answer and request body, before any route runs.

- Every answer carries `X-Content-Type-Options: nosniff` (pages and media already did; JSON
  answers did not), so a browser never sniffs a JSON body into HTML; an HTML answer (pages,
  the sandbox phone) also the CSP and friends (SECURITY_HEADERS), a static file
  `Cache-Control: no-cache` (STATIC_CACHE_CONTROL): `outgoing_headers`.
- A request body under `/api/` is limited to `max_json_bytes` (default 1 MiB,
  `TIDINGS_MAX_JSON_BYTES`), and a JSON one to MAX_JSON_DEPTH levels, checked before anything
  parses it: a 60 MB body used to be parsed in full before validation refused it, and a deeply
  nested one reached Python's recursion limit. Too large is a 413, too deep a 400. The size
  limit holds whatever the content type says: every route there but the uploads takes JSON,
  and FastAPI reads a body of another type (multipart included) in full before refusing it.
  The upload routes (`_UPLOADS`: attachments, the CSV audience, the contacts import) keep their
  own limits; a new route that takes files must be added there. Webhooks have theirs
  (api/webhooks.py).
"""

from __future__ import annotations

import re

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.domain.jsondepth import MAX_JSON_DEPTH, too_deep

NOSNIFF = (b"x-content-type-options", b"nosniff")


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, declared: str | bytes | None, limit: int) -> bytes:
    """Read a request's body, at most `limit` bytes: refuse early on its Content-Length
    (`declared`), and stop reading otherwise (BodyTooLarge; ClientDisconnect)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """Every error answer's shape: `{"error": {"code", "message"}}` with a 4xx/5xx status."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


# Added to every HTML answer (the agent UI's pages, and a webhook answered in HTML).
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

# The browser code is native ES modules under /static, imported by relative URL with no
# version in it (docs/architecture.md, "Browser code"). `no-cache` makes the browser revalidate
# each module (ETag / Last-Modified: a 304 when unchanged) instead of guessing a freshness from
# Last-Modified, so after an upgrade no page mixes new modules with stale ones.
STATIC_PREFIX = "/static/"
STATIC_CACHE_CONTROL = b"no-cache"


def outgoing_headers(
    headers: list[tuple[bytes, bytes]], static: bool = False
) -> list[tuple[bytes, bytes]]:
    """`headers` with what every answer carries: SECURITY_HEADERS on HTML, `no-cache` on a
    `static` file unless it says otherwise, and `nosniff` on everything."""
    present = {k.lower() for k, _ in headers}
    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if ctype.startswith(b"text/html"):
        headers = headers + [(k, v) for k, v in SECURITY_HEADERS if k not in present]
    elif static and b"cache-control" not in present:
        headers = [*headers, (b"cache-control", STATIC_CACHE_CONTROL)]
    if not any(k.lower() == NOSNIFF[0] for k, _ in headers):
        headers = [*headers, NOSNIFF]
    return headers


# Routes whose bodies are files, not JSON, whatever their content type says.
_UPLOADS = re.compile(
    r"^/api/v1/(conversations/[^/]+/attachments|campaigns/[^/]+/audience/csv|contacts/import)$"
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json_like(content_type: bytes | None) -> bool:
    """FastAPI parses a body as JSON when the type says JSON, and also when there is none."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json") or media == b""


class RequestGuards:
    def __init__(self, app: ASGIApp, *, max_json_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope["path"]
        static = path.startswith(STATIC_PREFIX)

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                message = {**message, "headers": outgoing_headers(headers, static)}
            await send(message)

        if (
            scope["method"] not in _BODY_METHODS
            or not path.startswith("/api/")
            or _UPLOADS.match(path)
        ):
            await self.app(scope, receive, send_nosniff)
            return
        headers = dict(scope["headers"])
        limit = self.max_json_bytes
        refusal: JSONResponse | None = None
        try:
            # Read the body (at most the limit) before any route sees it, then hand it on.
            body = await read_body(receive, headers.get(b"content-length"), limit)
        except ClientDisconnect:
            return
        except BodyTooLarge:
            refusal = error_response(413, "too_large", f"the JSON body exceeds {limit} bytes")
        else:
            if _json_like(headers.get(b"content-type")) and too_deep(body):
                depth = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
                refusal = error_response(400, "too_deep", depth)
        if refusal is not None:
            await refusal(scope, receive, send_nosniff)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_nosniff)
