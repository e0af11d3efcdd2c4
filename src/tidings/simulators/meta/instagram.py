"""The Instagram simulator (sandbox `/sandbox/instagram`): one simulator for both API
flavours, built on the shared Messenger-platform simulator (see `messaging`). Accounts
are keyed by the Instagram account id (webhook `entry.id`); a facebook_login channel also
registers its Page id, which its sends are addressed to."""

from __future__ import annotations

from typing import ClassVar

from tidings.simulators.meta.messaging import INSTAGRAM, MessagingBinding, sandbox_entry

__all__ = ["InstagramBinding"]


class InstagramBinding(MessagingBinding):
    kind: ClassVar[str] = "instagram"
    account_field: ClassVar[str] = "instagram_account_id"
    token_field: ClassVar[str] = "access_token"  # noqa: S105 (a field name)


SANDBOX = sandbox_entry(INSTAGRAM, InstagramBinding, "17841400000000001", flavour="instagram_login")
