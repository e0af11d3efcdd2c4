"""WeChat API error codes → Retriable or Permanent, with a sentence an agent can act on.

Every API error is HTTP 200 with `{"errcode": N, "errmsg": "…"}`. Codes and what they
mean: docs/channels/wechat.md#error-codes.
"""

from __future__ import annotations

from tidings.channels.base import Permanent, Retriable

# Access-token trouble that a fresh token cures (docs/channels/wechat.md#access-tokens; wechatpy
# refetches and retries).
TOKEN_ERRORS = frozenset({40001, 40014, 42001})

_PERMANENT: dict[int, str] = {
    40003: "WeChat does not know this customer's OpenID for this Official Account (40003).",
    40007: "WeChat no longer has this media file (temporary media expire after 3 days).",
    40013: "WeChat refused the AppID; check the channel's app_id.",
    40125: "WeChat refused the AppSecret; check the channel's app_secret.",
    40033: "WeChat refused the message text encoding (40033).",
    40164: (
        "WeChat refused the call because this server's IP address is not on the Official "
        "Account's IP whitelist."
    ),
    43004: "The customer no longer follows the Official Account, so WeChat refuses messages.",
    43019: "The customer has blocked the Official Account.",
    44002: "WeChat received an empty request.",
    44004: "The message is empty.",
    45002: "The message is too long for WeChat.",
    45015: (
        "The customer has not interacted in the last 48 hours, so WeChat refuses "
        "customer-service messages until they write again."
    ),
    45047: (
        "The per-window quota of messages is used up: WeChat allows only a few replies to each "
        "customer interaction. The customer has to write again before more can be sent."
    ),
    48001: "This Official Account is not authorised to use the customer-service API.",
}

_RETRIABLE: dict[int, tuple[str, float | None]] = {
    -1: ("WeChat is busy; the message will be retried.", None),
    45009: ("The Official Account reached its daily API quota; retrying later.", 3600.0),
    # "api minute-quota reach limit, must slower, retry next minute"
    # (docs/channels/wechat.md#error-codes).
    45011: ("WeChat's per-minute API limit was reached; retrying in a minute.", 60.0),
}


def outcome_for(errcode: int, errmsg: str = "") -> Retriable | Permanent:
    code = str(errcode)
    if errcode in _RETRIABLE:
        reason, after = _RETRIABLE[errcode]
        return Retriable(reason, retry_after=after, code=code)
    if errcode in TOKEN_ERRORS:
        return Retriable("WeChat did not accept a freshly fetched access token.", code=code)
    if errcode in _PERMANENT:
        return Permanent(_PERMANENT[errcode], code=code)
    # errmsg is provider text: keep it short, it is shown to agents as is.
    detail = errmsg.split(" rid:")[0].strip()[:120]
    return Permanent(
        f"WeChat refused the message (error {errcode}{': ' + detail if detail else ''}).",
        code=code,
    )
