"""Logging: one JSON object per line on stderr, or text for humans.

Every record — ours, uvicorn's startup, error and access lines, asyncio's, warnings — goes
through the root logger's one handler. A JSON line carries `t` (UTC, ISO 8601), `level`,
`logger`, `msg` (the formatted message as a string, never a repr), the request and channel
being handled where known (`request_id`, `channel_id`, from context variables), and a
traceback as one `exc` field, never as extra lines. uvicorn's access records also get
`client`, `method`, `path` and `status` as fields.

`TIDINGS_LOG_FORMAT=text` prints the same records as plain lines (tracebacks span lines there).
"""

from __future__ import annotations

import logging
import random
import re
import sys
import warnings
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: ContextVar[str | None] = ContextVar("tidings_request_id", default=None)
CHANNEL_ID: ContextVar[int | None] = ContextVar("tidings_channel_id", default=None)

FORMATS = ("json", "text")
# A caller's X-Request-ID is kept when it looks like an id (it is echoed into logs and headers).
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Per-request client logs and migration chatter drown what operators need at info level.
_NOISY = ("httpx", "httpcore", "alembic")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "t": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        # uvicorn's access line: '%s - "%s %s HTTP/%s" %d' % (client, method, path, version, status)
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _version, status = args
            line.update(client=client, method=method, path=path, status=status)
        line["msg"] = record.getMessage()
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        channel_id = CHANNEL_ID.get()
        if channel_id is not None:
            line["channel_id"] = channel_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(where)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        where = ""
        if (request_id := REQUEST_ID.get()) is not None:
            where += f" req={request_id}"
        if (channel_id := CHANNEL_ID.get()) is not None:
            where += f" channel={channel_id}"
        record.where = where
        return super().format(record)


def _no_query(record: logging.LogRecord) -> bool:
    """Drop the query string from uvicorn's access lines: provider handshakes carry tokens in
    it (Meta's hub.verify_token, WeChat's signature), and logs must hold no secrets."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
        record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
    return True


def configure(level: str, fmt: str) -> None:
    """Route every logger to one stderr handler in `fmt` (json or text). Call once, first."""
    if fmt not in FORMATS:
        raise ValueError(f"TIDINGS_LOG_FORMAT must be 'json' or 'text', not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers print text: its records go to ours instead.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if _no_query not in access.filters:
        access.addFilter(_no_query)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("tidings").critical("uncaught exception", exc_info=(kind, exc, tb))


def new_request_id(given: bytes) -> str:
    """The caller's `X-Request-ID` when it looks like one, else a fresh random id."""
    if given:
        text = given.decode("latin-1")
        if _GOOD_ID.fullmatch(text):
            return text
    # Not a secret, only a label for log lines: the PRNG (reseeded after fork) costs a tenth
    # of urandom.
    return f"{random.getrandbits(64):016x}"


class RequestIds:
    """Gives each HTTP request an id (the caller's `X-Request-ID` when it looks like one) for
    the log lines written while handling it, and answers with it in `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        request_id = new_request_id(given)
        token = REQUEST_ID.set(request_id)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The 500 names the request, so a user can quote the id that finds the traceback.
            # The exception still goes up to uvicorn, which logs it in this same task (each
            # request has its own): the context variable stays set so that line names it too.
            if not started:
                body = orjson.dumps(
                    {"error": {"code": "internal", "message": f"internal error ({request_id})"}}
                )
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send_with_id({"type": "http.response.body", "body": body})
            raise
        REQUEST_ID.reset(token)
