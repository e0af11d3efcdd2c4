"""Report tables (migration 0008_reports). Derived data only: every row can be rebuilt from
the raw tables with `tidings reports rebuild`, which is also how they are filled after a bulk
load. No foreign keys, on purpose: when a conversation is deleted, its contributions must still
be there for the rollup job to subtract them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.storage.models import Base
from tidings.storage.types import BigId, UTCDateTime

MONEY = Numeric(14, 5)

# Additive measures carried by both `ReportConversationDay` and `ReportDaily`.
MEASURES = (
    "messages_in",
    "messages_out",
    "delivered",
    "read",
    "failed",
    "fallbacks_failed",
    "fallbacks_timeout",
    "fallbacks_refused",
    "conversations_new",
    "conversations_resolved",
    "customer_replies",
    "customer_reply_seconds",
    "cost",
)


class ReportDirty(Base):
    """A conversation whose report rows are stale; written by triggers (see the migration)."""

    __tablename__ = "report_dirty"
    # 0013: the rollup takes all settled marks of the conversations in its batch at once.
    __table_args__ = (Index("ix_report_dirty_conversation", "conversation_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger)


class ReportConversation(Base):
    """One row per conversation: its timings and totals, recomputed from its raw rows."""

    __tablename__ = "report_conversation"
    conversation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigInteger)
    inbox_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(BigInteger)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    team_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    # The channel the conversation started on, and every channel used (",1,3,": LIKE-able).
    channel_id: Mapped[int | None] = mapped_column(BigInteger)
    channels: Mapped[str] = mapped_column(String(200), default="")
    channel_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_day: Mapped[date] = mapped_column(Date)
    first_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    first_response_bh_seconds: Mapped[int | None] = mapped_column(Integer)
    reply_count: Mapped[int] = mapped_column(Integer, default=0)
    reply_seconds: Mapped[int | None] = mapped_column(Integer)
    reply_bh_seconds: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_day: Mapped[date | None] = mapped_column(Date)
    resolution_seconds: Mapped[int | None] = mapped_column(Integer)
    resolution_bh_seconds: Mapped[int | None] = mapped_column(Integer)
    messages_in: Mapped[int] = mapped_column(Integer, default=0)
    messages_out: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class _Measures:
    messages_in: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_out: Mapped[int] = mapped_column(BigInteger, default=0)
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    read: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    fallbacks_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    fallbacks_timeout: Mapped[int] = mapped_column(BigInteger, default=0)
    fallbacks_refused: Mapped[int] = mapped_column(BigInteger, default=0)
    conversations_new: Mapped[int] = mapped_column(BigInteger, default=0)
    conversations_resolved: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_replies: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_reply_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))


class ReportConversationDay(_Measures, Base):
    """What one conversation contributes to one day x channel of `ReportDaily`. Kept so the
    rollup job can subtract the old contribution exactly before adding the new one."""

    __tablename__ = "report_conversation_day"
    conversation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(BigInteger)
    inbox_id: Mapped[int] = mapped_column(BigInteger)
    agent_id: Mapped[int] = mapped_column(BigInteger)
    team_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(BigInteger)


class ReportDaily(_Measures, Base):
    """The rollup: per workspace x UTC day x inbox x channel x assignee x team (0 = none)."""

    __tablename__ = "report_daily"
    workspace_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    inbox_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    agent_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    team_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class ReportOptOut(Base):
    """An opt-out as it happened (Consent keeps only the current state); trigger-written."""

    __tablename__ = "report_optout"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(BigInteger)
    channel_kind: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReportStatusLog(Base):
    """Each conversation status change with its time; trigger-written. Resolution time is read
    from here (the conversation row only keeps its current status)."""

    __tablename__ = "report_status_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
