"""Viber `status` codes mapped to an outcome and a sentence an agent can act on.

Viber answers HTTP 200 even for errors, with `{"status": N, "status_message": "..."}`; the
message is often prose ("Not subscribed"), so the mapping keys on the number only
(docs/channels/viber.md, "Errors").
"""

from __future__ import annotations

from typing import Any

from tidings.channels.base import Permanent, Retriable

NOT_SUBSCRIBED = 6
TOO_MANY_REQUESTS = 12

_RECONNECT = (
    "Viber rejected the bot's auth token. Copy the current token from the Viber Admin Panel "
    "and reconnect the channel."
)

# status -> (sentence, the recipient refuses messages from this bot)
_PERMANENT: dict[int, tuple[str, bool]] = {
    1: (
        "Viber refused a URL in the message (it must be public and end in the right file "
        "extension).",
        False,
    ),
    2: (_RECONNECT, False),
    3: ("Viber could not read the message (bad data).", False),
    4: ("Viber says the message is missing required data.", False),
    5: ("This person is not a Viber user (or their account was deleted).", False),
    NOT_SUBSCRIBED: (
        "The customer is not subscribed to this Viber bot, so Viber refuses messages to them "
        "until they write to it again.",
        True,
    ),
    7: ("This Viber bot is blocked.", False),
    8: ("Viber does not know this bot; check the auth token.", False),
    9: ("This Viber bot is suspended.", False),
    10: ("The Viber bot has no webhook set, so Viber refuses to send; re-save the channel.", False),
    11: ("The customer has no device that can show this Viber message.", False),
    13: ("The customer's Viber app is too old for this message.", False),
    14: ("This message type is not supported by the customer's Viber version.", False),
    15: ("This Viber bot is not authorised to send.", False),
    16: ("Viber does not allow this in-chat reply.", False),
    18: ("Viber has no public chat for this bot.", False),
    19: ("Viber refused the broadcast.", False),
    20: ("Broadcasts are not enabled for this Viber bot.", False),
    21: ("Viber bots cannot message customers in this country.", False),
    22: ("Viber payments are not supported for this bot.", False),
    23: (
        "The bot has used its free chatbot-initiated Viber messages; outside a session Viber "
        "now refuses them.",
        False,
    ),
    24: (
        "The Viber bot's account has no balance left for chatbot-initiated messages.",
        False,
    ),
}


def outcome(http_status: int, doc: Any) -> Permanent | Retriable:
    """The outcome of a send that did not answer `status: 0`."""
    if http_status == 429 or http_status >= 500:
        return Retriable(f"Viber answered HTTP {http_status}; retrying.", None, str(http_status))
    data = doc if isinstance(doc, dict) else {}
    status = data.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        if http_status != 200:
            return Permanent(f"Viber refused the request (HTTP {http_status}).", str(http_status))
        return Retriable("Viber answered without a status; retrying.")
    said = str(data.get("status_message") or "").strip()[:200]
    if status == TOO_MANY_REQUESTS:
        # Also what Viber answers after 100 messages to one user without a reply; the cap
        # resets when the user writes (docs/channels/viber.md, "Limits").
        return Retriable(
            "Viber is rate-limiting this bot (too many requests, or 100 messages to this "
            "customer without a reply); retrying later.",
            60.0,
            str(status),
        )
    known = _PERMANENT.get(status)
    if known is not None:
        sentence, opted_out = known
        reason = f"{sentence} (Viber: {said})" if said and said.lower() != "ok" else sentence
        return Permanent(reason, str(status), recipient_opted_out=opted_out)
    return Permanent(
        f"Viber refused the message: {said or 'general error'} ({status}).", str(status)
    )
