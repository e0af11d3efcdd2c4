"""CSAT: an optional satisfaction question after a conversation is resolved.

When an inbox has CSAT enabled, resolving a conversation asks its customer once, in the same
transaction as the resolve (the question is an outbound message with its delivery row):

- the service window is open (or the channel has none): the inbox's question as text, asking
  for a number from 1 to 5;
- the window is closed: the inbox's configured template (an approved template without
  parameters, e.g. a WhatsApp utility template with 1-5 quick replies); without one the
  survey is skipped with reason `window_closed`.

Every send goes through the same policy checks as an agent's (consent/opt-out, length), and a
refusal is recorded as `state = skipped` with the policy's code as `reason`.

The customer's answer (a lone digit 1-5, "4/5", a keycap emoji, or an interactive/button reply
whose id or title is such a digit) arriving within `ANSWER_DAYS` on the same inbox, while the
surveyed conversation is still the contact's latest there and still resolved, is stored on that
conversation and recorded as the rating; it does not reopen the conversation or open a new
one. Any other message starts a conversation as usual.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from tidings.access import (
    Principal,
    inbox_filter,
    require_admin,
    require_conversation,
    require_inbox,
)
from tidings.actions import gate
from tidings.actions.base import (
    Tx,
    inbox_settings,
    lock_contacts,
    settings_changed,
    transaction,
)
from tidings.actions.gate import choose_route
from tidings.actions.outbound import do_send
from tidings.actions.templates import parameter_count, render
from tidings.domain import live_events
from tidings.domain.enums import ConversationStatus, MessageKind
from tidings.domain.errors import InvalidInput, PolicyRefusal
from tidings.domain.events import InboundMessage
from tidings.policy import service_window
from tidings.runtime import ChannelInfo, Runtime
from tidings.serialize import ts
from tidings.storage.models import (
    Channel,
    Contact,
    Conversation,
    CsatResponse,
    InboxCsat,
    Message,
    Template,
)
from tidings.storage.types import utcnow

DEFAULT_QUESTION = (
    "How would you rate the help you received? Reply with a number from 1 (poor) to 5 (excellent)."
)
ANSWER_DAYS = 7
ASKED, SKIPPED, ANSWERED = "asked", "skipped", "answered"
_RATING = re.compile(r"^\s*([1-5])\s*(?:(?:/|of|out of)\s*5)?\s*[.!]*\s*$", re.IGNORECASE)
_CHOICE = re.compile(r"^\s*(?:csat[-:_ ]?)?([1-5])(?:\D|$)", re.IGNORECASE)


def parse_rating(event: InboundMessage) -> int | None:
    """A 1-5 rating in the customer's reply, or None. Customer text is untrusted: free text
    counts only as an exact small pattern ("5", "4/5", "5️⃣", "⭐⭐⭐"), never a digit inside a
    sentence. A button or list choice (the customer picked it, e.g. a template quick reply
    "5 - Excellent" with payload "csat-5") may carry a label after its leading digit."""
    if event.kind == MessageKind.INTERACTIVE:
        for key in ("payload", "id", "title"):
            value = event.extra.get(key)
            if isinstance(value, str):
                m = _CHOICE.match(value[:100])
                if m:
                    return int(m.group(1))
    text = (event.text or "")[:40]
    # "5️⃣": a digit, the emoji variation selector and the combining keycap.
    text = text.replace("\ufe0f", "").replace("\u20e3", "").strip()
    if text and 1 <= len(text) <= 5 and set(text) == {"\u2b50"}:
        return len(text)
    m = _RATING.match(text)
    return int(m.group(1)) if m else None


# --- settings -------------------------------------------------------------------------------


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def settings_dict(inbox_id: int, row: InboxCsat | None) -> dict[str, Any]:
    return {
        "inbox_id": inbox_id,
        "enabled": bool(row and row.enabled),
        "question": (row.question if row and row.question else DEFAULT_QUESTION),
        "template_id": row.template_id if row else None,
    }


async def check_get_settings(rt: Runtime, who: Principal, inbox_id: int) -> dict[str, Any]:
    async with rt.db.read() as s:
        await require_inbox(s, who, inbox_id)
        return settings_dict(inbox_id, await s.get(InboxCsat, inbox_id))


async def check_set_settings(
    rt: Runtime, who: Principal, inbox_id: int, fields: dict[str, Any]
) -> dict[str, Any]:
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        row = await inbox_settings(tx, who, InboxCsat, inbox_id, enabled=False, updated_at=utcnow())
        if fields.get("enabled") is not None:
            row.enabled = bool(fields["enabled"])
        if "question" in fields:
            question = (fields["question"] or "").strip()
            if len(question) > 1000:
                raise InvalidInput("question: at most 1000 characters")
            if "\x00" in question or _unencodable(question):
                raise InvalidInput("question: must be text without NUL or lone surrogates")
            row.question = question or None
        if "template_id" in fields:
            template_id = fields["template_id"]
            if template_id is not None:
                template = await s.scalar(
                    select(Template)
                    .join(Channel, Channel.id == Template.channel_id)
                    .where(Template.id == template_id, Channel.inbox_id == inbox_id)
                )
                if template is None:
                    raise InvalidInput(
                        f"template_id: no template {template_id} on a channel of this inbox"
                    )
            row.template_id = template_id
        row.updated_at = utcnow()
        await s.flush()
        settings_changed(tx, who, "csat")
        return settings_dict(inbox_id, row)


# --- asking -----------------------------------------------------------------------------------


async def on_resolved(tx: Tx, conv: Conversation) -> CsatResponse | None:
    """Ask the customer of a just-resolved conversation, once per conversation."""
    s = tx.session
    settings = await s.get(InboxCsat, conv.inbox_id)
    if settings is None or not settings.enabled:
        return None
    if await s.scalar(select(CsatResponse.id).where(CsatResponse.conversation_id == conv.id)):
        return None
    survey = CsatResponse(
        workspace_id=conv.workspace_id,
        inbox_id=conv.inbox_id,
        conversation_id=conv.id,
        contact_id=conv.contact_id,
        agent_id=conv.assignee_id,
        state=ASKED,
        asked_at=utcnow(),
    )
    try:
        async with s.begin_nested():
            message = await _ask(tx, conv, settings)
    except PolicyRefusal as refusal:
        survey.state, survey.reason = SKIPPED, refusal.code
    else:
        survey.question_message_id, survey.channel_id = message.id, message.channel_id
    s.add(survey)
    await s.flush()
    return survey


async def _ask(tx: Tx, conv: Conversation, settings: InboxCsat) -> Message:
    s = tx.session
    now = utcnow()
    route = await choose_route(tx, conv, None)
    caps = route.channel.adapter.capabilities
    kind, text = MessageKind.TEXT, settings.question or DEFAULT_QUESTION
    extra: dict[str, Any] = {"csat": True}
    if not service_window(caps, await gate.last_inbound(s, conv, route.channel.id), now).open:
        template = await s.get(Template, settings.template_id) if settings.template_id else None
        if template is None or template.status.lower() != "approved":
            raise PolicyRefusal(
                "The service window is closed and no approved CSAT template is set.",
                code="window_closed",
            )

        if parameter_count(template):
            raise PolicyRefusal(
                "The CSAT template must not need parameters.", code="template_parameters"
            )
        route = await choose_route(tx, conv, template.channel_id)
        kind, text = MessageKind.TEMPLATE, render(template, [])
        extra["template"] = {"name": template.name, "language": {"code": template.language}}
        extra["template_id"] = template.id
    # No sender agent: the question is neither an agent's response (SLA) nor a human reply.
    return await do_send(tx, conv, route, kind, text, sender_agent_id=None, extra=extra)


# --- the answer -------------------------------------------------------------------------------


async def survey_awaiting(
    tx: Tx, channel: ChannelInfo, contact: Contact, event: InboundMessage
) -> tuple[CsatResponse, int] | None:
    """The open survey this inbound message answers, with its rating; None when it is not an
    answer (then the message is handled as any other)."""
    rating = parse_rating(event)
    if rating is None:
        return None
    s = tx.session
    await lock_contacts(tx, [contact.id])
    latest = await latest_conversation(tx, channel, contact)
    if latest is None or latest.status != ConversationStatus.RESOLVED:
        return None
    survey = await s.scalar(
        select(CsatResponse).where(
            CsatResponse.conversation_id == latest.id, CsatResponse.state == ASKED
        )
    )
    if survey is None or survey.asked_at < utcnow() - timedelta(days=ANSWER_DAYS):
        return None
    return survey, rating


async def latest_conversation(
    tx: Tx, channel: ChannelInfo, contact: Contact
) -> Conversation | None:
    """The contact's latest conversation in the channel's inbox, whatever its status."""
    return await tx.session.scalar(
        select(Conversation)
        .where(Conversation.contact_id == contact.id, Conversation.inbox_id == channel.inbox_id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )


async def do_record_answer(tx: Tx, survey: CsatResponse, message: Message, rating: int) -> None:
    survey.state = ANSWERED
    survey.rating = rating
    survey.answer_message_id = message.id
    survey.answered_at = utcnow()
    await tx.session.flush()
    tx.emit_for(live_events.CSAT_ANSWERED(response_dict(survey)), survey)


# --- reading ----------------------------------------------------------------------------------


def response_dict(r: CsatResponse) -> dict[str, Any]:
    return {
        "id": r.id,
        "conversation_id": r.conversation_id,
        "inbox_id": r.inbox_id,
        "contact_id": r.contact_id,
        "agent_id": r.agent_id,
        "channel_id": r.channel_id,
        "state": r.state,
        "reason": r.reason,
        "rating": r.rating,
        "question_message_id": r.question_message_id,
        "answer_message_id": r.answer_message_id,
        "asked_at": ts(r.asked_at),
        "answered_at": ts(r.answered_at),
    }


async def of_conversation(rt: Runtime, who: Principal, conversation_id: int) -> dict[str, Any]:
    async with rt.db.read() as s:
        require_conversation(who, await s.get(Conversation, conversation_id))
        row = await s.scalar(
            select(CsatResponse).where(CsatResponse.conversation_id == conversation_id)
        )
    return {"csat": response_dict(row) if row else None}


async def responses(
    rt: Runtime,
    who: Principal,
    *,
    since: datetime | None,
    until: datetime | None,
    inbox_id: int | None,
    limit: int,
) -> dict[str, Any]:
    """Answered surveys in [since, until) by answer time, newest first, with a summary."""
    where = [
        CsatResponse.workspace_id == who.workspace_id,
        inbox_filter(who, CsatResponse.inbox_id),
        CsatResponse.state == ANSWERED,
    ]
    if inbox_id is not None:
        where.append(CsatResponse.inbox_id == inbox_id)
    if since is not None:
        where.append(CsatResponse.answered_at >= since)
    if until is not None:
        where.append(CsatResponse.answered_at < until)
    async with rt.db.read() as s:
        rows = (
            await s.scalars(
                select(CsatResponse)
                .where(*where)
                .order_by(CsatResponse.answered_at.desc(), CsatResponse.id.desc())
                .limit(limit)
            )
        ).all()
        dist: dict[int, int] = {
            int(rating): int(n)
            for rating, n in await s.execute(
                select(CsatResponse.rating, func.count())
                .where(*where)
                .group_by(CsatResponse.rating)
            )
            if rating is not None
        }
    total = sum(dist.values())
    average = sum(k * v for k, v in dist.items()) / total if total else None
    return {
        "data": [response_dict(r) for r in rows],
        "summary": {
            "count": total,
            "average": round(average, 2) if average is not None else None,
            "distribution": {str(k): dist.get(k, 0) for k in range(1, 6)},
            # Share of 4s and 5s: the usual CSAT score.
            "satisfied_share": (
                round((dist.get(4, 0) + dist.get(5, 0)) / total, 3) if total else None
            ),
        },
    }
