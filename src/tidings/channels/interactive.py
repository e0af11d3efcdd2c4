"""Choices offered to a customer (reply buttons, lists, quick replies) in one canonical shape,
and the optional adapter interfaces for them and for sender signals (mark as read, typing).

Each provider package translates `Choices` into its own request and checks its own limits
(docs/channels/whatsapp.md#interactive-limits for WhatsApp; docs/channels/messenger.md#send-api
and docs/channels/instagram.md#sending for Messenger and Instagram), so a
refusal names the channel's limit before anything is queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from tidings.domain.enums import MessageKind


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    title: str
    description: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    title: str | None
    rows: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class Choices:
    type: str  # "buttons" | "list" | "quick_replies"
    body: str
    header: str | None = None
    footer: str | None = None
    buttons: tuple[Choice, ...] = ()
    button: str | None = None  # a list's menu label
    sections: tuple[Section, ...] = ()


class Refused(Exception):
    """The channel cannot carry these choices; `reason` says which limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class InteractiveSender(Protocol):
    def interactive(self, choices: Choices) -> tuple[MessageKind, str, dict[str, Any]]:
        """(message kind, text shown in the thread, `extra` for the adapter's send), or
        raises Refused."""
        ...


@runtime_checkable
class SignalSender(Protocol):
    """An adapter whose `send` understands `extra["signal"]` for these actions
    ("mark_read", "typing_on", "typing_off"); the message kind is SYSTEM and nothing is
    stored."""

    signals: ClassVar[frozenset[str]]


@runtime_checkable
class NamedReactions(Protocol):
    """An adapter whose reactions are sent by name rather than as an emoji (Instagram's
    `"reaction": "love"`); `reaction_names` maps the emoji an agent picks to that name, and
    an emoji without a name is refused before queueing."""

    reaction_names: ClassVar[Mapping[str, str]]


def check_length(what: str, value: str | None, limit: int, label: str) -> None:
    if value is not None and len(value) > limit:
        raise Refused(f"{label}: {what} may be at most {limit} characters ({len(value)} given).")


def unique_titles(choices: tuple[Choice, ...], label: str) -> None:
    titles = [c.title for c in choices]
    if len(set(titles)) != len(titles):
        raise Refused(f"{label}: button titles must be different from each other.")
    ids = [c.id for c in choices]
    if len(set(ids)) != len(ids):
        raise Refused(f"{label}: button ids must be different from each other.")
