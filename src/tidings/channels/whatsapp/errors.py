"""Graph API error codes for WhatsApp, mapped to an outcome and a sentence an agent can act on.

Meta asks integrators to key on `error.code` (plus `error_data.details`), not on the HTTP status,
and since Graph v16 `error_subcode` is gone (docs/providers/graph-api.md#graph-errors). The same
codes arrive three ways: in the envelope of a failed send, in `statuses[].errors[]` of a `failed`
status webhook, and in top-level `value.errors[]`; all three go through this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.channels.base import Permanent, Retriable
from tidings.channels.meta_common import GraphError


@dataclass(frozen=True, slots=True)
class _Rule:
    retriable: bool
    sentence: str
    # Used when the response carries no Retry-After header.
    retry_after: float | None = None
    # Codes whose meaning is only in the provider's `details` (e.g. which parameter is wrong).
    with_details: bool = False


_RECONNECT = "The WhatsApp access token has expired or is invalid; reconnect the channel."
_PERMISSION = (
    "This WhatsApp account is not allowed to do this; check the app's permissions for the "
    "number in Meta Business Manager."
)
_BILLING = _Rule(
    False,
    "A billing problem on the WhatsApp Business account stops messages; check its payment "
    "method in Meta Business Manager.",
)

_RULES: dict[int, _Rule] = {
    0: _Rule(False, "WhatsApp rejected the channel's credentials; reconnect the channel."),
    # 1 and 2 are Graph-wide (not WhatsApp-specific) "unknown"/"service unavailable" codes that
    # Graph's own docs say to retry; a 5xx with either comes from Meta being down.
    1: _Rule(True, "WhatsApp had an unexpected error; the message will be retried.", 30.0),
    2: _Rule(True, "WhatsApp is temporarily unavailable; the message will be retried.", 30.0),
    # Code 3 is "API method/capability" with HTTP 500: Meta-side, so worth another try.
    3: _Rule(True, "WhatsApp could not handle the request just now; it will be retried.", 30.0),
    4: _Rule(True, "Too many requests from this app to WhatsApp; it will be retried.", 60.0),
    10: _Rule(False, _PERMISSION),
    100: _Rule(False, "WhatsApp rejected the message as invalid", with_details=True),
    190: _Rule(False, _RECONNECT),
    # Graph-wide throttles: 4 app, 613 custom; 17 user and 32 page as Meta's other APIs use them
    # (docs/providers/graph-api.md#graph-errors).
    17: _Rule(True, "Too many requests for this WhatsApp user token; it will be retried.", 60.0),
    32: _Rule(True, "Too many requests for this WhatsApp account; it will be retried.", 60.0),
    613: _Rule(True, "WhatsApp's rate limit for this call was reached; it will be retried.", 60.0),
    368: _Rule(
        False,
        "Meta has temporarily blocked this WhatsApp account for policy violations; nothing "
        "can be sent until the block is lifted.",
    ),
    80007: _Rule(True, "The WhatsApp Business account hit Meta's rate limit; retrying.", 60.0),
    # Per-number throughput (80 msg/s by default,
    # docs/channels/whatsapp.md#throughput-and-pair-limits).
    130429: _Rule(True, "The number is sending faster than WhatsApp allows; retrying.", 1.0),
    130472: _Rule(
        False, "Not sent: WhatsApp placed this customer in a marketing-message experiment."
    ),
    130497: _Rule(
        False, "This WhatsApp account may not message customers in the recipient's country."
    ),
    131000: _Rule(True, "WhatsApp had an unexpected error; the message will be retried.", 30.0),
    131005: _Rule(False, _PERMISSION),
    131008: _Rule(False, "The message is missing a field WhatsApp requires", with_details=True),
    131009: _Rule(False, "WhatsApp did not accept a value in the message", with_details=True),
    131016: _Rule(True, "WhatsApp is temporarily unavailable; the message will be retried.", 30.0),
    131021: _Rule(False, "The recipient is this business's own number; WhatsApp cannot do that."),
    131026: _Rule(
        False,
        "The message could not be delivered: the number may not be on WhatsApp, may use an "
        "outdated app, may not have accepted WhatsApp's latest terms, or may have blocked "
        "this business.",
    ),
    131030: _Rule(
        False,
        "The recipient is not on this test number's allowed list; add it in the Meta app "
        "dashboard or use a production number.",
    ),
    131031: _Rule(
        False,
        "The WhatsApp Business account is locked; resolve it in Meta Business Manager.",
    ),
    131042: _BILLING,
    131044: _BILLING,
    131045: _Rule(
        False, "The phone number's WhatsApp registration is incomplete; register it again."
    ),
    131047: _Rule(
        False,
        "The 24-hour customer service window has closed; send an approved template instead.",
    ),
    131048: _Rule(
        False,
        "WhatsApp is limiting this number because customers reported too many messages as "
        "spam; send less and improve message quality.",
    ),
    # Per-user marketing cap: Meta says retry no earlier than the next day, which is a
    # decision for a person, not an automatic retry.
    131049: _Rule(
        False,
        "WhatsApp held back this marketing message so the customer does not receive too many; "
        "try again tomorrow at the earliest.",
    ),
    131050: _Rule(False, "The customer has opted out of marketing messages from this business."),
    131051: _Rule(False, "WhatsApp does not support this type of message."),
    131052: _Rule(
        False,
        "WhatsApp could not fetch the customer's media (files over 100 MB are not delivered).",
    ),
    131053: _Rule(
        False,
        "WhatsApp could not process the attachment; check that its type matches its content "
        "and that it is within WhatsApp's size limits.",
    ),
    # Pair rate limit: about 1 message per 6 s to one customer
    # (docs/channels/whatsapp.md#throughput-and-pair-limits).
    131056: _Rule(
        True, "Too many messages to this customer in a short time; retrying in a moment.", 6.0
    ),
    # Account in maintenance, e.g. during a throughput upgrade (up to a minute,
    # docs/channels/whatsapp.md#throughput-and-pair-limits).
    131057: _Rule(True, "The WhatsApp account is in maintenance; retrying shortly.", 60.0),
    131064: _Rule(
        False,
        "This business has reached its WhatsApp messaging limit for customers outside the "
        "service window; try again later or raise the limit.",
    ),
    132000: _Rule(
        False,
        "The template's parameters do not match the approved template (wrong number of values).",
    ),
    132001: _Rule(False, "The template does not exist or is not approved in this language."),
    132005: _Rule(False, "The template text is too long once its parameters are filled in."),
    132007: _Rule(False, "The template's content breaks WhatsApp's policies."),
    132008: _Rule(False, "A template parameter has a value WhatsApp does not accept."),
    132012: _Rule(False, "A template parameter has the wrong format for its placeholder."),
    132015: _Rule(
        False, "The template is paused because of low quality; edit it or wait for Meta."
    ),
    132016: _Rule(
        False, "The template was disabled because of low quality; create a new template."
    ),
    132018: _Rule(False, "A template parameter is invalid", with_details=True),
    133016: _Rule(False, "Too many registration attempts for this number; wait and try again."),
    135000: _Rule(False, "WhatsApp rejected the message", with_details=True),
    137000: _Rule(
        False,
        "The customer's WhatsApp identity changed; confirm who they are before sending.",
    ),
}


def _rule(code: int | None) -> _Rule | None:
    if code is None:
        return None
    rule = _RULES.get(code)
    # 200-299 are the Graph permission family (docs/channels/whatsapp.md#error-codes).
    if rule is None and 200 <= code <= 299:
        return _RULES[10]
    return rule


def _provider_words(title: str | None, details: str | None) -> str | None:
    words = [w.strip() for w in (title, details) if w and w.strip()]
    if len(words) == 2 and words[0] == words[1]:
        words.pop()
    return " — ".join(words) or None


def _sentence(rule: _Rule, details: str | None) -> str:
    if rule.with_details:
        return f"{rule.sentence}: {details}." if details else f"{rule.sentence}."
    return rule.sentence


def failure_reason(code: int | None, title: str | None = None, details: str | None = None) -> str:
    """Plain words for a failure reported in a status webhook or `value.errors`, with the
    provider's own words appended so nothing it said is lost."""
    rule = _rule(code)
    provider = _provider_words(title, details)
    if rule is None:
        if provider:
            return f"WhatsApp could not deliver the message: {provider} (code {code})."
        return f"WhatsApp could not deliver the message (code {code})."
    sentence = _sentence(rule, details)
    if provider and not rule.with_details:
        return f"{sentence} (WhatsApp: {provider})"
    return sentence


def outcome_for(
    code: int | None,
    *,
    http_status: int | None = None,
    title: str | None = None,
    details: str | None = None,
    retry_after: float | None = None,
) -> Retriable | Permanent:
    """The outcome of a send that Graph answered with an error envelope.

    `retry_after` is the parsed Retry-After header and wins over the code's default. Unknown
    codes are permanent (the provider's words are shown) unless the HTTP status is 5xx or 429.
    """
    code_str = str(code) if code is not None else None
    rule = _rule(code)
    if rule is not None:
        sentence = _sentence(rule, details)
        if rule.retriable:
            wait = retry_after if retry_after is not None else rule.retry_after
            return Retriable(sentence, retry_after=wait, code=code_str)
        return Permanent(sentence, code=code_str)
    provider = _provider_words(title, details)
    if http_status is not None and (http_status >= 500 or http_status == 429):
        why = f": {provider}" if provider else ""
        return Retriable(
            f"WhatsApp answered HTTP {http_status}{why}; it will be retried.",
            retry_after=retry_after,
            code=code_str,
        )
    if provider:
        return Permanent(f"WhatsApp refused the message: {provider}.", code=code_str)
    return Permanent(
        f"WhatsApp refused the message (HTTP {http_status}, code {code}).", code=code_str
    )


def graph_outcome(error: GraphError) -> Retriable | Permanent:
    """`outcome_for` a failed Graph call, its error envelope read as Messenger and Instagram read
    it (`meta_common.graph_error`: an HTML 502 from a proxy, say, is decided on the status
    alone)."""
    return outcome_for(
        error.code,
        http_status=error.http_status,
        title=error.message,
        details=error.details,
        retry_after=error.retry_after,
    )
