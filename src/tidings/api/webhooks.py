"""`/webhooks/{kind}/{channel_id}`: verify, store raw, answer. Nothing else happens here.

The 200 goes out only after the events are committed (group commit, `ingest.committer`), so an
acknowledged event is never lost; the unique (channel, event key) index makes provider retries
harmless.
"""

from __future__ import annotations

import hashlib
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tidings.channels.base import RawEvent, WebhookRequest
from tidings.domain.enums import InboundState
from tidings.domain.errors import PayloadError, SignatureError
from tidings.domain.jsondepth import TooDeep, too_deep
from tidings.logs import CHANNEL_ID
from tidings.metrics import WEBHOOKS
from tidings.runtime import Runtime
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class BodyTooLarge(Exception):
    pass


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


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most `limit` bytes; refuse early on Content-Length, and stop reading otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def provider_webhook(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    kind = request.path_params["kind"]
    raw_id = request.path_params["channel_id"]
    channel = await rt.channels.get(int(raw_id)) if raw_id.isdigit() else None
    if channel is None or channel.kind != kind or not channel.active:
        # Label with a fixed value: the path's kind is untrusted input.
        WEBHOOKS.labels("unknown", "unknown_channel").inc()
        return _error(404, "unknown_channel", f"no active {kind} channel {raw_id}")
    CHANNEL_ID.set(channel.id)  # for log lines while handling it (tidings/logs.py)
    adapter = channel.adapter
    query = request.url.query
    public_url = f"{rt.settings.public_url}{request.url.path}" + (f"?{query}" if query else "")
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]
    }
    params = dict(request.query_params)

    if request.method == "GET":
        wreq = WebhookRequest("GET", public_url, headers, params, b"")
        try:
            reply = adapter.handshake(channel.config, wreq)
        except SignatureError as exc:
            WEBHOOKS.labels(kind, "handshake_refused").inc()
            return _error(403, exc.code, exc.message)
        return Response(reply.body, status_code=reply.status, media_type=reply.media_type)

    try:
        body = await _read_body(request, adapter.capabilities.max_webhook_bytes)
    except BodyTooLarge:
        WEBHOOKS.labels(kind, "too_large").inc()
        return _error(
            413, "too_large", f"body exceeds {adapter.capabilities.max_webhook_bytes} bytes"
        )
    if body.lstrip()[:1] in (b"{", b"[") and too_deep(body):
        return _malformed(kind, TooDeep())
    wreq = WebhookRequest(request.method, public_url, headers, params, body)
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
