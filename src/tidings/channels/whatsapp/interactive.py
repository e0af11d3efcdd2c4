"""Reply buttons and list messages in WhatsApp's `interactive` shape, with the limits of the
interactive message pages (docs/channels/whatsapp.md#interactive-limits): buttons ≤3, button id
≤256, title ≤20 (unique), body ≤1024, footer ≤60; list button label ≤20, body ≤4096, header text
≤60, footer ≤60, ≤10 sections, ≤10 rows in total, row id ≤200, row title ≤24, description ≤72,
section title ≤24."""

from __future__ import annotations

from typing import Any

from tidings.channels.interactive import Choices, Refused, check_length, unique_titles
from tidings.domain.enums import MessageKind

LABEL = "WhatsApp"


def build(choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
    if choices.type == "quick_replies":
        raise Refused(
            "WhatsApp has no quick replies: use type 'buttons' (up to 3) or 'list' (up to 10 rows)."
        )
    check_length("the header", choices.header, 60, LABEL)
    check_length("the footer", choices.footer, 60, LABEL)
    obj: dict[str, Any] = {"type": "button" if choices.type == "buttons" else "list"}
    if choices.header:
        obj["header"] = {"type": "text", "text": choices.header}
    obj["body"] = {"text": choices.body}
    if choices.footer:
        obj["footer"] = {"text": choices.footer}
    if choices.type == "buttons":
        check_length("the body", choices.body, 1024, LABEL)
        if not 1 <= len(choices.buttons) <= 3:
            raise Refused(f"WhatsApp: reply buttons number 1 to 3 ({len(choices.buttons)} given).")
        if choices.sections or choices.button:
            raise Refused("WhatsApp: reply buttons take no sections or menu label.")
        for b in choices.buttons:
            check_length(f"button id {b.id!r}", b.id, 256, LABEL)
            check_length(f"button title {b.title!r}", b.title, 20, LABEL)
            if b.url or b.description:
                raise Refused("WhatsApp: reply buttons have only an id and a title.")
        unique_titles(choices.buttons, LABEL)
        obj["action"] = {
            "buttons": [
                {"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in choices.buttons
            ]
        }
    else:
        if choices.buttons:
            raise Refused("WhatsApp: a list has sections of rows, not buttons.")
        if not choices.button:
            raise Refused("WhatsApp: a list needs `button`, the label of its menu.")
        check_length("the menu label", choices.button, 20, LABEL)
        if not 1 <= len(choices.sections) <= 10:
            raise Refused(f"WhatsApp: a list has 1 to 10 sections ({len(choices.sections)} given).")
        rows = [r for s in choices.sections for r in s.rows]
        if len(rows) > 10:
            raise Refused(f"WhatsApp: a list has at most 10 rows in total ({len(rows)} given).")
        if len({r.id for r in rows}) != len(rows):
            raise Refused("WhatsApp: row ids must be different from each other.")
        sections = []
        for s in choices.sections:
            check_length(f"section title {s.title!r}", s.title, 24, LABEL)
            out_rows = []
            for r in s.rows:
                check_length(f"row id {r.id!r}", r.id, 200, LABEL)
                check_length(f"row title {r.title!r}", r.title, 24, LABEL)
                check_length(f"the description of row {r.id!r}", r.description, 72, LABEL)
                if r.url:
                    raise Refused("WhatsApp: list rows cannot carry a URL.")
                row = {"id": r.id, "title": r.title}
                if r.description:
                    row["description"] = r.description
                out_rows.append(row)
            section: dict[str, Any] = {"rows": out_rows}
            if s.title:
                section["title"] = s.title
            sections.append(section)
        obj["action"] = {"button": choices.button, "sections": sections}
    return MessageKind.INTERACTIVE, choices.body, {"interactive": obj}
