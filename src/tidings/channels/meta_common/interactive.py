"""Choices on Messenger and Instagram (docs/channels/messenger.md#send-api,
docs/channels/instagram.md#sending): quick replies (≤13, title ≤20, payload ≤1000) on a text
message, or a button template (`attachment.type: template`, `template_type: button`) whose
buttons are postbacks or, with a URL, `web_url` links. Meta's button template takes at most 3
buttons with titles of at most 20 characters. There are no list messages, headers or footers."""

from __future__ import annotations

from typing import Any

from tidings.channels.interactive import Choices, Refused, check_length, unique_titles
from tidings.domain.enums import MessageKind


def build(choices: Choices, label: str) -> tuple[MessageKind, str, dict[str, Any]]:
    if choices.type == "list":
        raise Refused(f"{label} has no list messages: use 'quick_replies' (up to 13) instead.")
    if choices.header or choices.footer:
        raise Refused(f"{label} messages have no header or footer.")
    if choices.sections or choices.button:
        raise Refused(f"{label}: sections and a menu label belong to WhatsApp lists.")
    for b in choices.buttons:
        check_length(f"title {b.title!r}", b.title, 20, label)
        check_length(f"payload {b.id!r}", b.id, 1000, label)
        if b.description:
            raise Refused(f"{label}: buttons have no description.")
    unique_titles(choices.buttons, label)
    if choices.type == "quick_replies":
        if not 1 <= len(choices.buttons) <= 13:
            raise Refused(f"{label}: quick replies number 1 to 13 ({len(choices.buttons)} given).")
        if any(b.url for b in choices.buttons):
            raise Refused(f"{label}: quick replies cannot open a URL; use 'buttons'.")
        quick = [{"title": b.title, "payload": b.id} for b in choices.buttons]
        return MessageKind.TEXT, choices.body, {"quick_replies": quick}
    if not 1 <= len(choices.buttons) <= 3:
        raise Refused(
            f"{label}: a button template has 1 to 3 buttons ({len(choices.buttons)} given)."
        )
    buttons: list[dict[str, Any]] = []
    for b in choices.buttons:
        if b.url:
            if not b.url.startswith(("https://", "http://")):
                raise Refused(f"{label}: button {b.title!r} needs an http(s) URL.")
            buttons.append({"type": "web_url", "title": b.title, "url": b.url})
        else:
            buttons.append({"type": "postback", "title": b.title, "payload": b.id})
    template = {"template_type": "button", "text": choices.body, "buttons": buttons}
    return MessageKind.INTERACTIVE, choices.body, {"button_template": template}
