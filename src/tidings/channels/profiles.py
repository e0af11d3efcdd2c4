"""Optional capability: the provider can say who a customer is (their display name).

Messenger (User Profile API), Instagram (user profile fields) and WeChat (`cgi-bin/user/info`)
can; RBM, SMS and the others cannot. The `profiles` worker (`tidings.workers.profiles`) asks in the
background, never while a webhook or an inbound event is being handled, and caches the answer
on the identity (`contact_identity.display_name`, `profile_fetched_at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx


@dataclass(frozen=True, slots=True)
class Profile:
    """What the provider tells about one customer. `name` None: it has no name for them
    (WeChat no longer gives nicknames to most accounts)."""

    name: str | None
    username: str | None = None
    # The provider's https address of the customer's picture (LINE `pictureUrl`, Viber
    # `avatar`), kept as the contact's `picture_url` attribute; never stored, fetched through
    # the egress policy only when a page shows it (api/avatars.py).
    picture_url: str | None = None


class ProfileUnavailable(Exception):
    """The provider could not answer now (`retriable`) or will not for this customer."""

    def __init__(self, reason: str, *, retriable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable


@runtime_checkable
class ProfileSource(Protocol):
    async def fetch_profile(
        self, config: Any, address: str, http: httpx.AsyncClient
    ) -> Profile: ...


def clean(value: object, limit: int = 300) -> str | None:
    """A name as a provider gives it: a non-empty string, trimmed and capped."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text[:limit] or None
