"""Provider templates: syncing a channel's list from the provider, and sending one into a
conversation — the way to reach a customer once the service window has closed (the policy
layer lets templates through the window check; consent still applies).

One check serves the composer (`check_send_template`, positional values by template id) and
the REST API (`check_send_template_spec`, by name and language with named or positional
values, header media and button values): the parameters are matched against the template's
components *before* anything is queued, so a mismatch is a clear 4xx here rather than a
132000 from Meta later.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tidings.access import Principal, can_see_inbox, require_admin, require_conversation
from tidings.actions.admin import active_channels
from tidings.actions.base import Tx, transaction
from tidings.actions.gate import choose_route
from tidings.actions.outbound import do_send
from tidings.channels.message_templates import (
    NAMED,
    POSITIONAL,
    Needs,
    ProviderTemplate,
    TemplateSource,
    TemplateSyncError,
    component,
    needs,
)
from tidings.domain import live_events
from tidings.domain.enums import MessageKind
from tidings.domain.errors import InvalidInput, NotFound, TidingsError
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import Channel, Conversation, Message
from tidings.storage.models import Template as TemplateRow
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)
APPROVED = "approved"
# Graph's own words for a template that is gone from the list (status values in
# docs/channels/whatsapp.md#templates-and-the-service-window).
REMOVED = "DELETED"
# A text parameter; Graph counts the body (1024) once filled, which Meta checks (132005).
MAX_PARAMETER = 1024


class ProviderError(TidingsError):
    """The provider did not answer as it should (unreachable, refused our credentials)."""

    code = "provider_error"
    status = 502


def body_text(t: TemplateRow) -> str:
    body = component(list(t.components or []), "BODY")
    return str(body.get("text") or "") if body else ""


def parameter_count(t: TemplateRow) -> int:
    return len(needs(list(t.components or [])).body_variables)


def render(t: TemplateRow, params: Sequence[str] | Mapping[str, str]) -> str:
    """The body with its variables filled in, as the customer will read it."""
    named = needs(list(t.components or [])).named
    if isinstance(params, Mapping):
        values = dict(params)
    else:
        order = needs(list(t.components or [])).body_variables
        values = dict(zip(order, params, strict=False))
    pattern = NAMED if named else POSITIONAL
    return pattern.sub(lambda m: values.get(m.group(1), m.group(0)), body_text(t))


async def usable_templates(rt: Runtime, s: Any, conv: Conversation) -> list[TemplateRow]:
    """Approved templates of the template-capable channels of the conversation's inbox."""
    return [t for t in await _inbox_templates(s, conv) if t.status.lower() == APPROVED]


async def _inbox_templates(s: Any, conv: Conversation) -> list[TemplateRow]:
    rows = (
        await s.scalars(
            select(TemplateRow)
            .join(Channel, Channel.id == TemplateRow.channel_id)
            .where(Channel.inbox_id == conv.inbox_id, Channel.active.is_(True))
            .order_by(TemplateRow.name, TemplateRow.language)
        )
    ).all()
    return list(rows)


# --- sync ---------------------------------------------------------------------------------


async def check_sync_templates(rt: Runtime, who: Principal, channel_id: int) -> dict[str, Any]:
    """An admin asks for a channel's templates to be fetched from the provider now."""
    require_admin(who)
    info = await rt.channels.get(channel_id)
    if info is None or not can_see_inbox(who, info.workspace_id, info.inbox_id):
        raise NotFound("channel not found")
    return await sync_templates(rt, info)


async def sync_templates(rt: Runtime, channel: ChannelInfo) -> dict[str, Any]:
    """Fetch every template of `channel` (all pages) and upsert them. Used by the API, the
    CLI and the worker's periodic sync."""
    adapter = channel.adapter
    if not isinstance(adapter, TemplateSource):
        raise InvalidInput(
            f"{adapter.label} channels have no provider templates to sync.", code="no_templates"
        )
    try:
        fetched = await adapter.fetch_templates(channel.config, rt.http)
    except TemplateSyncError as exc:
        if exc.config:
            raise InvalidInput(exc.reason, code="channel_config") from None
        raise ProviderError(exc.reason) from None
    async with transaction(rt) as tx:
        return await do_sync_templates(tx, channel, fetched)


async def do_sync_templates(
    tx: Tx, channel: ChannelInfo, fetched: Sequence[ProviderTemplate]
) -> dict[str, Any]:
    """Precondition: `fetched` is the provider's complete list. Upserts name, language,
    category, status and components; a template the provider no longer lists is kept (sent
    messages point at it) with status DELETED, so it can no longer be sent."""
    s = tx.session
    now = utcnow()
    existing = {
        (t.name, t.language): t
        for t in await s.scalars(select(TemplateRow).where(TemplateRow.channel_id == channel.id))
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0, "removed": 0}
    seen: set[tuple[str, str]] = set()
    for t in fetched:
        key = (t.name, t.language)
        if key in seen:
            continue
        seen.add(key)
        row = existing.get(key)
        if row is None:
            s.add(
                TemplateRow(
                    workspace_id=channel.workspace_id,
                    channel_id=channel.id,
                    name=t.name,
                    language=t.language,
                    category=t.category,
                    status=t.status,
                    components=list(t.components),
                    provider_template_id=t.provider_template_id,
                    updated_at=now,
                )
            )
            counts["created"] += 1
            continue
        new = (t.category, t.status, list(t.components), t.provider_template_id)
        old = (row.category, row.status, list(row.components or []), row.provider_template_id)
        if new == old:
            counts["unchanged"] += 1
            continue
        row.category, row.status, row.components, row.provider_template_id = new
        row.updated_at = now
        counts["updated"] += 1
    for key, row in existing.items():
        if key not in seen and row.status != REMOVED:
            row.status = REMOVED
            row.updated_at = now
            counts["removed"] += 1
    await s.flush()
    result: dict[str, Any] = {"channel_id": channel.id, "total": len(seen), **counts}
    tx.emit_for(live_events.TEMPLATES_SYNCED(result), channel)
    return result


# --- send ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderMedia:
    kind: str  # image | video | document
    link: str | None = None
    media_id: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class ButtonValue:
    index: int
    payload: str | None = None  # quick_reply
    text: str | None = None  # url suffix
    coupon_code: str | None = None  # copy_code


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """What a sender gives for a template: body (and text header) values by position or by
    name, the header's media, and values for buttons that take one."""

    parameters: Sequence[str] | Mapping[str, str] = ()
    header_parameters: Sequence[str] | Mapping[str, str] = ()
    header_media: HeaderMedia | None = None
    buttons: Sequence[ButtonValue] = field(default_factory=tuple)


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, code="template_parameters")


def _text_values(
    where: str, wanted: list[str], named: bool, given: Sequence[str] | Mapping[str, str]
) -> list[dict[str, Any]]:
    """Graph text parameters for `wanted` variables, or a sentence saying what is wrong."""
    shown = ", ".join("{{" + w + "}}" for w in wanted) or "none"
    if not given and not wanted:
        return []
    if named:
        if not isinstance(given, Mapping):
            raise _bad(f"{where}: this template takes named parameters ({shown}); give an object.")
        missing = [w for w in wanted if w not in given]
        extra = sorted(set(given) - set(wanted))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"unknown {', '.join(extra)}")
            raise _bad(f"{where}: {'; '.join(parts)} (the template has {shown}).")
        values = [(w, given[w]) for w in wanted]
    else:
        if isinstance(given, Mapping):
            raise _bad(
                f"{where}: this template takes positional parameters ({shown}); give a list."
            )
        if len(given) != len(wanted):
            raise _bad(
                f"{where}: this template needs {len(wanted)} parameter(s) ({shown}), "
                f"got {len(given)}."
            )
        values = list(zip(wanted, given, strict=True))
    out = []
    for name, value in values:
        clean = value.strip() if isinstance(value, str) else ""
        if not clean:
            raise _bad(f"{where}: the value for {{{{{name}}}}} is empty.")
        if len(clean) > MAX_PARAMETER:
            raise _bad(f"{where}: the value for {{{{{name}}}}} is over {MAX_PARAMETER} characters.")
        param: dict[str, Any] = {"type": "text", "text": clean}
        if named:
            param["parameter_name"] = name
        out.append(param)
    return out


def build_template(template: TemplateRow, spec: TemplateSpec) -> tuple[dict[str, Any], str]:
    """Graph's `template` object for this send (docs/channels/whatsapp.md#sending) and the body
    text as the customer will read it; InvalidInput (code `template_parameters`) when the values
    do not fit."""
    n: Needs = needs(list(template.components or []))
    components: list[dict[str, Any]] = []
    if n.header_media is not None:
        media = spec.header_media
        if media is None or (not media.link and not media.media_id):
            raise _bad(f"header: this template needs a {n.header_media} (a link or a media id).")
        if media.kind != n.header_media:
            raise _bad(f"header: this template needs a {n.header_media}, not a {media.kind}.")
        obj: dict[str, Any] = {"id": media.media_id} if media.media_id else {"link": media.link}
        if media.kind == "document" and media.filename:
            obj["filename"] = media.filename
        components.append({"type": "header", "parameters": [{"type": media.kind, media.kind: obj}]})
    else:
        if spec.header_media is not None:
            raise _bad("header: this template has no media header.")
        header = _text_values("header", n.header_variables, n.named, spec.header_parameters)
        if header:
            components.append({"type": "header", "parameters": header})
    body = _text_values("body", n.body_variables, n.named, spec.parameters)
    if body:
        components.append({"type": "body", "parameters": body})
    given = {}
    for b in spec.buttons:
        if b.index in given:
            raise _bad(f"buttons: button {b.index} is given twice.")
        given[b.index] = b
    by_index = {b.index: b for b in n.buttons}
    for index in given:
        if index not in by_index:
            raise _bad(f"buttons: the template has no button {index}.")
    for need in n.buttons:
        value = given.get(need.index)
        param: dict[str, Any] | None = None
        if need.needs == "text":
            if value is None or not (value.text or "").strip():
                raise _bad(f"buttons: button {need.index} ({need.text!r}) needs its URL text.")
            param = {"type": "text", "text": value.text.strip() if value.text else ""}
        elif need.needs == "coupon_code":
            if value is None or not (value.coupon_code or "").strip():
                raise _bad(f"buttons: button {need.index} ({need.text!r}) needs a coupon_code.")
            param = {"type": "coupon_code", "coupon_code": (value.coupon_code or "").strip()}
        elif need.sub_type == "quick_reply" and value is not None and value.payload:
            param = {"type": "payload", "payload": value.payload}
        elif value is not None and (value.text or value.coupon_code or value.payload):
            raise _bad(f"buttons: button {need.index} ({need.sub_type}) takes no value.")
        if param is not None:
            components.append(
                {
                    "type": "button",
                    "sub_type": need.sub_type,
                    "index": need.index,
                    "parameters": [param],
                }
            )
    graph: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        graph["components"] = components
    values = {name: p["text"] for name, p in zip(n.body_variables, body, strict=True)}
    return graph, render(template, values)


async def check_send_template(
    rt: Runtime, who: Principal, conversation_id: int, template_id: int, params: list[str]
) -> Message:
    """The composer's picker: an approved template by id, body values in order."""
    async with transaction(rt) as tx:
        conv = require_conversation(who, await tx.session.get(Conversation, conversation_id))
        usable = {t.id: t for t in await usable_templates(rt, tx.session, conv)}
        template = usable.get(template_id)
        if template is None:
            raise NotFound("no approved template with this id for this conversation's inbox")
        n = needs(list(template.components or []))
        spec = TemplateSpec(
            parameters=dict(zip(n.body_variables, params, strict=False))
            if n.named and len(params) == len(n.body_variables)
            else params
        )
        return await _queue_template(tx, who, conv, template, spec)


async def check_send_template_spec(
    rt: Runtime,
    who: Principal,
    conversation_id: int,
    *,
    name: str | None,
    language: str | None,
    template_id: int | None,
    spec: TemplateSpec,
    channel_id: int | None = None,
) -> Message:
    """The REST API: a template by id, or by name and language, on the conversation's inbox
    (on `channel_id` when given). Unknown → 404; not approved, unknown language or values
    that do not fit → 422 with a code and a sentence saying which."""
    async with transaction(rt) as tx:
        conv = require_conversation(who, await tx.session.get(Conversation, conversation_id))
        rows = await _inbox_templates(tx.session, conv)
        if channel_id is not None:
            rows = [t for t in rows if t.channel_id == channel_id]
        if template_id is not None:
            rows = [t for t in rows if t.id == template_id]
            if not rows:
                raise NotFound(f"no template {template_id} on this conversation's inbox")
        else:
            rows = [t for t in rows if t.name == name]
            if not rows:
                raise NotFound(
                    f"no template named {name!r} on this conversation's inbox; sync the "
                    "channel's templates if it was created recently"
                )
            if language is not None:
                translations = sorted({t.language for t in rows})
                rows = [t for t in rows if t.language == language]
                if not rows:
                    raise InvalidInput(
                        f"template {name!r} has no {language!r} translation; it has "
                        f"{', '.join(translations)}.",
                        code="template_language",
                    )
            elif len({t.language for t in rows}) > 1:
                raise InvalidInput(
                    f"template {name!r} exists in several languages "
                    f"({', '.join(sorted({t.language for t in rows}))}); give `language`.",
                    code="template_language",
                )
        # Several channels of the inbox may carry the template: the customer's last channel.
        rows.sort(key=lambda t: (t.channel_id != conv.last_channel_id, t.channel_id))
        template = rows[0]
        if template.status.lower() != APPROVED:
            raise InvalidInput(
                f"template {template.name!r} ({template.language}) is {template.status}, not "
                "APPROVED, so it cannot be sent.",
                code="template_not_approved",
            )
        return await _queue_template(tx, who, conv, template, spec)


async def _queue_template(
    tx: Tx, who: Principal, conv: Conversation, template: TemplateRow, spec: TemplateSpec
) -> Message:
    graph, text = build_template(template, spec)
    route = await choose_route(tx, conv, template.channel_id)
    # WhatsApp's Graph `template` object, passed to the adapter as is.
    extra = {"template": graph, "template_id": template.id}
    kind = MessageKind.TEMPLATE
    return await do_send(tx, conv, route, kind, text, sender_agent_id=who.agent_id, extra=extra)


async def sync_all_templates(rt: Runtime, channel_id: int | None = None) -> list[dict[str, Any]]:
    """Sync every active template-capable channel (or one): `tidings sync-templates`, e.g.
    from cron. A channel that fails is reported with its reason; the others still sync."""
    results: list[dict[str, Any]] = []
    for info in await active_channels(rt, channel_id):
        if not isinstance(info.adapter, TemplateSource):
            continue
        try:
            results.append(await sync_templates(rt, info))
        except TidingsError as exc:
            results.append({"channel_id": info.id, "error": exc.message})
    return results


# Status changes arrive by webhook; the periodic sync catches what a missed webhook or a
# template created in WhatsApp Manager would otherwise leave out. Meta allows 200 management
# calls per hour per WABA (docs/channels/whatsapp.md#throughput-and-pair-limits), far above one sync
# (a page per 100 templates) in 6 h.
SYNC_EVERY_SECONDS = 6 * 3600.0


async def run(rt: Runtime) -> None:
    """Worker loop: sync every template-capable channel every SYNC_EVERY_SECONDS (the first
    time one period after start, so a restart loop does not hammer Meta)."""
    while True:
        # Jitter so that several worker processes do not all sync at the same moment.
        await asyncio.sleep(SYNC_EVERY_SECONDS * random.uniform(0.9, 1.1))
        try:
            results = await sync_all_templates(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic template sync failed; next try in one period")
            continue
        for r in results:
            if "error" in r:
                log.warning("template sync of channel %s: %s", r["channel_id"], r["error"])
