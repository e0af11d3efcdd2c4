"""The simulated WABA's message templates: what `GET /{waba_id}/message_templates` lists (with
Graph's cursor paging), what a template send is checked against, and the
`message_template_status_update` webhook a status change produces.

Facts from docs/channels/whatsapp.md#templates-and-the-service-window: names `[a-z0-9_]` ≤512, the
same name across languages; `parameter_format` named (`{{first_name}}`) or positional (`{{1}}`, the
default); only APPROVED templates send (132001), PAUSED → 132015, DISABLED → 132016; a parameter
count that does not match → 132000; a parameter of the wrong kind → 132012.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAMED = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
POSITIONAL = re.compile(r"\{\{\s*(\d+)\s*\}\}")
_MEDIA_FORMATS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}
# Graph's template fields, in the order Graph lists them.
FIELDS = ("name", "parameter_format", "components", "language", "status", "category", "id")
STATUSES = frozenset(
    {
        "APPROVED",
        "PENDING",
        "REJECTED",
        "PAUSED",
        "DISABLED",
        "FLAGGED",
        "IN_APPEAL",
        "REINSTATED",
        "PENDING_DELETION",
        "DELETED",
        "ARCHIVED",
        "UNARCHIVED",
        "LIMIT_EXCEEDED",
        "LOCKED",
    }
)


class TemplateSendError(Exception):
    """A template send Graph would refuse: `code` and `details` of the error envelope."""

    def __init__(self, code: int, details: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


def _status_name(value: str) -> str:
    if value.upper() not in STATUSES:
        raise ValueError(f"status is one of {sorted(STATUSES)}")
    return value.upper()


class TemplateIn(BaseModel):
    """A template as created in WhatsApp Manager (control API body), Graph's own shape."""

    model_config = ConfigDict(extra="forbid")
    waba_id: str = Field(min_length=1)
    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(min_length=2, max_length=16)
    category: str = "UTILITY"
    status: str = "APPROVED"
    parameter_format: Literal["NAMED", "POSITIONAL"] | None = None
    components: list[dict[str, Any]] = []
    id: str | None = None

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        # Lower-case on create, upper-case when read back
        # (docs/channels/whatsapp.md#templates-and-the-service-window).
        upper = value.upper()
        if upper not in ("MARKETING", "UTILITY", "AUTHENTICATION"):
            raise ValueError("category is MARKETING, UTILITY or AUTHENTICATION")
        return upper

    _status = field_validator("status")(_status_name)


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    waba_id: str
    name: str
    language: str | None = None
    status: str
    reason: str | None = None

    _status = field_validator("status")(_status_name)


def _component(template: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in template.get("components") or []:
        if isinstance(c, dict) and str(c.get("type", "")).upper() == kind:
            return c
    return None


def placeholders(text: str, named: bool) -> list[str]:
    """The variables of a text in order of first appearance (`{{1}}` → "1")."""
    found = (NAMED if named else POSITIONAL).findall(text)
    return list(dict.fromkeys(found))


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"tmpl:{index}".encode()).decode().rstrip("=")


def _index(cursor: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    prefix, _, number = raw.partition(":")
    return int(number) if prefix == "tmpl" and number.isdigit() else None


class TemplateStore:
    """Templates per WABA id, in creation order (which is the order Graph pages them in)."""

    def __init__(self) -> None:
        self._by_waba: dict[str, list[dict[str, Any]]] = {}

    def clear(self) -> None:
        self._by_waba.clear()

    def knows(self, waba_id: str) -> bool:
        return bool(self._by_waba.get(waba_id))

    def put(self, spec: TemplateIn) -> dict[str, Any]:
        """Create, or replace the same (name, language)."""
        rows = self._by_waba.setdefault(spec.waba_id, [])
        named = spec.parameter_format == "NAMED" or (
            spec.parameter_format is None
            and any(NAMED.search(str(c.get("text", ""))) for c in spec.components)
        )
        template = {
            "name": spec.name,
            "parameter_format": "NAMED" if named else "POSITIONAL",
            "components": spec.components,
            "language": spec.language,
            "status": spec.status,
            "category": spec.category,
            "id": spec.id or str(10**15 + secrets.randbelow(9 * 10**15)),
        }
        for i, row in enumerate(rows):
            if (row["name"], row["language"]) == (spec.name, spec.language):
                template["id"] = spec.id or row["id"]
                rows[i] = template
                return template
        rows.append(template)
        return template

    def set_status(self, spec: StatusChangeIn) -> list[dict[str, Any]]:
        changed = [
            t
            for t in self._by_waba.get(spec.waba_id, [])
            if t["name"] == spec.name and spec.language in (None, t["language"])
        ]
        for t in changed:
            t["status"] = spec.status
        return changed

    def page(
        self,
        waba_id: str,
        *,
        url: str,
        limit: int,
        after: str | None,
        fields: list[str] | None,
        status: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """One page the way Graph answers an edge: `data`, and `paging.cursors` plus `next`
        while more remain."""
        rows = [
            (i, t)
            for i, t in enumerate(self._by_waba.get(waba_id, []))
            if (status is None or t["status"] == status.upper())
            and (name is None or name in t["name"])
        ]
        start = 0
        if after is not None:
            index = _index(after)
            if index is None:
                raise TemplateSendError(100, "Invalid cursor given for paging.")
            start = next((pos for pos, (i, _) in enumerate(rows) if i > index), len(rows))
        chunk = rows[start : start + limit]
        wanted = [f for f in FIELDS if fields is None or f in fields or f == "id"]
        data = [{f: t[f] for f in wanted} for _, t in chunk]
        result: dict[str, Any] = {"data": data}
        if chunk:
            paging: dict[str, Any] = {
                "cursors": {"before": _cursor(chunk[0][0]), "after": _cursor(chunk[-1][0])}
            }
            if start + limit < len(rows):
                query = f"limit={limit}&after={_cursor(chunk[-1][0])}"
                if fields is not None:
                    query += "&fields=" + ",".join(fields)
                paging["next"] = f"{url}?{query}"
            result["paging"] = paging
        return result

    @staticmethod
    def status_webhook(
        waba_id: str, template: dict[str, Any], reason: str | None
    ) -> dict[str, Any]:
        """`message_template_status_update` (docs/channels/whatsapp.md#inbound-payloads; note
        `entry[].time`)."""
        value: dict[str, Any] = {
            "event": template["status"],
            "message_template_id": int(template["id"]),
            "message_template_name": template["name"],
            "message_template_language": template["language"],
            "reason": reason or "NONE",
            "message_template_category": template["category"],
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": waba_id,
                    "time": int(time.time()),
                    "changes": [{"field": "message_template_status_update", "value": value}],
                }
            ],
        }

    # ------------------------------------------------------------------------ sends

    def render(self, waba_id: str, obj: Any) -> str | None:
        """A template send as the customer's phone shows it: header, body and footer with the
        send's parameters filled in (positional `{{1}}` or named `{{first_name}}`); None for a
        template this WABA does not have."""
        if not isinstance(obj, dict):
            return None
        language = obj.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        template = next(
            (
                t
                for t in self._by_waba.get(waba_id, [])
                if t["name"] == obj.get("name") and t["language"] == code
            ),
            None,
        )
        if template is None:
            return None
        sent = [c for c in obj.get("components") or [] if isinstance(c, dict)]
        parts = []
        for kind in ("HEADER", "BODY", "FOOTER"):
            component = _component(template, kind)
            text = component.get("text") if component else None
            if not isinstance(text, str):
                continue
            values: dict[str, str] = {}
            for c in sent:
                if str(c.get("type", "")).upper() != kind:
                    continue
                for i, p in enumerate(c.get("parameters") or [], start=1):
                    if isinstance(p, dict):
                        key = str(p.get("parameter_name") or i)
                        values[key] = str(p.get("text", p.get(p.get("type", ""), "")))
            pattern = NAMED if template["parameter_format"] == "NAMED" else POSITIONAL
            parts.append(
                pattern.sub(lambda m, v=values: v.get(m.group(1), m.group(0)), text)  # type: ignore[misc]
            )
        return "\n".join(parts) or None

    def check_send(self, waba_id: str, obj: dict[str, Any]) -> None:
        """Check a send's `template` object against the stored template, like Graph does."""
        name = obj.get("name")
        language = obj.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        same_name = [t for t in self._by_waba.get(waba_id, []) if t["name"] == name]
        template = next((t for t in same_name if t["language"] == code), None)
        if template is None:
            raise TemplateSendError(132001, f"template name ({name}) does not exist in {code}")
        if template["status"] == "PAUSED":
            raise TemplateSendError(132015)
        if template["status"] == "DISABLED":
            raise TemplateSendError(132016)
        if template["status"] != "APPROVED":
            raise TemplateSendError(132001, f"template name ({name}) is not approved in {code}")
        given: dict[str, list[dict[str, Any]]] = {}
        buttons: dict[int, dict[str, Any]] = {}
        for comp in obj.get("components") or []:
            if not isinstance(comp, dict):
                raise TemplateSendError(100, "Each template component must be an object.")
            ctype = str(comp.get("type", "")).lower()
            params = comp.get("parameters", [])
            if not isinstance(params, list):
                raise TemplateSendError(100, f"Param {ctype}['parameters'] must be an array.")
            if ctype == "button":
                try:
                    buttons[int(comp.get("index", -1))] = comp
                except (TypeError, ValueError):
                    raise TemplateSendError(
                        100, "Param button['index'] must be a number."
                    ) from None
            elif ctype in ("header", "body"):
                given[ctype] = params
            else:
                raise TemplateSendError(100, f"Unknown template component type {ctype!r}.")
        named = template["parameter_format"] == "NAMED"
        self._check_header(template, given.get("header"), named)
        body = _component(template, "BODY")
        expected = placeholders(str(body.get("text", "")), named) if body else []
        self._check_texts("body", expected, given.get("body", []), named)
        self._check_buttons(template, buttons)

    @staticmethod
    def _check_texts(where: str, expected: list[str], params: list[Any], named: bool) -> None:
        if len(params) != len(expected):
            raise TemplateSendError(
                132000,
                f"{where}: number of localizable_params ({len(params)}) does not match the "
                f"expected number of params ({len(expected)})",
            )
        for p in params:
            if not isinstance(p, dict) or p.get("type") != "text" or not p.get("text"):
                raise TemplateSendError(132012, f"{where}: each parameter must be a non-empty text")
        if named:
            names = [p.get("parameter_name") for p in params]
            if sorted(map(str, names)) != sorted(expected):
                raise TemplateSendError(
                    132000,
                    f"{where}: parameter names {names} do not match the template's {expected}",
                )

    def _check_header(
        self, template: dict[str, Any], params: list[Any] | None, named: bool
    ) -> None:
        header = _component(template, "HEADER")
        fmt = str(header.get("format", "TEXT")).upper() if header else None
        if fmt in _MEDIA_FORMATS:
            kind = _MEDIA_FORMATS[fmt]
            ok = (
                params is not None
                and len(params) == 1
                and isinstance(params[0], dict)
                and params[0].get("type") == kind
                and isinstance(params[0].get(kind), dict)
                and bool(params[0][kind].get("link") or params[0][kind].get("id"))
            )
            if not ok:
                raise TemplateSendError(
                    132012, f"header: the template needs one {kind} parameter (link or id)"
                )
            return
        expected = placeholders(str(header.get("text", "")), named) if header else []
        self._check_texts("header", expected, params or [], named)

    @staticmethod
    def _check_buttons(template: dict[str, Any], given: dict[int, dict[str, Any]]) -> None:
        spec = _component(template, "BUTTONS")
        defined = [b for b in (spec or {}).get("buttons", []) if isinstance(b, dict)]
        for index in given:
            if not 0 <= index < len(defined):
                raise TemplateSendError(131009, f"button: the template has no button {index}")
        for index, button in enumerate(defined):
            btype = str(button.get("type", "")).upper()
            comp = given.get(index)
            params = comp.get("parameters", []) if comp else []
            sub_type = str(comp.get("sub_type", "")).lower() if comp else None
            if comp is not None and sub_type != btype.lower():
                raise TemplateSendError(
                    131009, f"button {index}: sub_type must be {btype.lower()!r}"
                )
            if btype == "URL" and POSITIONAL.search(str(button.get("url", ""))):
                if len(params) != 1 or not (
                    isinstance(params[0], dict) and params[0].get("type") == "text"
                ):
                    raise TemplateSendError(
                        132000, f"button {index}: the URL needs one text parameter"
                    )
            elif btype == "COPY_CODE" and (
                len(params) != 1
                or not (isinstance(params[0], dict) and params[0].get("coupon_code"))
            ):
                raise TemplateSendError(
                    132000, f"button {index}: the copy-code button needs a coupon_code"
                )
