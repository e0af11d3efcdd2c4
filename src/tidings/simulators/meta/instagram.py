"""The Instagram simulator (sandbox `/sandbox/instagram`): one simulator for both API
flavours, built on the shared Messenger-platform simulator (see `messaging`). Accounts
are keyed by the Instagram account id (webhook `entry.id`); a facebook_login channel also
registers its Page id, which its sends are addressed to."""

from __future__ import annotations

import secrets
from typing import ClassVar

from tidings.simulators.kit import DemoChannel, SandboxEntry
from tidings.simulators.meta.messaging import INSTAGRAM, MessagingBinding, MessagingSimulator

__all__ = ["InstagramBinding"]


class InstagramBinding(MessagingBinding):
    kind: ClassVar[str] = "instagram"
    account_field: ClassVar[str] = "instagram_account_id"
    token_field: ClassVar[str] = "access_token"  # noqa: S105 (a field name)


SANDBOX = SandboxEntry(
    "instagram",
    lambda base: MessagingSimulator(INSTAGRAM, cdn_base_url=base),
    InstagramBinding,
    (
        DemoChannel(
            "instagram",
            "Instagram (sandbox)",
            lambda base: {
                "flavour": "instagram_login",
                "instagram_account_id": "17841400000000001",
                "access_token": secrets.token_urlsafe(24),
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(12),
                "human_agent": True,
                "api_base_url": base,
            },
        ),
    ),
)
