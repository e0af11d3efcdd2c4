"""`/webhooks/{kind}/{channel_id}`: verify, store raw, answer. Nothing else happens here.

The 200 goes out only after the events are committed (group commit, `ingest.committer`), so an
acknowledged event is never lost; the unique (channel, event key) index makes provider retries
harmless.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from tidings.api.guards import BodyTooLarge, outgoing_headers, read_body
from tidings.api.guards import error_response as _error
from tidings.channels.base import RawEvent, WebhookRequest
from tidings.domain.enums import InboundState
from tidings.domain.errors import PayloadError, SignatureError, TidingsError
from tidings.domain.jsondepth import TooDeep, too_deep
from tidings.logs import CHANNEL_ID, REQUEST_ID, new_request_id
from tidings.metrics import WEBHOOKS
from tidings.runtime import Runtime
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)


# What untrusted input can make a pure verify/split step raise besides its own SignatureError and
# PayloadError (orjson's errors are ValueError/TypeError subclasses). Answered 400: a malformed
# body is the sender's fault, never a 5xx.
MALFORMED = (RecursionError, ValueError, TypeError, UnicodeError)


def _malformed(kind: str, exc: BaseException) -> JSONResponse:
    WEBHOOKS.labels(kind, "malformed").inc()
    if isinstance(exc, TooDeep):
        return _error(400, "too_deep", str(exc))
    log.info("%s webhook refused as malformed: %s: %s", kind, type(exc).__name__, exc)
    return _error(400, "malformed_body", "the body cannot be read")


async def provider_webhook(request: Request) -> Response:
    """The route as FastAPI sees it (methods other than the fast path's; tests calling it)."""
    rt: Runtime = request.app.state.runtime
    return await handle(rt, request.scope, request.receive)


async def handle(rt: Runtime, scope: Scope, receive: Receive) -> Response:
    """One webhook request from its raw ASGI scope (`kind` and `channel_id` in path_params)."""
    kind: str = scope["path_params"]["kind"]
    raw_id: str = scope["path_params"]["channel_id"]
    channel = await rt.channels.get(int(raw_id)) if raw_id.isdigit() else None
    if channel is None or channel.kind != kind or not channel.active:
        # Label with a fixed value: the path's kind is untrusted input.
        WEBHOOKS.labels("unknown", "unknown_channel").inc()
        return _error(404, "unknown_channel", f"no active {kind} channel {raw_id}")
    CHANNEL_ID.set(channel.id)  # for log lines while handling it (tidings/logs.py)
    adapter = channel.adapter
    # The path as Starlette's `request.url.path` spells it, without building a URL object.
    path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    raw_query: bytes = scope.get("query_string", b"")
    query = raw_query.decode("utf-8", "replace")
    public_url = f"{rt.settings.public_url}{path}" + (f"?{query}" if query else "")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    params = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True)) if query else {}
    method: str = scope["method"]

    if method == "GET":
        wreq = WebhookRequest("GET", public_url, headers, params, b"")
        try:
            reply = adapter.handshake(channel.config, wreq)
        except SignatureError as exc:
            WEBHOOKS.labels(kind, "handshake_refused").inc()
            return _error(403, exc.code, exc.message)
        return Response(reply.body, status_code=reply.status, media_type=reply.media_type)

    try:
        body = await read_body(
            receive, headers.get("content-length"), adapter.capabilities.max_webhook_bytes
        )
    except BodyTooLarge:
        WEBHOOKS.labels(kind, "too_large").inc()
        return _error(
            413, "too_large", f"body exceeds {adapter.capabilities.max_webhook_bytes} bytes"
        )
    if body.lstrip()[:1] in (b"{", b"[") and too_deep(body):
        return _malformed(kind, TooDeep())
    wreq = WebhookRequest(method, public_url, headers, params, body)
    try:
        adapter.verify(channel.config, wreq)
    except SignatureError as exc:
        WEBHOOKS.labels(kind, "bad_signature").inc()
        return _error(401, exc.code, exc.message)
    except MALFORMED as exc:
        return _malformed(kind, exc)

    now = utcnow()
    try:
        events = adapter.split(channel.config, wreq)
        state, error = InboundState.PENDING, None
    except PayloadError as exc:
        # Signed but not understood: keep it, visibly failed and replayable, and acknowledge it
        # so the provider does not retry it forever.
        events = [RawEvent(key=f"unparsable:{hashlib.sha256(body).hexdigest()}", payload=body)]
        state, error = InboundState.FAILED, exc.message
    except MALFORMED as exc:
        return _malformed(kind, exc)
    rows = [
        {
            "workspace_id": channel.workspace_id,
            "channel_id": channel.id,
            "event_key": e.key,
            "payload": e.payload,
            "occurred_at": e.occurred_at,
            "received_at": now,
            "state": state,
            "attempts": 0,
            "next_attempt_at": now,
            "error": error,
            "lane": e.lane,
        }
        for e in events
    ]
    if rows:
        try:
            await rt.committer.submit(rows)
        except Exception:
            # Not stored, so not acknowledged: the provider will retry.
            WEBHOOKS.labels(kind, "store_failed").inc()
            return _error(503, "unavailable", "could not store the event; retry later")
    WEBHOOKS.labels(kind, "stored" if error is None else "stored_failed").inc()
    reply = adapter.ack(channel.config, wreq)
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type)


# The fast path: `/webhooks/{kind}/{channel_id}` answered straight from the ASGI scope, ahead
# of FastAPI's middleware stack and router (ServerErrorMiddleware, the exception middlewares,
# our request-id/guard/security-header middlewares, route matching, the exit-stack and
# request/response wrappers cost more CPU than the webhook's own work). What those layers add
# to a webhook answer is done here: the request id (log lines and `X-Request-ID`), `nosniff`,
# the security headers on an HTML answer, and a logged 500 for an unexpected error.
FAST_METHODS = frozenset({"GET", "POST"})


def webhook_params(scope: Scope) -> dict[str, str] | None:
    """`{kind, channel_id}` if this is a GET/POST the fast path answers, else None."""
    if scope["type"] != "http" or scope["method"] not in FAST_METHODS:
        return None
    path: str = scope["path"]
    if not path.startswith("/webhooks/"):
        return None
    parts = path[10:].split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return {"kind": parts[0], "channel_id": parts[1]}


async def fast_path(
    rt: Runtime, scope: Scope, receive: Receive, send: Send, params: dict[str, str]
) -> None:
    given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
    request_id = new_request_id(given)
    token = REQUEST_ID.set(request_id)
    try:
        scope["path_params"] = params
        try:
            response = await handle(rt, scope, receive)
        except ClientDisconnect:
            return
        except TidingsError as exc:  # as the app's exception handler answers it
            response = _error(exc.status, exc.code, exc.message)
        except Exception:  # as Starlette's ServerErrorMiddleware answers it
            log.exception("webhook %s failed", scope["path"])
            response = PlainTextResponse("Internal Server Error", status_code=500)
        headers = outgoing_headers(response.raw_headers)
        headers.append((b"x-request-id", request_id.encode()))
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": response.body})
    finally:
        REQUEST_ID.reset(token)
        CHANNEL_ID.set(None)
