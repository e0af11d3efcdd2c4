"""The Messenger simulator (sandbox `/sandbox/messenger`): a Facebook Page's Send API and
webhooks, built on the shared Messenger-platform simulator (see `messaging`)."""

from __future__ import annotations

from typing import ClassVar

from tidings.simulators.meta.messaging import MESSENGER, MessagingBinding, sandbox_entry

__all__ = ["MessengerBinding"]


class MessengerBinding(MessagingBinding):
    """Channels name their Page (`page_id`, `page_access_token`: the binding's defaults)."""

    kind: ClassVar[str] = "messenger"


SANDBOX = sandbox_entry(MESSENGER, MessengerBinding, "100000000000101")
