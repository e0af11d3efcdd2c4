"""Message full-text search: PostgreSQL full-text (GIN) or SQLite FTS5 (migration 0005).

Both match whole words (the last one as a prefix, so results come while typing), all words
required, newest first, and only in conversations the agent may see.
"""

from __future__ import annotations

import re

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    func,
    literal_column,
    select,
    text,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, visible_conversations
from tidings.storage.models import Contact, ContactIdentity, Conversation, Message

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 8


def words(query: str) -> list[str]:
    return _WORD.findall(query.lower())[:MAX_WORDS]


def _pg_condition(terms: list[str]) -> ColumnElement[bool]:
    # to_tsquery with each word quoted-safe (only \w characters survive `words`), the last one
    # as a prefix; the expression matches the index in migration 0005 exactly.
    query = " & ".join([*terms[:-1], f"{terms[-1]}:*"])
    vector = func.to_tsvector(literal_column("'simple'"), func.coalesce(Message.body, ""))
    return vector.op("@@")(func.to_tsquery(literal_column("'simple'"), query))


def _fts5_match(terms: list[str]) -> str:
    # FTS5 query syntax: quoted strings are literal; a trailing * makes the last a prefix.
    return " ".join([*(f'"{t}"' for t in terms[:-1]), f'"{terms[-1]}"*'])


async def search_messages(
    session: AsyncSession, who: Principal, query: str, limit: int = 20
) -> list[Message]:
    terms = words(query)
    if not terms:
        return []
    stmt = (
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(visible_conversations(who))
        .order_by(Message.id.desc())
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.where(_pg_condition(terms))
    else:
        matching = text("SELECT rowid FROM message_fts WHERE message_fts MATCH :q").bindparams(
            q=_fts5_match(terms)
        )
        stmt = stmt.where(Message.id.in_(matching.columns(literal_column("rowid"))))
    return list((await session.scalars(stmt)).all())


def contact_match(workspace_id: int, query: str) -> CompoundSelect[int] | None:
    """Ids of the workspace's contacts whose name, email, phone or any channel address contains
    `query` (case-insensitive), or None for an empty query.

    One SELECT per column, combined with UNION, so each can use its own index (trigram GIN
    indexes on PostgreSQL, migration 0005): an OR across columns and an EXISTS would make the
    planner scan every contact.
    """
    term = query.strip().replace("%", "").replace("_", "")
    if not term:
        return None
    like = f"%{term}%"
    in_ws = Contact.workspace_id == workspace_id
    parts: list[Select[int]] = [
        select(Contact.id).where(in_ws, Contact.name.ilike(like)),
        select(Contact.id).where(in_ws, Contact.email.ilike(like)),
        select(ContactIdentity.contact_id).where(
            ContactIdentity.workspace_id == workspace_id, ContactIdentity.address.ilike(like)
        ),
    ]
    digits = "".join(ch for ch in term if ch.isdigit())
    if len(digits) >= 4:
        parts.append(select(Contact.id).where(in_ws, Contact.phone_e164.like(f"%{digits}%")))
    return union(*parts)
