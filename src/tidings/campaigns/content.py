"""A campaign's content for one recipient: text with `{{placeholders}}`, or a WhatsApp-style
template whose parameters come from the recipient's variables and contact attributes.

Placeholders: `{{name}}`, `{{first_name}}`, `{{phone}}`, `{{email}}`, and any CSV column or
contact attribute by its name. A missing value renders as an empty string (the preview shows
the result, so authors see it before launch). Values are inserted as text, never re-parsed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tidings.domain.errors import InvalidInput
from tidings.storage.models import Contact

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]{0,63})\s*\}\}")
TEXT_LIMIT = 65_536


def variables_for(contact: Contact | None, extra: Mapping[str, Any] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if contact is not None:
        for key, value in (contact.attributes or {}).items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                values[str(key)] = str(value)
        name = contact.name or ""
        values.update(
            name=name,
            first_name=name.split()[0] if name.split() else "",
            phone=contact.phone_e164 or "",
            email=contact.email or "",
        )
    for key, value in (extra or {}).items():
        if value is not None:
            values[str(key)] = str(value)
    return values


def render(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), text)


def validate(content: Any) -> dict[str, Any]:
    """The content document, checked: {"text"?, "texts"?: {kind: text}, "template"?}."""
    if not isinstance(content, dict):
        raise InvalidInput("content: an object with text and/or template")
    out: dict[str, Any] = {}
    text = content.get("text")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("content.text: a non-empty string")
        if len(text) > TEXT_LIMIT:
            raise InvalidInput(f"content.text: at most {TEXT_LIMIT} characters")
        out["text"] = text
    texts = content.get("texts")
    if texts is not None:
        if not isinstance(texts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in texts.items()
        ):
            raise InvalidInput("content.texts: an object of channel kind → non-empty text")
        out["texts"] = dict(texts)
    template = content.get("template")
    if template is not None:
        if not isinstance(template, dict):
            raise InvalidInput("content.template: {name, language, params}")
        name, language = template.get("name"), template.get("language", "en_US")
        params = template.get("params", [])
        if not isinstance(name, str) or not name or len(name) > 512:
            raise InvalidInput("content.template.name: the approved template's name")
        if not isinstance(language, str) or not language:
            raise InvalidInput("content.template.language: a language code such as en_US")
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise InvalidInput("content.template.params: a list of strings ({{placeholders}})")
        out["template"] = {"name": name, "language": language, "params": list(params)}
    if not out:
        raise InvalidInput("content: give text, per-channel texts or a template")
    return out


def text_for(content: Mapping[str, Any], kind: str, values: Mapping[str, str]) -> str | None:
    texts = content.get("texts") or {}
    raw = texts.get(kind) or content.get("text")
    return render(raw, values) if isinstance(raw, str) else None


def template_for(content: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any] | None:
    """Graph's `template` object: name, language and the body parameters, rendered."""
    spec = content.get("template")
    if not isinstance(spec, dict):
        return None
    obj: dict[str, Any] = {"name": spec["name"], "language": {"code": spec["language"]}}
    params = [render(p, values) for p in spec.get("params", [])]
    if params:
        obj["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
        ]
    return obj


def template_params(obj: Mapping[str, Any]) -> list[str]:
    """The text values of a Graph `template` object's parameters, in order."""
    return [
        str(p.get("text", ""))
        for c in obj.get("components", [])
        for p in c.get("parameters", [])
        if isinstance(p, dict)
    ]


def template_preview(obj: Mapping[str, Any]) -> str:
    return f"[template {obj.get('name')}] " + " | ".join(template_params(obj))
