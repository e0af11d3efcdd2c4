"""Vonage SMS API codes mapped to outcomes and sentences an agent can act on.

Send statuses come from the `status` of each element of `messages[]` in the send response
("0" is success; docs/channels/vonage.md#send-status-codes). Delivery-receipt `err-code`
values are Vonage's documented DLR error codes, from the Vonage SMS API reference and kept to
what an agent needs (our reading of it, not checked against live traffic;
docs/channels/vonage.md#protocol-facts).
"""

from __future__ import annotations

from tidings.channels.base import Permanent, Retriable

_RECONNECT = "Vonage rejected the channel's credentials; check the API key and secret."

# status -> (retriable, sentence, retry after seconds)
_SEND: dict[str, tuple[bool, str, float | None]] = {
    "1": (True, "Vonage is throttling this account; the message will be retried.", 1.0),
    "2": (False, "Vonage says a required parameter is missing", None),
    "3": (False, "Vonage refused a parameter of the message", None),
    "4": (False, _RECONNECT, None),
    "5": (True, "Vonage had an internal error; the message will be retried.", 30.0),
    "6": (False, "Vonage could not route this message (invalid or unsupported number).", None),
    "7": (False, "The recipient's number is barred (blocked or opted out at Vonage).", None),
    "8": (False, "The Vonage account is barred; contact Vonage support.", None),
    "9": (False, "The Vonage account has no credit left; top it up to send again.", None),
    "10": (True, "Too many connections to Vonage right now; the message will be retried.", 5.0),
    "11": (False, "This Vonage account is not enabled for the HTTP SMS API.", None),
    "12": (False, "The message is too long for Vonage.", None),
    "14": (False, "Vonage rejected the request signature; check the signature secret.", None),
    "15": (False, "Vonage does not allow this sender number or id for the destination.", None),
    "22": (False, "Vonage rejected the network code given for this message.", None),
    "23": (False, "Vonage rejected the callback URL.", None),
    "29": (False, "The destination is not on this trial account's allowed list.", None),
    "32": (
        False,
        "Vonage refused the request: signature and API secret cannot both be used.",
        None,
    ),
    "33": (False, "The sender number has been deactivated at Vonage.", None),
}

# DLR err-code -> sentence for failed/rejected/expired receipts.
DLR_REASONS: dict[str, str] = {
    "1": "The carrier gave no reason for the failure.",
    "2": "The phone was switched off or out of coverage for too long.",
    "3": "The number is no longer in service.",
    "4": "The recipient has blocked messages from this sender.",
    "5": "The number was ported and could not be reached.",
    "6": "The carrier's anti-spam filter rejected the message.",
    "7": "The recipient's phone was busy or full.",
    "8": "A network error stopped the message.",
    "9": "The number is not a valid mobile number.",
    "10": "The carrier rejected the message content.",
    "11": "No route exists to this number.",
    "12": "The destination could not be reached.",
    "13": "The recipient is age-restricted for this content.",
    "14": "The carrier blocked this number.",
    "15": "The recipient's prepaid account has no credit for this message.",
    "99": "The carrier reported a general error.",
}


def send_outcome(status: str, error_text: str | None) -> Retriable | Permanent:
    rule = _SEND.get(status)
    if rule is None:
        detail = f": {error_text}" if error_text else ""
        return Permanent(f"Vonage refused the message (status {status}){detail}.", code=status)
    retriable, sentence, retry_after = rule
    if status in ("2", "3"):
        sentence += f": {error_text}." if error_text else "."
    if retriable:
        return Retriable(sentence, retry_after=retry_after, code=status)
    return Permanent(sentence, code=status)


def http_outcome(status_code: int) -> Retriable | Permanent:
    if status_code == 401:
        return Permanent(_RECONNECT, code="401")
    if status_code == 429:
        return Retriable("Vonage is rate limiting this account; retrying.", 1.0, code="429")
    if status_code >= 500:
        return Retriable(
            f"Vonage answered {status_code}; the message will be retried.", code=str(status_code)
        )
    return Permanent(f"Vonage refused the request (HTTP {status_code}).", code=str(status_code))
