"""The Messenger simulator (sandbox `/sandbox/messenger`): a Facebook Page's Send API and
webhooks, built on the shared Messenger-platform simulator (see `messaging`)."""

from __future__ import annotations

import secrets
from typing import ClassVar

from tidings.simulators.kit import DemoChannel, SandboxEntry
from tidings.simulators.meta.messaging import MESSENGER, MessagingBinding, MessagingSimulator

__all__ = ["MessengerBinding"]


class MessengerBinding(MessagingBinding):
    kind: ClassVar[str] = "messenger"
    account_field: ClassVar[str] = "page_id"
    token_field: ClassVar[str] = "page_access_token"  # noqa: S105 (a field name)


SANDBOX = SandboxEntry(
    "messenger",
    lambda base: MessagingSimulator(MESSENGER, cdn_base_url=base),
    MessengerBinding,
    (
        DemoChannel(
            "messenger",
            "Messenger (sandbox)",
            lambda base: {
                "page_id": "100000000000101",
                "page_access_token": secrets.token_urlsafe(24),
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(12),
                "human_agent": True,
                "api_base_url": base,
            },
        ),
    ),
)
