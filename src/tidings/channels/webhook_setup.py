"""Optional capability: Tidings points the provider's webhook at itself.

Viber's `set_webhook` is an API call (there is no console field for it), so an adapter that
implements `WebhookRegistrar` has it called when its channel is created
(`actions.admin.create_channel`) and from `tidings channel-webhook` when the public URL
changes. A failure does not undo the channel: it is logged and written to the audit log with
Viber's reason, and the operator can run the command again.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import httpx

from tidings.domain.errors import TidingsError

log = logging.getLogger(__name__)


@runtime_checkable
class WebhookRegistrar(Protocol):
    async def register_webhook(self, config: Any, url: str, http: httpx.AsyncClient) -> None:
        """Point the provider's callbacks for this channel at `url`; raise on refusal."""
        ...


async def register(adapter: Any, config: Any, url: str, http: httpx.AsyncClient) -> str | None:
    """Register `url`; None when it worked, else the reason it did not (never raises)."""
    if not isinstance(adapter, WebhookRegistrar):
        return None
    try:
        await adapter.register_webhook(config, url, http)
    except TidingsError as exc:
        reason = exc.message
    except httpx.HTTPError as exc:
        reason = f"could not reach the provider ({type(exc).__name__})"
    else:
        return None
    log.warning("setting the webhook to %s failed: %s", url, reason)
    return reason
