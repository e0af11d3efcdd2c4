"""Opt-out keywords and the consent registry (docs/channels/sms.md#opt-out-keywords).

On SMS channels (adapters whose capabilities say `sms`), an inbound message that is exactly one
keyword — ignoring case and spaces — changes the contact's consent for that channel kind:

- opt-out (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT): both purposes become `opted_out`;
  `check_consent` then refuses every send on that kind until the customer opts back in.
  "STOP PLEASE" is not a keyword, as at Twilio.
- opt-in (START, YES, UNSTOP): both purposes become `opted_in` again.
- help (HELP, INFO): the configured help reply is queued through the normal outbound path.

Each change is written in the receiving transaction, with the source keyword and message, plus
a system message in the thread and a `consent.updated` live event. Repeating the current state
("STOP" twice) changes nothing and adds nothing to the thread.

Settings (environment):
- `TIDINGS_OPT_OUT_KEYWORDS`: JSON `{"opt_out": [...], "opt_in": [...], "help": [...]}`; each
  list given replaces the default one, so a French deployment can add "ARRET", "ARRÊT"...
- `TIDINGS_SMS_HELP_REPLY`: the help text; set it empty to send none (e.g. when the Twilio
  number already answers HELP itself, which it does by default on long codes).

A provider that refuses a send because the recipient opted out (Twilio 21610) is recorded the
same way by `do_record_provider_opt_out`, so the next reply is refused before it is queued.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select

from tidings.actions.base import Tx
from tidings.actions.system_line import do_system_line
from tidings.domain import live_events
from tidings.domain.enums import (
    ConsentPurpose,
    ConsentStatus,
    MessageKind,
)
from tidings.domain.errors import PolicyRefusal
from tidings.domain.events import InboundMessage
from tidings.domain.numbers import normalize
from tidings.runtime import ChannelInfo
from tidings.storage.models import Consent, Contact, Conversation, Message
from tidings.storage.types import utcnow

log = logging.getLogger(__name__)


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


DEFAULT_KEYWORDS: dict[Keyword, tuple[str, ...]] = {
    Keyword.OPT_OUT: ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"),
    Keyword.OPT_IN: ("START", "YES", "UNSTOP"),
    Keyword.HELP: ("HELP", "INFO"),
}
DEFAULT_HELP_REPLY = (
    "You are messaging our support team. Reply STOP to stop receiving messages, START to "
    "receive them again. Message and data rates may apply."
)


def _fold(text: str) -> str:
    """Case- and space-insensitive form: NFKC, casefolded, all whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True, slots=True)
class KeywordSettings:
    lists: dict[Keyword, tuple[str, ...]]
    help_reply: str

    def match(self, text: str | None) -> tuple[Keyword, str] | None:
        """Which list the whole message matches, with the keyword as configured."""
        if not text:
            return None
        folded = _fold(text)
        if not folded:
            return None
        for kind in (Keyword.OPT_OUT, Keyword.OPT_IN, Keyword.HELP):
            for word in self.lists[kind]:
                if _fold(word) == folded:
                    return kind, word
        return None


def keyword_settings() -> KeywordSettings:
    lists = dict(DEFAULT_KEYWORDS)
    raw = os.environ.get("TIDINGS_OPT_OUT_KEYWORDS", "").strip()
    if raw:
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError:
            doc = None
            log.error("TIDINGS_OPT_OUT_KEYWORDS is not JSON; using the default keywords")
        if isinstance(doc, dict):
            for kind in Keyword:
                words = doc.get(kind.value)
                if isinstance(words, list) and all(isinstance(w, str) and w for w in words):
                    lists[kind] = tuple(words)
    help_reply = os.environ.get("TIDINGS_SMS_HELP_REPLY", DEFAULT_HELP_REPLY)
    return KeywordSettings(lists, help_reply.strip())


async def current_status(tx: Tx, contact_id: int, channel_kind: str) -> ConsentStatus | None:
    """`opted_out` if any purpose is opted out on this kind, else `opted_in` if recorded."""
    rows = (
        await tx.session.scalars(
            select(Consent.status).where(
                Consent.contact_id == contact_id, Consent.channel_kind == channel_kind
            )
        )
    ).all()
    if ConsentStatus.OPTED_OUT in rows:
        return ConsentStatus.OPTED_OUT
    return ConsentStatus.OPTED_IN if rows else None


async def do_set_consent(
    tx: Tx,
    conv: Conversation,
    channel: ChannelInfo,
    status: ConsentStatus,
    *,
    source: str,
    source_message_id: int | None,
    note: str,
) -> bool:
    """Set both purposes of the contact's consent on `channel.kind` to `status`, add `note` to
    the thread and announce it. Returns False (and writes nothing) when already in `status`."""
    if await current_status(tx, conv.contact_id, channel.kind) == status:
        return False
    now = utcnow()
    for purpose in ConsentPurpose:
        values = {
            "status": status,
            "source": source[:64],
            "source_message_id": source_message_id,
            "changed_at": now,
        }
        await tx.session.execute(
            tx.rt.db.insert(Consent)
            .values(
                workspace_id=conv.workspace_id,
                contact_id=conv.contact_id,
                channel_kind=channel.kind,
                purpose=purpose,
                **values,
            )
            .on_conflict_do_update(
                index_elements=["contact_id", "channel_kind", "purpose"], set_=values
            )
        )
    await do_system_line(
        tx,
        conv,
        note,
        {"consent": {"status": str(status), "source": source}},
        channel_id=channel.id,
        from_customer=True,
    )
    tx.emit_for(
        live_events.CONSENT_UPDATED(
            {
                "contact_id": conv.contact_id,
                "channel_kind": channel.kind,
                "status": str(status),
                "purposes": [str(p) for p in ConsentPurpose],
                "source": source,
                "source_message_id": source_message_id,
                "changed_at": now.isoformat(),
            }
        ),
        conv,
    )
    return True


async def do_after_inbound(
    tx: Tx,
    channel: ChannelInfo,
    event: InboundMessage,
    contact: Contact,
    conv: Conversation,
    message: Message,
) -> None:
    """Run after an inbound message is stored, in its transaction: flag a sender phone that
    cannot be read as a number, and apply opt-out/opt-in/help keywords on SMS channels."""
    if event.echo:
        return
    flag_unparsed_phone(contact, event.sender.phone)
    if event.consent is not None:
        await _provider_consent(tx, channel, event, conv, message)
        return
    if not channel.adapter.capabilities.sms or event.kind != MessageKind.TEXT:
        return
    settings = keyword_settings()
    matched = settings.match(event.text)
    if matched is None:
        return
    kind, word = matched
    source = f"keyword:{word.upper()}"
    said = (event.text or word).strip()
    if kind in (Keyword.OPT_OUT, Keyword.OPT_IN):
        if kind == Keyword.OPT_OUT:
            status = ConsentStatus.OPTED_OUT
            note = (
                f'Customer opted out of SMS by replying "{said}"; '
                "nothing more can be sent to them by SMS until they reply START."
            )
        else:
            status = ConsentStatus.OPTED_IN
            note = f'Customer opted back in to SMS by replying "{said}".'
        await do_set_consent(
            tx, conv, channel, status, source=source, source_message_id=message.id, note=note
        )
    elif settings.help_reply:
        # Imported here: outbound imports this module (provider opt-outs).
        from tidings.actions.gate import Route, check_send
        from tidings.actions.outbound import do_queue_message

        route = Route(channel, event.sender.address)
        try:
            # The gate every send passes (an opted-out customer gets no HELP answer).
            await check_send(
                tx.session, conv, route, MessageKind.TEXT, settings.help_reply, person=False
            )
        except PolicyRefusal as refusal:
            log.info("HELP reply not sent to contact %s: %s", conv.contact_id, refusal.message)
            return
        # An automatic reply is not an agent answering: the customer's message stays unread.
        await do_queue_message(
            tx,
            conv,
            route,
            MessageKind.TEXT,
            settings.help_reply,
            sender_agent_id=None,
            extra={"automatic": "help_reply", "in_reply_to": message.id},
            keep_unread=True,
        )


async def _provider_consent(
    tx: Tx, channel: ChannelInfo, event: InboundMessage, conv: Conversation, message: Message
) -> None:
    """The channel reported that the customer stopped or resumed messages (WeChat unfollow /
    follow, RBM UNSUBSCRIBE / SUBSCRIBE). A follow only counts as opting back in after an
    opt-out: a first follow records nothing."""
    label = channel.adapter.label
    what = str(event.extra.get("event") or event.consent)
    if event.consent == ConsentStatus.OPTED_OUT:
        status = ConsentStatus.OPTED_OUT
        note = (
            f"Customer unsubscribed on {label}; nothing more can be sent to them there "
            "until they subscribe again."
        )
    elif await current_status(tx, conv.contact_id, channel.kind) == ConsentStatus.OPTED_OUT:
        status = ConsentStatus.OPTED_IN
        note = f"Customer subscribed again on {label}; messages can be sent to them there."
    else:
        return
    await do_set_consent(
        tx, conv, channel, status, source=f"event:{what}", source_message_id=message.id, note=note
    )


def flag_unparsed_phone(contact: Contact, raw: str | None) -> None:
    """A phone the channel gave that is no E.164 number (short code, alphanumeric sender,
    garbage) is kept as given in `phone_unparsed`, never rewritten into something else."""
    if not raw or contact.phone_e164:
        return
    if normalize(raw) is not None:
        return
    attributes = dict(contact.attributes or {})
    if attributes.get("phone_unparsed") != raw:
        attributes["phone_unparsed"] = raw
        contact.attributes = attributes


async def do_record_provider_opt_out(
    tx: Tx, channel_id: int, message: Message, code: str | None
) -> None:
    """The provider refused `message` because its recipient opted out (Twilio 21610): record
    it, so that the registry matches the provider and the next send is refused up front."""
    channel = await tx.rt.channels.get(channel_id)
    if channel is None:
        return
    conv = await tx.session.get_one(Conversation, message.conversation_id)
    await do_set_consent(
        tx,
        conv,
        channel,
        ConsentStatus.OPTED_OUT,
        source=f"provider:{code or 'opted_out'}",
        source_message_id=message.id,
        note=f"{channel.adapter.label} reports that the customer opted out (they replied STOP "
        "earlier); nothing more can be sent to them there until they reply START.",
    )
