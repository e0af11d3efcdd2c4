"""Twilio error codes mapped to an outcome and a sentence an agent can act on
(docs/channels/twilio.md#error-codes).

The same codes arrive two ways: synchronously in the JSON error of `POST .../Messages.json`
(`{"code", "message", "more_info", "status"}`), and as `ErrorCode` in a status callback for
`failed`/`undelivered` messages; both read this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.channels.base import Permanent, Retriable


@dataclass(frozen=True, slots=True)
class _Rule:
    retriable: bool
    sentence: str
    retry_after: float | None = None


OPTED_OUT = 21610

_RULES: dict[int, _Rule] = {
    20003: _Rule(False, "Twilio rejected the channel's Account SID or Auth Token; reconnect it."),
    20429: _Rule(True, "Twilio is rate-limiting this account; the message will be retried.", 5.0),
    21211: _Rule(False, "The recipient's phone number is not a valid number."),
    21408: _Rule(
        False, "This Twilio account may not send SMS to the recipient's country (geo permissions)."
    ),
    21606: _Rule(False, "The channel's 'From' number cannot send SMS for this Twilio account."),
    21608: _Rule(
        False, "A Twilio trial account can only send to verified numbers; verify this recipient."
    ),
    OPTED_OUT: _Rule(
        False,
        "The customer replied STOP to this number; they must text START before you can "
        "message them again.",
    ),
    21611: _Rule(True, "The sending number's queue at Twilio is full; it will be retried.", 30.0),
    21612: _Rule(False, "Twilio cannot route a message between this sender and this recipient."),
    21614: _Rule(False, "The recipient's number is not a mobile number that can receive SMS."),
    21617: _Rule(False, "The message is longer than Twilio's 1600-character limit."),
    21635: _Rule(False, "The recipient's number is a landline that cannot receive SMS."),
    30001: _Rule(False, "Twilio's queue overflowed and the message expired before sending."),
    30003: _Rule(False, "The recipient's phone is unreachable (switched off or out of coverage)."),
    30004: _Rule(False, "The message was blocked by the recipient or their carrier."),
    30005: _Rule(False, "The recipient's number is unknown to their carrier or no longer exists."),
    30006: _Rule(False, "The number is a landline or its carrier cannot receive SMS."),
    30007: _Rule(False, "The carrier filtered the message as spam."),
    30008: _Rule(False, "The carrier reported an unknown error delivering the message."),
}


def sentence(code: int | None, message: str | None = None) -> str:
    """What to tell the agent about a Twilio error code (from a send or a status callback)."""
    rule = _RULES.get(code) if code is not None else None
    if rule is not None:
        return f"{rule.sentence} (Twilio {code})"
    detail = (message or "").strip()
    if code is None:
        return f"Twilio could not deliver the message{': ' + detail if detail else '.'}"
    return f"Twilio error {code}" + (f": {detail}" if detail else ".")


def outcome(
    code: int | None, http_status: int, message: str | None, retry_after: float | None
) -> Retriable | Permanent:
    """The outcome of a refused send. Unknown codes: 429/5xx retried, other 4xx permanent."""
    rule = _RULES.get(code) if code is not None else None
    text = sentence(code, message)
    code_str = str(code) if code is not None else str(http_status)
    if rule is not None:
        if rule.retriable:
            return Retriable(text, retry_after=retry_after or rule.retry_after, code=code_str)
        return Permanent(text, code=code_str, recipient_opted_out=code == OPTED_OUT)
    if http_status == 429 or http_status >= 500:
        return Retriable(text, retry_after=retry_after, code=code_str)
    return Permanent(text, code=code_str)
