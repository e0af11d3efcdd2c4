"""Tidings' own HMAC-SHA256 signature scheme, used both ways by the API channel and by
outgoing webhooks:

    X-Tidings-Timestamp: <unix seconds>
    X-Tidings-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

Signing the timestamp with the body lets a receiver reject replays older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from tidings.domain.errors import SignatureError

TIMESTAMP_HEADER = "X-Tidings-Timestamp"
SIGNATURE_HEADER = "X-Tidings-Signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = str(int(now if now is not None else time.time()))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body)}


def webhook_headers(event_type: str, body: bytes, secret: str | None) -> dict[str, str]:
    """The headers of a webhook Tidings sends (an outgoing subscription's, a rule's): signed
    when there is a secret."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tidings-Webhooks/1",
        "X-Tidings-Event": event_type,
    }
    return {**headers, **sign_headers(secret, body)} if secret else headers


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Raise SignatureError unless `headers` (lower-cased names) sign `body` with `secret`."""
    ts = headers.get(TIMESTAMP_HEADER.lower())
    sig = headers.get(SIGNATURE_HEADER.lower())
    if not ts or not sig:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not ts.isdigit():
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds")
    current = now if now is not None else time.time()
    if abs(current - int(ts)) > TOLERANCE_SECONDS:
        raise SignatureError("timestamp outside the 5-minute tolerance (replayed or clock skew)")
    if not hmac.compare_digest(signature(secret, ts, body), sig):
        raise SignatureError("signature does not match the body")
