"""Provider message templates as a channel offers them (WhatsApp's `message_templates`): the
optional interface a template-capable adapter adds to `ChannelAdapter`, and the parameter
rules shared by the send check and the composer.

A template's variables are `{{1}}`, `{{2}}` (positional, the default) or `{{first_name}}`
(named) in its HEADER (text format) and BODY text; media headers need an image, video or
document; URL buttons with a `{{1}}` need a text and copy-code buttons a coupon code
(docs/channels/whatsapp.md#sending, docs/channels/whatsapp.md#templates-and-the-service-window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

NAMED = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
POSITIONAL = re.compile(r"\{\{\s*(\d+)\s*\}\}")
MEDIA_HEADERS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}


@dataclass(frozen=True, slots=True)
class ProviderTemplate:
    name: str
    language: str
    category: str
    status: str
    components: list[dict[str, Any]] = field(default_factory=list)
    provider_template_id: str | None = None


class TemplateSyncError(Exception):
    """The provider did not hand over its template list; `reason` is for people.
    `config` marks a problem in the channel's own settings rather than at the provider."""

    def __init__(self, reason: str, *, config: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.config = config


@runtime_checkable
class TemplateSource(Protocol):
    """An adapter whose provider keeps templates that can be listed."""

    async def fetch_templates(self, config: Any, http: httpx.AsyncClient) -> list[ProviderTemplate]:
        """Every template of the account, all pages. Raises TemplateSyncError."""
        ...


def component(components: list[Any], kind: str) -> dict[str, Any] | None:
    for c in components:
        if isinstance(c, dict) and str(c.get("type", "")).upper() == kind:
            return c
    return None


def is_named(components: list[Any]) -> bool:
    return any(isinstance(c, dict) and NAMED.search(str(c.get("text", ""))) for c in components)


def variables(text: str, named: bool) -> list[str]:
    """A text's variables in order of first appearance (`{{1}}` → "1")."""
    return list(dict.fromkeys((NAMED if named else POSITIONAL).findall(text)))


@dataclass(frozen=True, slots=True)
class ButtonNeed:
    index: int
    sub_type: str  # "quick_reply" | "url" | "copy_code" | ...
    text: str
    # "text" (a URL suffix), "coupon_code", or None when nothing is needed (a quick reply's
    # payload is optional).
    needs: str | None


@dataclass(frozen=True, slots=True)
class Needs:
    """What a template needs to be sent."""

    named: bool
    header_media: str | None  # "image" | "video" | "document"
    header_variables: list[str]
    body_variables: list[str]
    buttons: list[ButtonNeed]

    def public(self) -> dict[str, Any]:
        return {
            "parameter_format": "named" if self.named else "positional",
            "header": self.header_media or ("text" if self.header_variables else None),
            "header_parameters": self.header_variables,
            "body_parameters": self.body_variables,
            "buttons": [
                {"index": b.index, "type": b.sub_type, "text": b.text, "needs": b.needs}
                for b in self.buttons
            ],
        }


def needs(components: list[Any]) -> Needs:
    named = is_named(components)
    header = component(components, "HEADER")
    fmt = str(header.get("format", "TEXT")).upper() if header else ""
    header_vars = variables(str(header.get("text", "")), named) if header and fmt == "TEXT" else []
    body = component(components, "BODY")
    body_vars = variables(str(body.get("text", "")), named) if body else []
    if not named:
        header_vars, body_vars = sorted(header_vars, key=int), sorted(body_vars, key=int)
    buttons = []
    spec = component(components, "BUTTONS")
    for index, b in enumerate((spec or {}).get("buttons") or []):
        if not isinstance(b, dict):
            continue
        btype = str(b.get("type", "")).lower()
        need: str | None = None
        if btype == "url" and POSITIONAL.search(str(b.get("url", ""))):
            need = "text"
        elif btype == "copy_code":
            need = "coupon_code"
        buttons.append(ButtonNeed(index, btype, str(b.get("text", "")), need))
    return Needs(named, MEDIA_HEADERS.get(fmt), header_vars, body_vars, buttons)
