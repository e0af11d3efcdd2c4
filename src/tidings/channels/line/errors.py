"""Messaging API errors mapped to an outcome and a sentence an agent can act on.

LINE answers errors with an HTTP status and `{"message": "...", "details"?: [{"message",
"property"}]}`; 429 covers both the per-endpoint rate limit and the monthly message quota, told
apart by the message (docs/channels/line.md, "Errors").
"""

from __future__ import annotations

from typing import Any

from tidings.channels.base import Permanent, Retriable

# Codes `client.send` acts on.
INVALID_REPLY_TOKEN = "invalid_reply_token"  # noqa: S105 (an error code, not a secret)
MONTHLY_LIMIT = "monthly_limit"

_RECONNECT = (
    "LINE rejected the channel access token; it may have been reissued or revoked in the LINE "
    "Developers Console. Reconnect the channel with the current token."
)


def describe(doc: Any) -> str:
    """LINE's message with its details, as one line."""
    data = doc if isinstance(doc, dict) else {}
    text = str(data.get("message") or "").strip()
    details = data.get("details")
    if isinstance(details, list):
        parts = [
            f"{d.get('property')}: {d.get('message')}"
            if d.get("property")
            else str(d.get("message"))
            for d in details
            if isinstance(d, dict) and d.get("message")
        ]
        if parts:
            text = f"{text} ({'; '.join(parts)})" if text else "; ".join(parts)
    return text


def outcome(status: int, doc: Any) -> Permanent | Retriable:
    """The outcome of a non-2xx Messaging API answer (`doc`: the parsed body, or None)."""
    said = describe(doc) or f"HTTP {status}"
    lowered = said.lower()
    code = str(status)
    if status == 429:
        if "monthly limit" in lowered:
            # The account's monthly allowance of push messages is spent: nothing more goes
            # until next month or a plan upgrade, so retrying is pointless (and a campaign's
            # fallback channel should take over).
            return Permanent(
                f"LINE's monthly message quota for this account is used up: {said}", MONTHLY_LIMIT
            )
        # LINE sends no Retry-After; its buckets refill within a second.
        return Retriable(f"LINE is rate-limiting this account ({said}); retrying.", 1.0, code)
    if status >= 500:
        return Retriable(f"LINE had a server error ({said}); retrying.", None, code)
    if status == 401:
        return Permanent(_RECONNECT, code)
    if status == 400 and "invalid reply token" in lowered:
        return Permanent(
            "The LINE reply token had expired or was already used.", INVALID_REPLY_TOKEN
        )
    if status == 403:
        return Permanent(f"LINE does not allow this for the account's plan: {said}", code)
    if status == 413:
        return Permanent("The message is larger than LINE accepts (2 MB per request).", code)
    return Permanent(f"LINE refused the message: {said}", code)
