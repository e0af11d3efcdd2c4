"""An agent sends an approved provider template into a conversation: the way to reach a
customer once the service window has closed (the policy layer lets templates through the
window check; consent still applies)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from tidings.access import Principal, require_conversation
from tidings.actions.base import transaction
from tidings.actions.outbound import choose_route, do_queue_message
from tidings.domain.enums import ConsentStatus, MessageKind
from tidings.domain.errors import InvalidInput, NotFound
from tidings.policy import OutboundContext, check_outbound
from tidings.runtime import Runtime
from tidings.storage.models import Channel, Consent, Conversation, ConversationChannel, Message
from tidings.storage.models import Template as TemplateRow
from tidings.storage.types import utcnow

PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
APPROVED = "approved"


def body_text(t: TemplateRow) -> str:
    for c in t.components or []:
        if isinstance(c, dict) and str(c.get("type", "")).upper() == "BODY":
            return str(c.get("text") or "")
    return ""


def parameter_count(t: TemplateRow) -> int:
    return max((int(n) for n in PLACEHOLDER.findall(body_text(t))), default=0)


def render(t: TemplateRow, params: list[str]) -> str:
    return PLACEHOLDER.sub(lambda m: params[int(m.group(1)) - 1], body_text(t))


async def usable_templates(rt: Runtime, s: Any, conv: Conversation) -> list[TemplateRow]:
    """Approved templates of the template-capable channels of the conversation's inbox."""
    rows = (
        await s.scalars(
            select(TemplateRow)
            .join(Channel, Channel.id == TemplateRow.channel_id)
            .where(Channel.inbox_id == conv.inbox_id, Channel.active.is_(True))
            .order_by(TemplateRow.name, TemplateRow.language)
        )
    ).all()
    return [t for t in rows if t.status.lower() == APPROVED]


async def check_send_template(
    rt: Runtime, who: Principal, conversation_id: int, template_id: int, params: list[str]
) -> Message:
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        usable = {t.id: t for t in await usable_templates(rt, s, conv)}
        template = usable.get(template_id)
        if template is None:
            raise NotFound("no approved template with this id for this conversation's inbox")
        wanted = parameter_count(template)
        clean = [p.strip() for p in params]
        if len(clean) != wanted or any(not p for p in clean):
            raise InvalidInput(f"params: this template needs {wanted} non-empty values")
        route = await choose_route(tx, conv, template.channel_id)
        window = await s.get(ConversationChannel, (conv.id, route.channel.id))
        opted_out = await s.scalar(
            select(Consent.id).where(
                Consent.contact_id == conv.contact_id,
                Consent.channel_kind == route.channel.kind,
                Consent.status == ConsentStatus.OPTED_OUT,
            )
        )
        text = render(template, clean)
        check_outbound(
            OutboundContext(
                channel_kind=route.channel.kind,
                channel_label=route.channel.adapter.label,
                capabilities=route.channel.adapter.capabilities,
                kind=MessageKind.TEMPLATE,
                text=text,
                last_inbound_at=window.last_inbound_at if window else None,
                opted_out=opted_out is not None,
                now=utcnow(),
            )
        )
        # WhatsApp's Graph `template` object, passed to the adapter as is.
        graph: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
        if clean:
            graph["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in clean]}
            ]
        return await do_queue_message(
            tx,
            conv,
            route,
            MessageKind.TEMPLATE,
            text,
            sender_agent_id=who.agent_id,
            extra={"template": graph, "template_id": template.id},
        )
