"""Message full-text search: PostgreSQL full-text (GIN) or SQLite FTS5 (migration 0005).

Both match whole words (the last one as a prefix, so results come while typing), all words
required, newest first, and only in conversations the agent may see.
"""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, visible_conversations
from tidings.storage.models import Conversation, Message

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
