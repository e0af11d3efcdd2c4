"""Graph error codes for the Messenger Platform (docs/channels/messenger.md#error-codes), mapped
to an outcome and a sentence an agent can act on. Messenger keys on `code` *and* `error_subcode`.
Instagram messaging runs on the same platform (docs/channels/instagram.md#sending), with its own
label and one window subcode more (`instagram_outcome`)."""

from __future__ import annotations

from tidings.channels.base import Permanent, Retriable
from tidings.channels.meta_common import GraphError

_RECONNECT = "The Page access token has expired or is invalid; reconnect the channel."
_PERMISSION = (
    "The app is not allowed to message this person; check the app's permissions and App "
    "Review status in the Meta dashboard."
)
WINDOW_CLOSED = (
    "The 24-hour Messenger window has closed: the customer has not written in the last 24 "
    "hours. A person may still reply for up to 7 days if the Human Agent feature is enabled."
)

# (code, subcode) first, then code alone. True = retriable.
_BY_SUBCODE: dict[tuple[int, int], tuple[bool, str]] = {
    (10, 2018278): (False, WINDOW_CLOSED),
    # Code 1 is usually worth retrying, but not when Meta could not read our JSON
    # (docs/channels/messenger.md#error-codes).
    (1, 1357046): (False, "Messenger could not read the request (invalid JSON); not retried."),
    (10, 2018108): (
        False,
        "The app is not public yet, so it can only message people with a role on it.",
    ),
    (100, 2018001): (False, "Messenger knows no such person for this Page (wrong or stale PSID)."),
    (2, 2018344): (False, "The Page has not accepted the custom labels terms."),
    (4, 2018354): (True, "Marketing messages need a longer pause between sends; retrying."),
    # The May-2026 Send API table lists 1545041 as "messaging window closed", older pages as
    # "person not available" (docs/channels/messenger.md#error-codes); with code 551 it is the
    # latter.
    (551, 1545041): (
        False,
        "This person is not available on Messenger (they may have blocked the Page or "
        "deactivated their account).",
    ),
}
_BY_CODE: dict[int, tuple[bool, str]] = {
    1: (True, "Messenger had an unexpected error; the message will be retried."),
    2: (True, "Messenger is temporarily unavailable; the message will be retried."),
    4: (True, "Too many requests to Messenger from this app; it will be retried."),
    # Graph's user and page throttles (docs/providers/graph-api.md#graph-errors; Meta does not
    # list them for the Send API).
    17: (True, "Too many requests for this Messenger user token; it will be retried."),
    32: (True, "Too many requests for this Page; it will be retried."),
    10: (False, _PERMISSION),
    100: (False, "Messenger rejected the message as invalid"),
    190: (False, _RECONNECT),
    200: (False, _PERMISSION),
    230: (False, "This person's settings do not allow the Page to message them."),
    368: (False, "Meta blocked this action as abusive or disallowed; check the Page's standing."),
    551: (
        False,
        "This person is not available on Messenger right now (blocked the Page, "
        "deactivated, or unreachable).",
    ),
    613: (True, "The Page is sending faster than Messenger allows; it will be retried."),
    2022: (False, "Commerce messaging is disabled for this Page."),
    10900: (False, "A private reply was already sent to this comment."),
    10903: (False, "This person cannot reply to the Page, so it cannot message them."),
    10904: (False, "Messaging is disabled for this Page; turn it on in the Page settings."),
}
# Instagram: a window subcode seen in client code and not in Meta's reference (10 / 2534022;
# docs/channels/instagram.md#window-and-tags).
_INSTAGRAM_BY_SUBCODE = {**_BY_SUBCODE, (10, 2534022): (False, WINDOW_CLOSED)}
_WAIT = {1: 30.0, 2: 30.0, 4: 60.0, 17: 60.0, 32: 60.0, 613: 10.0}


def instagram_outcome(error: GraphError) -> Retriable | Permanent:
    return outcome_for(error, "Instagram", _INSTAGRAM_BY_SUBCODE)


def outcome_for(
    error: GraphError,
    label: str = "Messenger",
    by_subcode: dict[tuple[int, int], tuple[bool, str]] = _BY_SUBCODE,
) -> Retriable | Permanent:
    code = str(error.code) if error.code is not None else None
    rule = None
    if error.code is not None:
        if error.subcode is not None:
            rule = by_subcode.get((error.code, error.subcode))
        rule = rule or _BY_CODE.get(error.code)
        if rule is None and 200 <= error.code <= 299:
            rule = _BY_CODE[200]
    if rule is not None:
        retriable, sentence = rule
        if error.code == 100 and error.subcode is None:
            # Invalid parameter: what is wrong is only in Meta's own words.
            sentence = f"{sentence}: {error.message}." if error.message else f"{sentence}."
        if label != "Messenger":
            sentence = sentence.replace("Messenger", label)
        if retriable:
            wait = (
                error.retry_after if error.retry_after is not None else _WAIT.get(error.code or 0)
            )
            return Retriable(sentence, retry_after=wait, code=code)
        return Permanent(sentence, code=code)
    words = error.message or error.details
    if error.http_status >= 500 or error.http_status == 429:
        why = f": {words}" if words else ""
        return Retriable(
            f"{label} answered HTTP {error.http_status}{why}; it will be retried.",
            retry_after=error.retry_after,
            code=code,
        )
    if words:
        return Permanent(f"{label} refused the message: {words} (code {error.code}).", code=code)
    return Permanent(
        f"{label} refused the message (HTTP {error.http_status}, code {error.code}).", code=code
    )
