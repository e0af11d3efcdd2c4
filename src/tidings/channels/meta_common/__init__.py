"""What Messenger and Instagram (and WhatsApp) share: Meta's webhook handshake and signature,
the Graph error envelope, and the Messenger-platform `messaging[]` webhook format.

Facts: docs/providers/graph-api.md (shared mechanics), docs/channels/messenger.md#protocol-facts
and docs/channels/instagram.md#protocol-facts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from tidings.channels.base import WebhookReply, WebhookRequest
from tidings.domain.errors import PayloadError, SignatureError

SIGNATURE_HEADER = "x-hub-signature-256"
_PREFIX = "sha256="
_HEX = frozenset("0123456789abcdef")


def handshake(verify_token: str, request: WebhookRequest, label: str) -> WebhookReply:
    """Meta's GET (docs/providers/graph-api.md#webhook-verification): `hub.mode=subscribe`,
    our `hub.verify_token`, and a `hub.challenge` that must come back as the whole body of a 200."""
    mode = request.query.get("hub.mode", "")
    token = request.query.get("hub.verify_token", "")
    # Bytes: compare_digest refuses non-ASCII str, and the query is attacker-supplied.
    if mode != "subscribe" or not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise SignatureError(f"The {label} verification handshake did not match this channel.")
    challenge = request.query.get("hub.challenge")
    if not challenge:
        raise PayloadError(f"The {label} verification handshake carried no hub.challenge.")
    return WebhookReply(status=200, body=challenge.encode(), media_type="text/plain")


def verify_signature(secrets: Sequence[str], request: WebhookRequest, label: str) -> None:
    """`X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256(secret, raw body)
    (docs/providers/graph-api.md#webhook-signature).

    Several secrets may be acceptable: for Instagram Login apps Meta does not say whether the
    Meta app secret or the separate Instagram app secret signs
    (docs/providers/graph-api.md#webhook-signature), so both may be configured."""
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        raise SignatureError(f"The {label} webhook has no X-Hub-Signature-256 header.")
    given = header[len(_PREFIX) :].strip().lower() if header.startswith(_PREFIX) else ""
    if len(given) != 64 or not _HEX.issuperset(given):
        raise SignatureError(f"The {label} webhook signature is not of the form sha256=<hex>.")
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given):
            return
    raise SignatureError(f"The {label} webhook signature does not match the app secret.")


def sign(secret: str, body: bytes) -> str:
    """The header value Meta would send for `body` (used by the simulators)."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class GraphError:
    """The parts of Graph's error envelope (docs/providers/graph-api.md#graph-errors) that
    decide an outcome."""

    http_status: int
    code: int | None
    subcode: int | None
    message: str | None
    details: str | None
    retry_after: float | None


def digest(obj: object) -> str:
    """The key of a piece with no id of its own: sorted keys, so that the same content always
    gives the same key."""
    return hashlib.blake2b(
        orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def dict_at(obj: object, key: str) -> dict[str, Any]:
    """`obj[key]` if both are objects, else `{}`: webhook bodies are untrusted."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, dict):
            return value
    return {}


def list_at(obj: object, key: str) -> list[Any]:
    """`obj[key]` if it is a list, else `[]`."""
    if isinstance(obj, dict):
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


# A Unix time this large in seconds is past the year 5000; in milliseconds it is 1973. Meta
# times sit far from that line on both sides, so the magnitude tells the unit
# (docs/channels/messenger.md, "Timestamps").
_MILLISECONDS_FROM = 100_000_000_000


def timestamp(value: object) -> datetime | None:
    """A Meta webhook time (`entry.time`, `messaging[].timestamp`, receipt watermarks) as a
    UTC datetime. Most events give Unix milliseconds as a number, but some give seconds, and
    some a string of either (the App Dashboard's test sample, the postback reference):
    the unit is decided by magnitude. None when the value is not a time at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii():
            return None
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:
            return None
    if not isinstance(value, int | float) or value != value or value <= 0:  # NaN, negative
        return None
    seconds = value / 1000.0 if value >= _MILLISECONDS_FROM else float(value)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def graph_error(response: httpx.Response) -> GraphError:
    error: dict[str, Any] = {}
    try:
        doc = orjson.loads(response.content)
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            error = doc["error"]
    except orjson.JSONDecodeError:
        pass  # An HTML 502 from a proxy, say: decided on the status alone.
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = error.get("message")
    return GraphError(
        http_status=response.status_code,
        code=_int(error.get("code")),
        subcode=_int(error.get("error_subcode")),
        message=message if isinstance(message, str) else None,
        details=details if isinstance(details, str) else None,
        retry_after=retry_after(response.headers),
    )
