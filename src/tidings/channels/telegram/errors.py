"""Bot API errors mapped to an outcome and a sentence an agent can act on.

Every failed call answers `{"ok":false,"error_code":N,"description":"...",
"parameters":{"retry_after":S}?}` (docs/channels/telegram.md#bot-api-responses). Telegram's
descriptions are stable strings such as "Forbidden: bot was blocked by the user", so the specific
cases key on them.
"""

from __future__ import annotations

from typing import Any

from tidings.channels.base import Permanent, Retriable

_RECONNECT = (
    "Telegram rejected the bot token; it may have been revoked in @BotFather. "
    "Reconnect the channel with the current token."
)

# (error_code, lower-cased description fragment) -> sentence. First match wins.
_KNOWN: list[tuple[int, str, str]] = [
    (403, "bot was blocked by the user", "The customer has blocked this Telegram bot."),
    (403, "user is deactivated", "This Telegram account has been deleted."),
    (
        403,
        "can't initiate conversation",
        "Telegram bots can only message people who have started a chat with them first.",
    ),
    (403, "kicked", "The bot was removed from this Telegram group."),
    (
        400,
        "chat not found",
        "Telegram does not know this chat: the customer may have deleted it, or never "
        "started the bot.",
    ),
    (400, "message is too long", "The message is longer than Telegram's 4096 characters."),
    (400, "message text is empty", "The message is empty."),
    (400, "upgraded to a supergroup", "This Telegram group became a supergroup; write there."),
    (
        400,
        "wrong http url",
        "Telegram could not use the attachment's URL; it must be a public http(s) address.",
    ),
    (
        413,
        "request entity too large",
        "The file is larger than Telegram takes from bots (10 MB for photos, 50 MB otherwise).",
    ),
    (400, "image_process_failed", "Telegram could not read the image; send it as a file."),
    (
        400,
        "failed to get http url content",
        "Telegram could not download the attachment from its URL.",
    ),
]


def outcome(status: int, doc: Any) -> Permanent | Retriable:
    """The outcome of a non-ok Bot API answer (`doc` is the parsed body, or None)."""
    data = doc if isinstance(doc, dict) else {}
    raw_code = data.get("error_code")
    code = raw_code if isinstance(raw_code, int) else status
    description = str(data.get("description") or f"HTTP {status}")
    params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    assert isinstance(params, dict)
    code_s = str(code)
    if code == 429:
        # Flood control: Telegram says exactly how long to wait
        # (docs/channels/telegram.md#bot-api-responses).
        wait = params.get("retry_after")
        delay = float(wait) if isinstance(wait, int | float) and wait > 0 else 1.0
        return Retriable(
            f"Telegram is rate-limiting this bot; retrying in {delay:g} s.", delay, code_s
        )
    if code >= 500 or status >= 500:
        return Retriable(f"Telegram had a server error ({description}); retrying.", None, code_s)
    if code in (401, 404):
        # 401 is a revoked/wrong token; 404 is what Telegram answers for a malformed one.
        return Permanent(_RECONNECT, code_s)
    lowered = description.lower()
    for known_code, fragment, sentence in _KNOWN:
        if code == known_code and fragment in lowered:
            return Permanent(sentence, code_s)
    return Permanent(f"Telegram refused the message: {description}", code_s)
